/**
 * atob/btoa (https://html.spec.whatwg.org/multipage/webappapis.html#atob) over "binary strings"
 * (one code unit per byte), with the forgiving-base64 decode of the Infra standard.
 */
import { StringFromCharCode, StringPrototypeCharCodeAt } from '../primordials.ts';
import { createDomError } from './dom-error.ts';
import { requireArguments, toDOMString } from './webidl.ts';
import { isAsciiWhitespace } from './whitespace.ts';

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
/** Code unit → 6-bit value, or -1 for units outside the alphabet. */
const DECODE = new Int8Array(128).fill(-1);
for (let i = 0; i < 64; i++) DECODE[StringPrototypeCharCodeAt(ALPHABET, i)] = i;

export function btoa(data: unknown): string {
  requireArguments(arguments.length, 1, 'btoa');
  const input = toDOMString(data);
  const length = input.length;
  let out = '';
  for (let i = 0; i < length; i += 3) {
    const a = byteAt(input, i);
    const b = i + 1 < length ? byteAt(input, i + 1) : 0;
    const c = i + 2 < length ? byteAt(input, i + 2) : 0;
    out += ALPHABET[a >> 2] + ALPHABET[((a & 0x03) << 4) | (b >> 4)];
    out += i + 1 < length ? ALPHABET[((b & 0x0f) << 2) | (c >> 6)] : '=';
    out += i + 2 < length ? ALPHABET[c & 0x3f] : '=';
  }
  return out;
}

export function atob(data: unknown): string {
  requireArguments(arguments.length, 1, 'atob');
  const input = toDOMString(data);
  const sextets: number[] = [];
  for (let i = 0; i < input.length; i++) {
    const unit = StringPrototypeCharCodeAt(input, i);
    if (!isAsciiWhitespace(unit)) sextets[sextets.length] = unit;
  }
  let length = sextets.length;
  if (length % 4 === 0 && length > 0 && sextets[length - 1] === 0x3d) {
    length -= sextets[length - 2] === 0x3d ? 2 : 1;
  }
  if (length % 4 === 1) throw invalid();
  for (let i = 0; i < length; i++) {
    const unit = sextets[i];
    const value = unit < 128 ? DECODE[unit] : -1;
    if (value < 0) throw invalid();
    sextets[i] = value;
  }
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (let i = 0; i < length; i++) {
    buffer = ((buffer << 6) | sextets[i]) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += StringFromCharCode((buffer >> bits) & 0xff);
    }
  }
  return out;
}

function byteAt(input: string, index: number): number {
  const unit = StringPrototypeCharCodeAt(input, index);
  if (unit > 0xff) {
    throw createDomError('btoa: the string contains characters outside of the Latin1 range', 'InvalidCharacterError');
  }
  return unit;
}

function invalid(): Error {
  return createDomError('atob: the string to be decoded is not correctly encoded', 'InvalidCharacterError');
}
