/**
 * SubtleCrypto (https://w3c.github.io/webcrypto/#subtlecrypto-interface) and CryptoKey, served
 * by the host's Node WebCrypto (runtime/host/subtle-crypto.ts) through one asynchronous host
 * operation per call. Here arguments are turned into plain data: algorithm members WebCrypto
 * defines are read once each (BufferSources copied), keys replaced by their material. A
 * CryptoKey keeps its material in a private field, never a host reference; `extractable: false`
 * keys never leave through exportKey or wrapKey. Plus Workers' `timingSafeEqual`.
 */
import type { HostOps, OpOutcome } from '../host-ops.ts';
import { ObjectFreeze, PromiseReject, SafeTypeError, TypedArrayPrototypeGetSymbolToStringTag } from '../primordials.ts';
import { byteLengthOf, copyOf, viewOf } from './bytes.ts';
import { createDomError, type DomErrorName } from './dom-error.ts';
import { defineToStringTag, requireArguments, sequenceOf, toDOMString } from './webidl.ts';

const INTERNAL = Symbol('internal');
/** Bytes of one BufferSource argument (the host checks again: runtime/host/subtle-crypto.ts MAX_CRYPTO_BYTES). */
const MAX_CRYPTO_BYTES_GUEST = 10 * 1024 * 1024;

interface WireKey {
  material: unknown;
  type: string;
  extractable: boolean;
  algorithm: Record<string, unknown>;
  usages: string[];
}

let keyWire: (key: CryptoKey) => WireKey;
let isCryptoKey: (value: unknown) => value is CryptoKey;

export class CryptoKey {
  readonly #wire: WireKey;
  #algorithm: object | null = null;
  #usages: string[] | null = null;

  static {
    keyWire = (key) => key.#wire;
    isCryptoKey = (value): value is CryptoKey => typeof value === 'object' && value !== null && #wire in value;
  }

  constructor(token: unknown, wire: WireKey) {
    if (token !== INTERNAL) throw new SafeTypeError('Illegal constructor');
    this.#wire = wire;
  }

  get type(): string {
    return this.#wire.type;
  }

  get extractable(): boolean {
    return this.#wire.extractable;
  }

  get algorithm(): object {
    if (this.#algorithm === null) {
      const a = this.#wire.algorithm;
      const copy: Record<string, unknown> = {};
      for (const key of ['name', 'hash', 'length', 'namedCurve', 'modulusLength', 'publicExponent']) {
        const v = a[key];
        if (v === undefined) continue;
        copy[key] = key === 'hash' && typeof v === 'object' && v !== null ? ObjectFreeze({ name: (v as { name: unknown }).name }) : key === 'publicExponent' ? copyOf(v as Uint8Array) : v;
      }
      this.#algorithm = ObjectFreeze(copy);
    }
    return this.#algorithm;
  }

  get usages(): string[] {
    if (this.#usages === null) {
      const usages: string[] = [];
      for (let i = 0; i < this.#wire.usages.length; i++) usages[i] = this.#wire.usages[i];
      this.#usages = ObjectFreeze(usages) as string[];
    }
    return this.#usages;
  }
}
defineToStringTag(CryptoKey.prototype, 'CryptoKey');

/** A BufferSource argument, copied (so later changes by the caller cannot race the operation). */
function bufferArg(value: unknown, what: string): Uint8Array {
  const view = viewOf(value);
  if (view === null) throw new SafeTypeError(`${what} must be an ArrayBuffer or ArrayBufferView`);
  if (byteLengthOf(view) > MAX_CRYPTO_BYTES_GUEST) throw createDomError(`${what} is over ${MAX_CRYPTO_BYTES_GUEST} bytes`, 'OperationError');
  return copyOf(view);
}

function keyArg(value: unknown, what: string): WireKey {
  if (!isCryptoKey(value)) throw new SafeTypeError(`${what} must be a CryptoKey`);
  return keyWire(value);
}

const BUFFER_MEMBERS = ['iv', 'counter', 'salt', 'info', 'additionalData', 'label', 'context', 'publicExponent'];
const NUMBER_MEMBERS = ['length', 'modulusLength', 'tagLength', 'saltLength', 'iterations'];

/** An AlgorithmIdentifier as plain data: a string, or the members WebCrypto defines, each read once. */
function algorithmArg(value: unknown): unknown {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) throw new SafeTypeError('algorithm must be a string or an object');
  const source = value as Record<string, unknown>;
  const name = source.name;
  if (name === undefined) throw new SafeTypeError("algorithm: member 'name' is required");
  const out: Record<string, unknown> = { name: toDOMString(name) };
  const hash = source.hash;
  if (hash !== undefined) out.hash = typeof hash === 'string' ? hash : { name: toDOMString((hash as { name?: unknown })?.name) };
  const namedCurve = source.namedCurve;
  if (namedCurve !== undefined) out.namedCurve = toDOMString(namedCurve);
  for (let i = 0; i < NUMBER_MEMBERS.length; i++) {
    const v = source[NUMBER_MEMBERS[i]];
    if (v !== undefined) out[NUMBER_MEMBERS[i]] = typeof v === 'number' ? v : +(v as number);
  }
  for (let i = 0; i < BUFFER_MEMBERS.length; i++) {
    const v = source[BUFFER_MEMBERS[i]];
    if (v !== undefined) out[BUFFER_MEMBERS[i]] = bufferArg(v, BUFFER_MEMBERS[i]);
  }
  const publicKey = source.public;
  if (publicKey !== undefined) out.public = keyArg(publicKey, 'algorithm.public');
  return out;
}

