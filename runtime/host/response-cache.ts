/**
 * The host process's cache behind the guests' Cache API (guest/web/cache.ts): per function (the
 * name comes from the host, never from tenant code), per cache name and URL; one LRU bounded in
 * entries and bytes for the whole host, so a tenant can evict others' entries (as a shared data
 * center cache does) but never grow the host. An entry lives for its Cache-Control `s-maxage`,
 * else `max-age`, else until `Expires`, else DEFAULT_TTL_MS; responses marked `no-store` or
 * `private`, or with `Set-Cookie`, are not stored. Every argument is checked: it comes from the
 * guest.
 */
import { LRUCache } from 'lru-cache';

/** Bytes of bodies and heads the cache keeps per host process. */
export const MAX_CACHE_BYTES = 64 * 1024 * 1024;
export const MAX_CACHE_ENTRIES = 10_000;
/** An entry's head (status text, header names and values) at most. */
const MAX_HEAD_BYTES = 64 * 1024;
const MAX_HEADERS = 256;
const MAX_URL_CHARS = 8192;
/** How long a response without freshness headers is kept (Cloudflare's default edge TTL for a 200: 2 h). */
export const DEFAULT_TTL_MS = 2 * 60 * 60 * 1000;

interface Entry {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
  size: number;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: { name: string; message: string } };
const fail = (name: string, message: string): Outcome => ({ ok: false, error: { name, message } });

const entries = new LRUCache<string, Entry>({ max: MAX_CACHE_ENTRIES, maxSize: MAX_CACHE_BYTES, sizeCalculation: (entry) => entry.size, ttlAutopurge: false });

/** One Cache API operation of function `fn`; never throws. */
export function cacheOutcome(fn: string, op: unknown, args: unknown): Outcome {
  if (typeof args !== 'object' || args === null) return fail('TypeError', 'malformed cache request');
  const { name, url } = args as { name?: unknown; url?: unknown };
  if (typeof name !== 'string' || name.length > 260 || typeof url !== 'string' || url.length > MAX_URL_CHARS) return fail('TypeError', 'malformed cache request');
  const key = `${fn}\u0000${name}\u0000${url}`;
  if (op === 'match') {
    const entry = entries.get(key);
    return { ok: true, value: entry ? { status: entry.status, statusText: entry.statusText, headers: entry.headers, body: entry.body } : null };
  }
  if (op === 'delete') return { ok: true, value: entries.delete(key) };
  if (op !== 'put') return fail('TypeError', 'malformed cache request');
  const entry = checkedEntry(args as Record<string, unknown>);
  if (typeof entry === 'string') return fail('TypeError', `Cache.put: ${entry}`);
  const ttl = freshness(entry.headers);
  if (ttl <= 0) {
    entries.delete(key); // what is not stored no longer answers either
    return { ok: true, value: null };
  }
  if (entry.size > MAX_CACHE_BYTES / 8) return fail('RangeError', `ERR_TOO_LARGE: a cached response holds at most ${MAX_CACHE_BYTES / 8} bytes`);
  entries.set(key, entry, { ttl });
  return { ok: true, value: null };
}

/** Forgets every entry of a deleted function. */
export function dropCachedResponses(fn: string): void {
  const prefix = `${fn}\u0000`;
  for (const key of [...entries.keys()]) if (key.startsWith(prefix)) entries.delete(key);
}

function checkedEntry(args: Record<string, unknown>): Entry | string {
  const { status, statusText, headers, body } = args;
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 200 || status > 599) return 'invalid status';
  if (typeof statusText !== 'string' || !Array.isArray(headers) || headers.length > MAX_HEADERS) return 'malformed response head';
  if (body !== null && !(body instanceof Uint8Array)) return 'malformed body';
  let size = statusText.length;
  const copied: [string, string][] = [];
  for (const pair of headers) {
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== 'string' || typeof pair[1] !== 'string') return 'malformed header';
    size += pair[0].length + pair[1].length;
    if (size > MAX_HEAD_BYTES) return `response head over ${MAX_HEAD_BYTES} bytes`;
    copied.push([pair[0].toLowerCase(), pair[1]]);
  }
  return { status, statusText, headers: copied, body: body as Uint8Array | null, size: size + ((body as Uint8Array | null)?.byteLength ?? 0) };
}

/** Milliseconds the response may be kept (0: not stored), from its headers (RFC 9111 §4.2.1, shared cache). */
export function freshness(headers: [string, string][], now = Date.now()): number {
  let cacheControl = '';
  let expires: string | null = null;
  let date: string | null = null;
  for (const [name, value] of headers) {
    if (name === 'set-cookie') return 0;
    if (name === 'cache-control') cacheControl += `${cacheControl ? ',' : ''}${value}`;
    else if (name === 'expires') expires = value;
    else if (name === 'date') date = value;
  }
  const directives = new Map<string, string>();
  for (const part of cacheControl.split(',')) {
    const [rawName, ...rest] = part.split('=');
    const directive = rawName.trim().toLowerCase();
    if (directive) directives.set(directive, rest.join('=').trim().replace(/^"|"$/g, ''));
  }
  if (directives.has('no-store') || directives.has('private')) return 0;
  for (const directive of ['s-maxage', 'max-age']) {
    const value = directives.get(directive);
    if (value !== undefined) return /^\d+$/.test(value) ? Math.min(Number(value), 365 * 24 * 3600) * 1000 : 0;
  }
  if (expires !== null) {
    const at = Date.parse(expires);
    const base = date !== null && Number.isFinite(Date.parse(date)) ? Date.parse(date) : now;
    return Number.isFinite(at) ? Math.max(0, at - base) : 0;
  }
  return DEFAULT_TTL_MS;
}
