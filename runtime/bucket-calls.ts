/**
 * Bucket bindings on the control plane: every `env.ASSETS.get/put/...` a function makes arrives
 * here from its host (`bucketCall` messages, runtime/host-protocol.ts) and is made with the
 * platform's S3 client and credentials — which therefore never enter a host process, let alone
 * an isolate. The host says which deploy's bindings file (`bindingsId`, from the version's spec,
 * never from tenant code) and which binding; everything else (`op`, `args`) comes from tenant
 * code and is checked here: keys by runtime/bucket-keys.ts (the object key is always
 * `prefix + key`), metadata by size and characters, bodies by the byte budget the host sends
 * (the invocation's remaining bytes, at most MAX_BUCKET_VALUE_BYTES per call), and every S3
 * request is aborted at the invocation's deadline. Failures are outcomes with a stable code in
 * the message (`ERR_...: ...`), never exceptions: a tenant cannot throw out of this handler.
 */
import {
  AbortMultipartUploadCommand, CompleteMultipartUploadCommand, CreateMultipartUploadCommand, DeleteObjectsCommand, GetObjectCommand,
  HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, UploadPartCommand, type S3Client,
} from '@aws-sdk/client-s3';
import { readFileSync } from 'node:fs';
import { createS3Client, describeS3Error, s3Failure, type S3Options } from '../connectors/s3/bucket.ts';
import { keyProblem, keyRoom, wellFormed, type BucketBinding } from './bucket-keys.ts';
import { TributaryError } from './errors.ts';
import { readBindingsText } from './function-bindings.ts';
import { MAX_BODY_BYTES } from './limits.ts';

/** Bytes of one value, part or body read through a binding (as a request body). */
export const MAX_BUCKET_VALUE_BYTES = MAX_BODY_BYTES;
/** Keys one `delete` and one `list` may take or return (S3's own ceiling). */
export const MAX_BUCKET_LIST = 1000;
/** Bytes of a put's custom metadata, names and values together (S3 allows 2 KB of user metadata). */
export const MAX_CUSTOM_METADATA_BYTES = 2048;
/** Longest any S3 call of a binding waits, whatever the invocation's remaining time. */
const MAX_CALL_MS = 15_000;
const MAX_CACHED_BINDINGS = 4096;
const MAX_HTTP_FIELD_CHARS = 1024;
const MAX_DELIMITER_CHARS = 16;
const MAX_PARTS = 10_000;
const UPLOAD_ID = /^[A-Za-z0-9._~+/=-]{1,1024}$/;
const BINDINGS_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const HEADER_TOKEN = /^[A-Za-z0-9-]{1,128}$/;
const HTTP_FIELDS = ['contentType', 'contentLanguage', 'contentDisposition', 'contentEncoding', 'cacheControl'] as const;

export type BucketOutcome = { ok: true; value: unknown } | { ok: false; error: { name: 'TypeError' | 'RangeError'; message: string; code: string } };

/** Codes a guest may see from a binding (message prefix and `.code`). */
export type BucketCode =
  | 'ERR_BAD_REQUEST' | 'ERR_BUCKET_KEY_INVALID' | 'ERR_TOO_LARGE' | 'ERR_BUCKET_NOT_CONFIGURED' | 'ERR_BUCKET_CALL_LIMIT'
  | 'ERR_S3_UNAVAILABLE' | 'ERR_S3_ACCESS_DENIED' | 'ERR_S3_NO_SUCH_BUCKET' | 'ERR_FN_TIMEOUT' | 'ERR_PRECONDITION_FAILED' | 'ERR_NOT_FOUND' | 'ERR_INTERNAL';

class CallError extends Error {
  readonly code: BucketCode;
  constructor(code: BucketCode, message: string) {
    super(message);
    this.code = code;
  }
}

const fail = (code: BucketCode, message: string): never => {
  throw new CallError(code, message);
};

