/**
 * WHATWG Streams (https://streams.spec.whatwg.org/): ReadableStream, WritableStream,
 * TransformStream and their readers, writers, controllers and queuing strategies, from
 * web-streams-polyfill (Mattias Buelens' implementation, tested against the WPT streams suite;
 * it captures Promise and Promise.prototype.then when the bundle is evaluated, before user code).
 * Plus TextEncoderStream and TextDecoderStream, and what the Body mixin needs: a stream over
 * buffered bytes, and a bounded drain that uses methods captured here, never the (patchable)
 * public ones.
 */
import {
  ByteLengthQueuingStrategy,
  CountQueuingStrategy,
  ReadableByteStreamController,
  ReadableStream,
  ReadableStreamBYOBReader,
  ReadableStreamBYOBRequest,
  ReadableStreamDefaultController,
  ReadableStreamDefaultReader,
  TransformStream,
  TransformStreamDefaultController,
  WritableStream,
  WritableStreamDefaultController,
  WritableStreamDefaultWriter,
} from 'web-streams-polyfill';
import { ObjectGetOwnPropertyDescriptor, SafeTypeError, SafeUint8Array, StringPrototypeCharCodeAt, StringPrototypeSlice, TypedArrayPrototypeSet, uncurryThis } from '../primordials.ts';
import { byteLengthOf, copyOf, viewOf } from './bytes.ts';
import { TextDecoder, type TextDecoderOptions } from './encoding.ts';
import { utf8Encode } from './utf8.ts';
import { defineToStringTag, toDOMString, toUSVString } from './webidl.ts';

export {
  ByteLengthQueuingStrategy,
  CountQueuingStrategy,
  ReadableByteStreamController,
  ReadableStream,
  ReadableStreamBYOBReader,
  ReadableStreamBYOBRequest,
  ReadableStreamDefaultController,
  ReadableStreamDefaultReader,
  TransformStream,
  TransformStreamDefaultController,
  WritableStream,
  WritableStreamDefaultController,
  WritableStreamDefaultWriter,
};

type AnyStream = ReadableStream<unknown>;

const streamPipeTo = uncurryThis(ReadableStream.prototype.pipeTo) as (stream: AnyStream, destination: WritableStream<unknown>) => Promise<void>;
const streamTee = uncurryThis(ReadableStream.prototype.tee) as (stream: AnyStream) => [AnyStream, AnyStream];
const lockedGetter = uncurryThis(ObjectGetOwnPropertyDescriptor(ReadableStream.prototype, 'locked')!.get!) as (stream: AnyStream) => boolean;
const controllerEnqueue = uncurryThis(ReadableStreamDefaultController.prototype.enqueue) as (c: unknown, chunk: unknown) => void;
const controllerClose = uncurryThis(ReadableStreamDefaultController.prototype.close) as (c: unknown) => void;
const transformEnqueue = uncurryThis(TransformStreamDefaultController.prototype.enqueue) as (c: unknown, chunk: unknown) => void;

/** A real ReadableStream of this isolate: its brand check (`locked`) passes. */
export function isReadableStream(value: unknown): value is AnyStream {
  if (typeof value !== 'object' || value === null) return false;
  try {
    lockedGetter(value as AnyStream);
    return true;
  } catch {
    return false;
  }
}

export function isLocked(stream: AnyStream): boolean {
  return lockedGetter(stream);
}

/** The spec's "disturbed": a read or cancel happened. The polyfill keeps it as `_disturbed`. */
export function isDisturbed(stream: AnyStream): boolean {
  const desc = ObjectGetOwnPropertyDescriptor(stream, '_disturbed');
  return desc !== undefined && desc.value === true;
}

export function tee(stream: AnyStream): [AnyStream, AnyStream] {
  return streamTee(stream);
}

/** A stream that yields `bytes` as one chunk, then closes (a body built from buffered bytes). */
export function streamOfBytes(bytes: Uint8Array): ReadableStream<Uint8Array> {
  // A byte stream, so BYOB readers work too; enqueue transfers the (owned) buffer.
  return new ReadableStream({
    type: 'bytes',
    start(controller: ReadableByteStreamController) {
      if (byteLengthOf(bytes) > 0) controller.enqueue(bytes);
      controller.close();
    },
  }) as unknown as ReadableStream<Uint8Array>;
}

/** Why a drain stopped: the body is over its byte bound, or a chunk is not bytes. */
export class BodyDrainError extends SafeTypeError {
  readonly tooLarge: boolean;
  constructor(message: string, tooLarge: boolean) {
    super(message);
    this.tooLarge = tooLarge;
  }
}

/**
 * Reads `stream` to its end into one Uint8Array, at most `maxBytes` bytes; chunks must be
 * BufferSources (Uint8Array in the spec; any view or ArrayBuffer is accepted here, as Workers
 * does). Over the bound, or on a chunk that is not bytes, the stream is cancelled and a
 * BodyDrainError thrown. Every chunk is copied as it arrives, so a chunk mutated afterwards
 * cannot change what was counted. The stream is piped into a sink of our own (pipeTo hands
 * chunks over directly): reader.read() would resolve promises with `{value, done}` objects,
 * which consults a `then` that user code may have planted on Object.prototype.
 */
