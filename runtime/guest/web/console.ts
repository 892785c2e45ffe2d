/**
 * The `console` namespace. Each call becomes one log record `(level, line)` sent fire-and-forget
 * to the host; `trace` reports at 'debug' and `dir` at 'log'. A line is cut to MAX_LINE_BYTES of
 * UTF-8 (the platform's per-line limit, MAX_LOG_LINE_BYTES in runtime/limits.ts).
 */
import type { HostRefs } from '../host-refs.ts';
import { SafeError, StringPrototypeCharCodeAt, StringPrototypeIndexOf, StringPrototypeSlice } from '../primordials.ts';
import { formatArgs } from './format.ts';
import { inspect } from './inspect.ts';
import { defineToStringTag } from './webidl.ts';

export const MAX_LINE_BYTES = 8 * 1024;
const TRUNCATED = '…';

type Level = 'log' | 'info' | 'warn' | 'error' | 'debug';

export function createConsole(host: HostRefs): Console {
  const log = host.log;
  // Synchronous, so the line is attributed to the invocation that wrote it (the host is waiting on us).
  const send = (level: Level, line: string) => void log.applySync(undefined, [level, truncateUtf8(line, MAX_LINE_BYTES)]);
  const console: Console = {
    log(...args: unknown[]): void {
      send('log', formatArgs(args));
    },
    info(...args: unknown[]): void {
      send('info', formatArgs(args));
    },
    warn(...args: unknown[]): void {
      send('warn', formatArgs(args));
    },
    error(...args: unknown[]): void {
      send('error', formatArgs(args));
    },
    debug(...args: unknown[]): void {
      send('debug', formatArgs(args));
    },
    trace(...args: unknown[]): void {
      const captured: unknown = new SafeError().stack;
      const stack = typeof captured === 'string' ? captured : '';
      // Drop V8's "Error" header line and this frame: the trace starts at the caller.
      const frames = StringPrototypeIndexOf(stack, '\n    at ', StringPrototypeIndexOf(stack, '\n    at ') + 1);
      const message = args.length === 0 ? 'Trace' : `Trace: ${formatArgs(args)}`;
      send('debug', frames < 0 ? message : message + StringPrototypeSlice(stack, frames));
    },
    assert(condition: unknown, ...args: unknown[]): void {
      if (condition) return;
      send('error', args.length === 0 ? 'Assertion failed' : `Assertion failed: ${formatArgs(args)}`);
    },
    dir(value: unknown): void {
      send('log', inspect(value));
    },
  };
  defineToStringTag(console, 'console');
  return console;
}

export interface Console {
  log(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  trace(...args: unknown[]): void;
  assert(condition: unknown, ...args: unknown[]): void;
  dir(value: unknown): void;
}

/** `line` cut at a code point boundary so that it and the marker fit in `maxBytes` of UTF-8. */
export function truncateUtf8(line: string, maxBytes: number): string {
  if (line.length * 3 <= maxBytes) return line;
  const budget = maxBytes - 3;
  let bytes = 0;
  let cut = -1;
  for (let i = 0; i < line.length; i++) {
    const unit = StringPrototypeCharCodeAt(line, i);
    const pair =
      unit >= 0xd800 && unit <= 0xdbff && i + 1 < line.length && (StringPrototypeCharCodeAt(line, i + 1) & 0xfc00) === 0xdc00;
    const size = unit < 0x80 ? 1 : unit < 0x800 ? 2 : pair ? 4 : 3;
    if (cut < 0 && bytes + size > budget) cut = i;
    bytes += size;
    if (bytes > maxBytes) return StringPrototypeSlice(line, 0, cut) + TRUNCATED;
    if (pair) i++;
  }
  return line;
}
