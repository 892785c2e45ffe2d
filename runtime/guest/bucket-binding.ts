/**
 * A bucket binding (`env.ASSETS`): Cloudflare R2's Workers API — R2Bucket's get, head, put,
 * delete, list, createMultipartUpload and resumeMultipartUpload, answering R2Object /
 * R2ObjectBody / R2Objects / R2MultipartUpload shapes — over one asynchronous host operation per
 * call. The host counts calls and bytes per invocation; the control plane makes the S3 request
 * with the platform's credentials (runtime/bucket-calls.ts), so this file holds no bucket name,
 * prefix or credential — only the binding's name. Only plain data crosses: strings, numbers,
 * Uint8Arrays and objects of those. Failures reject with a TypeError (RangeError for limits)
 * whose message starts with a stable code and whose `code` is it.
 */
import type { HostOps, OpOutcome } from './host-ops.ts';
import {
  ArrayIsArray, ArrayPrototypeSlice, DatePrototypeGetTime, JSONParse, ObjectDefineProperty, ObjectFreeze, ObjectKeys, SafeDate, SafeRangeError, SafeTypeError,
  SafeUint8Array, StringPrototypeCharCodeAt, StringPrototypeSlice,
} from './primordials.ts';
import { copyOf, viewOf } from './web/bytes.ts';
import { blobBytes, isBlob, Blob } from './web/forms.ts';
import { drainStream, isReadableStream, streamOfBytes } from './web/streams.ts';
import { utf8Decode, utf8Encode } from './web/utf8.ts';

/** One value or part crosses at most this many bytes (the control plane checks it again). */
const MAX_VALUE_BYTES = 10 * 1024 * 1024;

interface Meta {
  key: string;
  size: number;
  etag: string;
  uploaded: number;
  version?: string;
  httpMetadata: Record<string, string>;
  customMetadata: Record<string, string>;
  range?: { offset: number; length: number };
}

function failure(name: string, message: string, code: string): Error {
  const error = name === 'RangeError' ? new SafeRangeError(message) : new SafeTypeError(message);
  ObjectDefineProperty(error, 'code', { value: code, writable: true, enumerable: false, configurable: true });
  return error;
}

function bad(message: string): Error {
  return failure('TypeError', `ERR_BAD_REQUEST: ${message}`, 'ERR_BAD_REQUEST');
}

/** A plain copy of an options object: own enumerable string/number/boolean/Date fields, one level deep. */
function plain(value: unknown, depth = 0): unknown {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (value instanceof SafeDate) return DatePrototypeGetTime(value);
  if (typeof value !== 'object' || depth > 2) throw bad('options hold strings, numbers, Dates and plain objects');
  const out: Record<string, unknown> = {};
  const keys = ObjectKeys(value);
  if (keys.length > 64) throw bad('too many option fields');
  for (let i = 0; i < keys.length; i++) out[keys[i]] = plain((value as Record<string, unknown>)[keys[i]], depth + 1);
  return out;
}