export async function drainStream(stream: AnyStream, maxBytes: number): Promise<DrainedBody> {
  if (lockedGetter(stream)) throw new SafeTypeError('The body stream is locked to a reader');
  if (isDisturbed(stream)) throw new SafeTypeError('Body has already been read');
  const chunks: Uint8Array[] = [];
  let total = 0;
  const sink = new WritableStream<unknown>({
    write(chunk) {
      const view = viewOf(chunk);
      if (view === null) throw new BodyDrainError('A body stream chunk must be a Uint8Array (or another BufferSource)', false);
      const length = byteLengthOf(view);
      if (total + length > maxBytes) throw new BodyDrainError(`body exceeds ${maxBytes} bytes`, true);
      total += length;
      chunks[chunks.length] = copyOf(view);
    },
  });
  await streamPipeTo(stream, sink);
  if (chunks.length === 1) return box(chunks[0]);
  const out = new SafeUint8Array(total);
  let offset = 0;
  for (let i = 0; i < chunks.length; i++) {
    TypedArrayPrototypeSet(out, chunks[i], offset);
    offset += byteLengthOf(chunks[i]);
  }
  return box(out);
}

/**
 * Sends a response body stream to the client chunk by chunk (the hosts' HTTP plane): each chunk
 * is copied out and handed to `write`, and the next is read only once `write` resolved (the
 * client took it: backpressure reaches the stream's `pull`). At most `maxBytes` in all. A write
 * that fails (client gone, over a limit) cancels the stream, so its `cancel` callback runs.
 */
export async function pumpStream(stream: AnyStream, maxBytes: number, write: (bytes: Uint8Array) => Promise<string | null>): Promise<void> {
  if (lockedGetter(stream)) throw new SafeTypeError('The body stream is locked to a reader');
  if (isDisturbed(stream)) throw new SafeTypeError('Body has already been read');
  let total = 0;
  const sink = new WritableStream<unknown>({
    async write(chunk) {
      const view = viewOf(chunk);
      if (view === null) throw new BodyDrainError('A body stream chunk must be a Uint8Array (or another BufferSource)', false);
      const length = byteLengthOf(view);
      if (total + length > maxBytes) throw new BodyDrainError(`body exceeds ${maxBytes} bytes`, true);
      total += length;
      if (length === 0) return;
      const failed = await write(copyOf(view));
      if (failed !== null) throw new BodyDrainError(failed, false);
    },
  });
  await streamPipeTo(stream, sink);
}

/**
 * Drained bytes in an object without a prototype: resolving a promise with it looks up `then`
 * and finds nothing, where a Uint8Array would reach a `then` planted on Object.prototype.
 */
export interface DrainedBody {
  bytes: Uint8Array;
}

function box(bytes: Uint8Array): DrainedBody {
  return { __proto__: null, bytes } as unknown as DrainedBody;
}

/** TextEncoderStream (https://encoding.spec.whatwg.org/#interface-textencoderstream). */
export class TextEncoderStream {
  readonly #transform: TransformStream<unknown, Uint8Array>;

  constructor() {
    /** A high surrogate that ended the previous chunk: it may pair with the next chunk's first unit. */
    let pending = '';
    this.#transform = new TransformStream<unknown, Uint8Array>({
      transform(chunk, controller) {
        let text = pending + toDOMString(chunk);
        pending = '';
        const last = text.length > 0 ? StringPrototypeCharCodeAt(text, text.length - 1) : 0;
        if (last >= 0xd800 && last <= 0xdbff) {
          pending = StringPrototypeSlice(text, text.length - 1);
          text = StringPrototypeSlice(text, 0, text.length - 1);
        }
        if (text.length > 0) transformEnqueue(controller, utf8Encode(toUSVString(text)));
      },
      flush(controller) {
        if (pending !== '') transformEnqueue(controller, new SafeUint8Array([0xef, 0xbf, 0xbd]));
      },
    });
  }

  get encoding(): string {
    return 'utf-8';
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#transform.readable;
  }

  get writable(): WritableStream<unknown> {
    return this.#transform.writable;
  }
}
defineToStringTag(TextEncoderStream.prototype, 'TextEncoderStream');

/** TextDecoderStream (https://encoding.spec.whatwg.org/#interface-textdecoderstream). */
export class TextDecoderStream {
  readonly #decoder: TextDecoder;
  readonly #transform: TransformStream<unknown, string>;

