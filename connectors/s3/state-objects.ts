/**
 * How state is laid out in the bucket. Everything lives under `state/<scope>/`, where the scope is
 * the id of the log whose offsets the state goes with (see S3StateStore):
 *
 *   state/<scope>/live/<graph>/<node>/<partition>/<name>          one object per key: the committed value
 *   state/<scope>/staged/<graph>/<node>/<partition>/<epoch>-<id>.json   one batch's writes, before and until published
 *
 * `<name>` is the key itself when it is plain (1-200 of [A-Za-z0-9_.-], starting with a letter or
 * digit), else `~` and the SHA-256 of its UTF-8 bytes: keys are up to 1024 characters of anything,
 * while S3 keys stop at 1024 bytes and filesystem-backed stores at 255 bytes per path segment.
 * `~` cannot start a plain name, so the two forms never collide.
 *
 * A live object's body is one JSON line `{"key": ..., "type": "text"|"bytes"}` and then the raw
 * value bytes (UTF-8 for text): the key is always recoverable, and `head -1` shows what it is.
 */
import { createHash } from 'node:crypto';
import type { StateWrite } from '../transport.ts';
import type { Bucket } from './bucket.ts';
import { mapLimit } from './map-limit.ts';

const PLAIN_KEY = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$/;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function livePrefix(scope: string, namespace: string, partition: number): string {
  return `state/${scope}/live/${namespace}/${partition}/`;
}

export function liveKey(scope: string, namespace: string, partition: number, key: string): string {
  return livePrefix(scope, namespace, partition) + (PLAIN_KEY.test(key) ? key : `~${createHash('sha256').update(key).digest('hex')}`);
}

/** Prefix of every live object of a scope whose namespace starts with `namespacePrefix`. */
export function liveNamespacePrefix(scope: string, namespacePrefix: string): string {
  return `state/${scope}/live/${namespacePrefix}`;
}

/** Prefix of every staged object of a scope whose namespace starts with `namespacePrefix`. */
export function stagedPrefix(scope: string, namespacePrefix = ''): string {
  return `state/${scope}/staged/${namespacePrefix}`;
}

export function stagedKey(scope: string, namespace: string, partition: number, name: string): string {
  return `${stagedPrefix(scope, namespace)}/${partition}/${name}.json`;
}

/** Parses `state/<scope>/staged/<graph>/<node>/<partition>/<file>` back into its parts. */
export function parseStagedKey(scope: string, key: string): { namespace: string; partition: number } | null {
  const rest = key.slice(stagedPrefix(scope).length).split('/');
  if (!key.startsWith(stagedPrefix(scope)) || rest.length !== 4 || !/^\d+$/.test(rest[2])) return null;
  return { namespace: `${rest[0]}/${rest[1]}`, partition: Number(rest[2]) };
}

export function encodeLive(key: string, value: string | Uint8Array): Uint8Array {
  const header = encoder.encode(`${JSON.stringify({ key, type: typeof value === 'string' ? 'text' : 'bytes' })}\n`);
  const body = typeof value === 'string' ? encoder.encode(value) : value;
  const out = new Uint8Array(header.byteLength + body.byteLength);
  out.set(header, 0);
  out.set(body, header.byteLength);
  return out;
}

export function decodeLive(bytes: Uint8Array): { key: string; value: string | Uint8Array } {
  const newline = bytes.indexOf(0x0a);
  if (newline < 0) throw new Error('state object without a header line');
  const header = JSON.parse(decoder.decode(bytes.subarray(0, newline))) as { key: string; type: 'text' | 'bytes' };
  const body = bytes.subarray(newline + 1);
  return { key: header.key, value: header.type === 'text' ? decoder.decode(body) : new Uint8Array(body) };
}

/** Live-key PUTs in flight per partition. */
const PUT_CONCURRENCY = 8;
const GET_CONCURRENCY = 32;

/** Every key and value of a partition's live objects, sorted by key. */
export async function readLive(bucket: Bucket, scope: string, namespace: string, partition: number): Promise<StateWrite[]> {
  const keys = await bucket.list(livePrefix(scope, namespace, partition));
  const bodies = await mapLimit(keys, GET_CONCURRENCY, (key) => bucket.get(key));
  const out: StateWrite[] = [];
  for (const body of bodies) if (body !== null) out.push(decodeLive(body));
  return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

/** Writes the final value of each key (null deletes it) to a partition's live objects. */
export async function writeLive(bucket: Bucket, scope: string, namespace: string, partition: number, values: Map<string, string | Uint8Array | null>): Promise<void> {
  const puts: Array<[string, Uint8Array]> = [];
  const deletes: string[] = [];
  for (const [key, value] of values) {
    if (value === null) deletes.push(liveKey(scope, namespace, partition, key));
    else puts.push([liveKey(scope, namespace, partition, key), encodeLive(key, value)]);
  }
  await mapLimit(puts, PUT_CONCURRENCY, ([key, body]) => bucket.put(key, body));
  if (deletes.length > 0) await bucket.delete(deletes);
}

type EncodedWrite = [key: string, type: 't', text: string] | [key: string, type: 'b', base64: string] | [key: string, type: 'd'];

/** A staged batch: JSON, bytes in base64. */
export function encodeStaged(namespace: string, partition: number, epoch: number, writes: StateWrite[]): string {
  const encoded: EncodedWrite[] = writes.map((w) =>
    w.value === null ? [w.key, 'd'] : typeof w.value === 'string' ? [w.key, 't', w.value] : [w.key, 'b', Buffer.from(w.value).toString('base64')],
  );
  return JSON.stringify({ v: 1, namespace, partition, epoch, writes: encoded });
}

export function decodeStaged(bytes: Uint8Array): StateWrite[] {
  const parsed = JSON.parse(decoder.decode(bytes)) as { v: number; writes: EncodedWrite[] };
  if (parsed.v !== 1) throw new Error(`staged state format ${parsed.v} is not known to this version`);
  return parsed.writes.map((w) => ({ key: w[0], value: w[1] === 'd' ? null : w[1] === 't' ? w[2] : new Uint8Array(Buffer.from(w[2], 'base64')) }));
}

/** Approximate bytes a batch's writes hold in memory while waiting to be published. */
export function sizeOfWrites(writes: StateWrite[]): number {
  let bytes = 0;
  for (const w of writes) bytes += w.key.length * 2 + (w.value === null ? 0 : typeof w.value === 'string' ? w.value.length * 2 : w.value.byteLength);
  return bytes;
}
