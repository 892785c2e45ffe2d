/**
 * The Workers Cache API (`caches.default`, `caches.open(name)`; Cache `put`, `match`, `delete`),
 * kept by the host process the call runs on (host/response-cache.ts), as Workers keeps it per data
 * center: a response cached on one host is a miss on another, entries expire by their
 * Cache-Control and may be evicted any time (the host bounds the cache in bytes and entries).
 * Available in `fetch` handlers. As on Workers:
 *
 *   put(request, response)   GET only; TypeError for a 206 response or `Vary: *`; consumes the
 *                            response body; a response with Cache-Control no-store or private, or
 *                            with Set-Cookie, is not stored
 *   match(request, options)  a Response or undefined; non-GET requests miss unless
 *                            `ignoreMethod`; If-None-Match against the stored ETag answers 304
 *   delete(request, options) true when an entry was removed
 */
import type { HostOps, OpOutcome } from '../host-ops.ts';
import {
  ObjectFreeze,
  PromiseReject,
  PromiseResolve,
  SafeRangeError,
  SafeTypeError,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeSlice,
  StringPrototypeStartsWith,
  TypedArrayPrototypeGetSymbolToStringTag,
} from '../primordials.ts';
import { isRequest, Request, requestParts } from './request.ts';
import { createFetchedResponse, isResponse, readResponse, type Response } from './response.ts';
import { BodyDrainError, drainStream } from './streams.ts';
import { toDOMString } from './webidl.ts';

const MAX_CACHE_NAME_CHARS = 256;

interface Stored {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
}

let hostOps: HostOps | null = null;
let maxBodyBytes = 10 * 1024 * 1024;

export function bindCacheHost(ops: HostOps, maxBytes: number): void {
  hostOps = ops;
  maxBodyBytes = maxBytes;
}

async function call(op: 'put' | 'match' | 'delete', args: object): Promise<unknown> {
  const outcome: OpOutcome = await hostOps!.run('cache', [op, args]);
  if (!outcome.ok) {
    const { name, message } = outcome.error;
    throw name === 'RangeError' ? new SafeRangeError(message) : new SafeTypeError(message);
  }
  return outcome.value;
}

/** Method, URL (without its fragment) and headers of a Request or a URL string. */
function target(request: unknown): { method: string; url: string; headers: [string, string][] } {
  const parts = requestParts(isRequest(request) ? request : new Request(toDOMString(request)));
  const hash = StringPrototypeIndexOf(parts.url, '#');
  return { method: parts.method, url: hash < 0 ? parts.url : StringPrototypeSlice(parts.url, 0, hash), headers: parts.headers };
}

function header(headers: [string, string][], name: string): string | null {
  for (let i = 0; i < headers.length; i++) if (headers[i][0] === name) return headers[i][1];
  return null;
}

export class Cache {
  readonly #name: string;

  constructor(name: string, key: symbol) {
    if (key !== CONSTRUCT) throw new SafeTypeError('Illegal constructor');
    this.#name = name;
  }

  async put(request: unknown, response: unknown): Promise<undefined> {
    const { method, url } = target(request);
    if (method !== 'GET') throw new SafeTypeError('Cache.put: only GET requests can be cached');
    if (!isResponse(response)) throw new SafeTypeError("Cache.put: the second argument must be a Response");
    const parts = readResponse(response as Response);
    if (parts.status === 206) throw new SafeTypeError('Cache.put: a 206 Partial Content response cannot be cached');
    const vary = header(parts.headers, 'vary');
    if (vary !== null && trim(vary) === '*') throw new SafeTypeError("Cache.put: a response with 'Vary: *' cannot be cached");
    let body = parts.body;
    if (parts.stream !== null) {
      try {
        body = (await drainStream(parts.stream, maxBodyBytes)).bytes;
      } catch (error) {
        if (error instanceof BodyDrainError) throw new SafeTypeError(`Cache.put: ${error.message}`);
        throw error;
      }
    }
    await call('put', { name: this.#name, url, status: parts.status, statusText: parts.statusText, headers: parts.headers, body });
    return undefined;
  }

  async match(request: unknown, options: unknown = undefined): Promise<Response | undefined> {
    const { method, url, headers } = target(request);
    if (method !== 'GET' && !ignoreMethod(options)) return undefined;
    const stored = (await call('match', { name: this.#name, url })) as Stored | null;
    if (stored === null) return undefined;
    if (typeof stored !== 'object' || typeof stored.status !== 'number' || (stored.body !== null && TypedArrayPrototypeGetSymbolToStringTag(stored.body) !== 'Uint8Array')) {
      throw new SafeTypeError('Cache.match: the host returned a malformed entry');
    }
    const etag = header(stored.headers, 'etag');
    const ifNoneMatch = header(headers, 'if-none-match');
    if (etag !== null && ifNoneMatch !== null && etagMatches(ifNoneMatch, etag)) {
      return createFetchedResponse({ status: 304, statusText: 'Not Modified', headers: stored.headers, body: null, url, redirected: false });
    }
    return createFetchedResponse({ status: stored.status, statusText: stored.statusText, headers: stored.headers, body: stored.body, url, redirected: false });
  }

  async delete(request: unknown, options: unknown = undefined): Promise<boolean> {
    const { method, url } = target(request);
    if (method !== 'GET' && !ignoreMethod(options)) return false;
    return (await call('delete', { name: this.#name, url })) === true;
  }
}

const CONSTRUCT = Symbol('Cache');

function ignoreMethod(options: unknown): boolean {
  return typeof options === 'object' && options !== null && (options as { ignoreMethod?: unknown }).ignoreMethod === true;
}

/** If-None-Match (RFC 9110 §13.1.2): `*` or a list of entity tags, compared weakly. */
function etagMatches(list: string, etag: string): boolean {
  if (trim(list) === '*') return true;
  const wanted = weak(trim(etag));
  let start = 0;
  for (;;) {
    const comma = StringPrototypeIndexOf(list, ',', start);
    if (weak(trim(StringPrototypeSlice(list, start, comma < 0 ? list.length : comma))) === wanted) return true;
    if (comma < 0) return false;
    start = comma + 1;
  }
}

function weak(tag: string): string {
  return StringPrototypeStartsWith(tag, 'W/') ? StringPrototypeSlice(tag, 2) : tag;
}

/** Without the optional whitespace (spaces and tabs) around a header value. */
function trim(value: string): string {
  let start = 0;
  let end = value.length;
  const ows = (i: number) => {
    const c = StringPrototypeCharCodeAt(value, i);
    return c === 0x20 || c === 0x09;
  };
  while (start < end && ows(start)) start++;
  while (end > start && ows(end - 1)) end--;
  return StringPrototypeSlice(value, start, end);
}

export class CacheStorage {
  readonly #default: Cache;

  constructor(key: symbol) {
    if (key !== CONSTRUCT) throw new SafeTypeError('Illegal constructor');
    this.#default = new Cache('', CONSTRUCT);
  }

  get default(): Cache {
    return this.#default;
  }

  open(name: unknown): Promise<Cache> {
    const value = toDOMString(name);
    if (value.length > MAX_CACHE_NAME_CHARS) return PromiseReject(new SafeTypeError(`CacheStorage.open: cache names are at most ${MAX_CACHE_NAME_CHARS} characters`)) as Promise<Cache>;
    // The default cache is Workers' own: a named cache never shares its entries.
    return PromiseResolve(new Cache(`n:${value}`, CONSTRUCT)) as Promise<Cache>;
  }
}

export function createCaches(): CacheStorage {
  return ObjectFreeze(new CacheStorage(CONSTRUCT)) as CacheStorage;
}
