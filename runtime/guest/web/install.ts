import type { HostRefs } from '../host-refs.ts';
import { ObjectDefineProperty, SafeRangeError, SafeTypeError, TypedArrayPrototypeGetSymbolToStringTag, uncurryThis } from '../primordials.ts';
import { makeMembersEnumerable } from './webidl.ts';
import { atob, btoa } from './base64.ts';
import { createConsole } from './console.ts';
import { Crypto, createCrypto } from './crypto.ts';
import { TextDecoder, TextEncoder } from './encoding.ts';
import { Headers } from './headers.ts';
import { Request } from './request.ts';
import { Response } from './response.ts';
import { createStructuredClone, registerPlatformPrototype } from './structured-clone.ts';
import { URLSearchParams } from './url-search-params.ts';
import { bindUrlHost, URL } from './url.ts';
import { setMaxBodyBytes } from './body.ts';
import { createFetch } from './fetch.ts';
import { bindCacheHost, Cache, CacheStorage, createCaches } from './cache.ts';
import { createReportError, createScheduler, FixedLengthStream, IdentityTransformStream } from './workers-extras.ts';
import { URLPattern } from 'urlpattern-polyfill/urlpattern';
import { bindSubtleHost, CryptoKey, SubtleCrypto } from './subtle.ts';
import type { HostOps } from '../host-ops.ts';
import { AbortController, AbortSignal, DOMException, Event, EventTarget, setAbortTimer, setListenerErrorReporter } from './events.ts';
import { setBoundarySource } from './form-boundary.ts';
import { Blob, File, FormData } from './forms.ts';
import { createNavigator, createPerformance, Navigator, Performance } from './performance.ts';
import {
  ByteLengthQueuingStrategy,
  CountQueuingStrategy,
  ReadableByteStreamController,
  ReadableStream,
  ReadableStreamBYOBReader,
  ReadableStreamBYOBRequest,
  ReadableStreamDefaultController,
  ReadableStreamDefaultReader,
  TextDecoderStream,
  TextEncoderStream,
  CompressionStream,
  DecompressionStream,
  bindCompressionHost,
  setCompressionMaxBytes,
  warmStreams,
  TransformStream,
  TransformStreamDefaultController,
  WritableStream,
  WritableStreamDefaultController,
  WritableStreamDefaultWriter,
} from './streams.ts';

/**
 * Puts the Web-standard APIs on `global`: TextEncoder, TextDecoder, atob, btoa, Headers, Request,
 * Response, URL, URLSearchParams, crypto (getRandomValues, randomUUID), structuredClone and
 * console. Call once per context, before any user code runs; `host` stays in closures.
 *
 * @example
 * installWebApis(globalThis, host);
 * new Response('hi').headers.get('content-type'); // 'text/plain;charset=UTF-8'
 */
export interface WebApiOptions {
  /** Bound on every body drained inside the isolate (MAX_BODY_BYTES). */
  maxBodyBytes: number;
  /** Asynchronous host operations (crypto.subtle). */
  ops: HostOps;
}

