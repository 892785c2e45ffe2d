/**
 * BufferSource handling (ArrayBuffer, SharedArrayBuffer, typed arrays, DataView) through captured
 * getters, so a redefined `Uint8Array.prototype.length` or `byteOffset` cannot mislead the platform.
 */
import {
  ArrayBufferIsView,
  ArrayBufferPrototypeGetByteLength,
  DataViewPrototypeGetBuffer,
  DataViewPrototypeGetByteLength,
  DataViewPrototypeGetByteOffset,
  SafeUint8Array,
  SharedArrayBufferPrototypeGetByteLength,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetSymbolToStringTag,
  TypedArrayPrototypeSet,
} from '../primordials.ts';

/** A Uint8Array over the same memory as `source`, or null if `source` is not a BufferSource. */
export function viewOf(source: unknown): Uint8Array | null {
  if (typeof source !== 'object' || source === null) return null;
  if (ArrayBufferIsView(source)) {
    if (TypedArrayPrototypeGetSymbolToStringTag(source) !== undefined) {
      return new SafeUint8Array(
        TypedArrayPrototypeGetBuffer(source),
        TypedArrayPrototypeGetByteOffset(source),
        TypedArrayPrototypeGetByteLength(source),
      );
    }
    return new SafeUint8Array(
      DataViewPrototypeGetBuffer(source),
      DataViewPrototypeGetByteOffset(source),
      DataViewPrototypeGetByteLength(source),
    );
  }
  if (isArrayBuffer(source) || isSharedArrayBuffer(source)) return new SafeUint8Array(source as ArrayBuffer);
  return null;
}

/** A fresh Uint8Array that owns its whole buffer, holding a copy of `view`'s bytes. */
export function copyOf(view: Uint8Array): Uint8Array {
  const copy = new SafeUint8Array(byteLengthOf(view));
  TypedArrayPrototypeSet(copy, view);
  return copy;
}

export function byteLengthOf(view: Uint8Array): number {
  return TypedArrayPrototypeGetByteLength(view);
}

/** The ArrayBuffer behind `view`; callers only pass views that own their whole buffer. */
export function bufferOf(view: Uint8Array): ArrayBuffer {
  return TypedArrayPrototypeGetBuffer(view) as ArrayBuffer;
}

function isArrayBuffer(value: object): boolean {
  try {
    ArrayBufferPrototypeGetByteLength(value);
    return true;
  } catch {
    return false;
  }
}

function isSharedArrayBuffer(value: object): boolean {
  if (SharedArrayBufferPrototypeGetByteLength === undefined) return false;
  try {
    SharedArrayBufferPrototypeGetByteLength(value);
    return true;
  } catch {
    return false;
  }
}