export interface BucketCallsOptions {
  /** The platform's S3 settings (endpoint, region, credentials); credentials default to the AWS provider chain. */
  s3: Omit<S3Options, 'bucket'>;
  /** Buckets functions may bind (`--binding-buckets`); anything else is refused at deploy and at call time. */
  allowed: readonly string[];
  /** The platform's own `--s3-bucket` (state, deployments): never bindable. */
  platformBucket?: string;
  /** Where a deploy's bindings file is (FunctionRegistry.bindingsPath). */
  bindingsPath(id: string): string;
}

/** Plain data about one object, as the guest builds its R2Object from it. */
export interface ObjectMeta {
  key: string;
  size: number;
  etag: string;
  uploaded: number;
  httpMetadata: Record<string, string>;
  customMetadata: Record<string, string>;
  version?: string;
  range?: { offset: number; length: number };
}

export class BucketCalls {
  private readonly client: S3Client;
  private readonly allowed: Set<string>;
  private readonly options: BucketCallsOptions;
  private readonly cache = new Map<string, Record<string, BucketBinding>>();

  constructor(options: BucketCallsOptions) {
    this.options = options;
    this.allowed = new Set(options.allowed);
    this.client = createS3Client(options.s3);
  }

  /** Why a binding may not name `bucket`, or null. */
  refused(bucket: string): string | null {
    if (bucket === this.options.platformBucket) return `bucket '${bucket}' holds the platform's own state and deployments and cannot be bound`;
    if (!this.allowed.has(bucket)) return `bucket '${bucket}' is not configured for bindings on this platform (the operator lists bindable buckets with --binding-buckets)`;
    return null;
  }

  /** One call from a function's bucket binding; never throws. */
  async call(bindingsId: unknown, name: unknown, op: unknown, args: unknown, limits: unknown): Promise<BucketOutcome> {
    try {
      const binding = this.binding(bindingsId, name);
      const { maxBytes, timeoutMs } = checkLimits(limits);
      const ms = Math.max(1, Math.ceil(Math.min(timeoutMs, MAX_CALL_MS)));
      const signal = AbortSignal.timeout(ms);
      const value = await this.run(binding, op, Array.isArray(args) ? args : fail('ERR_BAD_REQUEST', 'malformed call'), maxBytes, signal, ms);
      return { ok: true, value };
    } catch (error) {
      const e =
        error instanceof CallError ? error
        : error instanceof TributaryError ? new CallError(error.code as BucketCode, error.message)
        : internal(error);
      const name = e.code === 'ERR_TOO_LARGE' || e.code === 'ERR_BUCKET_CALL_LIMIT' ? 'RangeError' : 'TypeError';
      return { ok: false, error: { name, message: `${e.code}: ${e.message}`, code: e.code } };
    }
  }

  close(): void {
    this.client.destroy();
  }

  private binding(bindingsId: unknown, name: unknown): BucketBinding {
    if (typeof bindingsId !== 'string' || !BINDINGS_ID.test(bindingsId) || typeof name !== 'string') fail('ERR_BUCKET_NOT_CONFIGURED', 'this function has no such bucket binding');
    let buckets = this.cache.get(bindingsId as string);
    if (buckets === undefined) {
      let text = '{}';
      try {
        text = readFileSync(this.options.bindingsPath(bindingsId as string), 'utf8');
      } catch {
        // A pruned version's file: no bindings.
      }
      buckets = readBindingsText(text).buckets ?? {};
      if (this.cache.size >= MAX_CACHED_BINDINGS) this.cache.delete(this.cache.keys().next().value!);
      this.cache.set(bindingsId as string, buckets);
    }
    const binding = Object.hasOwn(buckets, name as string) ? buckets[name as string] : undefined;
    if (binding === undefined) return fail('ERR_BUCKET_NOT_CONFIGURED', `this function has no bucket binding '${String(name).slice(0, 64)}'`);
    const refused = this.refused(binding.bucket);
    if (refused !== null) fail('ERR_BUCKET_NOT_CONFIGURED', refused);
    return binding;
  }

