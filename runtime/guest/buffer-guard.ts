/**
 * ArrayBuffer and SharedArrayBuffer as functions see them.
 *
 *   fixed-length buffers        passed to V8 untouched: isolated-vm's allocator counts them
 *                               against the heap limit (and refuses past it).
 *   resizable ArrayBuffer       charged at its maxByteLength (memory-budget.ts): V8 reserves all of
 *   (`maxByteLength`)           it up front, outside the allocator, and `resize` works within it.
 *                               `transfer` moves the charge along with the memory.
 *   growable SharedArrayBuffer  refused: a function has one thread to share it with, and clones
 *                               (structuredClone) share its memory from objects we cannot follow.
 *
 * The wrappers replace the globals and every `prototype.constructor`, so `buffer.constructor`,
 * species lookups (`slice`), `Reflect.construct` and subclasses all reach them; the originals
 * stay in primordials.ts.
 */
import { BUFFER_PAGE_BYTES, need, type Charge, type MemoryBudget } from './memory-budget.ts';
import {
  ArrayBufferPrototypeTransfer, ArrayBufferPrototypeTransferToFixedLength, MathTrunc, ObjectDefineProperty, ObjectGetOwnPropertyDescriptor,
  ReflectConstruct, ReflectOwnKeys, SafeArrayBuffer, SafeRangeError, SafeSharedArrayBuffer, SafeTypeError, SafeWeakMap, WeakMapPrototypeGet,
  WeakMapPrototypeSet,
} from './primordials.ts';

const MAX_SAFE_INTEGER = 2 ** 53 - 1;

/** ECMA-262 ToIndex. */
function toIndex(value: unknown, what: string): number {
  if (value === undefined) return 0;
  const n = +(value as number);
  const integer = n !== n ? 0 : MathTrunc(n);
  if (!(integer >= 0 && integer <= MAX_SAFE_INTEGER)) throw new SafeRangeError(`${what}: Invalid array buffer length`);
  return integer + 0; // -0 → 0
}

/** `options.maxByteLength` read once, as ToIndex, or undefined when there is none. */
function maxByteLengthOf(options: unknown, what: string): number | undefined {
  if ((typeof options !== 'object' || options === null) && typeof options !== 'function') return undefined;
  const max = (options as { maxByteLength?: unknown }).maxByteLength;
  return max === undefined ? undefined : toIndex(max, what);
}

/** Copies the original's statics (isView, Symbol.species) and shape onto `wrapper`. */
function dress(wrapper: Function, original: Function, name: string): void {
  const keys = ReflectOwnKeys(original);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i];
    if (key === 'prototype' || key === 'length' || key === 'name' || key === 'arguments' || key === 'caller') continue;
    ObjectDefineProperty(wrapper, key, ObjectGetOwnPropertyDescriptor(original, key)!);
  }
  ObjectDefineProperty(wrapper, 'name', { value: name, writable: false, enumerable: false, configurable: true });
  ObjectDefineProperty(wrapper, 'length', { value: 1, writable: false, enumerable: false, configurable: true });
  ObjectDefineProperty(wrapper, 'prototype', { value: original.prototype, writable: false, enumerable: false, configurable: false });
  ObjectDefineProperty(original.prototype, 'constructor', { value: wrapper, writable: true, enumerable: false, configurable: true });
}

function defineGlobal(global: typeof globalThis, name: string, value: unknown): void {
  ObjectDefineProperty(global, name, { value, writable: true, enumerable: false, configurable: true });
}

export function installBufferGuard(global: typeof globalThis, budget: MemoryBudget): void {
  /** Resizable buffers (and what they were transferred to) → their charge. */
  const charges = new SafeWeakMap<object, Charge>();

  function ArrayBuffer(length: unknown, options?: unknown): ArrayBuffer {
    const what = 'ArrayBuffer';
    if (new.target === undefined) throw new SafeTypeError("Constructor ArrayBuffer requires 'new'");
    const byteLength = toIndex(length, what);
    const maxByteLength = maxByteLengthOf(options, what);
    if (maxByteLength === undefined) return ReflectConstruct(SafeArrayBuffer, [byteLength], new.target);
    if (byteLength > maxByteLength) throw new SafeRangeError('Invalid array buffer max length');
    const pages = maxByteLength === 0 ? 0 : MathTrunc((maxByteLength + BUFFER_PAGE_BYTES - 1) / BUFFER_PAGE_BYTES);
    const charge = budget.reserve(need(pages * BUFFER_PAGE_BYTES, 0, 0, 1), 'new ArrayBuffer(…, { maxByteLength })');
    let buffer: ArrayBuffer;
    try {
      buffer = ReflectConstruct(SafeArrayBuffer, [byteLength, { maxByteLength }], new.target);
    } catch (thrown) {
      budget.release(charge);
      throw thrown;
    }
    WeakMapPrototypeSet(charges, buffer, charge);
    budget.hold(charge, buffer, true);
    return buffer;
  }

  /** The memory of a transferred resizable buffer now lives in `result`: so does its charge. */
  function follow(source: unknown, result: ArrayBuffer): ArrayBuffer {
    const charge = typeof source === 'object' && source !== null ? WeakMapPrototypeGet(charges, source) : undefined;
    if (charge !== undefined) {
      WeakMapPrototypeSet(charges, result, charge);
      budget.hold(charge, result, true);
    }
    return result;
  }

  const prototype = SafeArrayBuffer.prototype;
  const methods = {
    transfer(this: ArrayBuffer, newLength?: number): ArrayBuffer {
      return follow(this, arguments.length === 0 ? ArrayBufferPrototypeTransfer(this) : ArrayBufferPrototypeTransfer(this, newLength));
    },
    transferToFixedLength(this: ArrayBuffer, newLength?: number): ArrayBuffer {
      return follow(this, arguments.length === 0 ? ArrayBufferPrototypeTransferToFixedLength(this) : ArrayBufferPrototypeTransferToFixedLength(this, newLength));
    },
  };
  for (const name of ['transfer', 'transferToFixedLength'] as const) {
    ObjectDefineProperty(methods[name], 'length', { value: 0, writable: false, enumerable: false, configurable: true });
    ObjectDefineProperty(prototype, name, { value: methods[name], writable: true, enumerable: false, configurable: true });
  }
  dress(ArrayBuffer, SafeArrayBuffer, 'ArrayBuffer');
  defineGlobal(global, 'ArrayBuffer', ArrayBuffer);

  const OriginalShared = SafeSharedArrayBuffer;
  if (OriginalShared === undefined) return;
  function SharedArrayBuffer(length: unknown, options?: unknown): SharedArrayBuffer {
    const what = 'SharedArrayBuffer';
    if (new.target === undefined) throw new SafeTypeError("Constructor SharedArrayBuffer requires 'new'");
    const byteLength = toIndex(length, what);
    if (maxByteLengthOf(options, what) !== undefined) {
      throw new SafeRangeError('SharedArrayBuffer: growable SharedArrayBuffers (maxByteLength) are not available in functions');
    }
    return ReflectConstruct(OriginalShared!, [byteLength], new.target);
  }
  dress(SharedArrayBuffer, OriginalShared, 'SharedArrayBuffer');
  defineGlobal(global, 'SharedArrayBuffer', SharedArrayBuffer);
}
