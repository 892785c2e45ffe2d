/**
 * crypto.subtle for guests, served by Node's WebCrypto. Every argument comes from hostile code:
 * each one is rebuilt here from plain data of checked types and sizes (unknown fields dropped,
 * nothing of the guest's object graph used), and every result leaves as plain data.
 *
 * Keys carry no host reference: a guest CryptoKey holds its key material (JWK, or raw bytes for
 * PBKDF2/HKDF) in a private field, and each operation imports it again here (as extractable, so
 * the material can be exported back; the guest keeps and enforces the key's own `extractable`).
 * Limits: data up to MAX_CRYPTO_BYTES per argument, PBKDF2 up to 100,000 iterations (as
 * Workers), RSA moduli 1024-4096 bits.
 */
import { webcrypto } from 'node:crypto';

const subtle = webcrypto.subtle;
type Key = webcrypto.CryptoKey;

export const MAX_CRYPTO_BYTES = 10 * 1024 * 1024;
export const MAX_PBKDF2_ITERATIONS = 100_000;
const MAX_STRING = 256;
const MAX_JWK_FIELD = 16 * 1024;

/** A key as the guest holds it: material plus the metadata its CryptoKey shows. */
export interface WireKey {
  material: { format: 'jwk'; jwk: Record<string, unknown> } | { format: 'raw'; raw: Uint8Array };
  type: 'secret' | 'public' | 'private';
  extractable: boolean;
  algorithm: Record<string, unknown>;
  usages: string[];
}

/** What a failed operation reports: a DOMException name (or TypeError) and a message. */
export interface SubtleFailure {
  name: string;
  message: string;
}

class Refused extends Error {
  readonly errorName: string;
  constructor(errorName: string, message: string) {
    super(message);
    this.errorName = errorName;
  }
}

const METHODS = new Set(['digest', 'encrypt', 'decrypt', 'sign', 'verify', 'generateKey', 'deriveKey', 'deriveBits', 'importKey', 'exportKey', 'wrapKey', 'unwrapKey']);
const USAGES = new Set(['encrypt', 'decrypt', 'sign', 'verify', 'deriveKey', 'deriveBits', 'wrapKey', 'unwrapKey']);
const FORMATS = new Set(['raw', 'jwk', 'pkcs8', 'spki']);
const RAW_ONLY = new Set(['PBKDF2', 'HKDF']);
const JWK_STRINGS = ['kty', 'crv', 'x', 'y', 'd', 'n', 'e', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'alg', 'use'];

const bad = (message: string) => new Refused('TypeError', message);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array);
}

function bytes(value: unknown, what: string, max = MAX_CRYPTO_BYTES): Uint8Array {
  if (!(value instanceof Uint8Array)) throw bad(`${what} must be a BufferSource`);
  if (value.byteLength > max) throw new Refused('OperationError', `${what} is over ${max} bytes`);
  return new Uint8Array(value);
}

function shortString(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length > MAX_STRING) throw bad(`${what} must be a string`);
  return value;
}

function integer(value: unknown, what: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    throw new Refused('OperationError', `${what} must be an integer in [${min}, ${max}]`);
  }
  return value as number;
}

function hashOf(value: unknown): string | { name: string } {
  if (typeof value === 'string') return shortString(value, 'hash');
  if (isPlainObject(value)) return { name: shortString(value.name, 'hash.name') };
  throw bad('hash must be a string or {name}');
}

function usagesOf(value: unknown): string[] {
  if (!Array.isArray(value) || value.length > USAGES.size) throw bad('keyUsages must be a sequence of usages');
  const out: string[] = [];
  for (const usage of value) {
    if (typeof usage !== 'string' || !USAGES.has(usage)) throw bad(`'${String(usage).slice(0, 40)}' is not a key usage`);
    out.push(usage);
  }
  return out;
}

/** A guest's algorithm identifier rebuilt from the members WebCrypto defines, each checked. */
async function algorithmOf(value: unknown): Promise<string | Record<string, unknown>> {
  if (typeof value === 'string') return shortString(value, 'algorithm');
  if (!isPlainObject(value)) throw bad('algorithm must be a string or an object');
  const out: Record<string, unknown> = { name: shortString(value.name, 'algorithm.name') };
  const name = (out.name as string).toUpperCase();
  if (value.hash !== undefined) out.hash = hashOf(value.hash);
  if (value.length !== undefined) out.length = integer(value.length, 'length', 0, 1 << 20);
  if (value.namedCurve !== undefined) out.namedCurve = shortString(value.namedCurve, 'namedCurve');
  if (value.modulusLength !== undefined) out.modulusLength = integer(value.modulusLength, 'modulusLength', 1024, 4096);
  if (value.publicExponent !== undefined) out.publicExponent = bytes(value.publicExponent, 'publicExponent', 16);
  for (const field of ['iv', 'counter', 'salt', 'info', 'additionalData', 'label', 'context'] as const) {
    if (value[field] !== undefined) out[field] = bytes(value[field], field);
  }
  if (value.tagLength !== undefined) out.tagLength = integer(value.tagLength, 'tagLength', 0, 128);
  if (value.saltLength !== undefined) out.saltLength = integer(value.saltLength, 'saltLength', 0, 1 << 16);
  if (value.iterations !== undefined) {
    out.iterations = integer(value.iterations, 'iterations', 1, MAX_PBKDF2_ITERATIONS);
  } else if (name === 'PBKDF2') throw bad('PBKDF2 needs iterations');
  if (value.public !== undefined) out.public = await keyOf(value.public);
  return out;
}

