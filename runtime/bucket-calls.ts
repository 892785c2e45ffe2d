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
import type { BucketBinding } from './bucket-keys.ts';
import { TributaryError } from './errors.ts';
import { readBindingsText } from './function-bindings.ts';
import {
  bytes, CallError, checkDelimiter, checkKey, checkLimits, checkUploadId, fail, getConditions, httpOf, MAX_BUCKET_LIST, MAX_PARTS, metaOf,
  optionsObject, putConditions, putMetadata, rangeHeader, rangeStart, totalSize, unquote,
  type BucketCode, type BucketOutcome, type GetOut, type HeadOut, type ListOut, type ObjectMeta,
} from './bucket-args.ts';

export type { BucketOutcome, ObjectMeta };

/** Longest any S3 call of a binding waits, whatever the invocation's remaining time. */
const MAX_CALL_MS = 15_000;
const MAX_CACHED_BINDINGS = 4096;
/** Bytes all bucket binding calls in flight may hold in the control plane (values sent, bodies read): ERR_OVERLOADED beyond. */
export const MAX_INFLIGHT_BYTES = 256 * 1024 * 1024;
const BINDINGS_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export interface BucketCallsOptions {
  /** The platform's S3 settings (endpoint, region, credentials); credentials default to the AWS provider chain. */
  s3: Omit<S3Options, 'bucket'>;
  /** Buckets functions may bind (`--user-buckets`); anything else is refused at deploy and at call time. */
  allowed: readonly string[];
  /** The platform's own `--s3-bucket` (state, deployments): never bindable. */
  platformBucket?: string;
  /** Where a deploy's bindings file is (FunctionRegistry.bindingsPath). */
  bindingsPath(id: string): string;
  /** Default MAX_INFLIGHT_BYTES. */
  maxInflightBytes?: number;
}

export class BucketCalls {
  private readonly client: S3Client;
  private readonly allowed: Set<string>;
  private readonly options: BucketCallsOptions;
  private readonly cache = new Map<string, Record<string, BucketBinding>>();
  private inflightBytes = 0;

  constructor(options: BucketCallsOptions) {
    this.options = options;
    this.allowed = new Set(options.allowed);
    this.client = createS3Client(options.s3);
  }

  /** Why a binding may not name `bucket`, or null. */
  refused(bucket: string): string | null {
    if (bucket === this.options.platformBucket) return `bucket '${bucket}' holds the platform's own state and deployments and cannot be bound`;
    if (!this.allowed.has(bucket)) return `bucket '${bucket}' is not configured for bindings on this platform (the operator lists bindable buckets with --user-buckets)`;
    return null;
  }

  /** One call from a function's bucket binding; never throws. */
  async call(bindingsId: unknown, name: unknown, op: unknown, args: unknown, limits: unknown): Promise<BucketOutcome> {
    try {
      const binding = this.binding(bindingsId, name);
      const { maxBytes, timeoutMs } = checkLimits(limits);
      const ms = Math.max(1, Math.ceil(Math.min(timeoutMs, MAX_CALL_MS)));
      const signal = AbortSignal.timeout(ms);
      const list = Array.isArray(args) ? args : fail('ERR_BAD_REQUEST', 'malformed call');
      // What the call may hold in this process: its value, or the body it may read.
      let reserve = op === 'get' ? maxBytes : 0;
      for (const arg of list) if (arg instanceof Uint8Array) reserve += arg.byteLength;
      const ceiling = this.options.maxInflightBytes ?? MAX_INFLIGHT_BYTES;
      if (this.inflightBytes + reserve > ceiling) {
        fail('ERR_OVERLOADED', `bucket binding calls hold ${ceiling} bytes on this control plane: retry shortly`);
      }
      this.inflightBytes += reserve;
      try {
        return { ok: true, value: await this.run(binding, op, list, maxBytes, signal, ms) };
      } finally {
        this.inflightBytes -= reserve;
      }
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
