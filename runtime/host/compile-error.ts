/** Turns a V8 SyntaxError from isolated-vm ("Unexpected token ';' [fn:///x.js:2:23]") into ERR_COMPILE. */
import { TributaryError } from '../errors.ts';

const LOCATION = /\s*\[[^\]]*:(\d+):(\d+)\]$/;

export function compileError(error: unknown): TributaryError {
  const raw = error instanceof Error ? error.message : String(error);
  const match = LOCATION.exec(raw);
  const message = `${error instanceof Error ? error.name : 'Error'}: ${raw.replace(LOCATION, '')}`;
  if (!match) return new TributaryError('ERR_COMPILE', message);
  const line = Number(match[1]);
  const column = Number(match[2]);
  return new TributaryError('ERR_COMPILE', `${message} (line ${line}, column ${column})`, { details: { line, column } });
}
