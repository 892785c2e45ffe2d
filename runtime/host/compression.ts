/**
 * CompressionStream / DecompressionStream for guests: the guest collects a stream's bytes and
 * hands them over once, at its end; the host compresses or decompresses them with node:zlib on
 * the thread pool (never on the event loop). Hostile input is checked: the format is one of
 * `gzip`, `deflate`, `deflate-raw`, input and output are bounded by `maxBytes` (a
 * decompression bomb stops at the bound with ERR_TOO_LARGE), corrupt data is a TypeError.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';

const COMPRESS = { gzip: promisify(zlib.gzip), deflate: promisify(zlib.deflate), 'deflate-raw': promisify(zlib.deflateRaw) } as const;
const DECOMPRESS = { gzip: promisify(zlib.gunzip), deflate: promisify(zlib.inflate), 'deflate-raw': promisify(zlib.inflateRaw) } as const;
type Format = keyof typeof COMPRESS;

export async function zlibOutcome(spec: unknown, data: unknown, maxBytes: number): Promise<unknown> {
  const fail = (name: string, message: string) => ({ ok: false, error: { name, message } });
  if (typeof spec !== 'object' || spec === null) return fail('TypeError', 'malformed compression request');
  const { format, mode } = spec as { format?: unknown; mode?: unknown };
  if (typeof format !== 'string' || !Object.hasOwn(COMPRESS, format) || (mode !== 'compress' && mode !== 'decompress')) {
    return fail('TypeError', 'unsupported compression format');
  }
  if (!(data instanceof Uint8Array)) return fail('TypeError', 'malformed compression input');
  if (data.byteLength > maxBytes) return fail('RangeError', `ERR_TOO_LARGE: compression input exceeds ${maxBytes} bytes`);
  try {
    const run = mode === 'compress' ? COMPRESS[format as Format] : DECOMPRESS[format as Format];
    const out = await run(data, { maxOutputLength: maxBytes });
    return { ok: true, value: new Uint8Array(out) };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE') return fail('RangeError', `ERR_TOO_LARGE: decompressed data exceeds ${maxBytes} bytes`);
    return fail('TypeError', `the ${format} data is corrupt or truncated`);
  }
}
