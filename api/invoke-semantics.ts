/**
 * What an invoke means on the wire, written once for the two places that serve one: the control
 * plane's route (api/routes/invoke.ts: in-process `app.request`, and connections no host took)
 * and the hosts' HTTP plane (runtime/host/http-plane.ts: connections handed to a host).
 *
 * - The target: `/v1/invoke/{name}[/{path}]`; the function sees the rest of the path and the query.
 * - What is forwarded: every request header except hop-by-hop ones (RFC 9110 §7.6.1),
 *   `Proxy-Authorization` (addressed to us as the gateway, never to the function) and any header
 *   whose value contains the management token (a client that sent it to a tenant's function by
 *   mistake must not hand it over). A function's own `Authorization` values reach it.
 * - What is returned: the function's status, status text and headers, re-checked (guest output
 *   is untrusted), without framing or hop-by-hop headers: those are the platform's (a function's
 *   Content-Length or Transfer-Encoding would sit next to the server's own framing, a reply
 *   clients reject). Workers drops them the same way.
 *
 * Hosts never learn the management token (they run tenant code): they get a TokenFingerprint, a
 * keyed rolling hash of it plus an HMAC to confirm a match, which drops exactly the same headers.
 */
import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { TributaryError } from '../runtime/errors.ts';
import type { WireRequest, WireResponse } from '../runtime/guest/wire.ts';

export const INVOKE_PREFIX = '/v1/invoke/';
export const NO_BODY_METHODS: ReadonlySet<string> = new Set(['GET', 'HEAD']);
/** Hop-by-hop headers (RFC 9110 §7.6.1) are the connection's; Proxy-Authorization is the gateway's (§11.7.2). */
const NOT_FORWARDED: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'proxy-authorization']);
/** Framing and hop-by-hop headers are the platform's, never the function's. */
const NOT_RETURNED: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'proxy-connection', 'te', 'trailer']);
/** RFC 9110 §5.6.2 token: a header name. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** A field value or reason phrase Node can write: HTAB, visible ASCII, obs-text (RFC 9110 §5.5). */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Leading and trailing HTTP whitespace, removed as `Headers` normalizes values. */
const EDGE_WHITESPACE = /^[\t\n\r ]+|[\t\n\r ]+$/g;

export interface InvokeTarget {
  /** The function name (percent-decoded). */
  name: string;
  /** The path the function sees: what follows the name, `/` at least. */
  rest: string;
}

/** The invoke a request path addresses, or null when it is not `/v1/invoke/{name}[/...]`. */
export function invokeTarget(pathname: string): InvokeTarget | null {
  if (!pathname.startsWith(INVOKE_PREFIX)) return null;
  const slash = pathname.indexOf('/', INVOKE_PREFIX.length);
  const segment = slash < 0 ? pathname.slice(INVOKE_PREFIX.length) : pathname.slice(INVOKE_PREFIX.length, slash);
  if (segment === '') return null;
  let name: string;
  try {
    name = decodeURIComponent(segment);
  } catch {
    return null;
  }
  return { name, rest: slash < 0 ? '/' : pathname.slice(slash) };
}

/** The parts of an `http://` request URL that the invoke needs. */
export interface UrlParts {
  origin: string;
  pathname: string;
  search: string;
}

/** Hostnames WHATWG URL keeps as they are: lowercase labels, the last one not numeric (it would be parsed as IPv4). */
const PLAIN_HOSTNAME = /^(?:[a-z0-9-]+\.)*[a-z-][a-z0-9-]*$/;
/** A dotted-quad IPv4 address already in its canonical form. */
const CANONICAL_IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
/** Path and query characters URL neither percent-encodes nor rewrites (no `%`, `\\`, `'` or dot segments). */
const PLAIN_PATH = /^\/[A-Za-z0-9\-_~!$&()*+,;=:@/.]*(?:\?[A-Za-z0-9\-._~!$&()*+,;=:@/?]*)?$/;

/**
 * `new URL('http://' + host + path)`'s origin, pathname and search, computed without a URL
 * when the request is already in the form URL would serialize it in (what clients send), or
 * null: the caller then parses it with URL. Never a different answer than URL's (test/invoke-semantics.test.ts).
 */
export function plainUrlParts(host: string, path: string): UrlParts | null {
  if (!PLAIN_PATH.test(path) || path.includes('/.')) return null;
  const colon = host.lastIndexOf(':');
  const hostname = colon < 0 ? host : host.slice(0, colon);
  if (colon >= 0) {
    const port = host.slice(colon + 1);
    if (port.length === 0 || port.length > 5 || port[0] === '0' || !/^\d+$/.test(port) || Number(port) > 65535 || port === '80') return null;
  }
  // Punycode labels are checked (and may be refused) by URL's IDNA processing.
  if ((!PLAIN_HOSTNAME.test(hostname) || hostname.includes('xn--')) && !CANONICAL_IPV4.test(hostname)) return null;
  const query = path.indexOf('?');
  const pathname = query < 0 ? path : path.slice(0, query);
  const search = query < 0 || query === path.length - 1 ? '' : path.slice(query);
  return { origin: `http://${host}`, pathname, search };
}

