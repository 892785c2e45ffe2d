/**
 * The one place Tributary talks to S3 (`@aws-sdk/client-s3`): a bucket with the handful of
 * operations state and shared deployments need, and the one place AWS SDK errors are translated
 * into Tributary's codes — `ERR_S3_CONFIG` when opening (naming the setting to fix),
 * `ERR_S3_UNAVAILABLE` afterwards (the caller's batch or deploy fails and is retried).
 *
 * Works with AWS S3 and S3-compatible stores (S3Proxy in tests, MinIO, R2...). With an endpoint
 * set, requests use path-style addressing (`http://host/bucket/key`), which self-hosted stores need.
 */
import { Agent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { TributaryError } from '../../runtime/errors.ts';
import { mapLimit } from './map-limit.ts';

export interface S3Options {
  /** The bucket holding state and deployments (`--s3-bucket`). It must exist: Tributary never creates it. */
  bucket: string;
  /** An S3-compatible endpoint (`--s3-endpoint`), e.g. http://127.0.0.1:9000; default: AWS S3 for the region. */
  endpoint?: string;
  /** Default: AWS_REGION, then AWS_DEFAULT_REGION, then us-east-1. */
  region?: string;
  /**
   * Default: the AWS SDK's provider chain — AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY
   * (/ AWS_SESSION_TOKEN), then AWS_PROFILE and the shared config files, then instance roles.
   */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
}

/** Requests in flight per bucket: S3 serves many in parallel; the SDK's default of 50 sockets is the ceiling. */
const MAX_SOCKETS = 128;
/** A request that gets no connection within this time fails (and is retried by the SDK, 3 attempts in all). */
const CONNECTION_TIMEOUT_MS = 3000;
/** A request that gets no response within this time fails: a hung store must not hang a partition forever. */
const REQUEST_TIMEOUT_MS = 15_000;
/** DeleteObjects takes at most 1000 keys per request (S3 API limit). */
const DELETE_BATCH = 1000;

export class Bucket {
  readonly name: string;
  /** For messages: the endpoint as configured, or `AWS S3 (<region>)`. */
  readonly where: string;
  private readonly client: S3Client;

  private constructor(options: S3Options) {
    this.name = options.bucket;
    this.where = whereOf(options);
    this.client = createS3Client(options);
  }

  /**
   * Connects and checks the bucket answers a listing with these credentials. Throws
   * ERR_S3_CONFIG naming what to fix: the bucket (`--s3-bucket`), the credentials
   * (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) or the endpoint (`--s3-endpoint`).
   *
   * @example
   * const bucket = await Bucket.open({ endpoint: 'http://127.0.0.1:9000', bucket: 'tributary' });
   */
  static async open(options: S3Options): Promise<Bucket> {
    if (!options.bucket) throw new TributaryError('ERR_S3_CONFIG', '--s3-bucket is required when S3 is configured');
    if (options.endpoint !== undefined && !/^https?:\/\/[^/]+/.test(options.endpoint)) {
      throw new TributaryError('ERR_S3_CONFIG', `--s3-endpoint '${options.endpoint}' is not an http(s) URL`);
    }
    const bucket = new Bucket(options);
    try {
      await bucket.client.send(new ListObjectsV2Command({ Bucket: bucket.name, MaxKeys: 1 }));
    } catch (error) {
      bucket.close();
      throw bucket.configError(error);
    }
    return bucket;
  }

  private configError(error: unknown): TributaryError {
    const { name, code, status, message } = describe(error);
    const cause = { cause: error };
    const at = `at ${this.where}`;
    if (name === 'NoSuchBucket' || (status === 404 && name !== 'NoSuchKey')) {
      return new TributaryError('ERR_S3_CONFIG', `--s3-bucket '${this.name}' does not exist ${at}: create it first (Tributary never creates buckets)`, cause);
    }
    if (name === 'InvalidAccessKeyId') {
      return new TributaryError('ERR_S3_CONFIG', `credentials rejected by ${this.where}: unknown access key (AWS_ACCESS_KEY_ID)`, cause);
    }
    if (name === 'SignatureDoesNotMatch') {
      return new TributaryError('ERR_S3_CONFIG', `credentials rejected by ${this.where}: the secret key does not match the access key (AWS_SECRET_ACCESS_KEY)`, cause);
    }
    if (name === 'AccessDenied' || name === 'InvalidToken' || name === 'ExpiredToken' || status === 403) {
      return new TributaryError('ERR_S3_CONFIG', `credentials rejected by ${this.where} for --s3-bucket '${this.name}': ${name} (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN)`, cause);
    }
    if (name === 'CredentialsProviderError') {
      return new TributaryError('ERR_S3_CONFIG', `no S3 credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE)`, cause);
    }
    if (code !== undefined || name === 'TimeoutError' || status === undefined) {
      return new TributaryError('ERR_S3_CONFIG', `cannot reach --s3-endpoint '${this.where}': ${code ?? message}`, cause);
    }
    return new TributaryError('ERR_S3_CONFIG', `--s3-bucket '${this.name}' ${at} refused a listing: ${name}: ${message}`, cause);
  }

  private unavailable(op: string, key: string, error: unknown): TributaryError {
    return s3Failure(op, this.name, key, error);
  }

  /**
   * A bucket used on a tenant's behalf (an S3 sink): no check at creation, so a store that is down
   * delays the work instead of failing the deploy; every failure carries its code
   * (ERR_S3_UNAVAILABLE, ERR_S3_ACCESS_DENIED, ERR_S3_NO_SUCH_BUCKET).
   */
  static unchecked(options: S3Options): Bucket {
    return new Bucket(options);
  }

  /** The object's bytes, or null when it does not exist. */
  async get(key: string): Promise<Uint8Array | null> {
    try {
      const out = await this.client.send(new GetObjectCommand({ Bucket: this.name, Key: key }));
      return await out.Body!.transformToByteArray();
    } catch (error) {
      if (describe(error).name === 'NoSuchKey') return null;
      throw this.unavailable('GetObject', key, error);
    }
  }

  async put(key: string, body: string | Uint8Array, contentType = 'application/octet-stream'): Promise<void> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: body, ContentType: contentType }));
    } catch (error) {
      throw this.unavailable('PutObject', key, error);
    }
  }

  /**
   * Creates the object only if no object has that key (`If-None-Match: *`, S3 conditional
   * writes); false when one exists. This is the compare-and-set shared deployments order on.
   */
  async putIfAbsent(key: string, body: string | Uint8Array, contentType = 'application/json'): Promise<boolean> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.name, Key: key, Body: body, ContentType: contentType, IfNoneMatch: '*' }));
      return true;
    } catch (error) {
      const { name, status } = describe(error);
      // 409 ConditionalRequestConflict: a concurrent conditional write to the same key is in flight.
      if (name === 'PreconditionFailed' || status === 412 || status === 409) return false;
      throw this.unavailable('PutObject (If-None-Match)', key, error);
    }
  }

  /** Deletes keys (missing ones are fine), in batches of 1000. */
  async delete(keys: string[]): Promise<void> {
    const batches: string[][] = [];
    for (let i = 0; i < keys.length; i += DELETE_BATCH) batches.push(keys.slice(i, i + DELETE_BATCH));
    await mapLimit(batches, 4, async (batch) => {
      let errors;
      try {
        const out = await this.client.send(
          new DeleteObjectsCommand({ Bucket: this.name, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }),
        );
        errors = out.Errors?.filter((e) => e.Code !== 'NoSuchKey') ?? [];
      } catch (error) {
        throw this.unavailable('DeleteObjects', batch[0], error);
      }
      if (errors.length > 0) {
        throw new TributaryError('ERR_S3_UNAVAILABLE', `S3 DeleteObjects s3://${this.name}/${errors[0].Key} failed: ${errors[0].Code}: ${errors[0].Message}`);
      }
    });
  }

  /** Every key under `prefix` (after `startAfter`, if given), in S3's order (UTF-8 binary). */
  async list(prefix: string, startAfter?: string): Promise<string[]> {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      let out;
      try {
        out = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, ContinuationToken: token, StartAfter: token ? undefined : startAfter }),
        );
      } catch (error) {
        throw this.unavailable('ListObjectsV2', prefix, error);
      }
      for (const object of out.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
      token = out.IsTruncated ? out.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys;
  }

  /** One page of keys under `prefix` after `startAfter`, with their sizes, in S3's order. */
  async listPage(prefix: string, options: { startAfter?: string; maxKeys?: number } = {}): Promise<{ objects: Array<{ key: string; size: number }>; truncated: boolean }> {
    let out;
    try {
      out = await this.client.send(new ListObjectsV2Command({ Bucket: this.name, Prefix: prefix, StartAfter: options.startAfter || undefined, MaxKeys: options.maxKeys }));
    } catch (error) {
      throw this.unavailable('ListObjectsV2', prefix, error);
    }
    const objects: Array<{ key: string; size: number }> = [];
    for (const object of out.Contents ?? []) if (object.Key !== undefined) objects.push({ key: object.Key, size: object.Size ?? 0 });
    return { objects, truncated: out.IsTruncated === true };
  }

  close(): void {
    this.client.destroy();
  }
}

