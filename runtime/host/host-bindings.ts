/**
 * Host-side implementations of the guest's HostRefs. Every argument comes from hostile code:
 * each binding checks types and bounds before touching anything, and returns plain data.
 */
import { randomBytes as cryptoRandomBytes } from 'node:crypto';
import type { UrlParts } from '../guest/host-refs.ts';
import { MAX_LOG_LINE_BYTES } from '../limits.ts';

const LOG_LEVELS = new Set(['log', 'info', 'warn', 'error', 'debug']);
const URL_SETTERS = new Set(['href', 'protocol', 'username', 'password', 'host', 'hostname', 'port', 'pathname', 'search', 'hash']);
const MAX_RANDOM_BYTES = 65536;
const MAX_URL_CHARS = 64 * 1024;

export type LogLevel = 'log' | 'info' | 'warn' | 'error' | 'debug';

export interface BindingSink {
  log(level: LogLevel, line: string): void;
  setTimer(id: number, delayMs: number): void;
  clearTimer(id: number): void;
}

export function log(sink: BindingSink, level: unknown, line: unknown): void {
  if (typeof level !== 'string' || !LOG_LEVELS.has(level) || typeof line !== 'string') return;
  sink.log(level as LogLevel, line.length > MAX_LOG_LINE_BYTES ? `${line.slice(0, MAX_LOG_LINE_BYTES)}…` : line);
}

export function randomBytes(byteLength: unknown): Uint8Array {
  if (!Number.isInteger(byteLength) || (byteLength as number) < 0 || (byteLength as number) > MAX_RANDOM_BYTES) {
    throw new RangeError(`randomBytes length must be an integer in [0, ${MAX_RANDOM_BYTES}]`);
  }
  return new Uint8Array(cryptoRandomBytes(byteLength as number));
}

function parts(url: URL): UrlParts {
  const { href, origin, protocol, username, password, host, hostname, port, pathname, search, hash } = url;
  return { href, origin, protocol, username, password, host, hostname, port, pathname, search, hash };
}

function boundedString(value: unknown): string | undefined {
  return typeof value === 'string' && value.length <= MAX_URL_CHARS ? value : undefined;
}

export function urlParse(input: unknown, base: unknown): UrlParts | null {
  const href = boundedString(input);
  const baseHref = base === undefined || base === null ? undefined : boundedString(base);
  if (href === undefined || (base !== undefined && base !== null && baseHref === undefined)) return null;
  const url = URL.parse(href, baseHref);
  return url === null ? null : parts(url);
}

export function urlSet(href: unknown, component: unknown, value: unknown): UrlParts {
  const current = boundedString(href);
  const next = boundedString(value);
  if (current === undefined || next === undefined || typeof component !== 'string' || !URL_SETTERS.has(component)) {
    throw new TypeError('invalid URL setter call');
  }
  const url = new URL(current);
  (url as unknown as Record<string, string>)[component] = next;
  return parts(url);
}

export function setTimer(sink: BindingSink, id: unknown, delayMs: unknown): void {
  if (!Number.isSafeInteger(id) || typeof delayMs !== 'number' || !(delayMs >= 0)) return;
  sink.setTimer(id as number, delayMs);
}

export function clearTimer(sink: BindingSink, id: unknown): void {
  if (Number.isSafeInteger(id)) sink.clearTimer(id as number);
}
