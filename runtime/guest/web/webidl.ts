/**
 * The few WebIDL conversions the Web APIs need (https://webidl.spec.whatwg.org/#es-type-mapping),
 * written against captured built-ins only.
 */
import {
  ArrayIsArray,
  MathTrunc,
  NumberCtor,
  NumberIsFinite,
  ObjectDefineProperty,
  ObjectGetOwnPropertyDescriptor,
  ReflectApply,
  ReflectOwnKeys,
  SafeTypeError,
  StringPrototypeCharCodeAt,
  StringPrototypeSlice,
  SymbolIterator,
  SymbolToStringTag,
} from '../primordials.ts';

/** DOMString: ECMAScript ToString (throws TypeError for symbols, unlike `String(x)`). */
export function toDOMString(value: unknown): string {
  return typeof value === 'string' ? value : `${value as string}`;
}

/** USVString: ToString, then every lone surrogate becomes U+FFFD. */
export function toUSVString(value: unknown): string {
  const input = toDOMString(value);
  const length = input.length;
  let out = '';
  let start = 0;
  for (let i = 0; i < length; i++) {
    const unit = StringPrototypeCharCodeAt(input, i);
    if (unit < 0xd800 || unit > 0xdfff) continue;
    if (unit <= 0xdbff && i + 1 < length) {
      const next = StringPrototypeCharCodeAt(input, i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) {
        i++;
        continue;
      }
    }
    out += StringPrototypeSlice(input, start, i) + '\ufffd';
    start = i + 1;
  }
  return start === 0 ? input : out + StringPrototypeSlice(input, start, length);
}

/** ByteString: ToString, then TypeError if any code unit is above 0xFF. */
export function toByteString(value: unknown): string {
  const input = toDOMString(value);
  for (let i = 0; i < input.length; i++) {
    if (StringPrototypeCharCodeAt(input, i) > 0xff) throw new SafeTypeError(`Cannot convert "${input}" to a ByteString`);
  }
  return input;
}

/** unsigned short: ToNumber, truncate, modulo 2^16 (NaN and ±Infinity become 0). */
export function toUnsignedShort(value: unknown): number {
  const number = MathTrunc(NumberCtor(value));
  if (!NumberIsFinite(number)) return 0;
  const modulo = number % 65536;
  return modulo < 0 ? modulo + 65536 : modulo;
}

/** Throws the TypeError browsers throw when a required argument is missing. */
export function requireArguments(given: number, required: number, where: string): void {
  if (given < required) {
    throw new SafeTypeError(`${where}: ${required} argument${required === 1 ? '' : 's'} required, but only ${given} present`);
  }
}

/** Sets `Symbol.toStringTag` the way WebIDL does: non-writable, non-enumerable, configurable. */
export function defineToStringTag(prototype: object, tag: string): void {
  ObjectDefineProperty(prototype, SymbolToStringTag, { value: tag, writable: false, enumerable: false, configurable: true });
}

const ArrayValues = Array.prototype[Symbol.iterator];
const ArrayIteratorPrototype = Object.getPrototypeOf([][Symbol.iterator]()) as object;
const ArrayIteratorNext = (ArrayIteratorPrototype as { next: unknown }).next;

/** Whether iterating `value` with `method` is the same as reading it by index (nothing patched). */
function readsByIndex(value: unknown, method: unknown): value is unknown[] {
  if (!ArrayIsArray(value) || method !== ArrayValues) return false;
  const next = ObjectGetOwnPropertyDescriptor(ArrayIteratorPrototype, 'next');
  return next !== undefined && next.value === ArrayIteratorNext;
}

/** GetMethod(value, @@iterator): undefined when absent, TypeError when not callable. */
export function iteratorMethodOf(value: unknown): unknown {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return undefined;
  const method = (value as Iterable<unknown>)[SymbolIterator];
  if (method === undefined || method === null) return undefined;
  if (typeof method !== 'function') throw new SafeTypeError('Symbol.iterator is not a function');
  return method;
}

/**
 * The items of a WebIDL sequence, through the value's own iterator (custom iterators are
 * honoured, as WebIDL requires); an array whose iteration nobody patched is read by index, which
 * is the same thing, faster. Throws TypeError, naming `what`, when `value` is not iterable.
 */
export function sequenceOf(value: unknown, what: string): unknown[] {
  const method = iteratorMethodOf(value);
  if (method === undefined) throw new SafeTypeError(`${what} must be a sequence`);
  return sequenceWith(value, method);
}

/** `sequenceOf` with the @@iterator method already read (read it once: it may be a getter). */
export function sequenceWith(value: unknown, method: unknown): unknown[] {
  if (readsByIndex(value, method)) {
    const items: unknown[] = [];
    for (let i = 0; i < value.length; i++) items[i] = value[i];
    return items;
  }
  return iterateWith(value, method);
}

/** Items yielded by `ReflectApply(method, value, [])`, read with the iterator's own `next`. */
function iterateWith(value: unknown, method: unknown): unknown[] {
  const iterator = ReflectApply(method as () => Iterator<unknown>, value, []);
  if (typeof iterator !== 'object' || iterator === null) {
    throw new SafeTypeError('Result of the Symbol.iterator method is not an object');
  }
  const next = iterator.next;
  const items: unknown[] = [];
  for (;;) {
    const result = ReflectApply(next, iterator, []) as IteratorResult<unknown>;
    if (typeof result !== 'object' || result === null) throw new SafeTypeError('Iterator result is not an object');
    if (result.done) return items;
    items[items.length] = result.value;
  }
}

/**
 * A WebIDL record<K, V>: for each own key in [[OwnPropertyKeys]] order, its descriptor, then (if
 * enumerable) the key converted, the value read and converted, before the next key — the spec's
 * order, observable through proxies and conversions that throw.
 */
export function recordOf<K, V>(value: object, convertKey: (key: PropertyKey) => K, convertValue: (value: unknown) => V): { keys: K[]; values: V[] } {
  const ownKeys = ReflectOwnKeys(value);
  const keys: K[] = [];
  const values: V[] = [];
  for (let i = 0; i < ownKeys.length; i++) {
    const descriptor = ObjectGetOwnPropertyDescriptor(value, ownKeys[i]);
    if (descriptor === undefined || !descriptor.enumerable) continue;
    const key = convertKey(ownKeys[i]);
    const item = convertValue((value as Record<PropertyKey, unknown>)[ownKeys[i]]);
    keys[keys.length] = key;
    values[values.length] = item;
  }
  return { keys, values };
}

/**
 * WebIDL operations and attributes are enumerable; class syntax makes methods non-enumerable.
 * Makes every own string-keyed member of `prototype` (but `constructor`) and every static
 * member of its constructor (but length, name, prototype) enumerable.
 */
export function makeMembersEnumerable(constructor: Function): void {
  const targets: [object, string[]][] = [
    [constructor.prototype as object, ['constructor']],
    [constructor, ['length', 'name', 'prototype']],
  ];
  for (let t = 0; t < targets.length; t++) {
    const [target, skip] = targets[t];
    const keys = ReflectOwnKeys(target);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      if (typeof key !== 'string' || skip.indexOf(key) >= 0) continue;
      const descriptor = ObjectGetOwnPropertyDescriptor(target, key)!;
      if (descriptor.enumerable || !descriptor.configurable) continue;
      descriptor.enumerable = true;
      ObjectDefineProperty(target, key, descriptor);
    }
  }
}
