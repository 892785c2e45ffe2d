/**
 * Response (https://fetch.spec.whatwg.org/#response-class): what a `fetch` handler returns.
 * `readResponse` is the dispatcher's way to take one apart without touching (patchable)
 * public methods or awaiting anything.
 */
import { JSONStringify, SafeRangeError, SafeTypeError } from '../primordials.ts';
import { Body, extractBody } from './body.ts';
import type { ReadableStream } from './streams.ts';
import { appendHeader, copyHeaders, fillHeaders, getHeader, headerBytes, Headers, setHeadersGuard, sortedHeaderPairs } from './headers.ts';
import { isReasonPhrase } from './http-grammar.ts';
import { INSPECT } from './inspect.ts';
import { parseUrl } from './url.ts';
import { utf8Encode } from './utf8.ts';
import { defineToStringTag, requireArguments, toByteString, toUnsignedShort, toUSVString } from './webidl.ts';

export interface ResponseInit {
  headers?: unknown;
  status?: number;
  statusText?: string;
}

type ResponseType = 'default' | 'error';

interface ResponseState {
  /** Set on responses from fetch(): the final URL, and whether a redirect led there. */
  url?: string;
  redirected?: boolean;
  type: ResponseType;
  status: number;
  statusText: string;
  headers: Headers;
  body: Body;
}

/** What the dispatcher sends back to the host. */
export interface ResponseParts {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
  /** A stream body still to drain (the dispatcher does, bounded); `body` is null then. */
  stream: ReadableStream<unknown> | null;
}

/** Module-private: `new Response(INTERNAL, state)` adopts `state` without validation. */
const INTERNAL = Symbol('internal');
const NULL_BODY_STATUSES = [101, 103, 204, 205, 304];
const REDIRECT_STATUSES = [301, 302, 303, 307, 308];

export let isResponse: (value: unknown) => value is Response;
/** Status, sorted headers and body bytes of `response`, marking its body used; TypeError if it was. */
export let readResponse: (response: Response) => ResponseParts;
/** Size of the response head (status text and headers, see headerBytes), before anything is copied. */
export let responseHeadBytes: (response: Response) => number;

export class Response {
  readonly #state: ResponseState;

  static {
    isResponse = (value): value is Response => typeof value === 'object' && value !== null && #state in value;
    responseHeadBytes = (response) => response.#state.statusText.length + headerBytes(response.#state.headers);
    readResponse = (response) => {
      const state = response.#state;
      const stream = state.body.pendingStream;
      if (stream !== null && state.body.used) throw new SafeTypeError('Body has already been read');
      const body = stream !== null ? null : state.body.takeBufferedBytes();
      return { status: state.status, statusText: state.statusText, headers: sortedHeaderPairs(state.headers), body, stream };
    };
  }

  constructor(body: unknown = null, init: ResponseInit | null | undefined = undefined) {
    if (body === INTERNAL) {
      this.#state = init as unknown as ResponseState;
      return;
    }
    this.#state = initialize(init, body === null || body === undefined ? null : extractBody(body));
  }

  static error(): Response {
    const headers = new Headers();
    setHeadersGuard(headers, 'immutable');
    return adopt({ type: 'error', status: 0, statusText: '', headers, body: new Body(null) });
  }

  static redirect(url: string, status = 302): Response {
    requireArguments(arguments.length, 1, 'Response.redirect');
    const parts = parseUrl(toUSVString(url));
    if (parts === null) throw new SafeTypeError(`Invalid URL: ${toUSVString(url)}`);
    const code = toUnsignedShort(status);
    if (!includes(REDIRECT_STATUSES, code)) throw new SafeRangeError(`Invalid redirect status ${code}`);
    const headers = new Headers();
    appendHeader(headers, 'location', parts.href);
    setHeadersGuard(headers, 'immutable');
    return adopt({ type: 'default', status: code, statusText: '', headers, body: new Body(null) });
  }