function regionOf(options: Pick<S3Options, 'region'>): string {
  return options.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? 'us-east-1';
}

/** For messages: the endpoint as configured, or `AWS S3 (<region>)` — never credentials. */
export function whereOf(options: Pick<S3Options, 'endpoint' | 'region'>): string {
  return options.endpoint ?? `AWS S3 (${regionOf(options)})`;
}

/** The platform's S3 client for these settings (bucket bindings and S3 sinks use it too, on any bucket). */
export function createS3Client(options: Omit<S3Options, 'bucket'>): S3Client {
  return new S3Client({
    region: regionOf(options),
    endpoint: options.endpoint,
    forcePathStyle: options.endpoint !== undefined,
    credentials: options.credentials,
    maxAttempts: 3,
    // Checksums only where the API requires them: some S3-compatible stores reject the SDK's
    // default CRC32 trailers, and our objects are small.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: CONNECTION_TIMEOUT_MS,
      requestTimeout: REQUEST_TIMEOUT_MS,
      httpAgent: new Agent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
    },
  });
}

/**
 * An S3 call's failure as Tributary's code, for calls made on tenants' behalf (bucket bindings,
 * S3 sinks): ERR_S3_ACCESS_DENIED when the credentials are refused, ERR_S3_NO_SUCH_BUCKET,
 * else ERR_S3_UNAVAILABLE (down, timeout, throttled). The message names the operation and the
 * object, never the credentials.
 */
