/**
 * structuredClone (https://html.spec.whatwg.org/multipage/structured-data.html#dom-structuredclone):
 * the value is copied to the host and back with V8's serializer, which is the structured clone
 * algorithm for JS values. Whatever it rejects (functions, symbols) is reported as a
 * DataCloneError, whichever side of the boundary refused it. Platform objects (URL, Headers,
 * Request, streams, Blob, CryptoKey, …) are refused with a DataCloneError too: the serializer
 * would copy them as empty plain objects. The value's data properties, array items and Map/Set
 * contents are walked for them (a getter is not called by this walk: what it returns during
 * serialization is not checked). `transfer` takes ArrayBuffers: the clone gets their bytes and
 * the originals are detached; any other transferable is a DataCloneError.
 */
import type { HostRefs } from '../host-refs.ts';
import {
  ArrayBufferPrototypeGetDetached,
  ArrayBufferPrototypeTransfer,
  MapPrototypeForEach,
  ObjectGetOwnPropertyDescriptor,
  ReflectGetPrototypeOf,
  ReflectOwnKeys,
  SafeMap,
  SafeSet,
  SetPrototypeAdd,
  SetPrototypeForEach,
  SetPrototypeHas,
} from '../primordials.ts';
import { createDomError } from './dom-error.ts';
import { requireArguments, sequenceOf } from './webidl.ts';

const platformPrototypes = new SafeSet<object>();

/** Registers the prototypes whose instances cannot be cloned (called at install with every Web class). */
export function registerPlatformPrototype(prototype: object): void {
  SetPrototypeAdd(platformPrototypes, prototype);
}

const MapPrototype = SafeMap.prototype;
const SetPrototype = SafeSet.prototype;

function isPlatformObject(value: object): boolean {
  let proto = ReflectGetPrototypeOf(value);
  for (let depth = 0; proto !== null && depth < 64; depth++) {
    if (SetPrototypeHas(platformPrototypes, proto)) return true;
    proto = ReflectGetPrototypeOf(proto);
  }
  return false;
}

/** The first platform object reachable from `value` through data properties, arrays, Maps and Sets. */
function findPlatformObject(value: unknown): object | null {
  if (typeof value !== 'object' || value === null) return null;
  const seen = new SafeSet<object>();
  const stack: object[] = [value];
  while (stack.length > 0) {
    const current = stack[stack.length - 1];
    stack.length--;
    if (SetPrototypeHas(seen, current)) continue;
    SetPrototypeAdd(seen, current);
    if (isPlatformObject(current)) return current;
    const push = (item: unknown) => {
      if (typeof item === 'object' && item !== null && !SetPrototypeHas(seen, item)) stack[stack.length] = item;
    };
    const proto = ReflectGetPrototypeOf(current);
    if (proto === MapPrototype) {
      try {
        MapPrototypeForEach(current as Map<unknown, unknown>, (v: unknown, k: unknown) => {
          push(k);
          push(v);
        });
      } catch {}
    } else if (proto === SetPrototype) {
      try {
        SetPrototypeForEach(current as Set<unknown>, (v: unknown) => push(v));
      } catch {}
    }
    const keys = ReflectOwnKeys(current);
    for (let i = 0; i < keys.length; i++) {
      const descriptor = ObjectGetOwnPropertyDescriptor(current, keys[i]);
      if (descriptor !== undefined && 'value' in descriptor) push(descriptor.value);
    }
  }
  return null;
}

export function createStructuredClone(host: HostRefs): <T>(value: T, options?: { transfer?: unknown[] }) => T {
  const clone = host.structuredClone;
  return function structuredClone<T>(value: T, options: { transfer?: unknown[] } | undefined = undefined): T {
    requireArguments(arguments.length, 1, 'structuredClone');
    const transfer = options === undefined || options === null ? undefined : options.transfer;
    const buffers = transfer === undefined ? [] : sequenceOf(transfer, 'structuredClone transfer');
    const moved = new SafeSet<unknown>();
    for (let i = 0; i < buffers.length; i++) {
      const item = buffers[i];
      let detached: boolean;
      try {
        detached = ArrayBufferPrototypeGetDetached(item);
      } catch {
        throw createDomError('structuredClone: only ArrayBuffers can be transferred', 'DataCloneError');
      }
      if (detached) throw createDomError('structuredClone: an ArrayBuffer in transfer is detached', 'DataCloneError');
      if (SetPrototypeHas(moved, item)) throw createDomError('structuredClone: an ArrayBuffer appears twice in transfer', 'DataCloneError');
      SetPrototypeAdd(moved, item);
    }
    const platform = findPlatformObject(value);
    if (platform !== null) throw createDomError('structuredClone: platform objects (URL, Headers, Request, streams, …) cannot be cloned', 'DataCloneError');
    let copy: T;
    try {
      copy = clone.applySync(undefined, [value], { arguments: { copy: true }, result: { copy: true } }) as T;
    } catch (error) {
      // isolated-vm throws a TypeError ("… could not be cloned.") when the guest side refuses,
      // and a plain Error when the host side does; both mean the value is not cloneable.
      const message = (error as { message?: unknown } | null)?.message;
      throw createDomError(typeof message === 'string' ? message : 'value could not be cloned', 'DataCloneError');
    }
    // The copy holds the bytes; the originals are detached, as a transfer leaves them.
    for (let i = 0; i < buffers.length; i++) ArrayBufferPrototypeTransfer(buffers[i] as ArrayBuffer);
    return copy;
  };
}
