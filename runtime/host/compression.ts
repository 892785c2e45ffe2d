/**
 * CompressionStream / DecompressionStream for guests, incrementally: each guest stream is a
 * node:zlib stream here (its work on the thread pool, never on the event loop), opened by the
 * guest's first operation and fed chunk by chunk. Each write is flushed (Z_SYNC_FLUSH), so what a
 * chunk compresses to comes back with it — a compressed event stream reaches the client event by
 * event — and `end` returns the trailer. Streams belong to one invocation and are destroyed when
 * it ends.
 *
 * Hostile input is checked: the format is one of `gzip`, `deflate`, `deflate-raw`; a stream's
 * input and output are each bounded by `maxBytes` (a decompression bomb stops at the bound with
 * ERR_TOO_LARGE); at most MAX_STREAMS_PER_INVOCATION are open; corrupt data is a TypeError.
 */
import type { Transform } from 'node:stream';
import zlib from 'node:zlib';

export const MAX_STREAMS_PER_INVOCATION = 16;

const OPEN = {
  compress: { gzip: zlib.createGzip, deflate: zlib.createDeflate, 'deflate-raw': zlib.createDeflateRaw },
  decompress: { gzip: zlib.createGunzip, deflate: zlib.createInflate, 'deflate-raw': zlib.createInflateRaw },
} as const;
type Format = keyof typeof OPEN.compress;
type Outcome = { ok: true; value: unknown } | { ok: false; error: { name: string; message: string } };

interface Entry {
  stream: Transform & { flush(kind: number, callback: () => void): void };
  format: Format;
  chunks: Buffer[];
  outBytes: number;
  inBytes: number;
  failure: Outcome | null;
}

const fail = (name: string, message: string): Outcome => ({ ok: false, error: { name, message } });

/** The zlib streams of one invocation. */
export class ZlibStreams {
  private readonly streams = new Map<number, Entry>();
  private nextHandle = 1;
  private readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  /** One guest operation: `{op: 'open', format, mode}`, `{op: 'write', handle}` with bytes, `{op: 'end', handle}`. */
  async run(spec: unknown, data: unknown): Promise<Outcome> {
    if (typeof spec !== 'object' || spec === null) return fail('TypeError', 'malformed compression request');
    const { op, format, mode, handle } = spec as { op?: unknown; format?: unknown; mode?: unknown; handle?: unknown };
    if (op === 'open') return this.open(format, mode);
    const entry = typeof handle === 'number' ? this.streams.get(handle) : undefined;
    if (entry === undefined) return fail('TypeError', 'unknown compression stream');
    if (entry.failure) return entry.failure;
    if (op === 'write') {
      if (!(data instanceof Uint8Array)) return fail('TypeError', 'malformed compression input');
      entry.inBytes += data.byteLength;
      if (entry.inBytes > this.maxBytes) return this.abort(handle as number, fail('RangeError', `ERR_TOO_LARGE: compression input exceeds ${this.maxBytes} bytes`));
      return this.settle(handle as number, entry, (done) => {
        entry.stream.write(data);
        entry.stream.flush(zlib.constants.Z_SYNC_FLUSH, done);
      });
    }
    if (op === 'end') {
      return this.settle(handle as number, entry, (done) => {
        entry.stream.once('end', done);
        entry.stream.end();
      }, true);
    }
    return fail('TypeError', 'malformed compression request');
  }

  /** Destroys every stream (the invocation ended). */
  close(): void {
    for (const entry of this.streams.values()) entry.stream.destroy();
    this.streams.clear();
  }

  private open(format: unknown, mode: unknown): Outcome {
    if (typeof format !== 'string' || !Object.hasOwn(OPEN.compress, format) || (mode !== 'compress' && mode !== 'decompress')) {
      return fail('TypeError', 'unsupported compression format');
    }
    if (this.streams.size >= MAX_STREAMS_PER_INVOCATION) {
      return fail('RangeError', `ERR_QUOTA_EXCEEDED: an invocation may have at most ${MAX_STREAMS_PER_INVOCATION} compression streams open`);
    }
    const handle = this.nextHandle++;
    const stream = OPEN[mode][format as Format]() as unknown as Entry['stream'];
    const entry: Entry = { stream, format: format as Format, chunks: [], outBytes: 0, inBytes: 0, failure: null };
    stream.on('data', (chunk: Buffer) => {
      entry.outBytes += chunk.byteLength;
      if (entry.outBytes > this.maxBytes) {
        entry.failure ??= fail('RangeError', `ERR_TOO_LARGE: ${mode === 'compress' ? 'compressed' : 'decompressed'} data exceeds ${this.maxBytes} bytes`);
        stream.destroy();
        return;
      }
      entry.chunks.push(chunk);
    });
    stream.on('error', () => {
      entry.failure ??= fail('TypeError', `the ${entry.format} data is corrupt or truncated`);
    });
    this.streams.set(handle, entry);
    return { ok: true, value: handle };
  }

  /** Runs one step and answers with the bytes it produced, or the stream's failure. */
  private settle(handle: number, entry: Entry, step: (done: () => void) => void, last = false): Promise<Outcome> {
    return new Promise((resolve) => {
      let answered = false;
      const answer = () => {
        if (answered) return;
        answered = true;
        entry.stream.off('close', answer);
        if (entry.failure) return resolve(this.abort(handle, entry.failure));
        const bytes = new Uint8Array(Buffer.concat(entry.chunks));
        entry.chunks = [];
        if (last) this.streams.delete(handle);
        resolve({ ok: true, value: bytes });
      };
      // A stream destroyed by an error or a bound closes without finishing the step.
      entry.stream.once('close', answer);
      step(() => setImmediate(answer));
    });
  }

  private abort(handle: number, outcome: Outcome): Outcome {
    this.streams.get(handle)?.stream.destroy();
    this.streams.delete(handle);
    return outcome;
  }
}