  private async run(b: BucketBinding, op: unknown, args: unknown[], maxBytes: number, signal: AbortSignal, ms: number): Promise<unknown> {
    const send = async <T>(what: string, key: string, command: object): Promise<T> => {
      try {
        return (await (this.client.send as (c: unknown, o: unknown) => Promise<unknown>).call(this.client, command, { abortSignal: signal, requestTimeout: ms })) as T;
      } catch (error) {
        if (signal.aborted) fail('ERR_FN_TIMEOUT', `S3 ${what} did not answer before the invocation's deadline`);
        const { name, status } = describeS3Error(error);
        if (name === 'PreconditionFailed' || status === 412 || status === 304) throw new CallError('ERR_PRECONDITION_FAILED', 'precondition failed');
        if (name === 'NoSuchKey' || name === 'NotFound' || (status === 404 && name !== 'NoSuchBucket')) throw new CallError('ERR_NOT_FOUND', 'no such object');
        if (status === 416 || name === 'InvalidRange') fail('ERR_BAD_REQUEST', 'the range is not satisfiable for this object');
        if (name === 'NoSuchUpload') fail('ERR_BAD_REQUEST', 'no such multipart upload for this key');
        if (name === 'InvalidPart' || name === 'InvalidPartOrder' || name === 'EntityTooSmall') fail('ERR_BAD_REQUEST', `multipart upload refused: ${name}`);
        throw s3Failure(what, b.bucket, key, error);
      }
    };
    const Bucket = b.bucket;
    switch (op) {
      case 'head': {
        const key = checkKey(b, args[0]);
        try {
          const out = await send<HeadOut>('HeadObject', key, new HeadObjectCommand({ Bucket, Key: b.prefix + key }));
          return metaOf(key, out, out.ContentLength ?? 0);
        } catch (error) {
          if (error instanceof CallError && error.code === 'ERR_NOT_FOUND') return null;
          throw error;
        }
      }
      case 'get': {
        const key = checkKey(b, args[0]);
        const options = optionsObject(args[1]);
        const range = rangeHeader(options.range);
        const conditions = getConditions(options.onlyIf);
        let out: GetOut;
        try {
          out = await send<GetOut>('GetObject', key, new GetObjectCommand({ Bucket, Key: b.prefix + key, Range: range, ...conditions }));
        } catch (error) {
          if (!(error instanceof CallError)) throw error;
          if (error.code === 'ERR_NOT_FOUND') return null;
          if (error.code === 'ERR_PRECONDITION_FAILED') {
            // As R2: a failed precondition answers the object's metadata without a body.
            const head = await this.run(b, 'head', [key], maxBytes, signal, ms);
            return head === null ? null : { meta: head, body: null };
          }
          throw error;
        }
        const length = out.ContentLength ?? 0;
        if (length > maxBytes) {
          (out.Body as { destroy?: () => void } | undefined)?.destroy?.();
          fail('ERR_TOO_LARGE', `the object's ${range ? 'range' : 'body'} is ${length} bytes: a get may read at most ${maxBytes} more in this invocation (read it in ranges)`);
        }
        const body = out.Body ? await out.Body.transformToByteArray() : new Uint8Array(0);
        if (body.byteLength > maxBytes) fail('ERR_TOO_LARGE', `the object's body exceeds ${maxBytes} bytes`);
        const total = totalSize(out.ContentRange) ?? length;
        const meta = metaOf(key, out, total);
        if (range) meta.range = { offset: rangeStart(out.ContentRange, total, body.byteLength), length: body.byteLength };
        return { meta, body };
      }
      case 'put': {
        const key = checkKey(b, args[0]);
        const body = bytes(args[1], maxBytes);
        const options = optionsObject(args[2]);
        const meta = putMetadata(options);
        const conditions = putConditions(options.onlyIf);
        let out: { ETag?: string; VersionId?: string };
        try {
          out = await send('PutObject', key, new PutObjectCommand({ Bucket, Key: b.prefix + key, Body: body, ContentLength: body.byteLength, ...meta, ...conditions }));
        } catch (error) {
          // As R2: a put whose onlyIf fails answers null and writes nothing.
          if (error instanceof CallError && (error.code === 'ERR_PRECONDITION_FAILED' || (error.code === 'ERR_S3_UNAVAILABLE' && /ConditionalRequestConflict/.test(error.message)))) return null;
          throw error;
        }
        return {
          key, size: body.byteLength, etag: unquote(out.ETag), uploaded: Date.now(), version: out.VersionId,
          httpMetadata: httpOf(meta), customMetadata: meta.Metadata ?? {},
        } satisfies ObjectMeta;
      }
      case 'delete': {
        const list = Array.isArray(args[0]) ? args[0] : fail('ERR_BAD_REQUEST', 'delete takes a key or an array of keys');
        if (list.length > MAX_BUCKET_LIST) fail('ERR_BAD_REQUEST', `delete takes at most ${MAX_BUCKET_LIST} keys`);
        const keys = list.map((k) => checkKey(b, k));
        if (keys.length === 0) return null;
        const out = await send<{ Errors?: Array<{ Code?: string; Key?: string }> }>('DeleteObjects', keys[0], new DeleteObjectsCommand({
          Bucket, Delete: { Objects: keys.map((k) => ({ Key: b.prefix + k })), Quiet: true },
        }));
        const errors = (out.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey');
        if (errors.length > 0) {
          if (errors[0].Code === 'AccessDenied') fail('ERR_S3_ACCESS_DENIED', "the platform's S3 credentials were refused for a delete");
          fail('ERR_S3_UNAVAILABLE', `S3 DeleteObjects failed: ${String(errors[0].Code).slice(0, 100)}`);
        }
        return null;
      }
      case 'list': {
        const options = optionsObject(args[0]);
        const prefix = options.prefix === undefined ? '' : checkKey(b, options.prefix, 'list prefix', true);
        const delimiter = options.delimiter === undefined ? undefined : checkDelimiter(options.delimiter);
        const cursor = options.cursor === undefined ? undefined : checkKey(b, options.cursor, 'list cursor');
        const limit = options.limit === undefined ? MAX_BUCKET_LIST : options.limit;
        if (!Number.isInteger(limit) || (limit as number) < 1 || (limit as number) > MAX_BUCKET_LIST) fail('ERR_BAD_REQUEST', `list limit must be an integer in [1, ${MAX_BUCKET_LIST}]`);
        const out = await send<ListOut>('ListObjectsV2', prefix, new ListObjectsV2Command({
          Bucket, Prefix: b.prefix + prefix, Delimiter: delimiter, MaxKeys: limit as number, StartAfter: cursor === undefined ? undefined : b.prefix + cursor,
        }));
        const objects: ObjectMeta[] = [];
        const delimitedPrefixes: string[] = [];
        let last = '';
        for (const item of out.Contents ?? []) {
          if (item.Key === undefined || !item.Key.startsWith(b.prefix)) continue;
          const key = item.Key.slice(b.prefix.length);
          objects.push({ key, size: item.Size ?? 0, etag: unquote(item.ETag), uploaded: item.LastModified?.getTime() ?? 0, httpMetadata: {}, customMetadata: {} });
          if (key > last) last = key;
        }
        for (const item of out.CommonPrefixes ?? []) {
          if (item.Prefix === undefined || !item.Prefix.startsWith(b.prefix)) continue;
          const p = item.Prefix.slice(b.prefix.length);
          delimitedPrefixes.push(p);
          if (p > last) last = p;
        }
        const truncated = out.IsTruncated === true;
        // The cursor is the last key or prefix returned (StartAfter next time): plain data a function cannot use to leave its prefix.
        return { objects, delimitedPrefixes, truncated, cursor: truncated && last !== '' ? last : undefined };
      }
      case 'mpuCreate': {
        const key = checkKey(b, args[0]);
        const meta = putMetadata(optionsObject(args[1]));
        const out = await send<{ UploadId?: string }>('CreateMultipartUpload', key, new CreateMultipartUploadCommand({ Bucket, Key: b.prefix + key, ...meta }));
        if (!out.UploadId) fail('ERR_S3_UNAVAILABLE', 'S3 returned no upload id');
        return { key, uploadId: out.UploadId };
      }
      case 'mpuPart': {
        const key = checkKey(b, args[0]);
        const uploadId = checkUploadId(args[1]);
        const partNumber = args[2];
        if (!Number.isInteger(partNumber) || (partNumber as number) < 1 || (partNumber as number) > MAX_PARTS) fail('ERR_BAD_REQUEST', `partNumber must be an integer in [1, ${MAX_PARTS}]`);
        const body = bytes(args[3], maxBytes);
        const out = await send<{ ETag?: string }>('UploadPart', key, new UploadPartCommand({
          Bucket, Key: b.prefix + key, UploadId: uploadId, PartNumber: partNumber as number, Body: body, ContentLength: body.byteLength,
        }));
        return { partNumber, etag: unquote(out.ETag) };
      }
      case 'mpuComplete': {
        const key = checkKey(b, args[0]);
        const uploadId = checkUploadId(args[1]);
        const parts = Array.isArray(args[2]) && args[2].length >= 1 && args[2].length <= MAX_PARTS ? args[2] : fail('ERR_BAD_REQUEST', `complete takes 1-${MAX_PARTS} uploaded parts`);
        const checked = parts.map((part) => {
          const p = optionsObject(part);
          if (!Number.isInteger(p.partNumber) || typeof p.etag !== 'string' || p.etag.length > 256 || /[\u0000-\u001f"]/.test(p.etag)) fail('ERR_BAD_REQUEST', 'each uploaded part is {partNumber, etag}');
          return { PartNumber: p.partNumber as number, ETag: `"${p.etag as string}"` };
        });
        await send('CompleteMultipartUpload', key, new CompleteMultipartUploadCommand({ Bucket, Key: b.prefix + key, UploadId: uploadId, MultipartUpload: { Parts: checked } }));
        return this.run(b, 'head', [key], maxBytes, signal, ms);
      }
      case 'mpuAbort': {
        const key = checkKey(b, args[0]);
        const uploadId = checkUploadId(args[1]);
        await send('AbortMultipartUpload', key, new AbortMultipartUploadCommand({ Bucket, Key: b.prefix + key, UploadId: uploadId }));
        return null;
      }
      default:
        return fail('ERR_BAD_REQUEST', 'unknown bucket operation');
    }
  }
}

/** A failure of ours (not S3's, not the tenant's): logged by its name only, answered as ERR_INTERNAL. */
function internal(error: unknown): CallError {
  console.error(`tributary: bucket binding internal error: ${(error as Error)?.name ?? 'Error'} ${String((error as { code?: unknown })?.code ?? '')}`.trim());
  return new CallError('ERR_INTERNAL', 'internal error in the bucket binding');
}

type HeadOut = { ContentLength?: number; ETag?: string; LastModified?: Date; VersionId?: string; Metadata?: Record<string, string> } & Partial<Record<HttpHeader, string>>;
type GetOut = HeadOut & { Body?: { transformToByteArray(): Promise<Uint8Array> }; ContentRange?: string };
type ListOut = {
  Contents?: Array<{ Key?: string; Size?: number; ETag?: string; LastModified?: Date }>;
  CommonPrefixes?: Array<{ Prefix?: string }>;
  IsTruncated?: boolean;
};
type HttpHeader = 'ContentType' | 'ContentLanguage' | 'ContentDisposition' | 'ContentEncoding' | 'CacheControl';

function checkLimits(value: unknown): { maxBytes: number; timeoutMs: number } {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const maxBytes = Number.isSafeInteger(v.maxBytes) ? Math.max(0, Math.min(v.maxBytes as number, MAX_BUCKET_VALUE_BYTES)) : 0;
  const timeoutMs = typeof v.timeoutMs === 'number' && v.timeoutMs > 0 ? v.timeoutMs : 1;
  return { maxBytes, timeoutMs };
}

function checkKey(b: BucketBinding, key: unknown, what = 'key', allowEmpty = false): string {
  if (typeof key !== 'string') return fail('ERR_BAD_REQUEST', `${what} must be a string`);
  if (key === '') return allowEmpty ? '' : fail('ERR_BUCKET_KEY_INVALID', `${what} must not be empty`);
  if (key.length > 4096) fail('ERR_TOO_LARGE', `${what} is too long`);
  const problem = keyProblem(key, what, keyRoom(b));
  if (problem) fail(problem.code, problem.message);
  return key;
}

function checkDelimiter(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_DELIMITER_CHARS || !wellFormed(value) || /[\u0000-\u001f\u007f]/.test(value)) {
    return fail('ERR_BAD_REQUEST', `delimiter must be 1-${MAX_DELIMITER_CHARS} printable characters`);
  }
  return value;
}

function checkUploadId(value: unknown): string {
  return typeof value === 'string' && UPLOAD_ID.test(value) ? value : fail('ERR_BAD_REQUEST', 'invalid uploadId');
}

function optionsObject(value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) return fail('ERR_BAD_REQUEST', 'options must be an object');
  return value as Record<string, unknown>;
}

function bytes(value: unknown, maxBytes: number): Uint8Array {
  if (!(value instanceof Uint8Array)) return fail('ERR_BAD_REQUEST', 'values are strings, ArrayBuffers, ArrayBufferViews, Blobs or ReadableStreams');
  if (value.byteLength > maxBytes) fail('ERR_TOO_LARGE', `the value is ${value.byteLength} bytes: at most ${maxBytes} more may be written in this invocation (one call takes at most ${MAX_BUCKET_VALUE_BYTES}; use a multipart upload for more)`);
  return value;
}

function field(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length > MAX_HTTP_FIELD_CHARS || /[\u0000-\u001f\u007f]/.test(value) || !wellFormed(value)) {
    return fail('ERR_BAD_REQUEST', `${what} must be a string of at most ${MAX_HTTP_FIELD_CHARS} printable characters`);
  }
  return value;
}

