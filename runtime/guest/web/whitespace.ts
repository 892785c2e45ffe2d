/** The Infra and Fetch standards' whitespace sets, and trimming by them. */
import { StringPrototypeCharCodeAt, StringPrototypeSlice } from '../primordials.ts';

/** ASCII whitespace: TAB, LF, FF, CR, SPACE (https://infra.spec.whatwg.org/#ascii-whitespace). */
export function isAsciiWhitespace(unit: number): boolean {
  return unit === 0x09 || unit === 0x0a || unit === 0x0c || unit === 0x0d || unit === 0x20;
}

/** HTTP whitespace: TAB, LF, CR, SPACE (https://fetch.spec.whatwg.org/#http-whitespace). */
export function isHttpWhitespace(unit: number): boolean {
  return unit === 0x09 || unit === 0x0a || unit === 0x0d || unit === 0x20;
}

/** `input` without leading and trailing code units for which `isSpace` holds. */
export function trim(input: string, isSpace: (unit: number) => boolean): string {
  let start = 0;
  let end = input.length;
  while (start < end && isSpace(StringPrototypeCharCodeAt(input, start))) start++;
  while (end > start && isSpace(StringPrototypeCharCodeAt(input, end - 1))) end--;
  return start === 0 && end === input.length ? input : StringPrototypeSlice(input, start, end);
}
