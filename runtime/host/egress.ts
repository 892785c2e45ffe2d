/**
 * Outbound `fetch()` for guests, made by the host with node:http(s). Every argument comes from
 * hostile code and is checked (method token, http/https URL, header pairs, byte bounds).
 *
 * Egress policy: a connection may go to a public address only. Loopback, private (RFC 1918),
 * carrier-grade NAT, link-local (cloud metadata at 169.254.169.254), unique-local, multicast,
 * reserved and unspecified ranges are denied — IPv4-mapped and NAT64 IPv6 addresses by the IPv4
 * address inside — unless the operator's allow-list (CIDRs, `TRIBUTARY_EGRESS_ALLOW`) names
 * them. The check runs on the address actually connected to (our own `lookup`, and IP-literal
 * hosts directly), so DNS answers that change between check and connect (rebinding) cannot
 * slip through; every redirect hop is checked again.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';

export const MAX_FETCH_URL_CHARS = 16 * 1024;
export const MAX_FETCH_HEADER_BYTES = 64 * 1024;
export const MAX_FETCH_REDIRECTS = 20;

/** Failures have a stable code (in the guest: a TypeError whose message starts with it, and `.code`). */
export type EgressCode = 'ERR_EGRESS_DENIED' | 'ERR_FETCH_FAILED' | 'ERR_TOO_LARGE' | 'ERR_BAD_REQUEST' | 'ERR_FN_TIMEOUT';

export class EgressError extends Error {
  readonly code: EgressCode;
  constructor(code: EgressCode, message: string) {
    super(message);
    this.code = code;
  }
}