/** httpMetadata and customMetadata of a put or multipart upload, as S3 parameters. */
function putMetadata(options: Record<string, unknown>): Partial<Record<HttpHeader, string>> & { Metadata?: Record<string, string> } {
  const out: Partial<Record<HttpHeader, string>> & { Metadata?: Record<string, string> } = {};
  const http = optionsObject(options.httpMetadata);
  for (const name of HTTP_FIELDS) {
    if (http[name] !== undefined) out[(name[0].toUpperCase() + name.slice(1)) as HttpHeader] = field(http[name], `httpMetadata.${name}`);
  }
  if (options.customMetadata !== undefined) {
    const custom = optionsObject(options.customMetadata);
    const metadata: Record<string, string> = {};
    let size = 0;
    for (const [name, value] of Object.entries(custom)) {
      if (!HEADER_TOKEN.test(name)) fail('ERR_BAD_REQUEST', 'customMetadata names are 1-128 of A-Z a-z 0-9 -');
      // S3 carries metadata as HTTP headers: printable ASCII only.
      if (typeof value !== 'string' || !/^[\u0020-\u007e]*$/.test(value)) fail('ERR_BAD_REQUEST', `customMetadata.${name} must be a printable ASCII string`);
      size += name.length + (value as string).length;
      if (size > MAX_CUSTOM_METADATA_BYTES) fail('ERR_TOO_LARGE', `customMetadata exceeds ${MAX_CUSTOM_METADATA_BYTES} bytes`);
      metadata[name.toLowerCase()] = value as string;
    }
    out.Metadata = metadata;
  }
  return out;
}