  /** A response whose body is `JSON.stringify(data)`, with Content-Type application/json. */
  static json(data: unknown, init: ResponseInit | null | undefined = undefined): Response {
    requireArguments(arguments.length, 1, 'Response.json');
    const json = JSONStringify(data);
    if (json === undefined) throw new SafeTypeError('Response.json: data is not JSON serializable');
    return adopt(initialize(init, { bytes: utf8Encode(json), stream: null, contentType: 'application/json' }));
  }

  get type(): ResponseType {
    return this.#state.type;
  }

  /** '' for responses the function built; the final URL for one from fetch(). */
  get url(): string {
    return this.#state.url ?? '';
  }

  get redirected(): boolean {
    return this.#state.redirected ?? false;
  }

  get status(): number {
    return this.#state.status;
  }

  get ok(): boolean {
    return this.#state.status >= 200 && this.#state.status <= 299;
  }

  get statusText(): string {
    return this.#state.statusText;
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

  clone(): Response {
    const state = this.#state;
    return adopt({
      type: state.type,
      status: state.status,
      statusText: state.statusText,
      headers: copyHeaders(state.headers),
      body: state.body.clone(),
    });
  }

  [INSPECT](): object {
    const state = this.#state;
    return { status: state.status, statusText: state.statusText, headers: state.headers, bodyUsed: state.body.used };
  }
}
defineToStringTag(Response.prototype, 'Response');

/**
 * A Response as fetch() returns it: any status the server sent (a 1xx never arrives), headers
 * immutable, `url` and `redirected` set; null-body statuses drop the body.
 */
export function createFetchedResponse(parts: { status: number; statusText: string; headers: [string, string][]; body: Uint8Array | null; url: string; redirected: boolean }): Response {
  const headers = new Headers();
  for (let i = 0; i < parts.headers.length; i++) {
    try {
      appendHeader(headers, parts.headers[i][0], parts.headers[i][1]);
    } catch {
      // A header the Headers grammar refuses is dropped, as browsers do with what they cannot represent.
    }
  }
  setHeadersGuard(headers, 'immutable');
  const nullBody = includes(NULL_BODY_STATUSES, parts.status);
  return adopt({
    type: 'default',
    status: parts.status,
    statusText: parts.statusText,
    headers,
    body: new Body(nullBody ? null : (parts.body ?? new Uint8Array(0))),
    url: parts.url,
    redirected: parts.redirected,
  });
}

function adopt(state: ResponseState): Response {
  return new Response(INTERNAL, state as unknown as ResponseInit);
}

/** The spec's "initialize a response" with `init` and an already extracted body. */
function initialize(init: ResponseInit | null | undefined, body: ReturnType<typeof extractBody> | null): ResponseState {
  if (init !== undefined && init !== null && typeof init !== 'object' && typeof init !== 'function') {
    throw new SafeTypeError("Response: 'init' must be an object");
  }
  // Dictionary members, read once each in the spec's (lexicographic) order.
  const initHeaders = init?.headers;
  const initStatus = init?.status;
  const initStatusText = init?.statusText;
  const status = initStatus === undefined ? 200 : toUnsignedShort(initStatus);
  if (status < 200 || status > 599) throw new SafeRangeError(`Response status ${status} is not in the range 200 to 599`);
  const statusText = initStatusText === undefined ? '' : toByteString(initStatusText);
  if (!isReasonPhrase(statusText)) throw new SafeTypeError(`Invalid statusText "${statusText}"`);
  const headers = new Headers();
  if (initHeaders !== undefined) fillHeaders(headers, initHeaders);
  if (body === null) return { type: 'default', status, statusText, headers, body: new Body(null) };
  if (includes(NULL_BODY_STATUSES, status)) throw new SafeTypeError(`Response with status ${status} cannot have a body`);
  if (body.contentType !== null && getHeader(headers, 'content-type') === null) {
    appendHeader(headers, 'content-type', body.contentType);
  }
  return { type: 'default', status, statusText, headers, body: Body.of(body) };
}

function includes(list: readonly number[], value: number): boolean {
  for (let i = 0; i < list.length; i++) if (list[i] === value) return true;
  return false;
}
