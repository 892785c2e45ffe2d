/**
 * `env.STATE` of fetch handlers kept in the bucket, so every control plane sharing it sees the
 * same values (S3 reads after writes are strongly consistent; the last write of a key wins).
 *
 *   fetch-state/<function>/<name>      one object per key, encoded like live state (state-objects.ts)
 *
 * `<name>` is the key's UTF-8 bytes in base32hex (RFC 4648 §7, lowercase, unpadded), cut into
 * segments of 200 characters joined by `/`: base32hex keeps the bytes' order, so S3's listing
 * order is the keys' order and a key prefix is an object prefix; the segments keep every path
 * segment short for filesystem-backed stores. Keys are thus at most MAX_S3_STATE_KEY_BYTES.
 *
 * The quotas need a namespace's key count and bytes: each control plane lists a namespace once,
 * keeps the sizes (a bounded LRU of namespaces), updates them on its own writes and lists again
 * after USAGE_TTL_MS, so writes from other machines count within that delay.
 */
import { LRUCache } from 'lru-cache';
import type { FetchStateBackend, NamespaceUsage } from '../../runtime/function-state.ts';
import type { Bucket } from './bucket.ts';
import { decodeLive, encodeLive } from './state-objects.ts';

/** Object keys stop at 1024 bytes; the prefix and the segment separators take the rest. */
export const MAX_S3_STATE_KEY_BYTES = 512;
const ROOT = 'fetch-state/';
const SEGMENT = 200;
const USAGE_TTL_MS = 30_000;
const PAGE = 1000;
const ALPHABET = '0123456789abcdefghijklmnopqrstuv';
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

interface Usage {
  sizes: Map<string, number>;
  bytes: number;
  listedAt: number;
}

export class S3FunctionState implements FetchStateBackend {
  readonly maxKeyBytes = MAX_S3_STATE_KEY_BYTES;
  private readonly usages = new LRUCache<string, Usage>({ max: 64, maxSize: 100_000, sizeCalculation: (u) => u.sizes.size + 1 });
  private readonly listing = new Map<string, Promise<Usage>>();

  private readonly bucket: Bucket;

  constructor(bucket: Bucket) {
    this.bucket = bucket;
  }

  async get(fn: string, key: string): Promise<string | Uint8Array | null> {
    const body = await this.bucket.get(objectKey(fn, key));
    if (body === null) return null;
    const live = decodeLive(body);
    return live.key === key ? live.value : null;
  }

  async usage(fn: string, key: string): Promise<NamespaceUsage> {
    const usage = await this.usageOf(fn);
    const old = usage.sizes.get(objectKey(fn, key));
    return { keys: usage.sizes.size, bytes: usage.bytes, old: old ?? 0, present: old !== undefined };
  }

  async put(fn: string, key: string, value: string | Uint8Array): Promise<void> {
    const name = objectKey(fn, key);
    const body = encodeLive(key, value);
    await this.bucket.put(name, body);
    const usage = this.usages.get(fn);
    if (usage) {
      usage.bytes += body.byteLength - (usage.sizes.get(name) ?? 0);
      usage.sizes.set(name, body.byteLength);
    }
  }

  async delete(fn: string, key: string): Promise<void> {
    const name = objectKey(fn, key);
    await this.bucket.delete([name]);
    const usage = this.usages.get(fn);
    if (usage) {
      usage.bytes -= usage.sizes.get(name) ?? 0;
      usage.sizes.delete(name);
    }
  }

  async list(fn: string, prefix: string, cursor: string, limit: number): Promise<string[]> {
    const root = namespacePrefix(fn);
    const bytes = encoder.encode(prefix);
    // Whole base32hex characters of the prefix only: the last, partial one may differ in a key.
    const objectPrefix = root + segmented(base32hex(bytes).slice(0, Math.floor((bytes.length * 8) / 5)));
    let startAfter = cursor === '' ? undefined : objectKey(fn, cursor);
    const keys: string[] = [];
    for (;;) {
      const page = await this.bucket.listPage(objectPrefix, { startAfter, maxKeys: PAGE });
      for (const { key: name } of page.objects) {
        const key = keyOf(root, name);
        if (key !== null && key.startsWith(prefix) && keys.push(key) > limit) return keys;
      }
      if (!page.truncated || page.objects.length === 0) return keys;
      startAfter = page.objects[page.objects.length - 1].key;
    }
  }

  async drop(fn: string): Promise<void> {
    this.usages.delete(fn);
    const names = await this.bucket.list(namespacePrefix(fn));
    await this.bucket.delete(names);
  }

  close(): void {
    this.usages.clear();
  }

  private usageOf(fn: string): Promise<Usage> {
    const cached = this.usages.get(fn);
    if (cached && Date.now() - cached.listedAt < USAGE_TTL_MS) return Promise.resolve(cached);
    let pending = this.listing.get(fn);
    if (!pending) {
      pending = this.listUsage(fn).finally(() => this.listing.delete(fn));
      this.listing.set(fn, pending);
    }
    return pending;
  }

  private async listUsage(fn: string): Promise<Usage> {
    const usage: Usage = { sizes: new Map(), bytes: 0, listedAt: Date.now() };
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.bucket.listPage(namespacePrefix(fn), { startAfter, maxKeys: PAGE });
      for (const { key, size } of page.objects) {
        usage.sizes.set(key, size);
        usage.bytes += size;
      }
      if (!page.truncated || page.objects.length === 0) break;
      startAfter = page.objects[page.objects.length - 1].key;
    }
    this.usages.set(fn, usage);
    return usage;
  }
}

function namespacePrefix(fn: string): string {
  return `${ROOT}${fn}/`;
}

function objectKey(fn: string, key: string): string {
  return namespacePrefix(fn) + segmented(base32hex(encoder.encode(key)));
}

/** The key an object name stands for, or null for a name this layout did not write. */
function keyOf(root: string, name: string): string | null {
  const encoded = name.slice(root.length).split('/');
  for (let i = 0; i < encoded.length - 1; i++) if (encoded[i].length !== SEGMENT) return null;
  const bytes = fromBase32hex(encoded.join(''));
  if (bytes === null) return null;
  try {
    return decoder.decode(bytes);
  } catch {
    return null;
  }
}

function segmented(encoded: string): string {
  const parts: string[] = [];
  for (let i = 0; i < encoded.length; i += SEGMENT) parts.push(encoded.slice(i, i + SEGMENT));
  return parts.join('/');
}

function base32hex(bytes: Uint8Array): string {
  let out = '';
  let buffer = 0;
  let bits = 0;
  for (const byte of bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += ALPHABET[(buffer >> bits) & 31];
    }
    buffer &= (1 << bits) - 1;
  }
  if (bits > 0) out += ALPHABET[(buffer << (5 - bits)) & 31];
  return out;
}

function fromBase32hex(text: string): Uint8Array | null {
  const out = new Uint8Array(Math.floor((text.length * 5) / 8));
  if (Math.ceil((out.length * 8) / 5) !== text.length) return null;
  let buffer = 0;
  let bits = 0;
  let n = 0;
  for (const char of text) {
    const value = ALPHABET.indexOf(char);
    if (value < 0) return null;
    buffer = (buffer << 5) | value;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (buffer >> bits) & 255;
    }
    buffer &= (1 << bits) - 1;
  }
  return buffer === 0 ? out : null;
}
