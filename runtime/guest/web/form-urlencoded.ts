/**
 * application/x-www-form-urlencoded parsing and serializing
 * (https://url.spec.whatwg.org/#concept-urlencoded), as URLSearchParams and form bodies use it.
 */
import {
  ArrayPrototypePush,
  SafeUint8Array,
  StringFromCharCode,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeSlice,
} from '../primordials.ts';
import { byteLengthOf } from './bytes.ts';
import { Utf8Decoder, utf8Encode } from './utf8.ts';

export type Pair = [name: string, value: string];

const HEX = '0123456789ABCDEF';

/** Name/value pairs of `input` (a USVString without a leading '?'). */
export function parseUrlencoded(input: string): Pair[] {
  const pairs: Pair[] = [];
  let start = 0;
  while (start <= input.length) {
    let end = StringPrototypeIndexOf(input, '&', start);
    if (end < 0) end = input.length;
    if (end > start) {
      const sequence = StringPrototypeSlice(input, start, end);
      const equals = StringPrototypeIndexOf(sequence, '=');
      const name = equals < 0 ? sequence : StringPrototypeSlice(sequence, 0, equals);
      const value = equals < 0 ? '' : StringPrototypeSlice(sequence, equals + 1);
      ArrayPrototypePush(pairs, [decodeComponent(name), decodeComponent(value)]);
    }
    start = end + 1;
  }
  return pairs;
}

export function serializeUrlencoded(pairs: readonly Pair[]): string {
  let out = '';
  for (let i = 0; i < pairs.length; i++) {
    if (i > 0) out += '&';
    out += `${encodeComponent(pairs[i][0])}=${encodeComponent(pairs[i][1])}`;
  }
  return out;
}

/** '+' becomes a space, then percent-decode the UTF-8 bytes and "UTF-8 decode without BOM". */
function decodeComponent(input: string): string {
  if (StringPrototypeIndexOf(input, '%') < 0 && StringPrototypeIndexOf(input, '+') < 0) return input;
  const bytes = utf8Encode(input);
  const length = byteLengthOf(bytes);
  const out = new SafeUint8Array(length);
  let written = 0;
  for (let i = 0; i < length; i++) {
    const byte = bytes[i];
    if (byte === 0x2b) out[written++] = 0x20;
    else if (byte === 0x25 && i + 2 < length && isHex(bytes[i + 1]) && isHex(bytes[i + 2])) {
      out[written++] = (hexValue(bytes[i + 1]) << 4) | hexValue(bytes[i + 2]);
      i += 2;
    } else out[written++] = byte;
  }
  return new Utf8Decoder(false, true).decode(out, written, false);
}

/** The urlencoded byte serializer: [*-.0-9A-Z_a-z] as is, space as '+', the rest %XX. */
function encodeComponent(input: string): string {
  let plain = true;
  for (let i = 0; i < input.length && plain; i++) plain = isUnreserved(StringPrototypeCharCodeAt(input, i));
  if (plain) return input;
  const bytes = utf8Encode(input);
  const length = byteLengthOf(bytes);
  let out = '';
  for (let i = 0; i < length; i++) {
    const byte = bytes[i];
    if (isUnreserved(byte)) out += StringFromCharCode(byte);
    else if (byte === 0x20) out += '+';
    else out += `%${HEX[byte >> 4]}${HEX[byte & 0x0f]}`;
  }
  return out;
}

function isUnreserved(unit: number): boolean {
  return (
    unit === 0x2a || unit === 0x2d || unit === 0x2e || unit === 0x5f ||
    (unit >= 0x30 && unit <= 0x39) || (unit >= 0x41 && unit <= 0x5a) || (unit >= 0x61 && unit <= 0x7a)
  );
}

function isHex(byte: number): boolean {
  return (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

function hexValue(byte: number): number {
  return byte <= 0x39 ? byte - 0x30 : (byte | 0x20) - 0x61 + 10;
}