/** True when a header value carries the management token (such a header is not forwarded). */
export type TokenMatcher = (value: string) => boolean;

/** What a host is told of the management token: enough to find it in a header value, not to use it. */
export interface TokenFingerprint {
  length: number;
  /** Odd multiplier of the rolling hash (random per control plane). */
  base: number;
  /** Rolling hash of the token. */
  hash: number;
  /** HMAC-SHA256 key (hex, random) and the token's HMAC (hex): a rolling-hash match is confirmed with it. */
  key: string;
  digest: string;
}

export function fingerprintToken(token: string): TokenFingerprint {
  const base = (randomInt(1, 2 ** 31) * 2 + 1) >>> 0;
  const key = randomBytes(32).toString('hex');
  return { length: token.length, base, hash: rollingHash(token, 0, token.length, base), key, digest: hmac(key, token) };
}

/** The control plane's matcher (it knows the token) or a host's (it knows the fingerprint); null without a token. */
export function tokenMatcher(token: string | TokenFingerprint | undefined): TokenMatcher | null {
  if (token === undefined || token === '') return null;
  if (typeof token === 'string') return (value) => value.includes(token);
  const { length, base, hash, key, digest } = token;
  // base^(length-1) mod 2^32: the weight of the character leaving the window.
  let top = 1;
  for (let i = 1; i < length; i++) top = Math.imul(top, base);
  return (value) => {
    if (value.length < length) return false;
    let h = rollingHash(value, 0, length, base);
    for (let start = 0; ; start++) {
      if (h === hash && hmac(key, value.slice(start, start + length)) === digest) return true;
      if (start + length >= value.length) return false;
      h = (Math.imul(h - Math.imul(value.charCodeAt(start), top), base) + value.charCodeAt(start + length)) >>> 0;
    }
  };
}

function rollingHash(text: string, from: number, length: number, base: number): number {
  let h = 0;
  for (let i = from; i < from + length; i++) h = (Math.imul(h, base) + text.charCodeAt(i)) >>> 0;
  return h;
}

function hmac(key: string, text: string): string {
  return createHmac('sha256', key).update(text).digest('hex');
}

/** Whether a request header (name lower-cased) reaches the function. */
export function isForwarded(name: string, value: string, token: TokenMatcher | null): boolean {
  return !NOT_FORWARDED.has(name) && (token === null || !token(value));
}

/** The WireRequest of an invoke: `origin` and `search` as the client's URL has them, the rest from the target. */
export function wireRequest(method: string, origin: string, target: InvokeTarget, search: string, headers: [string, string][], body: Uint8Array | null): WireRequest {
  return { method, url: `${origin}${target.rest}${search}`, headers, body: body?.length ? body : null };
}

/** A function's response head as the platform sends it. */
export interface ResponseHead {
  status: number;
  statusText: string;
  /** Checked and normalized; framing and hop-by-hop headers removed. */
  headers: [string, string][];
  /** 204, 205 and 304 carry no body whatever the function returned. */
  nullBody: boolean;
}

/**
 * Re-checks a response head from the guest (status, header syntax, header bytes): ERR_FN_BAD_RESPONSE
 * or ERR_TOO_LARGE. The syntax rule is the one Node's writer applies, so what passes here is written as is.
 */
export function checkResponseHead(wire: Pick<WireResponse, 'status' | 'statusText' | 'headers'>, maxHeaderBytes: number): ResponseHead {
  if (!Number.isInteger(wire.status) || wire.status < 200 || wire.status > 599) {
    throw new TributaryError('ERR_FN_BAD_RESPONSE', `function returned invalid status ${String(wire.status).slice(0, 20)}`);
  }
  if (!Array.isArray(wire.headers) || typeof wire.statusText !== 'string') {
    throw new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned a malformed response head');
  }
  if (!FIELD_VALUE.test(wire.statusText)) throw new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned an invalid status text');
  let headerBytes = wire.statusText.length;
  const headers: [string, string][] = [];
  for (const pair of wire.headers) {
    if (!Array.isArray(pair)) throw new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned a malformed response head');
    const key = String(pair[0]);
    const raw = String(pair[1]);
    headerBytes += key.length + raw.length;
    if (headerBytes > maxHeaderBytes) {
      throw new TributaryError('ERR_TOO_LARGE', `function response headers exceed ${maxHeaderBytes} bytes`);
    }
    const value = raw.replace(EDGE_WHITESPACE, '');
    if (!TOKEN.test(key) || !FIELD_VALUE.test(value)) throw new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned an invalid header');
    const name = key.toLowerCase();
    if (NOT_RETURNED.has(name)) continue;
    headers.push([name, value]);
  }
  return { status: wire.status, statusText: wire.statusText, headers, nullBody: wire.status === 204 || wire.status === 205 || wire.status === 304 };
}
