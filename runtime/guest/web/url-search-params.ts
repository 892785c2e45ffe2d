/**
 * URLSearchParams (https://url.spec.whatwg.org/#interface-urlsearchparams), pure JS. A URL's
 * `searchParams` is linked to it: every mutation here re-serializes into the URL's query.
 */
import {
  ArrayPrototypePush,
  ArrayPrototypeSort,
  ArrayPrototypeSplice,
  ObjectDefineProperty,
  ReflectApply,
  SafeTypeError,
  StringPrototypeCharCodeAt,
  StringPrototypeSlice,
  SymbolIterator,
} from '../primordials.ts';
import { parseUrlencoded, serializeUrlencoded, type Pair } from './form-urlencoded.ts';
import { INSPECT } from './inspect.ts';
import { iteratorFactory, listIterator } from './iterator.ts';
import { defineToStringTag, iteratorMethodOf, recordOf, requireArguments, sequenceOf, sequenceWith, toUSVString } from './webidl.ts';

const makeIterator = iteratorFactory<unknown>('URLSearchParams Iterator');

export let isURLSearchParams: (value: unknown) => value is URLSearchParams;
export let serializeParams: (params: URLSearchParams) => string;
/** A URLSearchParams whose mutations call `onUpdate(serializedQuery)`: a URL's `searchParams`. */
export let createLinkedParams: (query: string, onUpdate: (serialized: string) => void) => URLSearchParams;
/** Replaces the list from a query string, without calling the update hook (the URL changed). */
export let resetParams: (params: URLSearchParams, query: string) => void;

export class URLSearchParams {
  #list: Pair[] = [];
  #onUpdate: ((serialized: string) => void) | null = null;

  static {
    isURLSearchParams = (value): value is URLSearchParams => typeof value === 'object' && value !== null && #list in value;
    serializeParams = (params) => serializeUrlencoded(params.#list);
    createLinkedParams = (query, onUpdate) => {
      const params = new URLSearchParams();
      params.#list = parseUrlencoded(query);
      params.#onUpdate = onUpdate;
      return params;
    };
    resetParams = (params, query) => {
      params.#list = parseUrlencoded(query);
    };
  }

  constructor(init: unknown = '') {
    if (isURLSearchParams(init)) {
      const list = init.#list;
      for (let i = 0; i < list.length; i++) ArrayPrototypePush(this.#list, [list[i][0], list[i][1]]);
    } else if ((typeof init === 'object' && init !== null) || typeof init === 'function') {
      const method = iteratorMethodOf(init);
      if (method !== undefined) {
        const pairs = sequenceWith(init, method);
        for (let i = 0; i < pairs.length; i++) {
          const pair = sequenceOf(pairs[i], 'URLSearchParams init pair');
          if (pair.length !== 2) throw new SafeTypeError('URLSearchParams init: each pair must have exactly two items');
          ArrayPrototypePush(this.#list, [toUSVString(pair[0]), toUSVString(pair[1])]);
        }
      } else {
        const record = recordOf(init as object, toUSVString, toUSVString);
        for (let i = 0; i < record.keys.length; i++) ArrayPrototypePush(this.#list, [record.keys[i], record.values[i]]);
      }
    } else {
      const query = toUSVString(init);
      this.#list = parseUrlencoded(StringPrototypeCharCodeAt(query, 0) === 0x3f ? StringPrototypeSlice(query, 1) : query);
    }
  }

  get size(): number {
    return this.#list.length;
  }

  append(name: string, value: string): void {
    requireArguments(arguments.length, 2, 'URLSearchParams.append');
    ArrayPrototypePush(this.#list, [toUSVString(name), toUSVString(value)]);
    this.#update();
  }

  /** Removes every pair named `name`, or only those whose value is also `value` when given. */
  delete(name: string, value: string | undefined = undefined): void {
    requireArguments(arguments.length, 1, 'URLSearchParams.delete');
    const key = toUSVString(name);
    const only = value === undefined ? undefined : toUSVString(value);
    const list = this.#list;
    for (let i = list.length - 1; i >= 0; i--) {
      if (list[i][0] === key && (only === undefined || list[i][1] === only)) ArrayPrototypeSplice(list, i, 1);
    }
    this.#update();
  }

  get(name: string): string | null {
    requireArguments(arguments.length, 1, 'URLSearchParams.get');
    const key = toUSVString(name);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) if (list[i][0] === key) return list[i][1];
    return null;
  }

  getAll(name: string): string[] {
    requireArguments(arguments.length, 1, 'URLSearchParams.getAll');
    const key = toUSVString(name);
    const list = this.#list;
    const values: string[] = [];
    for (let i = 0; i < list.length; i++) if (list[i][0] === key) ArrayPrototypePush(values, list[i][1]);
    return values;
  }

  has(name: string, value: string | undefined = undefined): boolean {
    requireArguments(arguments.length, 1, 'URLSearchParams.has');
    const key = toUSVString(name);
    const only = value === undefined ? undefined : toUSVString(value);
    const list = this.#list;
    for (let i = 0; i < list.length; i++) if (list[i][0] === key && (only === undefined || list[i][1] === only)) return true;
    return false;
  }

  /** Sets the first pair named `name` and removes the others, keeping its position. */
  set(name: string, value: string): void {
    requireArguments(arguments.length, 2, 'URLSearchParams.set');
    const key = toUSVString(name);
    const text = toUSVString(value);
    const list = this.#list;
    let found = false;
    for (let i = 0; i < list.length; i++) {
      if (list[i][0] !== key) continue;
      if (found) ArrayPrototypeSplice(list, i--, 1);
      else {
        list[i] = [key, text];
        found = true;
      }
    }
    if (!found) ArrayPrototypePush(list, [key, text]);
    this.#update();
  }

  /** Stable sort by name, comparing UTF-16 code units as the spec says. */
  sort(): void {
    ArrayPrototypeSort(this.#list, (a: Pair, b: Pair) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    this.#update();
  }

  toString(): string {
    return serializeUrlencoded(this.#list);
  }

  forEach(callback: (value: string, name: string, params: URLSearchParams) => void, thisArg: unknown = undefined): void {
    if (typeof callback !== 'function') throw new SafeTypeError('URLSearchParams.forEach: callback is not a function');
    for (let i = 0; i < this.#list.length; i++) ReflectApply(callback, thisArg, [this.#list[i][1], this.#list[i][0], this]);
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
    for (let i = 0; i < this.#list.length; i++) shown[this.#list[i][0]] = this.#list[i][1];
    return shown;
  }

  #iterate(pick: (pair: Pair) => unknown): IterableIterator<unknown> {
    return listIterator(
      makeIterator,
      () => this.#list.length,
      (index) => pick(this.#list[index]),
    );
  }

  /** The spec's "update steps": push the new query into the linked URL, if any. */
  #update(): void {
    if (this.#onUpdate !== null) this.#onUpdate(serializeUrlencoded(this.#list));
  }
}
defineToStringTag(URLSearchParams.prototype, 'URLSearchParams');
ObjectDefineProperty(URLSearchParams.prototype, SymbolIterator, {
  value: URLSearchParams.prototype.entries,
  writable: true,
  enumerable: false,
  configurable: true,
});
