/**
 * URL (https://url.spec.whatwg.org/#url-class), parsed and mutated by the host's WHATWG URL
 * implementation through `host.urlParse` / `host.urlSet`: one boundary crossing per parse or
 * setter, in exchange for exact spec behaviour (IDNA, IPv6, percent-encode sets) without
 * shipping a parser into every isolate. Inputs longer than the host's bound are invalid URLs.
 */
import type { HostReference, HostRefs, UrlParts } from '../host-refs.ts';
import { SafeTypeError, StringPrototypeSlice } from '../primordials.ts';
import { INSPECT } from './inspect.ts';
import { createLinkedParams, resetParams, type URLSearchParams } from './url-search-params.ts';
import { defineToStringTag, requireArguments, toUSVString } from './webidl.ts';

type Component = Exclude<keyof UrlParts, 'origin'>;

let hostParse: HostReference | null = null;
let hostSet: HostReference | null = null;

/** Called once by installWebApis, before anything parses a URL. */
export function bindUrlHost(host: HostRefs): void {
  hostParse = host.urlParse;
  hostSet = host.urlSet;
}

/** The parts of `input` resolved against `base`, or null if it is not a valid URL. */
export function parseUrl(input: string, base: string | undefined = undefined): UrlParts | null {
  if (hostParse === null) throw new SafeTypeError('URL parsing is not available before installWebApis()');
  return hostParse.applySync(undefined, [input, base], { result: { copy: true } }) as UrlParts | null;
}

function setComponent(href: string, component: Component, value: string): UrlParts {
  if (hostSet === null) throw new SafeTypeError('URL parsing is not available before installWebApis()');
  return hostSet.applySync(undefined, [href, component, value], { result: { copy: true } }) as UrlParts;
}

export class URL {
  #parts: UrlParts;
  readonly #searchParams: URLSearchParams;

  constructor(url: string, base: string | undefined = undefined) {
    requireArguments(arguments.length, 1, 'URL');
    const parts = parseUrl(toUSVString(url), base === undefined ? undefined : toUSVString(base));
    if (parts === null) throw new SafeTypeError(`Invalid URL: ${toUSVString(url)}`);
    this.#parts = parts;
    this.#searchParams = createLinkedParams(queryOf(parts), (serialized) => {
      this.#parts = setComponent(this.#parts.href, 'search', serialized);
    });
  }

  static canParse(url: string, base: string | undefined = undefined): boolean {
    requireArguments(arguments.length, 1, 'URL.canParse');
    return parseUrl(toUSVString(url), base === undefined ? undefined : toUSVString(base)) !== null;
  }

  static parse(url: string, base: string | undefined = undefined): URL | null {
    requireArguments(arguments.length, 1, 'URL.parse');
    const parts = parseUrl(toUSVString(url), base === undefined ? undefined : toUSVString(base));
    return parts === null ? null : new URL(parts.href);
  }

  get href(): string {
    return this.#parts.href;
  }

  /** Unlike the other setters, an invalid href throws instead of being ignored. */
  set href(value: string) {
    const parts = parseUrl(toUSVString(value));
    if (parts === null) throw new SafeTypeError(`Invalid URL: ${toUSVString(value)}`);
    this.#parts = parts;
    resetParams(this.#searchParams, queryOf(parts));
  }

  get origin(): string {
    return this.#parts.origin;
  }

  get protocol(): string {
    return this.#parts.protocol;
  }

  set protocol(value: string) {
    this.#set('protocol', value);
  }

  get username(): string {
    return this.#parts.username;
  }

  set username(value: string) {
    this.#set('username', value);
  }

  get password(): string {
    return this.#parts.password;
  }

  set password(value: string) {
    this.#set('password', value);
  }

  get host(): string {
    return this.#parts.host;
  }

  set host(value: string) {
    this.#set('host', value);
  }

  get hostname(): string {
    return this.#parts.hostname;
  }

  set hostname(value: string) {
    this.#set('hostname', value);
  }

  get port(): string {
    return this.#parts.port;
  }

  set port(value: string) {
    this.#set('port', value);
  }

  get pathname(): string {
    return this.#parts.pathname;
  }

  set pathname(value: string) {
    this.#set('pathname', value);
  }

  get search(): string {
    return this.#parts.search;
  }

  set search(value: string) {
    this.#set('search', value);
    resetParams(this.#searchParams, queryOf(this.#parts));
  }

  get searchParams(): URLSearchParams {
    return this.#searchParams;
  }

  get hash(): string {
    return this.#parts.hash;
  }

  set hash(value: string) {
    this.#set('hash', value);
  }

  toString(): string {
    return this.#parts.href;
  }

  toJSON(): string {
    return this.#parts.href;
  }

  [INSPECT](): object {
    const parts = this.#parts;
    return {
      href: parts.href,
      origin: parts.origin,
      protocol: parts.protocol,
      username: parts.username,
      password: parts.password,
      host: parts.host,
      hostname: parts.hostname,
      port: parts.port,
      pathname: parts.pathname,
      search: parts.search,
      hash: parts.hash,
    };
  }

  #set(component: Component, value: unknown): void {
    this.#parts = setComponent(this.#parts.href, component, toUSVString(value));
  }
}
defineToStringTag(URL.prototype, 'URL');

/** The query without its '?' ('' when there is none). */
function queryOf(parts: UrlParts): string {
  return parts.search === '' ? '' : StringPrototypeSlice(parts.search, 1);
}