const DENIED_V4: [string, number][] = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24],
  ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
];
const DENIED_V6: [string, number][] = [
  ['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8], ['2001:db8::', 32], ['100::', 64],
];

export interface EgressPolicy {
  /** Whether a connection to `address` (an IP) may be made. */
  allows(address: string): boolean;
}

/** The policy for an allow-list of CIDRs or addresses (`127.0.0.1`, `10.1.0.0/16`, `::1`); bad entries throw. */
export function egressPolicy(allow: readonly string[] = []): EgressPolicy {
  const denied = new BlockList();
  for (const [address, prefix] of DENIED_V4) denied.addSubnet(address, prefix, 'ipv4');
  for (const [address, prefix] of DENIED_V6) denied.addSubnet(address, prefix, 'ipv6');
  const allowed = new BlockList();
  for (const entry of allow) {
    const [address, prefixText] = entry.trim().split('/');
    const family = isIP(address);
    if (family === 0) throw new Error(`egress allow-list entry '${entry}' is not an IP address or CIDR`);
    const type = family === 4 ? 'ipv4' : 'ipv6';
    const prefix = prefixText === undefined ? (family === 4 ? 32 : 128) : Number(prefixText);
    if (!Number.isInteger(prefix) || prefix < 0 || prefix > (family === 4 ? 32 : 128)) throw new Error(`egress allow-list entry '${entry}' has a bad prefix`);
    allowed.addSubnet(address, prefix, type);
  }
  const check = (address: string): boolean => {
    const family = isIP(address);
    if (family === 0) return false;
    if (family === 6) {
      const embedded = embeddedV4(address);
      if (embedded !== null) return check(embedded);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (allowed.check(address, type)) return true;
    return !denied.check(address, type);
  };
  return { allows: check };
}

/** The IPv4 address inside an IPv4-mapped (::ffff:a.b.c.d) or NAT64 (64:ff9b::/96) IPv6 address. */
function embeddedV4(address: string): string | null {
  const lower = address.toLowerCase();
  const mapped = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (mapped) return mapped[1];
  const hex = /^(?:::ffff:|64:ff9b::)([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(lower);
  if (hex) {
    const hi = parseInt(hex[1], 16);
    const lo = parseInt(hex[2], 16);
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  }
  return null;
}

export interface FetchRequest {
  method: string;
  url: string;
  headers: [string, string][];
  body: Uint8Array | null;
  redirect: 'follow' | 'manual' | 'error';
}

export interface FetchResponse {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
  url: string;
  redirected: boolean;
}

export interface FetchBudget {
  /** Bytes of response bodies this invocation may still receive; decremented as they arrive. */
  bytesLeft: number;
  maxBodyBytes: number;
  signal: AbortSignal;
}

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const FORBIDDEN_REQUEST_HEADERS = new Set(['host', 'connection', 'keep-alive', 'transfer-encoding', 'te', 'upgrade', 'proxy-connection', 'content-length', 'expect', 'trailer']);

/** The guest's request, rebuilt from checked plain data. */
export function checkFetchRequest(value: unknown, maxBodyBytes: number): FetchRequest {
  const bad = (message: string) => new EgressError('ERR_BAD_REQUEST', message);
  if (typeof value !== 'object' || value === null) throw bad('malformed request');
  const v = value as Record<string, unknown>;
  if (typeof v.method !== 'string' || v.method.length > 64 || !TOKEN.test(v.method)) throw bad('invalid method');
  if (typeof v.url !== 'string' || v.url.length > MAX_FETCH_URL_CHARS) throw bad('invalid URL');
  const url = URL.parse(v.url);
  if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) throw bad(`fetch supports http: and https: URLs only`);
  if (!Array.isArray(v.headers)) throw bad('malformed headers');
  const headers: [string, string][] = [];
  let headerBytes = 0;
  for (const pair of v.headers) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') throw bad('malformed header');
    headerBytes += pair[0].length + pair[1].length;
    if (headerBytes > MAX_FETCH_HEADER_BYTES) throw new EgressError('ERR_TOO_LARGE', `request headers exceed ${MAX_FETCH_HEADER_BYTES} bytes`);
    if (!TOKEN.test(pair[0]) || /[\0\r\n]/.test(pair[1])) throw bad('invalid header');
    if (FORBIDDEN_REQUEST_HEADERS.has(pair[0].toLowerCase())) continue;
    headers.push([pair[0], pair[1]]);
  }
  let body: Uint8Array | null = null;
  if (v.body !== null && v.body !== undefined) {
    if (!(v.body instanceof Uint8Array)) throw bad('malformed body');
    if (v.body.byteLength > maxBodyBytes) throw new EgressError('ERR_TOO_LARGE', `request body exceeds ${maxBodyBytes} bytes`);
    body = v.body;
  }
  const redirect = v.redirect === 'manual' || v.redirect === 'error' ? v.redirect : 'follow';
  return { method: v.method, url: url.href, headers, body, redirect };
}

function checkedLookup(policy: EgressPolicy) {
  return (hostname: string, options: object, callback: (error: Error | null, address: string | LookupAddress[], family?: number) => void) => {
    dnsLookup(hostname, { all: true }, (error, addresses) => {
      if (error) return callback(new EgressError('ERR_FETCH_FAILED', `cannot resolve ${hostname}`), '', 0);
      const ok = addresses.filter((a) => policy.allows(a.address));
      if (ok.length === 0) return callback(new EgressError('ERR_EGRESS_DENIED', `${hostname} resolves only to addresses functions may not reach`), '', 0);
      if ((options as { all?: boolean }).all) callback(null, ok);
      else callback(null, ok[0].address, ok[0].family);
    });
  };
}

function once(request: FetchRequest, policy: EgressPolicy, budget: FetchBudget): Promise<Omit<FetchResponse, 'url' | 'redirected'>> {
  const url = new URL(request.url);
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
  if (isIP(host) !== 0 && !policy.allows(host)) {
    return Promise.reject(new EgressError('ERR_EGRESS_DENIED', `${host} is an address functions may not reach`));
  }
  const transport = url.protocol === 'https:' ? https : http;
  // An object (not raw pairs): Node then adds Host itself. Repeated names are joined, as Headers does.
  const headers: Record<string, string> = Object.create(null);
  for (const [key, value] of request.headers) {
    const name = key.toLowerCase();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  if (request.body) headers['content-length'] = String(request.body.byteLength);
  return new Promise((resolve, reject) => {
    const req = transport.request(url, {
      method: request.method,
      headers,
      lookup: checkedLookup(policy) as never,
      signal: budget.signal,
      agent: false,
    });
    req.on('error', (error) => {
      if (error instanceof EgressError) reject(error);
      else if (budget.signal.aborted) reject(new EgressError('ERR_FN_TIMEOUT', 'the invocation ended before the response arrived'));
      else reject(new EgressError('ERR_FETCH_FAILED', `fetch to ${url.host} failed: ${(error as NodeJS.ErrnoException).code ?? error.message}`.slice(0, 300)));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let total = 0;
      res.on('data', (chunk: Buffer) => {
        total += chunk.length;
        budget.bytesLeft -= chunk.length;
        if (total > budget.maxBodyBytes || budget.bytesLeft < 0) {
          req.destroy();
          reject(new EgressError('ERR_TOO_LARGE', total > budget.maxBodyBytes ? `response body exceeds ${budget.maxBodyBytes} bytes` : 'the invocation received more subrequest bytes than allowed'));
          return;
        }
        chunks.push(chunk);
      });
      res.on('error', () => reject(new EgressError('ERR_FETCH_FAILED', `the response from ${url.host} broke off`)));
      res.on('end', () => {
        const headers: [string, string][] = [];
        for (let i = 0; i + 1 < res.rawHeaders.length; i += 2) headers.push([res.rawHeaders[i], res.rawHeaders[i + 1]]);
        const status = res.statusCode ?? 0;
        resolve({ status, statusText: res.statusMessage ?? '', headers, body: total === 0 ? null : new Uint8Array(Buffer.concat(chunks)) });
      });
    });
    if (request.body) req.end(request.body);
    else req.end();
  });
}

/** One guest fetch, following redirects as `request.redirect` says, each hop checked against `policy`. */
export async function egressFetch(request: FetchRequest, policy: EgressPolicy, budget: FetchBudget): Promise<FetchResponse> {
  let current = request;
  for (let hop = 0; ; hop++) {
    const response = await once(current, policy, budget);
    const location = response.headers.find(([k]) => k.toLowerCase() === 'location')?.[1];
    const isRedirect = [301, 302, 303, 307, 308].includes(response.status) && location !== undefined;
    if (!isRedirect || current.redirect === 'manual') return { ...response, url: current.url, redirected: hop > 0 };
    if (current.redirect === 'error') throw new EgressError('ERR_FETCH_FAILED', `redirect to ${location.slice(0, 200)} refused (redirect: 'error')`);
    if (hop >= MAX_FETCH_REDIRECTS) throw new EgressError('ERR_FETCH_FAILED', `more than ${MAX_FETCH_REDIRECTS} redirects`);
    const next = URL.parse(location, current.url);
    if (next === null || (next.protocol !== 'http:' && next.protocol !== 'https:')) throw new EgressError('ERR_FETCH_FAILED', 'redirect to an unsupported URL');
    const toGet = response.status === 303 ? current.method !== 'HEAD' : (response.status === 301 || response.status === 302) && current.method === 'POST';
    // Credentials never follow a redirect to another origin (as fetch strips Authorization).
    const crossOrigin = next.origin !== new URL(current.url).origin;
    const kept = crossOrigin ? current.headers.filter(([k]) => !['authorization', 'cookie', 'proxy-authorization'].includes(k.toLowerCase())) : current.headers;
    current = {
      ...current,
      url: next.href,
      method: toGet ? 'GET' : current.method,
      body: toGet ? null : current.body,
      headers: toGet ? kept.filter(([k]) => !k.toLowerCase().startsWith('content-')) : kept,
    };
  }
}

let processPolicy: EgressPolicy = egressPolicy();

/** The host process's policy (host/main.ts sets it from TRIBUTARY_EGRESS_ALLOW at start). */
export function setEgressPolicy(policy: EgressPolicy): void {
  processPolicy = policy;
}

export function currentEgressPolicy(): EgressPolicy {
  return processPolicy;
}

/** `TRIBUTARY_EGRESS_ALLOW`: comma-separated CIDRs or addresses. */
export function parseEgressAllow(value: string | undefined): string[] {
  return (value ?? '').split(',').map((entry) => entry.trim()).filter((entry) => entry !== '');
}