export function installWebApis(global: typeof globalThis, host: HostRefs, options: WebApiOptions): void {
  bindUrlHost(host);
  setMaxBodyBytes(options.maxBodyBytes);
  bindSubtleHost(options.ops);
  setCompressionMaxBytes(options.maxBodyBytes);
  const ops = options.ops;
  bindCacheHost(ops, options.maxBodyBytes);
  bindCompressionHost(async (spec, data) => {
    const outcome = await ops.run('zlib', [spec, data]);
    if (outcome.ok) {
      const value = outcome.value;
      if (spec.op === 'open' ? typeof value !== 'number' : TypedArrayPrototypeGetSymbolToStringTag(value) !== 'Uint8Array') throw new SafeTypeError('host returned a malformed value');
      return value as Uint8Array & number;
    }
    const { name, message } = outcome.error;
    throw name === 'RangeError' ? new SafeRangeError(message) : new SafeTypeError(message);
  });
  // Captured now: timers.ts installed them before us, and user code may replace the globals later.
  const setTimeoutOriginal = (global as unknown as { setTimeout: (cb: () => void, ms: number) => unknown }).setTimeout;
  setAbortTimer((callback, delayMs) => setTimeoutOriginal(callback, delayMs));
  defineGlobal(global, 'scheduler', createScheduler((callback, delayMs) => setTimeoutOriginal(callback, delayMs)));
  const classes: [string, Function][] = [
    ['TextEncoder', TextEncoder],
    ['TextDecoder', TextDecoder],
    ['Headers', Headers],
    ['Request', Request],
    ['Response', Response],
    ['URL', URL],
    ['URLSearchParams', URLSearchParams],
    ['Crypto', Crypto],
    ['ReadableStream', ReadableStream],
    ['ReadableStreamDefaultReader', ReadableStreamDefaultReader],
    ['ReadableStreamBYOBReader', ReadableStreamBYOBReader],
    ['ReadableStreamBYOBRequest', ReadableStreamBYOBRequest],
    ['ReadableStreamDefaultController', ReadableStreamDefaultController],
    ['ReadableByteStreamController', ReadableByteStreamController],
    ['WritableStream', WritableStream],
    ['WritableStreamDefaultWriter', WritableStreamDefaultWriter],
    ['WritableStreamDefaultController', WritableStreamDefaultController],
    ['TransformStream', TransformStream],
    ['TransformStreamDefaultController', TransformStreamDefaultController],
    ['ByteLengthQueuingStrategy', ByteLengthQueuingStrategy],
    ['CountQueuingStrategy', CountQueuingStrategy],
    ['TextEncoderStream', TextEncoderStream],
    ['TextDecoderStream', TextDecoderStream],
    ['CompressionStream', CompressionStream],
    ['DecompressionStream', DecompressionStream],
    ['Blob', Blob],
    ['File', File],
    ['FormData', FormData],
    ['DOMException', DOMException],
    ['Event', Event],
    ['EventTarget', EventTarget],
    ['AbortController', AbortController],
    ['AbortSignal', AbortSignal],
    ['Performance', Performance],
    ['Navigator', Navigator],
    ['SubtleCrypto', SubtleCrypto],
    ['CryptoKey', CryptoKey],
    ['Cache', Cache],
    ['CacheStorage', CacheStorage],
    ['IdentityTransformStream', IdentityTransformStream],
    // The spec editors' implementation, run inside the isolate: pattern regexps cost the tenant's CPU, never the host's.
    ['URLPattern', URLPattern as unknown as Function],
    ['FixedLengthStream', FixedLengthStream],
  ];
  for (let i = 0; i < classes.length; i++) {
    const name = classes[i][0];
    const constructor = classes[i][1];
    // Bundlers may rename a class to avoid a collision; the global must still say its own name.
    ObjectDefineProperty(constructor, 'name', { value: name, writable: false, enumerable: false, configurable: true });
    if (!STREAM_CLASSES.has(name)) makeMembersEnumerable(constructor);
    registerPlatformPrototype(constructor.prototype as object);
    defineGlobal(global, name, constructor);
  }
  defineGlobal(global, 'atob', atob);
  defineGlobal(global, 'btoa', btoa);
  defineGlobal(global, 'structuredClone', createStructuredClone(host));
  defineGlobal(global, 'caches', createCaches());
  const crypto = createCrypto(host);
  defineGlobal(global, 'crypto', crypto);
  const console = createConsole(host);
  defineGlobal(global, 'console', console);
  const consoleError = console.error;
  setListenerErrorReporter((error) => consoleError(error));
  defineGlobal(global, 'reportError', createReportError(consoleError));
  const randomUUID = uncurryThis(Crypto.prototype.randomUUID);
  setBoundarySource(() => {
    const uuid = randomUUID(crypto);
    let hex = '';
    for (let i = 0; i < uuid.length; i++) if (uuid[i] !== '-') hex += uuid[i];
    return hex;
  });
  defineGlobal(global, 'performance', createPerformance());
  defineGlobal(global, 'navigator', createNavigator());
  defineGlobal(global, 'self', global);
  defineGlobal(global, 'fetch', createFetch(options.ops, options.maxBodyBytes));
  warmStreams();
}

/** The stream classes come from the library, which already defines its members as WebIDL does. */
const STREAM_CLASSES = new Set([
  'ReadableStream', 'ReadableStreamDefaultReader', 'ReadableStreamBYOBReader', 'ReadableStreamBYOBRequest',
  'ReadableStreamDefaultController', 'ReadableByteStreamController', 'WritableStream', 'WritableStreamDefaultWriter',
  'WritableStreamDefaultController', 'TransformStream', 'TransformStreamDefaultController', 'ByteLengthQueuingStrategy',
  'CountQueuingStrategy',
]);

/** Globals are writable, configurable and non-enumerable, like the Web's. */
function defineGlobal(global: typeof globalThis, name: string, value: unknown): void {
  ObjectDefineProperty(global, name, { value, writable: true, enumerable: false, configurable: true });
}