export function s3Failure(op: string, bucket: string, key: string, error: unknown): TributaryError {
  const { name, code, status, message } = describe(error);
  const cause = { cause: error };
  const at = `S3 ${op} s3://${bucket}/${key}`.slice(0, 400);
  if (name === 'NoSuchBucket') return new TributaryError('ERR_S3_NO_SUCH_BUCKET', `${at} failed: the bucket does not exist`, cause);
  if (['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'InvalidToken', 'ExpiredToken', 'CredentialsProviderError'].includes(name) || status === 403) {
    return new TributaryError('ERR_S3_ACCESS_DENIED', `${at} failed: the platform's S3 credentials were refused (${name})`, cause);
  }
  const why = code ?? (name && name !== 'Error' ? `${name}: ${message}` : message);
  return new TributaryError('ERR_S3_UNAVAILABLE', `${at} failed: ${why}`.slice(0, 500), cause);
}

/** describe(), for callers outside this file. */
export function describeS3Error(error: unknown): { name: string; code: string | undefined; status: number | undefined; message: string } {
  return describe(error);
}

/** What an AWS SDK (or socket) error says about itself, whatever its shape. */
function describe(error: unknown): { name: string; code: string | undefined; status: number | undefined; message: string } {
  const e = (error ?? {}) as { name?: string; code?: string; message?: string; $metadata?: { httpStatusCode?: number }; errors?: Array<{ code?: string }> };
  // Connection failures arrive as plain Errors with a socket code (AggregateError for happy eyeballs).
  const code = typeof e.code === 'string' ? e.code : e.errors?.find((inner) => typeof inner.code === 'string')?.code;
  return { name: String(e.name ?? 'Error'), code, status: e.$metadata?.httpStatusCode, message: String(e.message ?? error) };
}
