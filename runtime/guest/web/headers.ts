/**
 * Headers (https://fetch.spec.whatwg.org/#headers-class). Names are stored lowercased; iteration
 * is "sort and combine": names in order, values of one name joined with ', ', except
 * `set-cookie`, whose values stay separate entries. There are no forbidden header names: this
 * is a server runtime, like Deno's and workerd's. Guards are `none` and `immutable` only.
 */
import {
  ArrayIsArray,
  ArrayPrototypePush,
  ArrayPrototypeSort,
  ArrayPrototypeSplice,
  ObjectDefineProperty,
  ReflectApply,
  SafeTypeError,
  StringPrototypeCharCodeAt,
  StringPrototypeIndexOf,
  StringPrototypeSlice,
  StringPrototypeToLowerCase,
  SymbolIterator,
} from '../primordials.ts';
import { isToken } from './http-grammar.ts';
import { INSPECT } from './inspect.ts';
import { iteratorFactory, listIterator } from './iterator.ts';
import { defineToStringTag, iteratorMethodOf, recordOf, sequenceOf, sequenceWith, toByteString } from './webidl.ts';
import { isHttpWhitespace, trim } from './whitespace.ts';

export type HeadersInit = Headers | Iterable<Iterable<string>> | Record<string, string>;
export type HeadersGuard = 'none' | 'immutable';
type Pair = [name: string, value: string];

interface Entry {
  readonly name: string;
  readonly value: string;
}

const makeIterator = iteratorFactory<unknown>('Headers Iterator');

// Internal access for Request, Response and the dispatcher: these never go through the public
// (patchable) prototype methods.
export let isHeaders: (value: unknown) => value is Headers;
let entriesOf: (headers: Headers) => readonly Entry[];
export let appendHeader: (headers: Headers, name: string, value: string) => void;
export let getHeader: (headers: Headers, name: string) => string | null;
export let setHeadersGuard: (headers: Headers, guard: HeadersGuard) => void;
/** A new Headers with the same entries (and guard), for clone(). */
export let copyHeaders: (headers: Headers) => Headers;
/** "Sort and combine" as fresh `[name, value]` pairs. */
export let sortedHeaderPairs: (headers: Headers) => Pair[];
/** Request headers from the host, `name\nvalue` pairs joined by `\n`; parsed when first read. */
export let headersFromHost: (joined: string) => Headers;
/**
 * Characters of every entry's name and value, plus 4 per entry (`: ` and CRLF): an upper bound
 * on the combined form, computed without sorting or copying anything.
 */
export let headerBytes: (headers: Headers) => number;

export class Headers {
  #list: Entry[] = [];
  /**
   * Request headers as the host sent them (`name\nvalue\n…`, names lowercased), parsed into
   * `#list` on first use: a handler that never reads its headers never pays for them.
   */
  #pending: string | null = null;
  #guard: HeadersGuard = 'none';
  /** Sorted-and-combined view, rebuilt lazily after each change. */
  #sorted: Pair[] | null = null;