function httpOf(source: Partial<Record<HttpHeader, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of HTTP_FIELDS) {
    const value = source[(name[0].toUpperCase() + name.slice(1)) as HttpHeader];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

function metaOf(key: string, out: HeadOut, size: number): ObjectMeta {
  return {
    key, size, etag: unquote(out.ETag), uploaded: out.LastModified?.getTime() ?? 0, version: out.VersionId,
    httpMetadata: httpOf(out), customMetadata: { ...(out.Metadata ?? {}) },
  };
}

function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"|"$/g, '');
}

function etagArg(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256 || /[\u0000-\u001f",]/.test(value.replace(/^"|"$/g, ''))) return fail('ERR_BAD_REQUEST', `${what} must be an etag`);
  return value === '*' ? '*' : `"${value.replace(/^"|"$/g, '')}"`;
}

function dateArg(value: unknown, what: string): Date {
  if (typeof value !== 'number' || !Number.isFinite(value)) return fail('ERR_BAD_REQUEST', `${what} must be a Date`);
  return new Date(value);
}

/** R2's onlyIf for get: etagMatches, etagDoesNotMatch, uploadedBefore, uploadedAfter (the guest turns Dates into ms). */
function getConditions(value: unknown): { IfMatch?: string; IfNoneMatch?: string; IfUnmodifiedSince?: Date; IfModifiedSince?: Date } {
  const o = optionsObject(value);
  return {
    ...(o.etagMatches !== undefined ? { IfMatch: etagArg(o.etagMatches, 'onlyIf.etagMatches') } : {}),
    ...(o.etagDoesNotMatch !== undefined ? { IfNoneMatch: etagArg(o.etagDoesNotMatch, 'onlyIf.etagDoesNotMatch') } : {}),
    ...(o.uploadedBefore !== undefined ? { IfUnmodifiedSince: dateArg(o.uploadedBefore, 'onlyIf.uploadedBefore') } : {}),
    ...(o.uploadedAfter !== undefined ? { IfModifiedSince: dateArg(o.uploadedAfter, 'onlyIf.uploadedAfter') } : {}),
  };
}

/** onlyIf for put: S3 conditional writes support If-Match and If-None-Match: * only. */
function putConditions(value: unknown): { IfMatch?: string; IfNoneMatch?: string } {
  const o = optionsObject(value);
  if (o.uploadedBefore !== undefined || o.uploadedAfter !== undefined) fail('ERR_BAD_REQUEST', 'put onlyIf supports etagMatches and etagDoesNotMatch: "*" (S3 conditional writes)');
  if (o.etagDoesNotMatch !== undefined && o.etagDoesNotMatch !== '*') fail('ERR_BAD_REQUEST', 'put onlyIf.etagDoesNotMatch supports "*" only (create if absent)');
  return {
    ...(o.etagMatches !== undefined ? { IfMatch: etagArg(o.etagMatches, 'onlyIf.etagMatches') } : {}),
    ...(o.etagDoesNotMatch !== undefined ? { IfNoneMatch: '*' } : {}),
  };
}

/** R2's range ({offset, length} | {offset} | {suffix}) as an HTTP Range header. */
function rangeHeader(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const o = optionsObject(value);
  const int = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if (o.suffix !== undefined) {
    if (!int(o.suffix) || (o.suffix as number) === 0 || o.offset !== undefined || o.length !== undefined) fail('ERR_BAD_REQUEST', 'range.suffix must be a positive integer, alone');
    return `bytes=-${o.suffix as number}`;
  }
  const offset = o.offset === undefined ? 0 : o.offset;
  if (!int(offset)) fail('ERR_BAD_REQUEST', 'range.offset must be a non-negative integer');
  if (o.length === undefined) return `bytes=${offset as number}-`;
  if (!int(o.length) || (o.length as number) === 0) fail('ERR_BAD_REQUEST', 'range.length must be a positive integer');
  return `bytes=${offset as number}-${(offset as number) + (o.length as number) - 1}`;
}

function totalSize(contentRange: string | undefined): number | undefined {
  const match = /\/(\d+)$/.exec(contentRange ?? '');
  return match ? Number(match[1]) : undefined;
}

function rangeStart(contentRange: string | undefined, total: number, length: number): number {
  const match = /bytes (\d+)-/.exec(contentRange ?? '');
  return match ? Number(match[1]) : Math.max(0, total - length);
}
