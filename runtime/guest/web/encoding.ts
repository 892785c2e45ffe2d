/**
 * TextEncoder and TextDecoder (https://encoding.spec.whatwg.org/#interface-textencoder).
 * TextEncoder is UTF-8, as everywhere; TextDecoder decodes UTF-8, UTF-16LE/BE and windows-1252
 * (which "latin1", "ascii" and "iso-8859-1" name), under every WHATWG label of those; other
 * labels throw a RangeError (legacy-encodings.ts).
 */
import {
  SafeRangeError,
  SafeTypeError,
  SafeUint8Array,
  StringPrototypeToLowerCase,
  TypedArrayPrototypeGetSymbolToStringTag,
} from '../primordials.ts';
import { byteLengthOf, viewOf } from './bytes.ts';
import { Utf8Decoder, utf8Encode, utf8EncodeInto } from './utf8.ts';
import { encodingForLabel, Utf16Decoder, Windows1252Decoder, type EncodingName, type StreamingDecoder } from './legacy-encodings.ts';
import { isAsciiWhitespace, trim } from './whitespace.ts';
import { defineToStringTag, toDOMString, toUSVString } from './webidl.ts';


export class TextEncoder {
  get encoding(): string {
    return 'utf-8';
  }

  encode(input: unknown = ''): Uint8Array {
    return utf8Encode(toUSVString(input));
  }

  encodeInto(source: unknown, destination: Uint8Array): { read: number; written: number } {
    if (TypedArrayPrototypeGetSymbolToStringTag(destination) !== 'Uint8Array') {
      throw new SafeTypeError("TextEncoder.encodeInto: 'destination' must be a Uint8Array");
    }
    return utf8EncodeInto(toUSVString(source), destination, byteLengthOf(destination));
  }
}
defineToStringTag(TextEncoder.prototype, 'TextEncoder');

export interface TextDecoderOptions {
  fatal?: boolean;
  ignoreBOM?: boolean;
}

export class TextDecoder {
  readonly #fatal: boolean;
  readonly #ignoreBom: boolean;
  readonly #decoder: StreamingDecoder;
  readonly #encoding: EncodingName;

  constructor(label: unknown = 'utf-8', options: TextDecoderOptions | null | undefined = undefined) {
    const normalized = StringPrototypeToLowerCase(trim(toDOMString(label), isAsciiWhitespace));
    const encoding = encodingForLabel(normalized);
    if (encoding === undefined) {
      throw new SafeRangeError(`TextDecoder: encoding "${normalized}" is not supported (utf-8, utf-16le, utf-16be and windows-1252 are)`);
    }
    // Dictionary members in lexicographic order (fatal, ignoreBOM).
    this.#fatal = options?.fatal === undefined ? false : !!options.fatal;
    this.#ignoreBom = options?.ignoreBOM === undefined ? false : !!options.ignoreBOM;
    this.#encoding = encoding;
    this.#decoder =
      encoding === 'utf-8' ? new Utf8Decoder(this.#fatal, this.#ignoreBom)
      : encoding === 'windows-1252' ? new Windows1252Decoder()
      : new Utf16Decoder(encoding === 'utf-16be', this.#fatal, this.#ignoreBom);
  }

  get encoding(): string {
    return this.#encoding;
  }

  get fatal(): boolean {
    return this.#fatal;
  }

  get ignoreBOM(): boolean {
    return this.#ignoreBom;
  }

  /** `input` is any BufferSource; `{ stream: true }` keeps an incomplete sequence for the next call. */
  decode(input: unknown = undefined, options: { stream?: boolean } | null | undefined = undefined): string {
    const stream = options?.stream === undefined ? false : !!options.stream;
    let bytes: Uint8Array;
    if (input === undefined) bytes = new SafeUint8Array(0);
    else {
      const view = viewOf(input);
      if (view === null) throw new SafeTypeError("TextDecoder.decode: 'input' must be an ArrayBuffer or ArrayBufferView");
      bytes = view;
    }
    return this.#decoder.decode(bytes, byteLengthOf(bytes), stream);
  }
}
defineToStringTag(TextDecoder.prototype, 'TextDecoder');
