/**
 * The Body mixin shared by Request and Response (https://fetch.spec.whatwg.org/#body-mixin),
 * over bytes held in memory: bodies arrive whole from the host and leave whole, so there is no
 * ReadableStream. `body` is therefore null for a null body and throws a TypeError otherwise,
 * rather than returning something that is not a stream; read bodies with text(), json(),
 * arrayBuffer() or bytes(). Blob and FormData bodies are not supported either.
 */
import { JSONParse, SafeArrayBuffer, SafeTypeError, SafeUint8Array } from '../primordials.ts';
import { bufferOf, byteLengthOf, copyOf, viewOf } from './bytes.ts';
import { isURLSearchParams, serializeParams } from './url-search-params.ts';
import { utf8Decode, utf8Encode } from './utf8.ts';
import { toUSVString } from './webidl.ts';

export interface ExtractedBody {
  bytes: Uint8Array;
  /** The Content-Type the body implies, set when the headers have none. */
  contentType: string | null;
}

/** The spec's "extract a body" for a non-null BodyInit; anything unrecognised is stringified. */
export function extractBody(init: unknown): ExtractedBody {
  if (typeof init === 'string') return { bytes: utf8Encode(init), contentType: 'text/plain;charset=UTF-8' };
  const view = viewOf(init);
  if (view !== null) return { bytes: copyOf(view), contentType: null };
  if (isURLSearchParams(init)) {
    return { bytes: utf8Encode(serializeParams(init)), contentType: 'application/x-www-form-urlencoded;charset=UTF-8' };
  }
  return { bytes: utf8Encode(toUSVString(init)), contentType: 'text/plain;charset=UTF-8' };
}

/** A body's bytes and whether they were read; each Request and Response owns one. */
export class Body {
  #bytes: Uint8Array | null;
  #used = false;

  constructor(bytes: Uint8Array | null) {
    this.#bytes = bytes;
  }

  get isNull(): boolean {
    return this.#bytes === null;
  }

  /** `bodyUsed`: a null body is never used; it reads as empty any number of times. */
  get used(): boolean {
    return this.#used;
  }

  /** The `body` getter (see the file comment). */
  get stream(): null {
    if (this.#bytes === null) return null;
    throw new SafeTypeError('Streaming bodies are not supported; read the body with text(), json(), arrayBuffer() or bytes()');
  }

  /** Marks the body read and returns its bytes (empty for a null body); TypeError if read before. */
  consume(): Uint8Array {
    if (this.#used) throw new SafeTypeError('Body has already been read');
    const bytes = this.#bytes;
    if (bytes === null) return new SafeUint8Array(0);
    this.#used = true;
    return bytes;
  }

  /** An independent copy (for clone()); TypeError if the body was already read. */
  clone(): Body {
    if (this.#used) throw new SafeTypeError('Cannot clone a body that has already been read');
    return new Body(this.#bytes === null ? null : copyOf(this.#bytes));
  }

  async text(): Promise<string> {
    const bytes = this.consume();
    return utf8Decode(bytes, byteLengthOf(bytes));
  }

  async json(): Promise<unknown> {
    const bytes = this.consume();
    return JSONParse(utf8Decode(bytes, byteLengthOf(bytes)));
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = this.consume();
    return byteLengthOf(bytes) === 0 ? new SafeArrayBuffer(0) : bufferOf(bytes);
  }

  async bytes(): Promise<Uint8Array> {
    return this.consume();
  }
}