function jwkOf(value: unknown): webcrypto.JsonWebKey {
  if (!isPlainObject(value)) throw bad('a JWK must be an object');
  const out: Record<string, unknown> = {};
  for (const field of JWK_STRINGS) {
    const v = value[field];
    if (v === undefined) continue;
    if (typeof v !== 'string' || v.length > MAX_JWK_FIELD) throw new Refused('DataError', `JWK member ${field} must be a string`);
    out[field] = v;
  }
  if (value.ext !== undefined) {
    if (typeof value.ext !== 'boolean') throw new Refused('DataError', 'JWK member ext must be a boolean');
    out.ext = value.ext;
  }
  if (value.key_ops !== undefined) out.key_ops = usagesOf(value.key_ops);
  return out as webcrypto.JsonWebKey;
}

/** The import algorithm a stored key's metadata implies. */
function importAlgorithmOf(algorithm: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { name: shortString(algorithm.name, 'key.algorithm.name') };
  if (algorithm.hash !== undefined) out.hash = hashOf(algorithm.hash);
  if (algorithm.namedCurve !== undefined) out.namedCurve = shortString(algorithm.namedCurve, 'key.algorithm.namedCurve');
  if (algorithm.length !== undefined && String(out.name).toUpperCase() === 'HMAC') out.length = integer(algorithm.length, 'key.algorithm.length', 1, 1 << 20);
  return out;
}

/** A guest key (its material and metadata) imported into Node's WebCrypto. */
async function keyOf(value: unknown): Promise<Key> {
  if (!isPlainObject(value) || !isPlainObject(value.material) || !isPlainObject(value.algorithm)) throw bad('not a CryptoKey');
  const usages = usagesOf(value.usages);
  const algorithm = importAlgorithmOf(value.algorithm);
  const material = value.material;
  try {
    if (material.format === 'raw') return await subtle.importKey('raw', bytes(material.raw, 'key'), algorithm as never, false, usages as never);
    if (material.format === 'jwk') return await subtle.importKey('jwk', jwkOf(material.jwk), algorithm as never, true, usages as never);
  } catch (error) {
    throw translate(error);
  }
  throw bad('not a CryptoKey');
}

function algorithmOut(algorithm: webcrypto.KeyAlgorithm): Record<string, unknown> {
  const a = algorithm as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { name: String(a.name) };
  if (isPlainObject(a.hash)) out.hash = { name: String((a.hash as { name: unknown }).name) };
  if (typeof a.length === 'number') out.length = a.length;
  if (typeof a.namedCurve === 'string') out.namedCurve = a.namedCurve;
  if (typeof a.modulusLength === 'number') out.modulusLength = a.modulusLength;
  if (a.publicExponent instanceof Uint8Array) out.publicExponent = new Uint8Array(a.publicExponent);
  return out;
}

/** A Node key as plain data for the guest; `extractable` is what the guest asked for (public keys: always true). */
async function wireKey(key: Key, extractable: boolean): Promise<WireKey> {
  const name = key.algorithm.name.toUpperCase();
  const material: WireKey['material'] = RAW_ONLY.has(name)
    ? { format: 'raw', raw: rawOf(key) }
    : { format: 'jwk', jwk: (await subtle.exportKey('jwk', key)) as Record<string, unknown> };
  return {
    material,
    type: key.type,
    extractable: key.type === 'public' ? true : extractable,
    algorithm: algorithmOut(key.algorithm),
    usages: [...key.usages],
  };
}

/** PBKDF2/HKDF keys cannot be exported; their raw bytes were imported here moments ago. */
const rawMaterial = new WeakMap<Key, Uint8Array>();
function rawOf(key: Key): Uint8Array {
  const raw = rawMaterial.get(key);
  if (!raw) throw new Refused('NotSupportedError', 'this key cannot be carried to the guest');
  return raw;
}

/** The guest's CryptoKey says whether its material may leave; a key that says no is never exported. */
function notExtractable(value: unknown): void {
  if (!isPlainObject(value) || value.extractable !== true) throw new Refused('InvalidAccessError', 'key is not extractable');
}

function translate(error: unknown): Refused {
  if (error instanceof Refused) return error;
  const e = error as { name?: unknown; message?: unknown };
  const name = typeof e?.name === 'string' && /^[A-Za-z]{1,40}$/.test(e.name) ? e.name : 'OperationError';
  const message = typeof e?.message === 'string' ? e.message.split('\n')[0].slice(0, 300) : 'the operation failed';
  return new Refused(name === 'Error' ? 'OperationError' : name, message);
}

