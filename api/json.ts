/**
 * JSON from request bodies, with its nesting depth checked before `JSON.parse` sees it. A deeply
 * nested value parses fine but overflows the stack of whatever walks it next (serializing it into
 * the log, structured clone to a host, validation), far from the request; here it is one linear,
 * iterative pass over the text that skips strings, and a 400 ERR_TOO_DEEP.
 *
 * @example
 *   const spec = parseJson(text, { maxDepth: MAX_JSON_DEPTH, what: 'graph spec' });
 */
import { TributaryError } from '../runtime/errors.ts';

export interface JsonOptions {
  /** Arrays and objects that may enclose one another (a scalar is depth 0, `[1]` depth 1). */
  maxDepth: number;
  /** Names the value in error messages: 'graph spec', 'record 3'. */
  what: string;
}

const OPEN_OBJECT = 0x7b; // {
const CLOSE_OBJECT = 0x7d; // }
const OPEN_ARRAY = 0x5b; // [
const CLOSE_ARRAY = 0x5d; // ]
const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \

/**
 * The deepest nesting of arrays and objects in `text`, stopping as soon as it passes `limit`
 * (returns limit + 1 then). Brackets inside strings do not count. Malformed text is left for
 * JSON.parse to reject; this only needs to be right for text that parses.
 */
export function jsonDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (inString) {
      if (ch === BACKSLASH) i++;
      else if (ch === QUOTE) inString = false;
    } else if (ch === QUOTE) {
      inString = true;
    } else if (ch === OPEN_OBJECT || ch === OPEN_ARRAY) {
      if (++depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (ch === CLOSE_OBJECT || ch === CLOSE_ARRAY) {
      depth--;
    }
  }
  return deepest;
}

/** `JSON.parse` after the depth check; a syntax error is a 400 ERR_BAD_REQUEST. */
export function parseJson(text: string, options: JsonOptions): unknown {
  if (jsonDepth(text, options.maxDepth) > options.maxDepth) {
    throw new TributaryError('ERR_TOO_DEEP', `${options.what} nests deeper than ${options.maxDepth} levels of arrays and objects`, {
      details: { maxDepth: options.maxDepth },
    });
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TributaryError('ERR_BAD_REQUEST', `${options.what} is not valid JSON: ${String((error as Error).message).slice(0, 200)}`);
  }
}
