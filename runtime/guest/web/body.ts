/**
 * The Body mixin shared by Request and Response (https://fetch.spec.whatwg.org/#body-mixin).
 * A body is held as buffered bytes until someone asks for `body`: then it becomes a
 * ReadableStream over those bytes (one chunk). A body built from a stream stays a stream; reading
 * it (text(), json(), …, or the platform taking a returned Response apart) drains it, at most
 * `maxBodyBytes` (runtime/limits.ts MAX_BODY_BYTES). `bodyUsed` is the spec's "disturbed".
 */
import { JSONParse, SafeArrayBuffer, SafeTypeError, SafeUint8Array } from '../primordials.ts';
import { bufferOf, byteLengthOf, copyOf, viewOf } from './bytes.ts';
import { Blob, blobBytes, blobType, isBlob, isFormData, parseFormData, serializeFormData } from './forms.ts';
import { BodyDrainError, drainStream, type DrainedBody, isDisturbed, isLocked, isReadableStream, ReadableStream, streamOfBytes, tee } from './streams.ts';
import { isURLSearchParams, serializeParams } from './url-search-params.ts';
import { utf8Decode, utf8Encode } from './utf8.ts';
import { toUSVString } from './webidl.ts';

let maxBodyBytes = 10 * 1024 * 1024;

/** The bound on every body drained inside the isolate; set once at install. */
export function setMaxBodyBytes(bytes: number): void {
  maxBodyBytes = bytes;
}

export interface ExtractedBody {
  bytes: Uint8Array | null;
  stream: ReadableStream<unknown> | null;
  /** The Content-Type the body implies, set when the headers have none. */
  contentType: string | null;
}

/** The spec's "extract a body" for a non-null BodyInit; anything unrecognised is stringified. */
export function extractBody(init: unknown): ExtractedBody {
  if (typeof init === 'string') return { bytes: utf8Encode(init), stream: null, contentType: 'text/plain;charset=UTF-8' };
  const view = viewOf(init);
  if (view !== null) return { bytes: copyOf(view), stream: null, contentType: null };
  if (isURLSearchParams(init)) {
    return { bytes: utf8Encode(serializeParams(init)), stream: null, contentType: 'application/x-www-form-urlencoded;charset=UTF-8' };
  }
  if (isReadableStream(init)) {
    if (isLocked(init) || isDisturbed(init)) throw new SafeTypeError('Cannot use a locked or disturbed ReadableStream as a body');
    return { bytes: null, stream: init, contentType: null };
  }
  if (isBlob(init)) {
    const type = blobType(init);
    return { bytes: copyOf(blobBytes(init)), stream: null, contentType: type === '' ? null : type };
  }
  if (isFormData(init)) {
    const form = serializeFormData(init);
    return { bytes: form.bytes, stream: null, contentType: form.contentType };
  }
  return { bytes: utf8Encode(toUSVString(init)), stream: null, contentType: 'text/plain;charset=UTF-8' };
}

/** A body's bytes or stream and whether it was read; each Request and Response owns one. */
export class Body {
  #bytes: Uint8Array | null;
  #stream: ReadableStream<unknown> | null;
  #used = false;
  /** Moved to another Request: reads as used, and as a used empty body. */
  #transferred = false;

  constructor(bytes: Uint8Array | null, stream: ReadableStream<unknown> | null = null) {
    this.#bytes = bytes;
    this.#stream = stream;
  }

  static of(extracted: ExtractedBody): Body {
    return new Body(extracted.bytes, extracted.stream);
  }

  get isNull(): boolean {
    return this.#bytes === null && this.#stream === null;
  }

  /** `bodyUsed`: a null body is never used; it reads as empty any number of times. */
  get used(): boolean {
    return this.#stream !== null ? isDisturbed(this.#stream) : this.#used || this.#transferred;
  }