function asBytes(result: ArrayBuffer): Uint8Array {
  return new Uint8Array(result);
}

/** One SubtleCrypto call: `method` and its arguments as the guest sent them; the result as plain data. */
export async function subtleCall(method: unknown, args: unknown): Promise<unknown> {
  if (typeof method !== 'string' || !METHODS.has(method)) throw bad('unknown SubtleCrypto method');
  if (!Array.isArray(args) || args.length > 8) throw bad('bad SubtleCrypto arguments');
  try {
    switch (method) {
      case 'digest':
        return asBytes(await subtle.digest((await algorithmOf(args[0])) as never, bytes(args[1], 'data')));
      case 'encrypt':
      case 'decrypt': {
        const op = method === 'encrypt' ? subtle.encrypt : subtle.decrypt;
        return asBytes(await op.call(subtle, (await algorithmOf(args[0])) as never, await keyOf(args[1]), bytes(args[2], 'data')));
      }
      case 'sign':
        return asBytes(await subtle.sign((await algorithmOf(args[0])) as never, await keyOf(args[1]), bytes(args[2], 'data')));
      case 'verify':
        return await subtle.verify((await algorithmOf(args[0])) as never, await keyOf(args[1]), bytes(args[2], 'signature'), bytes(args[3], 'data'));
      case 'generateKey': {
        const extractable = args[1] === true;
        const generated = await subtle.generateKey((await algorithmOf(args[0])) as never, true, usagesOf(args[2]) as never);
        if ('publicKey' in (generated as object)) {
          const pair = generated as webcrypto.CryptoKeyPair;
          return { publicKey: await wireKey(pair.publicKey, true), privateKey: await wireKey(pair.privateKey, extractable) };
        }
        return await wireKey(generated as unknown as Key, extractable);
      }
      case 'importKey': {
        const format = shortString(args[0], 'format');
        if (!FORMATS.has(format)) throw bad(`'${format}' is not a key format`);
        const algorithm = await algorithmOf(args[2]);
        const name = (typeof algorithm === 'string' ? algorithm : String(algorithm.name)).toUpperCase();
        const extractable = args[3] === true;
        const usages = usagesOf(args[4]);
        const data = format === 'jwk' ? jwkOf(args[1]) : bytes(args[1], 'keyData');
        const raw = RAW_ONLY.has(name);
        const key = await subtle.importKey(format as never, data as never, algorithm as never, !raw, usages as never);
        if (raw) rawMaterial.set(key, data as Uint8Array);
        return await wireKey(key, extractable);
      }
      case 'exportKey': {
        const format = shortString(args[0], 'format');
        if (!FORMATS.has(format)) throw bad(`'${format}' is not a key format`);
        notExtractable(args[1]);
        const key = await keyOf(args[1]);
        const exported = await subtle.exportKey(format as never, key);
        return format === 'jwk' ? JSON.parse(JSON.stringify(exported)) : asBytes(exported as ArrayBuffer);
      }
      case 'deriveBits': {
        const length = args[2] === null || args[2] === undefined ? null : integer(args[2], 'length', 0, 1 << 16);
        return asBytes(await subtle.deriveBits((await algorithmOf(args[0])) as never, await keyOf(args[1]), length as never));
      }
      case 'deriveKey': {
        const extractable = args[3] === true;
        const derived = await subtle.deriveKey(
          (await algorithmOf(args[0])) as never,
          await keyOf(args[1]),
          (await algorithmOf(args[2])) as never,
          true,
          usagesOf(args[4]) as never,
        );
        return await wireKey(derived, extractable);
      }
      case 'wrapKey': {
        const format = shortString(args[0], 'format');
        if (!FORMATS.has(format)) throw bad(`'${format}' is not a key format`);
        notExtractable(args[1]);
        return asBytes(await subtle.wrapKey(format as never, await keyOf(args[1]), await keyOf(args[2]), (await algorithmOf(args[3])) as never));
      }
      case 'unwrapKey': {
        const format = shortString(args[0], 'format');
        if (!FORMATS.has(format)) throw bad(`'${format}' is not a key format`);
        const extractable = args[5] === true;
        const key = await subtle.unwrapKey(
          format as never,
          bytes(args[1], 'wrappedKey'),
          await keyOf(args[2]),
          (await algorithmOf(args[3])) as never,
          (await algorithmOf(args[4])) as never,
          true,
          usagesOf(args[6]) as never,
        );
        return await wireKey(key, extractable);
      }
    }
  } catch (error) {
    throw translate(error);
  }
  throw bad('unknown SubtleCrypto method');
}

/** `subtleCall` as a settled outcome: never throws, failures are {name, message}. */
export async function subtleOutcome(method: unknown, args: unknown): Promise<{ ok: true; value: unknown } | { ok: false; error: SubtleFailure }> {
  try {
    return { ok: true, value: await subtleCall(method, args) };
  } catch (error) {
    const refused = translate(error);
    return { ok: false, error: { name: refused.errorName, message: refused.message } };
  }
}
