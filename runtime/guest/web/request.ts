/**
 * Request (https://fetch.spec.whatwg.org/#request-class) as a function's `fetch` handler receives
 * it and as user code builds it. URLs must be absolute (there is no document base URL). Only
 * what a server-side handler needs is kept: no `signal`, `mode`, `credentials`, `cache`, …
 */
import { ObjectFreeze, SafeTypeError, StringPrototypeToUpperCase } from '../primordials.ts';
import { Body, extractBody } from './body.ts';
import { neverAbortedSignal } from './events.ts';
import type { ReadableStream } from './streams.ts';
import { appendHeader, copyHeaders, fillHeaders, getHeader, Headers, headersFromHost, sortedHeaderPairs } from './headers.ts';
import { isToken } from './http-grammar.ts';
import { INSPECT } from './inspect.ts';
import { parseUrl } from './url.ts';
import { defineToStringTag, requireArguments, toByteString, toUSVString } from './webidl.ts';

export interface RequestInit {
  body?: unknown;
  headers?: unknown;
  method?: string;
}

interface RequestState {
  method: string;
  url: string;
  headers: Headers;
  body: Body;
}

/** Module-private: `new Request(INTERNAL, state)` adopts `state` without validation. */
const INTERNAL = Symbol('internal');
const NORMALIZED_METHODS = ['DELETE', 'GET', 'HEAD', 'OPTIONS', 'POST', 'PUT'];
const FORBIDDEN_METHODS = ['CONNECT', 'TRACE', 'TRACK'];

/** Method, URL, headers and body of a request, for the platform's outbound fetch (marks the body used). */
export let requestParts: (request: Request) => { method: string; url: string; headers: [string, string][]; body: Body };
export let isRequest: (value: unknown) => value is Request;
/**
 * The Request a `fetch` handler receives, from what the host parsed: `url` is already a
 * normalized absolute href (the host's WHATWG URL parser produced it), `headers` is
 * headersFromHost's joined form, parsed when first read. No boundary crossing to re-parse the URL.
 */
export function requestFromHost(method: string, url: string, headers: string, body: Uint8Array | null): Request {
  const normalized = normalizeMethod(method);
  if (body !== null && (normalized === 'GET' || normalized === 'HEAD')) throw new SafeTypeError(`Request with ${normalized} method cannot have a body`);
  const state: RequestState = { method: normalized, url, headers: headersFromHost(headers), body: new Body(body) };
  return new Request(INTERNAL as unknown as string, state as unknown as RequestInit);
}

const NO_EDGE_METADATA: object = ObjectFreeze({});

export class Request {
  readonly #state: RequestState;
  #signal: unknown = null;

  static {
    isRequest = (value): value is Request => typeof value === 'object' && value !== null && #state in value;
    requestParts = (request) => {
      const state = request.#state;
      return { method: state.method, url: state.url, headers: sortedHeaderPairs(state.headers), body: state.body };
    };
  }

