/**
 * TextEncoder and TextDecoder (https://encoding.spec.whatwg.org/#interface-textencoder), UTF-8
 * only: the one encoding TextEncoder has, and the only one TextDecoder supports here (other
 * labels throw a RangeError, as an unknown label does in browsers).
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
import { isAsciiWhitespace, trim } from './whitespace.ts';
import { defineToStringTag, toDOMString, toUSVString } from './webidl.ts';

const UTF8_LABELS = ['unicode-1-1-utf-8', 'unicode11utf8', 'unicode20utf8', 'utf-8', 'utf8', 'x-unicode20utf8'];

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
  readonly #decoder: Utf8Decoder;

  constructor(label: unknown = 'utf-8', options: TextDecoderOptions | null | undefined = undefined) {
    const normalized = StringPrototypeToLowerCase(trim(toDOMString(label), isAsciiWhitespace));
    if (!isUtf8Label(normalized)) {
      throw new SafeRangeError(`TextDecoder: encoding "${normalized}" is not supported (only utf-8 is)`);
    }
    this.#fatal = options?.fatal === undefined ? false : !!options.fatal;
    this.#ignoreBom = options?.ignoreBOM === undefined ? false : !!options.ignoreBOM;
    this.#decoder = new Utf8Decoder(this.#fatal, this.#ignoreBom);
  }

  get encoding(): string {
    return 'utf-8';
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

function isUtf8Label(label: string): boolean {
  for (let i = 0; i < UTF8_LABELS.length; i++) if (UTF8_LABELS[i] === label) return true;
  return false;
}