function usagesArg(value: unknown): string[] {
  const items = sequenceOf(value, 'keyUsages');
  const out: string[] = [];
  for (let i = 0; i < items.length && i < 16; i++) out[i] = toDOMString(items[i]);
  return out;
}

const JWK_MEMBERS = ['kty', 'crv', 'x', 'y', 'd', 'n', 'e', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'alg', 'use'];

function jwkArg(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null) throw new SafeTypeError('keyData must be a JsonWebKey');
  const source = value as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (let i = 0; i < JWK_MEMBERS.length; i++) {
    const v = source[JWK_MEMBERS[i]];
    if (v !== undefined) out[JWK_MEMBERS[i]] = toDOMString(v);
  }
  const ext = source.ext;
  if (ext !== undefined) out.ext = !!ext;
  const ops = source.key_ops;
  if (ops !== undefined) out.key_ops = usagesArg(ops);
  return out;
}

function keyOut(value: unknown): CryptoKey {
  return new CryptoKey(INTERNAL, value as WireKey);
}

function bufferOut(value: unknown): ArrayBuffer {
  if (TypedArrayPrototypeGetSymbolToStringTag(value) !== 'Uint8Array') throw new SafeTypeError('host returned malformed bytes');
  return copyOf(value as Uint8Array).buffer as ArrayBuffer;
}

let hostOps: HostOps | null = null;

export function bindSubtleHost(ops: HostOps): void {
  hostOps = ops;
}

/** Runs one host call; a synchronous argument error becomes a rejection, as WebIDL promises do. */
function call<T>(method: string, build: () => unknown[], map: (value: unknown) => T): Promise<T> {
  let args: unknown[];
  try {
    args = build();
  } catch (error) {
    return PromiseReject(error) as Promise<T>;
  }
  return (async () => {
    const outcome: OpOutcome = await hostOps!.run('subtle', [method, args]);
    if (!outcome.ok) {
      const { name, message } = outcome.error;
      throw name === 'TypeError' ? new SafeTypeError(message) : createDomError(message, name as DomErrorName);
    }
    return map(outcome.value);
  })();
}

function keyOrPair(value: unknown): unknown {
  const v = value as { publicKey?: unknown; privateKey?: unknown };
  if (v.publicKey !== undefined) return { publicKey: keyOut(v.publicKey), privateKey: keyOut(v.privateKey) };
  return keyOut(value);
}

function requireExtractable(wire: WireKey): void {
  if (!wire.extractable) throw createDomError('key is not extractable', 'InvalidAccessError');
}

export class SubtleCrypto {
  constructor(token: unknown = undefined) {
    if (token !== INTERNAL) throw new SafeTypeError('Illegal constructor');
  }

  digest(algorithm: unknown, data: unknown): Promise<ArrayBuffer> {
    requireArguments(arguments.length, 2, 'SubtleCrypto.digest');
    return call('digest', () => [algorithmArg(algorithm), bufferArg(data, 'data')], bufferOut);
  }

  encrypt(algorithm: unknown, key: unknown, data: unknown): Promise<ArrayBuffer> {
    requireArguments(arguments.length, 3, 'SubtleCrypto.encrypt');
    return call('encrypt', () => [algorithmArg(algorithm), keyArg(key, 'key'), bufferArg(data, 'data')], bufferOut);
  }

  decrypt(algorithm: unknown, key: unknown, data: unknown): Promise<ArrayBuffer> {
    requireArguments(arguments.length, 3, 'SubtleCrypto.decrypt');
    return call('decrypt', () => [algorithmArg(algorithm), keyArg(key, 'key'), bufferArg(data, 'data')], bufferOut);
  }

  sign(algorithm: unknown, key: unknown, data: unknown): Promise<ArrayBuffer> {
    requireArguments(arguments.length, 3, 'SubtleCrypto.sign');
    return call('sign', () => [algorithmArg(algorithm), keyArg(key, 'key'), bufferArg(data, 'data')], bufferOut);
  }