/** R2's onlyIf may be a Headers object: the conditional headers it carries, as R2Conditional. */
function conditional(value: unknown): unknown {
  if (value === undefined || value === null) return undefined;
  const get = (value as { get?: unknown }).get;
  if (typeof get === 'function' && typeof (value as { has?: unknown }).has === 'function') {
    const h = value as { get(name: string): string | null };
    const out: Record<string, unknown> = {};
    const ifMatch = h.get('if-match');
    const ifNoneMatch = h.get('if-none-match');
    const since = h.get('if-modified-since');
    const unmodified = h.get('if-unmodified-since');
    if (ifMatch !== null) out.etagMatches = ifMatch;
    if (ifNoneMatch !== null) out.etagDoesNotMatch = ifNoneMatch;
    if (since !== null) out.uploadedAfter = DatePrototypeGetTime(new SafeDate(since));
    if (unmodified !== null) out.uploadedBefore = DatePrototypeGetTime(new SafeDate(unmodified));
    return out;
  }
  return plain(value);
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` as R2's range; parsed by hand (no RegExp: user code may patch its prototype). */
function rangeOfHeader(header: string): { offset?: number; length?: number; suffix?: number } {
  if (StringPrototypeSlice(header, 0, 6) !== 'bytes=') throw bad('unsupported Range header');
  const spec = StringPrototypeSlice(header, 6);
  let dash = -1;
  for (let i = 0; i < spec.length; i++) {
    const c = StringPrototypeCharCodeAt(spec, i);
    if (c === 45 && dash < 0) dash = i;
    else if (c < 48 || c > 57) throw bad('unsupported Range header');
  }
  if (dash < 0) throw bad('unsupported Range header');
  const first = StringPrototypeSlice(spec, 0, dash);
  const last = StringPrototypeSlice(spec, dash + 1);
  if (first === '' && last === '') throw bad('unsupported Range header');
  if (first === '') return { suffix: Number(last) };
  if (last === '') return { offset: Number(first) };
  return { offset: Number(first), length: Number(last) - Number(first) + 1 };
}

async function valueBytes(value: unknown): Promise<Uint8Array> {
  if (value === null || value === undefined) return new SafeUint8Array(0);
  if (typeof value === 'string') return utf8Encode(value);
  const view = viewOf(value);
  if (view !== null) return copyOf(view);
  if (isBlob(value)) return copyOf(blobBytes(value as Blob));
  if (isReadableStream(value)) {
    try {
      return (await drainStream(value, MAX_VALUE_BYTES)).bytes;
    } catch (error) {
      if ((error as { tooLarge?: boolean }).tooLarge === true) throw failure('RangeError', `ERR_TOO_LARGE: a value is at most ${MAX_VALUE_BYTES} bytes (use a multipart upload)`, 'ERR_TOO_LARGE');
      throw error;
    }
  }
  throw bad('values are strings, ArrayBuffers, ArrayBufferViews, Blobs, ReadableStreams or null');
}

export function createBucketBinding(_global: typeof globalThis, ops: HostOps, binding: string): object {
  const call = async (op: string, args: unknown[]): Promise<unknown> => {
    const outcome: OpOutcome = await ops.run('bucket', [binding, [op, args]]);
    if (!outcome.ok) {
      const { name, message } = outcome.error;
      const code = (outcome.error as { code?: unknown }).code;
      throw failure(name, message, typeof code === 'string' ? code : 'ERR_S3_UNAVAILABLE');
    }
    return outcome.value;
  };
  const keyArg = (key: unknown): string => {
    if (typeof key !== 'string') throw bad('keys are strings');
    return key;
  };

  const objectOf = (meta: Meta, body?: Uint8Array) => {
    const httpMetadata = ObjectFreeze({ ...meta.httpMetadata });
    const customMetadata = ObjectFreeze({ ...meta.customMetadata });
    const base = {
      key: meta.key,
      version: meta.version ?? meta.etag,
      size: meta.size,
      etag: meta.etag,
      httpEtag: `"${meta.etag}"`,
      checksums: ObjectFreeze({}),
      uploaded: new SafeDate(meta.uploaded),
      httpMetadata,
      customMetadata,
      range: meta.range ? ObjectFreeze({ ...meta.range }) : undefined,
      storageClass: 'Standard',
      writeHttpMetadata(headers: { set(name: string, value: string): void }) {
        const names: Record<string, string> = {
          contentType: 'content-type', contentLanguage: 'content-language', contentDisposition: 'content-disposition',
          contentEncoding: 'content-encoding', cacheControl: 'cache-control',
        };
        const fields = ObjectKeys(httpMetadata);
        for (let i = 0; i < fields.length; i++) if (names[fields[i]] !== undefined) headers.set(names[fields[i]], (httpMetadata as Record<string, string>)[fields[i]]);
      },
    };
    if (body === undefined) return ObjectFreeze(base);
    let used = false;
    let stream: unknown = null;
    const take = (): Uint8Array => {
      if (used) throw new SafeTypeError('Body has already been used');
      used = true;
      return body;
    };
    return ObjectFreeze({
      ...base,
      get body() {
        if (stream === null) {
          used = true;
          stream = streamOfBytes(copyOf(body));
        }
        return stream;
      },
      get bodyUsed() {
        return used;
      },
      arrayBuffer: async () => copyOf(take()).buffer,
      bytes: async () => copyOf(take()),
      text: async () => utf8Decode(take(), body.byteLength),
      json: async () => JSONParse(utf8Decode(take(), body.byteLength)),
      blob: async () => new Blob([take()], { type: meta.httpMetadata.contentType ?? '' }),
    });
  };

  const multipart = (key: string, uploadId: string) =>
    ObjectFreeze({
      key,
      uploadId,
      async uploadPart(partNumber: unknown, value: unknown) {
        if (typeof partNumber !== 'number') throw bad('partNumber must be a number');
        const bytes = await valueBytes(value);
        const part = (await call('mpuPart', [key, uploadId, partNumber, bytes])) as { partNumber: number; etag: string };
        return ObjectFreeze({ partNumber: part.partNumber, etag: part.etag });
      },
      async abort() {
        await call('mpuAbort', [key, uploadId]);
      },
      async complete(parts: unknown) {
        if (!ArrayIsArray(parts)) throw bad('complete takes an array of uploaded parts');
        const list: Array<{ partNumber: unknown; etag: unknown }> = [];
        for (let i = 0; i < parts.length && i <= 10_000; i++) {
          const p = parts[i] as { partNumber?: unknown; etag?: unknown } | null;
          list[i] = { partNumber: p?.partNumber, etag: p?.etag };
        }
        return objectOf((await call('mpuComplete', [key, uploadId, list])) as Meta);
      },
    });

  return ObjectFreeze({
    async head(key: unknown) {
      const meta = (await call('head', [keyArg(key)])) as Meta | null;
      return meta === null ? null : objectOf(meta);
    },
    async get(key: unknown, options: unknown = undefined) {
      const o = (typeof options === 'object' && options !== null ? options : {}) as { range?: unknown; onlyIf?: unknown };
      let range = o.range;
      // A Headers object as range: its Range header, passed as the suffix/offset form R2 takes.
      if (range !== undefined && range !== null && typeof (range as { get?: unknown }).get === 'function') {
        const header = (range as { get(name: string): string | null }).get('range');
        range = header === null ? undefined : rangeOfHeader(String(header));
      }
      const result = (await call('get', [keyArg(key), { range: plain(range), onlyIf: conditional(o.onlyIf) }])) as { meta: Meta; body: Uint8Array | null } | null;
      if (result === null) return null;
      return result.body === null ? objectOf(result.meta) : objectOf(result.meta, result.body);
    },
    async put(key: unknown, value: unknown, options: unknown = undefined) {
      const k = keyArg(key);
      const o = (typeof options === 'object' && options !== null ? options : {}) as Record<string, unknown>;
      const bytes = await valueBytes(value);
      let httpMetadata = o.httpMetadata;
      if (httpMetadata !== undefined && httpMetadata !== null && typeof (httpMetadata as { get?: unknown }).get === 'function') {
        const h = httpMetadata as { get(name: string): string | null };
        const out: Record<string, string> = {};
        const pairs: Array<[string, string]> = [['contentType', 'content-type'], ['contentLanguage', 'content-language'], ['contentDisposition', 'content-disposition'], ['contentEncoding', 'content-encoding'], ['cacheControl', 'cache-control']];
        for (let i = 0; i < pairs.length; i++) {
          const v = h.get(pairs[i][1]);
          if (v !== null) out[pairs[i][0]] = v;
        }
        httpMetadata = out;
      }
      const meta = (await call('put', [k, bytes, { httpMetadata: plain(httpMetadata), customMetadata: plain(o.customMetadata), onlyIf: conditional(o.onlyIf) }])) as Meta | null;
      return meta === null ? null : objectOf(meta);
    },
    async delete(keys: unknown) {
      if (typeof keys === 'string') return void (await call('delete', [[keys]]));
      if (!ArrayIsArray(keys)) throw bad('delete takes a key or an array of keys');
      if (keys.length > 1000) throw bad('delete takes at most 1000 keys');
      const list: unknown[] = [];
      for (let i = 0; i < keys.length; i++) list[i] = keyArg(keys[i]);
      await call('delete', [list]);
    },
    async list(options: unknown = undefined) {
      const o = (typeof options === 'object' && options !== null ? options : {}) as Record<string, unknown>;
      const args = { prefix: plain(o.prefix), delimiter: plain(o.delimiter), cursor: plain(o.cursor), limit: plain(o.limit) };
      const result = (await call('list', [args])) as { objects: Meta[]; delimitedPrefixes: string[]; truncated: boolean; cursor?: string };
      const objects: object[] = [];
      for (let i = 0; i < result.objects.length; i++) objects[i] = objectOf(result.objects[i]);
      const out: Record<string, unknown> = { objects, delimitedPrefixes: ArrayPrototypeSlice(result.delimitedPrefixes), truncated: result.truncated === true };
      if (result.truncated === true && result.cursor !== undefined) out.cursor = result.cursor;
      return ObjectFreeze(out);
    },
    async createMultipartUpload(key: unknown, options: unknown = undefined) {
      const k = keyArg(key);
      const o = (typeof options === 'object' && options !== null ? options : {}) as Record<string, unknown>;
      const created = (await call('mpuCreate', [k, { httpMetadata: plain(o.httpMetadata), customMetadata: plain(o.customMetadata) }])) as { uploadId: string };
      return multipart(k, created.uploadId);
    },
    resumeMultipartUpload(key: unknown, uploadId: unknown) {
      if (typeof uploadId !== 'string') throw bad('uploadId must be a string');
      return multipart(keyArg(key), uploadId);
    },
  });
}
