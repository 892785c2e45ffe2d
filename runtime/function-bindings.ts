/**
 * Per-function `vars` and `secrets`, set at deploy and seen by the function as `env.NAME` (as on
 * Workers). Both are plain strings. Secrets are never shown: API reads list binding *names* only
 * (vars and secrets alike), nothing is logged or put in metrics or status. Each deploy with
 * bindings writes them to a file of its own, `<data-dir>/bindings/<id>.json` (mode 0600, `id`
 * random, so it says nothing about the values), which the host reads when it loads the version;
 * it is deleted with the versions that use it. Calls never carry them. With shared deployments
 * they also travel through the bucket, secrets sealed with the operator's key
 * (connectors/s3/shared-bindings.ts), and each control plane writes its own file from there.
 */
import { randomUUID } from 'node:crypto';
import { TributaryError } from './errors.ts';
import { parseBucketBinding, type BucketBinding } from './bucket-keys.ts';

/** Bindings per function (vars and secrets together). */
export const MAX_BINDINGS = 64;
/** Bytes of one value (Workers allows 5 KiB per secret). */
export const MAX_BINDING_VALUE_BYTES = 5 * 1024;
/** Bytes of all names and values of one function. */
export const MAX_BINDINGS_BYTES = 64 * 1024;
const NAME_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Names the platform binds itself. */
const RESERVED = new Set(['STATE', '__proto__']);

export interface Bindings {
  vars: Record<string, string>;
  secrets: Record<string, string>;
  /** Bucket bindings (`env.NAME` is an R2-like bucket; runtime/bucket-calls.ts); absent when none. */
  buckets?: Record<string, BucketBinding>;
}

/** Bucket bindings per function (they count towards MAX_BINDINGS too). */
export const MAX_BUCKET_BINDINGS = 16;

/** What API reads show of a version's bindings: names only. */
export interface BindingNames {
  vars: string[];
  secrets: string[];
  /** Bucket bindings with their bucket and prefix (not secret: they name where data goes). */
  buckets?: Array<{ name: string } & BucketBinding>;
}

function bad(message: string): TributaryError {
  return new TributaryError('ERR_BAD_REQUEST', message);
}

function record(value: unknown, what: string, seen: Set<string>, size: { bytes: number }): Record<string, string> {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw bad(`${what} must be an object of name: string`);
  const out: Record<string, string> = Object.create(null);
  for (const [name, item] of Object.entries(value as Record<string, unknown>)) {
    if (!NAME_PATTERN.test(name)) throw bad(`${what}: invalid binding name '${name.slice(0, 80)}' (use [A-Za-z_][A-Za-z0-9_]{0,63})`);
    if (RESERVED.has(name)) throw bad(`${what}: '${name}' is reserved by the platform`);
    if (seen.has(name)) throw bad(`binding '${name}' is both a var and a secret`);
    if (typeof item !== 'string') throw bad(`${what}.${name} must be a string`);
    const bytes = Buffer.byteLength(item);
    if (bytes > MAX_BINDING_VALUE_BYTES) throw bad(`${what}.${name} is ${bytes} bytes, over the limit of ${MAX_BINDING_VALUE_BYTES}`);
    size.bytes += bytes + name.length;
    seen.add(name);
    if (seen.size > MAX_BINDINGS) throw bad(`more than ${MAX_BINDINGS} bindings`);
    if (size.bytes > MAX_BINDINGS_BYTES) throw bad(`bindings take more than ${MAX_BINDINGS_BYTES} bytes`);
    out[name] = item;
  }
  return out;
}

function bucketRecord(value: unknown, seen: Set<string>): Record<string, BucketBinding> | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) throw bad('bindings must be an object of name: {"bucket": "...", "prefix": "..."}');
  const out: Record<string, BucketBinding> = Object.create(null);
  let count = 0;
  for (const [name, item] of Object.entries(value as Record<string, unknown>)) {
    if (!NAME_PATTERN.test(name)) throw bad(`bindings: invalid binding name '${name.slice(0, 80)}' (use [A-Za-z_][A-Za-z0-9_]{0,63})`);
    if (RESERVED.has(name)) throw bad(`bindings: '${name}' is reserved by the platform`);
    if (seen.has(name)) throw bad(`binding '${name}' is defined twice (vars, secrets and bindings share one namespace)`);
    if (++count > MAX_BUCKET_BINDINGS) throw bad(`more than ${MAX_BUCKET_BINDINGS} bucket bindings`);
    const parsed = parseBucketBinding(item);
    if (typeof parsed === 'string') throw bad(`bindings.${name}: ${parsed}`);
    seen.add(name);
    if (seen.size > MAX_BINDINGS) throw bad(`more than ${MAX_BINDINGS} bindings`);
    out[name] = parsed;
  }
  return count === 0 ? undefined : out;
}

/**
 * Checks `vars`, `secrets` and bucket `bindings` as a deploy request sent them; ERR_BAD_REQUEST
 * names what is wrong. Whether a bound bucket is one the operator allows is the deploy's check
 * (FunctionService), not this one.
 */
export function parseBindings(vars: unknown, secrets: unknown, buckets?: unknown): Bindings | undefined {
  const seen = new Set<string>();
  const size = { bytes: 0 };
  const bindings: Bindings = { vars: record(vars, 'vars', seen, size), secrets: record(secrets, 'secrets', seen, size) };
  const bound = bucketRecord(buckets, seen);
  if (bound) bindings.buckets = bound;
  return seen.size === 0 ? undefined : bindings;
}

export function bindingNames(bindings: Bindings): BindingNames {
  const names: BindingNames = { vars: Object.keys(bindings.vars).sort(), secrets: Object.keys(bindings.secrets).sort() };
  if (bindings.buckets) names.buckets = Object.keys(bindings.buckets).sort().map((name) => ({ name, ...bindings.buckets![name] }));
  return names;
}

/** A fresh id for one deploy's bindings file. */
export function newBindingsId(): string {
  return randomUUID();
}

/** Parses a bindings file as the host reads it; anything malformed reads as no bindings. */
export function readBindingsText(text: string): Bindings {
  try {
    const parsed = JSON.parse(text) as { vars?: unknown; secrets?: unknown; buckets?: unknown };
    return parseBindings(parsed.vars, parsed.secrets, parsed.buckets) ?? { vars: {}, secrets: {} };
  } catch {
    return { vars: {}, secrets: {} };
  }
}
