/**
 * The encodings TextDecoder knows besides UTF-8 (https://encoding.spec.whatwg.org/): UTF-16LE,
 * UTF-16BE and windows-1252 — the encoding the labels "latin1", "ascii" and "iso-8859-1" name
 * on the Web — plus the label table that maps every WHATWG label of those four to its name.
 * Other WHATWG encodings (the rest of the single-byte family, the CJK multi-byte ones) are not
 * provided: their labels throw RangeError, as an unknown label does.
 */
import { SafeTypeError } from '../primordials.ts';
import { StringBuilder } from './utf8.ts';

export type EncodingName = 'utf-8' | 'utf-16le' | 'utf-16be' | 'windows-1252';

const LABELS: Record<string, EncodingName> = {
  __proto__: null,
  'unicode-1-1-utf-8': 'utf-8', unicode11utf8: 'utf-8', unicode20utf8: 'utf-8', 'utf-8': 'utf-8', utf8: 'utf-8', 'x-unicode20utf8': 'utf-8',
  csunicode: 'utf-16le', 'iso-10646-ucs-2': 'utf-16le', 'ucs-2': 'utf-16le', unicode: 'utf-16le', unicodefeff: 'utf-16le',
  'utf-16': 'utf-16le', 'utf-16le': 'utf-16le',
  unicodefffe: 'utf-16be', 'utf-16be': 'utf-16be',
  'ansi_x3.4-1968': 'windows-1252', ascii: 'windows-1252', cp1252: 'windows-1252', cp819: 'windows-1252', csisolatin1: 'windows-1252',
  ibm819: 'windows-1252', 'iso-8859-1': 'windows-1252', 'iso-ir-100': 'windows-1252', 'iso8859-1': 'windows-1252',
  iso88591: 'windows-1252', 'iso_8859-1': 'windows-1252', 'iso_8859-1:1987': 'windows-1252', l1: 'windows-1252',
  latin1: 'windows-1252', 'us-ascii': 'windows-1252', 'windows-1252': 'windows-1252', 'x-cp1252': 'windows-1252',
} as unknown as Record<string, EncodingName>;

/** The encoding a (trimmed, lowercased) label names, or undefined. */
export function encodingForLabel(label: string): EncodingName | undefined {
  return LABELS[label];
}

/** windows-1252's index for bytes 0x80-0x9F (the rest maps to the same code point). */
const WINDOWS_1252_HIGH = [
  0x20ac, 0x81, 0x201a, 0x192, 0x201e, 0x2026, 0x2020, 0x2021, 0x2c6, 0x2030, 0x160, 0x2039, 0x152, 0x8d, 0x17d, 0x8f,
  0x90, 0x2018, 0x2019, 0x201c, 0x201d, 0x2022, 0x2013, 0x2014, 0x2dc, 0x2122, 0x161, 0x203a, 0x153, 0x9d, 0x17e, 0x178,
];

export interface StreamingDecoder {
  decode(bytes: Uint8Array, length: number, stream: boolean): string;
}

/** A single-byte decoder never fails and keeps no state. */
export class Windows1252Decoder implements StreamingDecoder {
  decode(bytes: Uint8Array, length: number): string {
    const out = new StringBuilder(length < 8192 ? length + 1 : 8192);
    for (let i = 0; i < length; i++) {
      const byte = bytes[i];
      out.push(byte >= 0x80 && byte <= 0x9f ? WINDOWS_1252_HIGH[byte - 0x80] : byte);
    }
    return out.finish();
  }
}

/** The WHATWG UTF-16 decoder (shared by LE and BE), streaming, with BOM handling. */
export class Utf16Decoder implements StreamingDecoder {
  readonly #bigEndian: boolean;
  readonly #fatal: boolean;
  readonly #ignoreBom: boolean;
  #leadByte = -1;
  #leadSurrogate = -1;
  #bomSeen = false;

  constructor(bigEndian: boolean, fatal: boolean, ignoreBom: boolean) {
    this.#bigEndian = bigEndian;
    this.#fatal = fatal;
    this.#ignoreBom = ignoreBom;
  }

  decode(bytes: Uint8Array, length: number, stream: boolean): string {
    const out = new StringBuilder(length < 16384 ? (length >> 1) + 2 : 8192);
    try {
      for (let i = 0; i < length; i++) {
        const byte = bytes[i];
        if (this.#leadByte < 0) {
          this.#leadByte = byte;
          continue;
        }
        const unit = this.#bigEndian ? (this.#leadByte << 8) | byte : (byte << 8) | this.#leadByte;
        this.#leadByte = -1;
        this.#unit(out, unit);
      }
      if (!stream) {
        if (this.#leadByte >= 0 || this.#leadSurrogate >= 0) {
          this.#leadByte = -1;
          this.#leadSurrogate = -1;
          this.#error(out);
        }
        this.#bomSeen = false;
      }
    } catch (error) {
      this.#leadByte = -1;
      this.#leadSurrogate = -1;
      this.#bomSeen = false;
      throw error;
    }
    return out.finish();
  }

  #unit(out: StringBuilder, unit: number): void {
    if (!this.#bomSeen) {
      this.#bomSeen = true;
      if (unit === 0xfeff && !this.#ignoreBom) return;
    }
    if (this.#leadSurrogate >= 0) {
      const lead = this.#leadSurrogate;
      this.#leadSurrogate = -1;
      if (unit >= 0xdc00 && unit <= 0xdfff) {
        out.push(lead);
        out.push(unit);
        return;
      }
      this.#error(out);
    }
    if (unit >= 0xd800 && unit <= 0xdbff) {
      this.#leadSurrogate = unit;
      return;
    }
    if (unit >= 0xdc00 && unit <= 0xdfff) {
      this.#error(out);
      return;
    }
    out.push(unit);
  }

  #error(out: StringBuilder): void {
    if (this.#fatal) throw new SafeTypeError('The encoded data was not valid for encoding utf-16');
    out.push(0xfffd);
  }
}
