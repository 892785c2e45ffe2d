/**
 * `util.format` as console.log uses it (https://nodejs.org/api/util.html#utilformatformat-args):
 * a leading string's %s %d %i %f %j %o %O %c %% are substituted, remaining arguments are appended
 * with spaces, strings as they are and everything else inspected.
 */
import {
  JSONStringify,
  NumberCtor,
  NumberParseFloat,
  NumberParseInt,
  ObjectIs,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeSlice,
  SymbolPrototypeToString,
} from '../primordials.ts';
import { inspect } from './inspect.ts';

export function formatArgs(args: ArrayLike<unknown>): string {
  if (args.length === 0) return '';
  const first = args[0];
  let next = 1;
  let out: string;
  if (typeof first === 'string' && args.length > 1) {
    out = '';
    let copied = 0;
    for (let i = 0; i < first.length - 1; i++) {
      if (StringPrototypeCharCodeAt(first, i) !== 0x25) continue;
      const directive = first[i + 1];
      let replacement: string;
      if (directive === '%') replacement = '%';
      else if (next >= args.length || !isDirective(directive)) continue;
      else replacement = substitute(directive, args[next++]);
      out += StringPrototypeSlice(first, copied, i) + replacement;
      copied = i + 2;
      i++;
    }
    out += StringPrototypeSlice(first, copied);
  } else {
    out = typeof first === 'string' ? first : inspect(first);
  }
  for (; next < args.length; next++) {
    const arg = args[next];
    out += ` ${typeof arg === 'string' ? arg : inspect(arg)}`;
  }
  return out;
}

function isDirective(directive: string): boolean {
  switch (directive) {
    case 's': case 'd': case 'i': case 'f': case 'j': case 'o': case 'O': case 'c':
      return true;
    default:
      return false;
  }
}

function substitute(directive: string, arg: unknown): string {
  switch (directive) {
    case 's':
      if (typeof arg === 'string') return arg;
      if (typeof arg === 'bigint') return `${arg}n`;
      if (typeof arg === 'symbol') return SymbolPrototypeToString(arg);
      if (typeof arg === 'object' && arg !== null) return inspect(arg, 1);
      return inspect(arg);
    case 'd':
      if (typeof arg === 'bigint') return `${arg}n`;
      return formatNumber(typeof arg === 'object' || typeof arg === 'symbol' ? NaN : NumberCtor(arg));
    case 'i':
      if (typeof arg === 'bigint') return `${arg}n`;
      return formatNumber(typeof arg === 'object' || typeof arg === 'symbol' ? NaN : NumberParseInt(`${arg as string}`));
    case 'f':
      return formatNumber(typeof arg === 'symbol' ? NaN : NumberParseFloat(typeof arg === 'object' ? '' : `${arg as string}`));
    case 'j':
      return toJson(arg);
    case 'c':
      return '';
    default:
      return inspect(arg);
  }
}

function formatNumber(value: number): string {
  return ObjectIs(value, -0) ? '-0' : `${value}`;
}

function toJson(value: unknown): string {
  try {
    const json = JSONStringify(value);
    return json === undefined ? 'undefined' : json;
  } catch (error) {
    // Node prints '[Circular]' for a cyclic %j argument; other throws (BigInt, toJSON) propagate.
    const message = (error as { message?: unknown } | null)?.message;
    if (typeof message === 'string' && StringPrototypeIndexOf(message, 'circular') >= 0) return '[Circular]';
    throw error;
  }
}
