/**
 * Bucket binding calls' arguments, checked (runtime/bucket-calls.ts makes the S3 requests): every
 * value here comes from tenant code. Keys by runtime/bucket-keys.ts; metadata by size and
 * characters; ranges, conditions, upload ids and parts by shape. A problem throws a CallError
 * with a stable code, which the caller turns into the guest's outcome.
 */
import { MAX_BODY_BYTES } from './limits.ts';
import { keyProblem, keyRoom, wellFormed, type BucketBinding } from './bucket-keys.ts';

/** Bytes of one value, part or body read through a binding (as a request body). */
export const MAX_BUCKET_VALUE_BYTES = MAX_BODY_BYTES;
/** Keys one `delete` and one `list` may take or return (S3's own ceiling). */
export const MAX_BUCKET_LIST = 1000;
/** Bytes of a put's custom metadata, names and values together (S3 allows 2 KB of user metadata). */
export const MAX_CUSTOM_METADATA_BYTES = 2048;
const MAX_HTTP_FIELD_CHARS = 1024;
const MAX_DELIMITER_CHARS = 16;
/** Parts of one multipart upload (S3 limit). */
export const MAX_PARTS = 10_000;
const UPLOAD_ID = /^[A-Za-z0-9._~+/=-]{1,1024}$/;
const HEADER_TOKEN = /^[A-Za-z0-9-]{1,128}$/;
const HTTP_FIELDS = ['contentType', 'contentLanguage', 'contentDisposition', 'contentEncoding', 'cacheControl'] as const;
export type BucketOutcome = { ok: true; value: unknown } | { ok: false; error: { name: 'TypeError' | 'RangeError'; message: string; code: string } };

/** Codes a guest may see from a binding (message prefix and `.code`). */
export type BucketCode =
  | 'ERR_BAD_REQUEST' | 'ERR_BUCKET_KEY_INVALID' | 'ERR_TOO_LARGE' | 'ERR_BUCKET_NOT_CONFIGURED' | 'ERR_BUCKET_CALL_LIMIT'
  | 'ERR_S3_UNAVAILABLE' | 'ERR_S3_ACCESS_DENIED' | 'ERR_S3_NO_SUCH_BUCKET' | 'ERR_FN_TIMEOUT' | 'ERR_PRECONDITION_FAILED' | 'ERR_NOT_FOUND' | 'ERR_INTERNAL' | 'ERR_OVERLOADED';

export class CallError extends Error {
  readonly code: BucketCode;
  constructor(code: BucketCode, message: string) {
    super(message);
    this.code = code;
  }
}

export const fail = (code: BucketCode, message: string): never => {
  throw new CallError(code, message);
};

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

export type HeadOut = { ContentLength?: number; ETag?: string; LastModified?: Date; VersionId?: string; Metadata?: Record<string, string> } & Partial<Record<HttpHeader, string>>;
export type GetOut = HeadOut & { Body?: { transformToByteArray(): Promise<Uint8Array> }; ContentRange?: string };
export type ListOut = {
  Contents?: Array<{ Key?: string; Size?: number; ETag?: string; LastModified?: Date }>;
  CommonPrefixes?: Array<{ Prefix?: string }>;
  IsTruncated?: boolean;
};
export type HttpHeader = 'ContentType' | 'ContentLanguage' | 'ContentDisposition' | 'ContentEncoding' | 'CacheControl';

export function checkLimits(value: unknown): { maxBytes: number; timeoutMs: number } {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>;
  const maxBytes = Number.isSafeInteger(v.maxBytes) ? Math.max(0, Math.min(v.maxBytes as number, MAX_BUCKET_VALUE_BYTES)) : 0;
  const timeoutMs = typeof v.timeoutMs === 'number' && v.timeoutMs > 0 ? v.timeoutMs : 1;
  return { maxBytes, timeoutMs };
}

export function checkKey(b: BucketBinding, key: unknown, what = 'key', allowEmpty = false): string {
  if (typeof key !== 'string') return fail('ERR_BAD_REQUEST', `${what} must be a string`);
  if (key === '') return allowEmpty ? '' : fail('ERR_BUCKET_KEY_INVALID', `${what} must not be empty`);
  if (key.length > 4096) fail('ERR_TOO_LARGE', `${what} is too long`);
  const problem = keyProblem(key, what, keyRoom(b));
  if (problem) fail(problem.code, problem.message);
  return key;
}

export function checkDelimiter(value: unknown): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_DELIMITER_CHARS || !wellFormed(value) || /[\u0000-\u001f\u007f]/.test(value)) {
    return fail('ERR_BAD_REQUEST', `delimiter must be 1-${MAX_DELIMITER_CHARS} printable characters`);
  }
  return value;
}

export function checkUploadId(value: unknown): string {
  return typeof value === 'string' && UPLOAD_ID.test(value) ? value : fail('ERR_BAD_REQUEST', 'invalid uploadId');
}