  verify(algorithm: unknown, key: unknown, signature: unknown, data: unknown): Promise<boolean> {
    requireArguments(arguments.length, 4, 'SubtleCrypto.verify');
    return call('verify', () => [algorithmArg(algorithm), keyArg(key, 'key'), bufferArg(signature, 'signature'), bufferArg(data, 'data')], (v) => v === true);
  }

  generateKey(algorithm: unknown, extractable: unknown, keyUsages: unknown): Promise<unknown> {
    requireArguments(arguments.length, 3, 'SubtleCrypto.generateKey');
    return call('generateKey', () => [algorithmArg(algorithm), !!extractable, usagesArg(keyUsages)], keyOrPair);
  }

  importKey(format: unknown, keyData: unknown, algorithm: unknown, extractable: unknown, keyUsages: unknown): Promise<CryptoKey> {
    requireArguments(arguments.length, 5, 'SubtleCrypto.importKey');
    return call('importKey', () => {
      const f = toDOMString(format);
      return [f, f === 'jwk' ? jwkArg(keyData) : bufferArg(keyData, 'keyData'), algorithmArg(algorithm), !!extractable, usagesArg(keyUsages)];
    }, keyOut);
  }

  exportKey(format: unknown, key: unknown): Promise<unknown> {
    requireArguments(arguments.length, 2, 'SubtleCrypto.exportKey');
    const f = toDOMString(format);
    return call('exportKey', () => {
      const wire = keyArg(key, 'key');
      requireExtractable(wire);
      return [f, wire];
    }, (v) => (f === 'jwk' ? v : bufferOut(v)));
  }

  deriveBits(algorithm: unknown, baseKey: unknown, length: unknown = null): Promise<ArrayBuffer> {
    requireArguments(arguments.length, 2, 'SubtleCrypto.deriveBits');
    return call('deriveBits', () => [algorithmArg(algorithm), keyArg(baseKey, 'baseKey'), length === null || length === undefined ? null : +(length as number)], bufferOut);
  }

  deriveKey(algorithm: unknown, baseKey: unknown, derivedKeyType: unknown, extractable: unknown, keyUsages: unknown): Promise<CryptoKey> {
    requireArguments(arguments.length, 5, 'SubtleCrypto.deriveKey');
    return call('deriveKey', () => [algorithmArg(algorithm), keyArg(baseKey, 'baseKey'), algorithmArg(derivedKeyType), !!extractable, usagesArg(keyUsages)], keyOut);
  }

  wrapKey(format: unknown, key: unknown, wrappingKey: unknown, wrapAlgorithm: unknown): Promise<ArrayBuffer> {
    requireArguments(arguments.length, 4, 'SubtleCrypto.wrapKey');
    return call('wrapKey', () => {
      const wire = keyArg(key, 'key');
      requireExtractable(wire);
      return [toDOMString(format), wire, keyArg(wrappingKey, 'wrappingKey'), algorithmArg(wrapAlgorithm)];
    }, bufferOut);
  }

  unwrapKey(
    format: unknown, wrappedKey: unknown, unwrappingKey: unknown, unwrapAlgorithm: unknown,
    unwrappedKeyAlgorithm: unknown, extractable: unknown, keyUsages: unknown,
  ): Promise<CryptoKey> {
    requireArguments(arguments.length, 7, 'SubtleCrypto.unwrapKey');
    return call('unwrapKey', () => [
      toDOMString(format), bufferArg(wrappedKey, 'wrappedKey'), keyArg(unwrappingKey, 'unwrappingKey'),
      algorithmArg(unwrapAlgorithm), algorithmArg(unwrappedKeyAlgorithm), !!extractable, usagesArg(keyUsages),
    ], keyOut);
  }

  /** Workers' extension: compares two buffers of equal length in time independent of their contents. */
  timingSafeEqual(a: unknown, b: unknown): boolean {
    requireArguments(arguments.length, 2, 'SubtleCrypto.timingSafeEqual');
    const x = viewOf(a);
    const y = viewOf(b);
    if (x === null || y === null) throw new SafeTypeError('timingSafeEqual: arguments must be ArrayBuffers or ArrayBufferViews');
    const length = byteLengthOf(x);
    if (length !== byteLengthOf(y)) throw new SafeTypeError('timingSafeEqual: the buffers must have the same byte length');
    let diff = 0;
    for (let i = 0; i < length; i++) diff |= x[i] ^ y[i];
    return diff === 0;
  }
}
defineToStringTag(SubtleCrypto.prototype, 'SubtleCrypto');

export function createSubtle(): SubtleCrypto {
  return new SubtleCrypto(INTERNAL);
}