  constructor(label: unknown = 'utf-8', options: TextDecoderOptions | null | undefined = undefined) {
    const decoder = new TextDecoder(label, options);
    this.#decoder = decoder;
    this.#transform = new TransformStream<unknown, string>({
      transform(chunk, controller) {
        const view = viewOf(chunk);
        if (view === null) throw new SafeTypeError('TextDecoderStream: chunk must be an ArrayBuffer or ArrayBufferView');
        const text = decoder.decode(view, { stream: true });
        if (text !== '') transformEnqueue(controller, text);
      },
      flush(controller) {
        const text = decoder.decode();
        if (text !== '') transformEnqueue(controller, text);
      },
    });
  }

  get encoding(): string {
    return this.#decoder.encoding;
  }

  get fatal(): boolean {
    return this.#decoder.fatal;
  }

  get ignoreBOM(): boolean {
    return this.#decoder.ignoreBOM;
  }

  get readable(): ReadableStream<string> {
    return this.#transform.readable;
  }

  get writable(): WritableStream<unknown> {
    return this.#transform.writable;
  }
}
defineToStringTag(TextDecoderStream.prototype, 'TextDecoderStream');

/**
 * Runs the body-drain path once in each pre-warmed slot, before user code: V8 compiles lazily,
 * so a function's first streamed response would otherwise pay for compiling it (measured: ≈5 ms
 * more on the first call; ≈8 ms more per slot created, off the request path).
 */
export function warmStreams(): void {
  // The path every streamed response takes: a byte stream drained through pipeTo (tee and the
  // text streams compile on first use).
  void drainStream(streamOfBytes(new SafeUint8Array([1])), 16);
}

type CompressionFormat = 'gzip' | 'deflate' | 'deflate-raw';
type ZlibRequest = { op: 'open'; format: CompressionFormat; mode: 'compress' | 'decompress' } | { op: 'write' | 'end'; handle: number };
let zlibHost: (<R extends ZlibRequest>(spec: R, data: Uint8Array | null) => Promise<R extends { op: 'open' } ? number : Uint8Array>) | null = null;

/** Where CompressionStream sends its bytes (the host's zlib, through host operations); set at install. */
export function bindCompressionHost(run: (spec: ZlibRequest, data: Uint8Array | null) => Promise<Uint8Array & number>): void {
  zlibHost = run as NonNullable<typeof zlibHost>;
}

function compressionFormat(format: unknown): CompressionFormat {
  const value = toDOMString(format);
  if (value !== 'gzip' && value !== 'deflate' && value !== 'deflate-raw') throw new SafeTypeError(`Unsupported compression format: '${value}'`);
  return value;
}

/**
 * The shared transform over one host zlib stream (host/compression.ts): opened on the first
 * chunk, each chunk's output enqueued as it comes back (the host flushes every write), the
 * trailer at close. Input is bounded by the body limit here and there.
 */
function zlibTransform(format: CompressionFormat, mode: 'compress' | 'decompress'): TransformStream<unknown, Uint8Array> {
  let handle = 0;
  let total = 0;
  const opened = async () => (handle !== 0 ? handle : (handle = await zlibHost!({ op: 'open', format, mode }, null)));
  return new TransformStream<unknown, Uint8Array>({
    async transform(chunk, controller) {
      const view = viewOf(chunk);
      if (view === null) throw new SafeTypeError('CompressionStream: chunk must be an ArrayBuffer or ArrayBufferView');
      total += byteLengthOf(view);
      if (total > compressionMaxBytes) throw new SafeTypeError(`CompressionStream: input exceeds ${compressionMaxBytes} bytes`);
      if (byteLengthOf(view) === 0) return;
      const output = await zlibHost!({ op: 'write', handle: await opened() }, copyOf(view));
      if (byteLengthOf(output) > 0) transformEnqueue(controller, output);
    },
    async flush(controller) {
      const output = await zlibHost!({ op: 'end', handle: await opened() }, null);
      if (byteLengthOf(output) > 0) transformEnqueue(controller, output);
    },
  });
}

let compressionMaxBytes = 10 * 1024 * 1024;

export function setCompressionMaxBytes(bytes: number): void {
  compressionMaxBytes = bytes;
}

/** CompressionStream (https://compression.spec.whatwg.org/): gzip, deflate, deflate-raw. */
export class CompressionStream {
  readonly #transform: TransformStream<unknown, Uint8Array>;

  constructor(format: unknown) {
    this.#transform = zlibTransform(compressionFormat(format), 'compress');
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#transform.readable;
  }

  get writable(): WritableStream<unknown> {
    return this.#transform.writable;
  }
}
defineToStringTag(CompressionStream.prototype, 'CompressionStream');

export class DecompressionStream {
  readonly #transform: TransformStream<unknown, Uint8Array>;

  constructor(format: unknown) {
    this.#transform = zlibTransform(compressionFormat(format), 'decompress');
  }

  get readable(): ReadableStream<Uint8Array> {
    return this.#transform.readable;
  }

  get writable(): WritableStream<unknown> {
    return this.#transform.writable;
  }
}
defineToStringTag(DecompressionStream.prototype, 'DecompressionStream');