export function optionsObject(value: unknown): Record<string, unknown> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) return fail('ERR_BAD_REQUEST', 'options must be an object');
  return value as Record<string, unknown>;
}

export function bytes(value: unknown, maxBytes: number): Uint8Array {
  if (!(value instanceof Uint8Array)) return fail('ERR_BAD_REQUEST', 'values are strings, ArrayBuffers, ArrayBufferViews, Blobs or ReadableStreams');
  if (value.byteLength > maxBytes) fail('ERR_TOO_LARGE', `the value is ${value.byteLength} bytes: at most ${maxBytes} more may be written in this invocation (one call takes at most ${MAX_BUCKET_VALUE_BYTES}; use a multipart upload for more)`);
  return value;
}

export function field(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length > MAX_HTTP_FIELD_CHARS || /[\u0000-\u001f\u007f]/.test(value) || !wellFormed(value)) {
    return fail('ERR_BAD_REQUEST', `${what} must be a string of at most ${MAX_HTTP_FIELD_CHARS} printable characters`);
  }
  return value;
}

/** httpMetadata and customMetadata of a put or multipart upload, as S3 parameters. */
export function putMetadata(options: Record<string, unknown>): Partial<Record<HttpHeader, string>> & { Metadata?: Record<string, string> } {
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

export function httpOf(source: Partial<Record<HttpHeader, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of HTTP_FIELDS) {
    const value = source[(name[0].toUpperCase() + name.slice(1)) as HttpHeader];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

export function metaOf(key: string, out: HeadOut, size: number): ObjectMeta {
  return {
    key, size, etag: unquote(out.ETag), uploaded: out.LastModified?.getTime() ?? 0, version: out.VersionId,
    httpMetadata: httpOf(out), customMetadata: { ...(out.Metadata ?? {}) },
  };
}

export function unquote(etag: string | undefined): string {
  return (etag ?? '').replace(/^W\//, '').replace(/^"|"$/g, '');
}

export function etagArg(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256 || /[\u0000-\u001f",]/.test(value.replace(/^"|"$/g, ''))) return fail('ERR_BAD_REQUEST', `${what} must be an etag`);
  return value === '*' ? '*' : `"${value.replace(/^"|"$/g, '')}"`;
}

export function dateArg(value: unknown, what: string): Date {
  if (typeof value !== 'number' || !Number.isFinite(value)) return fail('ERR_BAD_REQUEST', `${what} must be a Date`);
  return new Date(value);
}

/** R2's onlyIf for get: etagMatches, etagDoesNotMatch, uploadedBefore, uploadedAfter (the guest turns Dates into ms). */
export function getConditions(value: unknown): { IfMatch?: string; IfNoneMatch?: string; IfUnmodifiedSince?: Date; IfModifiedSince?: Date } {
  const o = optionsObject(value);
  return {
    ...(o.etagMatches !== undefined ? { IfMatch: etagArg(o.etagMatches, 'onlyIf.etagMatches') } : {}),
    ...(o.etagDoesNotMatch !== undefined ? { IfNoneMatch: etagArg(o.etagDoesNotMatch, 'onlyIf.etagDoesNotMatch') } : {}),
    ...(o.uploadedBefore !== undefined ? { IfUnmodifiedSince: dateArg(o.uploadedBefore, 'onlyIf.uploadedBefore') } : {}),
    ...(o.uploadedAfter !== undefined ? { IfModifiedSince: dateArg(o.uploadedAfter, 'onlyIf.uploadedAfter') } : {}),
  };
}

/** onlyIf for put: S3 conditional writes support If-Match and If-None-Match: * only. */
export function putConditions(value: unknown): { IfMatch?: string; IfNoneMatch?: string } {
  const o = optionsObject(value);
  if (o.uploadedBefore !== undefined || o.uploadedAfter !== undefined) fail('ERR_BAD_REQUEST', 'put onlyIf supports etagMatches and etagDoesNotMatch: "*" (S3 conditional writes)');
  if (o.etagDoesNotMatch !== undefined && o.etagDoesNotMatch !== '*') fail('ERR_BAD_REQUEST', 'put onlyIf.etagDoesNotMatch supports "*" only (create if absent)');
  return {
    ...(o.etagMatches !== undefined ? { IfMatch: etagArg(o.etagMatches, 'onlyIf.etagMatches') } : {}),
    ...(o.etagDoesNotMatch !== undefined ? { IfNoneMatch: '*' } : {}),
  };
}

/** R2's range ({offset, length} | {offset} | {suffix}) as an HTTP Range header. */
export function rangeHeader(value: unknown): string | undefined {
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

export function totalSize(contentRange: string | undefined): number | undefined {
  const match = /\/(\d+)$/.exec(contentRange ?? '');
  return match ? Number(match[1]) : undefined;
}

export function rangeStart(contentRange: string | undefined, total: number, length: number): number {
  const match = /bytes (\d+)-/.exec(contentRange ?? '');
  return match ? Number(match[1]) : Math.max(0, total - length);
}
