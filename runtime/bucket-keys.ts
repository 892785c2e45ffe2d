/**
 * What a bucket binding may name: its configuration (bucket, prefix), set at deploy, and the keys
 * tenant code passes at run time. A binding can never leave its bucket and prefix: the object key
 * sent to S3 is always `prefix + key`, and a key is refused (stable code ERR_BUCKET_KEY_INVALID)
 * unless it is plain — no `.`/`..` segment, no leading `/` or `\`, no percent-encoded octet, no
 * control character, no lone surrogate, in Unicode NFC and unchanged in meaning under NFKC (so
 * fullwidth `．．／` cannot turn into `../` in a tool downstream), at most MAX_OBJECT_KEY_BYTES
 * bytes with the prefix. S3 itself never resolves `..`; these rules keep keys unambiguous for
 * every reader of the bucket (file-system backed stores, sync tools, browsers).
 */

/** S3's ceiling on a whole object key, in UTF-8 bytes. */
export const MAX_OBJECT_KEY_BYTES = 1024;
/** A binding's prefix, in UTF-8 bytes (what is left is the keys' room). */
export const MAX_PREFIX_BYTES = 512;
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
// C0, DEL, C1, and the Unicode line/paragraph separators and BOM.
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff]/;
const PERCENT_OCTET = /%[0-9A-Fa-f]{2}/;

export type KeyProblem = { code: 'ERR_BUCKET_KEY_INVALID' | 'ERR_TOO_LARGE'; message: string };

export interface BucketBinding {
  bucket: string;
  /** '' or ends with '/'. */
  prefix: string;
}

/** No lone surrogates (String.prototype.isWellFormed, typed here for the ES2022 lib). */
export function wellFormed(text: string): boolean {
  return (text as unknown as { isWellFormed(): boolean }).isWellFormed();
}

function utf8Bytes(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Why `text` is not a plain relative key (or key prefix), or null. `what` names it in messages. */
export function keyProblem(text: string, what = 'key', roomBytes = MAX_OBJECT_KEY_BYTES): KeyProblem | null {
  const bad = (why: string): KeyProblem => ({ code: 'ERR_BUCKET_KEY_INVALID', message: `${what} ${why}` });
  if (!wellFormed(text)) return bad('contains a lone surrogate');
  if (CONTROL.test(text)) return bad('contains a control character');
  if (text.startsWith('/') || text.startsWith('\\')) return bad('must be relative (no leading / or \\)');
  if (text.includes('\\')) return bad('must not contain a backslash');
  if (PERCENT_OCTET.test(text)) return bad('must not contain percent-encoded octets (%XX): send the decoded key');
  if (text.normalize('NFC') !== text) return bad('must be in Unicode NFC');
  for (const form of [text, text.normalize('NFKC')]) {
    if (form.split('/').some((segment) => segment === '.' || segment === '..')) return bad("must not have '.' or '..' segments");
    if (form !== text && (form.includes('/') !== text.includes('/') || form.split('/').length !== text.split('/').length || form.includes('\\') || form.includes('%'))) {
      return bad('changes its path structure under Unicode compatibility normalization (NFKC)');
    }
  }
  const bytes = utf8Bytes(text);
  if (bytes > roomBytes) return { code: 'ERR_TOO_LARGE', message: `${what} is ${bytes} bytes: at most ${roomBytes} with this binding's prefix` };
  return null;
}

/** Bytes a key may take under `prefix`. */
export function keyRoom(binding: BucketBinding): number {
  return MAX_OBJECT_KEY_BYTES - utf8Bytes(binding.prefix);
}

/**
 * A binding's configuration as a deploy sent it (`{"bucket": "...", "prefix": "..."}`), checked:
 * an S3 bucket name, and a prefix that obeys the key rules (a trailing `/` is added). Returns the
 * problem as a sentence, or the binding.
 */
export function parseBucketBinding(value: unknown): BucketBinding | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be {"bucket": "...", "prefix"?: "..."}';
  const { bucket, prefix, ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest);
  if (extra.length > 0) return `unknown field '${extra[0].slice(0, 40)}' (use bucket, prefix)`;
  if (typeof bucket !== 'string' || !BUCKET_NAME.test(bucket) || bucket.includes('..')) return 'bucket must be an S3 bucket name (3-63 of a-z 0-9 . -)';
  if (prefix !== undefined && typeof prefix !== 'string') return 'prefix must be a string';
  let p = (prefix ?? '') as string;
  while (p.endsWith('/')) p = p.slice(0, -1);
  if (p !== '') {
    const problem = keyProblem(p, 'prefix', MAX_PREFIX_BYTES);
    if (problem) return problem.message;
    p += '/';
  }
  return { bucket, prefix: p };
}