  constructor(input: string | Request, init: RequestInit | null | undefined = undefined) {
    if ((input as unknown) === INTERNAL) {
      this.#state = init as unknown as RequestState;
      return;
    }
    requireArguments(arguments.length, 1, 'Request');
    if (init !== undefined && init !== null && typeof init !== 'object' && typeof init !== 'function') {
      throw new SafeTypeError("Request: 'init' must be an object");
    }
    const source = typeof input === 'object' && input !== null && #state in input ? input.#state : null;
    // Dictionary members, read once each in the spec's (lexicographic) order.
    const initBody = init?.body;
    const initHeaders = init?.headers;
    const initMethod = init?.method;

    let url: string;
    if (source !== null) url = source.url;
    else {
      const parts = parseUrl(toUSVString(input));
      if (parts === null) throw new SafeTypeError(`Invalid URL: ${toUSVString(input)}`);
      if (parts.username !== '' || parts.password !== '') throw new SafeTypeError('Request URL must not include credentials');
      url = parts.href;
    }
    const method = initMethod === undefined ? (source?.method ?? 'GET') : normalizeMethod(initMethod);
    const hasInitBody = initBody !== undefined && initBody !== null;
    if ((hasInitBody || (source !== null && !source.body.isNull)) && (method === 'GET' || method === 'HEAD')) {
      throw new SafeTypeError(`Request with ${method} method cannot have a body`);
    }

    const headers = initHeaders !== undefined ? new Headers() : source !== null ? copyHeaders(source.headers) : new Headers();
    if (initHeaders !== undefined) fillHeaders(headers, initHeaders);

    let body: Body;
    if (hasInitBody) {
      const extracted = extractBody(initBody);
      if (extracted.contentType !== null && getHeader(headers, 'content-type') === null) {
        appendHeader(headers, 'content-type', extracted.contentType);
      }
      body = Body.of(extracted);
    } else if (source !== null && !source.body.isNull) {
      // The input's body moves to the new request; the input becomes used.
      body = source.body.transfer();
    } else body = new Body(null);

    this.#state = { method, url, headers, body };
  }

  get method(): string {
    return this.#state.method;
  }

  get url(): string {
    return this.#state.url;
  }

  get headers(): Headers {
    return this.#state.headers;
  }

  /** null for a null body, else a ReadableStream of its bytes (see body.ts). */
  get body(): ReadableStream<unknown> | null {
    return this.#state.body.stream;
  }

  get bodyUsed(): boolean {
    return this.#state.body.used;
  }

  text(): Promise<string> {
    return this.#state.body.text();
  }

  json(): Promise<unknown> {
    return this.#state.body.json();
  }

  arrayBuffer(): Promise<ArrayBuffer> {
    return this.#state.body.arrayBuffer();
  }

  bytes(): Promise<Uint8Array> {
    return this.#state.body.bytes();
  }

  blob(): Promise<unknown> {
    return this.#state.body.blob(getHeader(this.#state.headers, 'content-type'));
  }

  formData(): Promise<unknown> {
    return this.#state.body.formData(getHeader(this.#state.headers, 'content-type'));
  }

  /** Requests here are never aborted by the platform: a signal that never fires. */
  get signal(): unknown {
    if (this.#signal === null) this.#signal = neverAbortedSignal();
    return this.#signal;
  }

  get redirect(): string {
    return 'follow';
  }

  /**
   * Cloudflare's edge metadata (geolocation, TLS, bot scores) does not exist here: an empty frozen
   * object, so Workers code reading `request.cf.country` gets undefined rather than a TypeError.
   */
  get cf(): object {
    return NO_EDGE_METADATA;
  }

  clone(): Request {
    const state = this.#state;
    const copy: RequestState = {
      method: state.method,
      url: state.url,
      headers: copyHeaders(state.headers),
      body: state.body.clone(),
    };
    return new Request(INTERNAL as unknown as string, copy as unknown as RequestInit);
  }

  [INSPECT](): object {
    return { method: this.#state.method, url: this.#state.url, headers: this.#state.headers, bodyUsed: this.#state.body.used };
  }
}
defineToStringTag(Request.prototype, 'Request');

/** A method must be a token; CONNECT, TRACE and TRACK are forbidden; standard ones are uppercased. */
function normalizeMethod(value: unknown): string {
  const method = toByteString(value);
  if (!isToken(method)) throw new SafeTypeError(`'${method}' is not a valid HTTP method`);
  const upper = StringPrototypeToUpperCase(method);
  for (let i = 0; i < FORBIDDEN_METHODS.length; i++) {
    if (upper === FORBIDDEN_METHODS[i]) throw new SafeTypeError(`'${method}' HTTP method is unsupported`);
  }
  for (let i = 0; i < NORMALIZED_METHODS.length; i++) if (upper === NORMALIZED_METHODS[i]) return upper;
  return method;
}
