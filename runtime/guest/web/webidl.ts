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

/**
 * The items of a WebIDL sequence: arrays are read by index (a patched
 * `Array.prototype[Symbol.iterator]` is not consulted), other iterables through their iterator.
 * Throws TypeError, naming `what`, when `value` is not iterable.
 */
export function sequenceOf(value: unknown, what: string): unknown[] {
  if (ArrayIsArray(value)) {
    const items: unknown[] = [];
    for (let i = 0; i < value.length; i++) items[i] = value[i];
    return items;
  }
  const method = typeof value === 'object' && value !== null ? (value as Iterable<unknown>)[SymbolIterator] : undefined;
  if (typeof method !== 'function') throw new SafeTypeError(`${what} must be a sequence`);
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

/** A WebIDL record<K, V>: own enumerable keys in [[OwnPropertyKeys]] order, with their values. */
export function recordOf(value: object): { keys: PropertyKey[]; values: unknown[] } {
  const ownKeys = ReflectOwnKeys(value);
  const keys: PropertyKey[] = [];
  const values: unknown[] = [];
  for (let i = 0; i < ownKeys.length; i++) {
    const descriptor = ObjectGetOwnPropertyDescriptor(value, ownKeys[i]);
    if (descriptor === undefined || !descriptor.enumerable) continue;
    keys[keys.length] = ownKeys[i];
    values[values.length] = (value as Record<PropertyKey, unknown>)[ownKeys[i]];
  }
  return { keys, values };
}
