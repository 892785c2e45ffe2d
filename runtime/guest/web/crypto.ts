/**
 * `crypto.getRandomValues` and `crypto.randomUUID` (https://w3c.github.io/webcrypto/#crypto-interface)
 * over the host's CSPRNG, and `crypto.subtle` (web/subtle.ts, served by the host's WebCrypto).
 */
import type { HostReference, HostRefs } from '../host-refs.ts';
import {
  NumberPrototypeToString,
  SafeTypeError,
  SafeUint8Array,
  TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset,
  TypedArrayPrototypeGetSymbolToStringTag,
  TypedArrayPrototypeSet,
} from '../primordials.ts';
import { byteLengthOf } from './bytes.ts';
import { createDomError } from './dom-error.ts';
import { createSubtle, type SubtleCrypto } from './subtle.ts';
import { defineToStringTag, requireArguments } from './webidl.ts';

/** The spec's quota for one getRandomValues call. */
export const MAX_RANDOM_BYTES = 65536;
const INTEGER_ARRAYS = [
  'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array',
  'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array',
];
/** randomUUID draws from a pool refilled this many bytes at a time (64 UUIDs per host call). */
const UUID_POOL_BYTES = 1024;
const INTERNAL = Symbol('internal');

export class Crypto {
  readonly #randomBytes: HostReference;
  readonly #subtle = createSubtle();
  #pool: Uint8Array = new SafeUint8Array(0);
  #poolOffset = 0;

  /** Not constructible by user code, as in browsers: use the global `crypto`. */
  constructor(token: unknown, host: HostRefs) {
    if (token !== INTERNAL) throw new SafeTypeError('Illegal constructor');
    this.#randomBytes = host.randomBytes;
  }

  get subtle(): SubtleCrypto {
    return this.#subtle;
  }

  /** Fills an integer typed array in place and returns it. */
  getRandomValues<T extends ArrayBufferView>(array: T): T {
    requireArguments(arguments.length, 1, 'crypto.getRandomValues');
    const tag = TypedArrayPrototypeGetSymbolToStringTag(array);
    if (tag === undefined || !isIntegerArray(tag)) {
      throw createDomError('getRandomValues: the argument must be an integer typed array', 'TypeMismatchError');
    }
    const byteLength = TypedArrayPrototypeGetByteLength(array);
    if (byteLength > MAX_RANDOM_BYTES) {
      const message = `getRandomValues: ${byteLength} bytes requested, the maximum is ${MAX_RANDOM_BYTES}`;
      throw createDomError(message, 'QuotaExceededError');
    }
    if (byteLength === 0) return array;
    const target = new SafeUint8Array(TypedArrayPrototypeGetBuffer(array), TypedArrayPrototypeGetByteOffset(array), byteLength);
    TypedArrayPrototypeSet(target, this.#draw(byteLength));
    return array;
  }

  /** A version 4 UUID (RFC 9562 §5.4), lowercase. */
  randomUUID(): string {
    if (this.#poolOffset + 16 > byteLengthOf(this.#pool)) {
      this.#pool = this.#draw(UUID_POOL_BYTES);
      this.#poolOffset = 0;
    }
    const pool = this.#pool;
    const offset = this.#poolOffset;
    this.#poolOffset += 16;
    let out = '';
    for (let i = 0; i < 16; i++) {
      let byte = pool[offset + i];
      pool[offset + i] = 0;
      if (i === 6) byte = (byte & 0x0f) | 0x40;
      else if (i === 8) byte = (byte & 0x3f) | 0x80;
      if (i === 4 || i === 6 || i === 8 || i === 10) out += '-';
      out += byte < 0x10 ? `0${NumberPrototypeToString(byte, 16)}` : NumberPrototypeToString(byte, 16);
    }
    return out;
  }

  #draw(byteLength: number): Uint8Array {
    const bytes = this.#randomBytes.applySync(undefined, [byteLength], { result: { copy: true } }) as unknown;
    if (TypedArrayPrototypeGetSymbolToStringTag(bytes) !== 'Uint8Array' || byteLengthOf(bytes as Uint8Array) !== byteLength) {
      throw new SafeTypeError('host returned malformed random bytes');
    }
    return bytes as Uint8Array;
  }
}
defineToStringTag(Crypto.prototype, 'Crypto');

export function createCrypto(host: HostRefs): Crypto {
  return new Crypto(INTERNAL, host);
}

function isIntegerArray(tag: string): boolean {
  for (let i = 0; i < INTEGER_ARRAYS.length; i++) if (INTEGER_ARRAYS[i] === tag) return true;
  return false;
}