  /** The `body` getter: null for a null body, else the stream (made from the bytes on first use). */
  get stream(): ReadableStream<unknown> | null {
    if (this.#stream !== null) return this.#stream;
    if (this.#bytes === null && !this.#transferred) return null;
    const bytes = this.#used || this.#bytes === null ? new SafeUint8Array(0) : this.#bytes;
    this.#stream = streamOfBytes(bytes);
    if (this.#used) void this.#stream.cancel();
    this.#bytes = null;
    return this.#stream;
  }

  /** Buffered bytes still unread, without a stream: the synchronous fast path (null otherwise). */
  takeBufferedBytes(): Uint8Array | null {
    if (this.#stream !== null) return null;
    if (this.#used) throw new SafeTypeError('Body has already been read');
    const bytes = this.#bytes;
    if (bytes !== null) this.#used = true;
    return bytes;
  }

  /** The stream to drain, when the body is one; null for buffered or null bodies. */
  get pendingStream(): ReadableStream<unknown> | null {
    return this.#stream;
  }

  /**
   * Marks the body read and returns its bytes (empty for a null body) when they are buffered, or
   * null when a stream must be drained (#drain); TypeError if read before. Kept synchronous so
   * that no promise is resolved with a Uint8Array (which would consult a planted `then`).
   */
  #take(): Uint8Array | null {
    const stream = this.#stream;
    if (stream === null) {
      if (this.#used) throw new SafeTypeError('Body has already been read');
      const bytes = this.#bytes;
      if (bytes === null) return new SafeUint8Array(0);
      this.#used = true;
      return bytes;
    }
    if (isDisturbed(stream) || isLocked(stream)) throw new SafeTypeError('Body has already been read');
    return null;
  }

  async #drain(): Promise<DrainedBody> {
    try {
      return await drainStream(this.#stream!, maxBodyBytes);
    } catch (error) {
      if (error instanceof BodyDrainError) throw new SafeTypeError(error.message);
      throw error;
    }
  }

  /** Moves the body to a new Request (new Request(request)): the source reads as used from now on. */
  transfer(): Body {
    if (this.used) throw new SafeTypeError('Cannot construct a Request from one whose body was already read');
    const moved = new Body(this.#bytes, this.#stream);
    this.#bytes = null;
    this.#stream = null;
    this.#used = true;
    this.#transferred = true;
    return moved;
  }

  /** An independent copy (for clone()): buffered bytes are copied, a stream is teed. */
  clone(): Body {
    if (this.used) throw new SafeTypeError('Cannot clone a body that has already been read');
    if (this.#stream !== null) {
      if (isLocked(this.#stream)) throw new SafeTypeError('Cannot clone a body whose stream is locked');
      const [a, b] = tee(this.#stream);
      this.#stream = a;
      return new Body(null, b);
    }
    return new Body(this.#bytes === null ? null : copyOf(this.#bytes));
  }

  async text(): Promise<string> {
    const bytes = this.#take() ?? (await this.#drain()).bytes;
    return utf8Decode(bytes, byteLengthOf(bytes));
  }

  async json(): Promise<unknown> {
    const bytes = this.#take() ?? (await this.#drain()).bytes;
    return JSONParse(utf8Decode(bytes, byteLengthOf(bytes)));
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const bytes = this.#take() ?? (await this.#drain()).bytes;
    if (byteLengthOf(bytes) === 0) return new SafeArrayBuffer(0);
    // Drained and buffered bytes own their whole buffer (chunks are copied as they arrive).
    return bufferOf(bytes);
  }

  async bytes(): Promise<Uint8Array> {
    return this.#take() ?? (await this.#drain()).bytes;
  }

  async blob(contentType: string | null): Promise<unknown> {
    const bytes = this.#take() ?? (await this.#drain()).bytes;
    return new Blob([bytes], { type: contentType ?? '' });
  }

  async formData(contentType: string | null): Promise<unknown> {
    const bytes = this.#take() ?? (await this.#drain()).bytes;
    return parseFormData(bytes, contentType);
  }
}