  static {
    isHeaders = (value): value is Headers => typeof value === 'object' && value !== null && #list in value;
    entriesOf = (headers) => headers.#entries();
    appendHeader = (headers, name, value) => headers.#append(name, value);
    getHeader = (headers, name) => headers.#get(validName(name));
    setHeadersGuard = (headers, guard) => {
      headers.#guard = guard;
    };
    copyHeaders = (headers) => {
      const copy = new Headers();
      const list = headers.#entries();
      for (let i = 0; i < list.length; i++) ArrayPrototypePush(copy.#list, list[i]);
      copy.#guard = headers.#guard;
      return copy;
    };
    headerBytes = (headers) => {
      const list = headers.#entries();
      let total = 0;
      for (let i = 0; i < list.length; i++) total += list[i].name.length + list[i].value.length + 4;
      return total;
    };
    headersFromHost = (joined) => {
      const headers = new Headers();
      if (joined !== '') headers.#pending = joined;
      return headers;
    };
    sortedHeaderPairs = (headers) => {
      const pairs = headers.#sortedPairs();
      const copy: Pair[] = [];
      for (let i = 0; i < pairs.length; i++) copy[i] = [pairs[i][0], pairs[i][1]];
      return copy;
    };
  }

  constructor(init: HeadersInit | undefined = undefined) {
    if (init !== undefined) fillHeaders(this, init);
  }

  append(name: string, value: string): void {
    this.#append(name, value);
  }

  delete(name: string): void {
    const key = validName(name);
    this.#checkMutable();
    const list = this.#entries();
    for (let i = list.length - 1; i >= 0; i--) if (list[i].name === key) ArrayPrototypeSplice(list, i, 1);
    this.#sorted = null;
  }

  get(name: string): string | null {
    return this.#get(validName(name));
  }

  getSetCookie(): string[] {
    const list = this.#entries();
    const values: string[] = [];
    for (let i = 0; i < list.length; i++) if (list[i].name === 'set-cookie') ArrayPrototypePush(values, list[i].value);
    return values;
  }

  /** Workers' non-standard `getAll`, which it allows for Set-Cookie only (TypeError for any other name). */
  getAll(name: string): string[] {
    if (validName(name) !== 'set-cookie') throw new SafeTypeError('getAll() can only be used with the header name "Set-Cookie".');
    const list = this.#entries();
    const values: string[] = [];
    for (let i = 0; i < list.length; i++) if (list[i].name === 'set-cookie') ArrayPrototypePush(values, list[i].value);
    return values;
  }

  has(name: string): boolean {
    const key = validName(name);
    const list = this.#entries();
    for (let i = 0; i < list.length; i++) if (list[i].name === key) return true;
    return false;
  }

  /** Replaces the first entry named `name` in place and removes the others, as the spec says. */
  set(name: string, value: string): void {
    const entry = validate(name, value);
    this.#checkMutable();
    const list = this.#entries();
    let found = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i].name !== entry.name) continue;
      if (found) ArrayPrototypeSplice(list, i--, 1);
      else {
        list[i] = entry;
        found = true;
      }
    }
    if (!found) ArrayPrototypePush(list, entry);
    this.#sorted = null;
  }

  forEach(callback: (value: string, name: string, headers: Headers) => void, thisArg: unknown = undefined): void {
    if (typeof callback !== 'function') throw new SafeTypeError('Headers.forEach: callback is not a function');
    for (let i = 0; i < this.#sortedPairs().length; i++) {
      const pair = this.#sortedPairs()[i];
      ReflectApply(callback, thisArg, [pair[1], pair[0], this]);
    }
  }

  entries(): IterableIterator<Pair> {
    return this.#iterate((pair) => [pair[0], pair[1]]) as IterableIterator<Pair>;
  }

  keys(): IterableIterator<string> {
    return this.#iterate((pair) => pair[0]) as IterableIterator<string>;
  }

  values(): IterableIterator<string> {
    return this.#iterate((pair) => pair[1]) as IterableIterator<string>;
  }

  declare [Symbol.iterator]: () => IterableIterator<Pair>;

  [INSPECT](): object {
    const shown: Record<string, string> = {};
    const pairs = this.#sortedPairs();
    for (let i = 0; i < pairs.length; i++) shown[pairs[i][0]] = pairs[i][1];
    return shown;
  }

  #append(name: unknown, value: unknown): void {
    const entry = validate(name, value);
    this.#checkMutable();
    ArrayPrototypePush(this.#entries(), entry);
    this.#sorted = null;
  }

  #entries(): Entry[] {
    if (this.#pending !== null) this.#parsePending();
    return this.#list;
  }

  /** Each pair is validated as `append` would; one the grammar refuses is dropped (the host's parser let it through). */
  #parsePending(): void {
    const joined = this.#pending as string;
    this.#pending = null;
    const list = this.#list;
    for (let start = 0; start < joined.length; ) {
      const split = StringPrototypeIndexOf(joined, '\n', start);
      if (split < 0) break;
      let end = StringPrototypeIndexOf(joined, '\n', split + 1);
      if (end < 0) end = joined.length;
      try {
        ArrayPrototypePush(list, validate(StringPrototypeSlice(joined, start, split), StringPrototypeSlice(joined, split + 1, end)));
      } catch {
        // Not a header `Headers` can hold: the function never sees it, as fetch() drops such response headers.
      }
      start = end + 1;
    }
  }

  #get(key: string): string | null {
    const list = this.#entries();
    let combined: string | null = null;
    for (let i = 0; i < list.length; i++) {
      if (list[i].name === key) combined = combined === null ? list[i].value : `${combined}, ${list[i].value}`;
    }
    return combined;
  }

  #iterate(pick: (pair: Pair) => unknown): IterableIterator<unknown> {
    return listIterator(
      makeIterator,
      () => this.#sortedPairs().length,
      (index) => pick(this.#sortedPairs()[index]),
    );
  }

  #checkMutable(): void {
    if (this.#guard === 'immutable') throw new SafeTypeError('Headers are immutable');
  }

  #sortedPairs(): Pair[] {
    if (this.#sorted !== null) return this.#sorted;
    const list = this.#entries();
    const names: string[] = [];
    for (let i = 0; i < list.length; i++) ArrayPrototypePush(names, list[i].name);
    ArrayPrototypeSort(names, compareNames);
    const pairs: Pair[] = [];
    for (let i = 0; i < names.length; i++) {
      const name = names[i];
      if (i > 0 && names[i - 1] === name) continue;
      if (name !== 'set-cookie') ArrayPrototypePush(pairs, [name, this.#get(name) as string]);
      else for (let j = 0; j < list.length; j++) if (list[j].name === name) ArrayPrototypePush(pairs, [name, list[j].value]);
    }
    this.#sorted = pairs;
    return pairs;
  }
}
defineToStringTag(Headers.prototype, 'Headers');
const HeadersEntries = Headers.prototype.entries;
ObjectDefineProperty(Headers.prototype, SymbolIterator, {
  value: Headers.prototype.entries,
  writable: true,
  enumerable: false,
  configurable: true,
});

/** The spec's "fill": `init` is a Headers, a sequence of [name, value] pairs, or a record. */
export function fillHeaders(headers: Headers, init: unknown): void {
  if ((typeof init !== 'object' && typeof init !== 'function') || init === null) {
    throw new SafeTypeError('Headers init must be a Headers, a sequence of [name, value] pairs or a record');
  }
  const method = iteratorMethodOf(init);
  if (method === HeadersEntries && isHeaders(init)) {
    // A Headers whose iteration nobody patched: its entries, without running its iterator.
    const pairs = entriesOf(init);
    for (let i = 0; i < pairs.length; i++) appendHeader(headers, pairs[i].name, pairs[i].value);
    return;
  }
  if (method !== undefined) {
    const pairs = sequenceWith(init, method);
    for (let i = 0; i < pairs.length; i++) {
      const pair = sequenceOf(pairs[i], 'Headers init pair');
      if (pair.length !== 2) throw new SafeTypeError('Headers init: each header must be a [name, value] pair');
      appendHeader(headers, pair[0] as string, pair[1] as string);
    }
    return;
  }
  const record = recordOf(init as object, toByteString, toByteString);
  for (let i = 0; i < record.keys.length; i++) appendHeader(headers, record.keys[i], record.values[i]);
}

function validate(name: unknown, value: unknown): Entry {
  const key = validName(name);
  const normalized = trim(toByteString(value), isHttpWhitespace);
  for (let i = 0; i < normalized.length; i++) {
    const unit = StringPrototypeCharCodeAt(normalized, i);
    if (unit === 0x00 || unit === 0x0a || unit === 0x0d) throw new SafeTypeError(`Invalid value for header "${key}"`);
  }
  return { name: key, value: normalized };
}

/** Lowercased `name`, or TypeError unless it is an RFC 9110 token. */
function validName(name: unknown): string {
  const input = toByteString(name);
  if (!isToken(input)) throw new SafeTypeError(`Invalid header name "${input}"`);
  return StringPrototypeToLowerCase(input);
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
