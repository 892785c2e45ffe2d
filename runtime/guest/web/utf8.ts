/**
 * UTF-8 in pure JS: the WHATWG Encoding Standard's UTF-8 encoder and streaming decoder
 * (https://encoding.spec.whatwg.org/#utf-8-decoder). Lone surrogates encode as U+FFFD; invalid
 * byte sequences decode as one U+FFFD per maximal subpart, as TextDecoder must.
 */
import {
  MathMin,
  ReflectApply,
  SafeTypeError,
  SafeUint8Array,
  StringFromCharCode,
  StringPrototypeCharCodeAt,
} from '../primordials.ts';

/** Code units per String.fromCharCode call: well under V8's argument-count limit. */
const CHUNK_UNITS = 8192;

/** UTF-8 bytes of `input`, in a Uint8Array that owns its whole buffer. */
export function utf8Encode(input: string): Uint8Array {
  const length = utf8Length(input);
  const out = new SafeUint8Array(length);
  utf8EncodeInto(input, out, length);
  return out;
}

/** Byte length of `input` in UTF-8 (lone surrogates count as the 3 bytes of U+FFFD). */
export function utf8Length(input: string): number {
  const length = input.length;
  let bytes = 0;
  for (let i = 0; i < length; i++) {
    const unit = StringPrototypeCharCodeAt(input, i);
    if (unit < 0x80) bytes += 1;
    else if (unit < 0x800) bytes += 2;
    else if (isPairAt(input, i, unit)) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

/**
 * Writes as many whole code points of `input` as fit in `capacity` bytes of `out`.
 * Returns `read` in UTF-16 code units and `written` in bytes, as TextEncoder.encodeInto does.
 */
export function utf8EncodeInto(input: string, out: Uint8Array, capacity: number): { read: number; written: number } {
  const length = input.length;
  let read = 0;
  let written = 0;
  while (read < length) {
    let point = StringPrototypeCharCodeAt(input, read);
    let units = 1;
    if (point >= 0xd800 && point <= 0xdfff) {
      if (isPairAt(input, read, point)) {
        point = 0x10000 + ((point - 0xd800) << 10) + (StringPrototypeCharCodeAt(input, read + 1) - 0xdc00);
        units = 2;
      } else point = 0xfffd;
    }
    if (point < 0x80) {
      if (written + 1 > capacity) break;
      out[written++] = point;
    } else if (point < 0x800) {
      if (written + 2 > capacity) break;
      out[written++] = 0xc0 | (point >> 6);
      out[written++] = 0x80 | (point & 0x3f);
    } else if (point < 0x10000) {
      if (written + 3 > capacity) break;
      out[written++] = 0xe0 | (point >> 12);
      out[written++] = 0x80 | ((point >> 6) & 0x3f);
      out[written++] = 0x80 | (point & 0x3f);
    } else {
      if (written + 4 > capacity) break;
      out[written++] = 0xf0 | (point >> 18);
      out[written++] = 0x80 | ((point >> 12) & 0x3f);
      out[written++] = 0x80 | ((point >> 6) & 0x3f);
      out[written++] = 0x80 | (point & 0x3f);
    }
    read += units;
  }
  return { read, written };
}

/** Decodes `bytes` in one go: replacement on errors, a leading BOM stripped (the spec's "UTF-8 decode"). */
export function utf8Decode(bytes: Uint8Array, length: number): string {
  return new Utf8Decoder(false, false).decode(bytes, length, false);
}

/** The WHATWG UTF-8 decoder with its state kept between `decode(…, stream = true)` calls. */
export class Utf8Decoder {
  readonly #fatal: boolean;
  readonly #ignoreBom: boolean;
  #point = 0;
  #needed = 0;
  #seen = 0;
  #lower = 0x80;
  #upper = 0xbf;
  #bomSeen = false;

  constructor(fatal: boolean, ignoreBom: boolean) {
    this.#fatal = fatal;
    this.#ignoreBom = ignoreBom;
  }

  /** Decodes `bytes[0, length)`; unless `stream`, flushes an incomplete sequence and resets. */
  decode(bytes: Uint8Array, length: number, stream: boolean): string {
    const out = new StringBuilder(MathMin(length + 4, CHUNK_UNITS));
    // The state lives in locals inside the loop (this is the hot path of every body read).
    let point = this.#point;
    let needed = this.#needed;
    let seen = this.#seen;
    let lower = this.#lower;
    let upper = this.#upper;
    try {
      for (let i = 0; i < length; i++) {
        const byte = bytes[i];
        if (needed === 0) {
          if (byte <= 0x7f) this.#emit(out, byte);
          else if (byte >= 0xc2 && byte <= 0xdf) {
            needed = 1;
            point = byte & 0x1f;
          } else if (byte >= 0xe0 && byte <= 0xef) {
            if (byte === 0xe0) lower = 0xa0;
            if (byte === 0xed) upper = 0x9f;
            needed = 2;
            point = byte & 0x0f;
          } else if (byte >= 0xf0 && byte <= 0xf4) {
            if (byte === 0xf0) lower = 0x90;
            if (byte === 0xf4) upper = 0x8f;
            needed = 3;
            point = byte & 0x07;
          } else this.#error(out);
          continue;
        }
        if (byte < lower || byte > upper) {
          point = needed = seen = 0;
          lower = 0x80;
          upper = 0xbf;
          this.#error(out);
          i--; // the spec's "restore byte to the stream": it may start a new sequence
          continue;
        }
        lower = 0x80;
        upper = 0xbf;
        point = (point << 6) | (byte & 0x3f);
        if (++seen === needed) {
          this.#emit(out, point);
          point = needed = seen = 0;
        }
      }
      if (!stream && needed !== 0) {
        point = needed = seen = 0;
        lower = 0x80;
        upper = 0xbf;
        this.#error(out);
      }
    } catch (error) {
      point = needed = seen = 0;
      lower = 0x80;
      upper = 0xbf;
      this.#bomSeen = false;
      throw error;
    } finally {
      this.#point = point;
      this.#needed = needed;
      this.#seen = seen;
      this.#lower = lower;
      this.#upper = upper;
    }
    if (!stream) this.#bomSeen = false;
    return out.finish();
  }

  #error(out: StringBuilder): void {
    if (this.#fatal) throw new SafeTypeError('The encoded data was not valid UTF-8');
    this.#emit(out, 0xfffd);
  }

  #emit(out: StringBuilder, point: number): void {
    if (!this.#bomSeen) {
      this.#bomSeen = true;
      if (point === 0xfeff && !this.#ignoreBom) return;
    }
    if (point < 0x10000) out.push(point);
    else {
      out.push(0xd800 + ((point - 0x10000) >> 10));
      out.push(0xdc00 + ((point - 0x10000) & 0x3ff));
    }
  }
}

/** Collects UTF-16 code units in a preallocated plain array (own elements only: nothing a user
 * can patch is consulted) and turns them into a string CHUNK_UNITS at a time. */
export class StringBuilder {
  readonly #units: number[];
  readonly #capacity: number;
  #count = 0;
  #text = '';

  constructor(capacity: number) {
    this.#capacity = capacity;
    this.#units = new Array(capacity);
  }

  push(unit: number): void {
    this.#units[this.#count++] = unit;
    if (this.#count === this.#capacity) {
      this.#text += ReflectApply(StringFromCharCode, undefined, this.#units) as string;
      this.#count = 0;
    }
  }

  finish(): string {
    if (this.#count === 0) return this.#text;
    this.#units.length = this.#count;
    return this.#text + (ReflectApply(StringFromCharCode, undefined, this.#units) as string);
  }
}

function isPairAt(input: string, index: number, unit: number): boolean {
  if (unit < 0xd800 || unit > 0xdbff || index + 1 >= input.length) return false;
  const next = StringPrototypeCharCodeAt(input, index + 1);
  return next >= 0xdc00 && next <= 0xdfff;
}
