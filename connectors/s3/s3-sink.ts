/**
 * An exactly-once S3 sink: the records a graph commits to an `"type": "s3"` sink become files in
 * the user's bucket, each record in exactly one published file across crashes, replays and
 * redeploys.
 *
 * Design — a sink publisher with its own committed position, kept in S3:
 *   stage    the graph commits the sink's records to its sink log (the embedded log) in the
 *            batch's own transaction, exactly as for a log sink: on an exactly-once path each
 *            record is there once, with a dense offset.
 *   publish  this publisher tails that log. It cuts the records from its position into files by
 *            size, count and age (`rollBytes`, `rollRecords`, `rollIntervalMs`), PUTs the file under
 *            a name made of its offset range (`<stream>/<from>-<to>.ndjson`, deterministic: a
 *            retry rewrites the same bytes), then commits it by *creating* the manifest entry
 *            `_manifest/<stream>/<from>.json` with `If-None-Match: *`. That conditional create is
 *            the commit: entries are contiguous (the next starts at `to + 1`), and only one entry
 *            can ever exist for an offset, so no record can be in two published files.
 *   recover  on start the position is the last manifest entry's `to + 1`. If a create loses to
 *            an entry already there (a publisher that crashed after its commit but before it moved
 *            on, or one still running beside us), the existing entry wins. Either way, once the
 *            entry for `from` exists, every other data object starting at `from` can never be
 *            published, and is deleted: a loser's, or the leftover of a publish that crashed
 *            between its PUT and its create (the next publish from that position has the same
 *            `from`). Nothing else is ever deleted, so a publisher starting beside a live one
 *            cannot remove an object the other is about to commit.
 * Why not S3 writes inside the batch's commit: S3 cannot join the log's transaction, and an
 * outage would stall every node upstream; here the sink log absorbs it (bounded by the sink's
 * retention) and the graph keeps running. The price: files appear up to one roll interval (plus
 * any outage) after their records commit.
 *
 * A reader follows the manifest: list `<prefix>_manifest/<stream>/` in key order (offsets are
 * zero-padded), read each entry `{file, from, to, records, bytes, format}`, and read `file`.
 * Objects not named by an entry are not published (a crashed publish's leftovers, deleted once
 * their offset is published). `<stream>` is `<log-scope>.<incarnation>`: one per embedded log and incarnation of
 * the graph's name, since a re-created graph's sink log starts again at offset 0.
 *
 * Buffers are bounded: one file in memory (≤ rollBytes, ≤ rollRecords), reads of ≤ 1000 records.
 */
import type { StoredRecord, Transport } from '../transport.ts';
import { asTributaryError, TributaryError } from '../../runtime/errors.ts';
import { Bucket, type S3Options } from './bucket.ts';

export type S3SinkFormat = 'ndjson' | 'csv';

export interface S3SinkConfig {
  bucket: string;
  /** '' or ends with '/'. */
  prefix: string;
  format: S3SinkFormat;
  /** CSV only: the value's fields, in order (a header row opens each file). */
  columns?: string[];
  rollBytes: number;
  rollRecords: number;
  rollIntervalMs: number;
}

export interface S3SinkOptions {
  config: S3SinkConfig;
  s3: Omit<S3Options, 'bucket'>;
  transport: Transport;
  /** The sink log's topic (partition 0). */
  topic: string;
  /** Names this sink log's incarnation in the bucket (see above). */
  stream: string;
  /** Called with every failure of a publishing round (retried with backoff); never throws. */
  onError?(error: TributaryError): void;
  /** Called after each file is committed. */
  onPublished?(entry: ManifestEntry): void;
}

export interface ManifestEntry {
  version: 1;
  file: string;
  from: number;
  to: number;
  records: number;
  bytes: number;
  format: S3SinkFormat;
  createdAt: string;
}

export interface S3SinkStatus {
  bucket: string;
  prefix: string;
  stream: string;
  /** The next sink offset to publish (every record below it is in a published file). */
  published: number;
  files: number;
  state: 'publishing' | 'retrying' | 'stopped';
  lastError: string | null;
  retryInMs: number | null;
}

const READ_BATCH = 1000;
const PAD = 20;
const MIN_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 10_000;

const pad = (n: number) => String(n).padStart(PAD, '0');

export function manifestPrefix(config: Pick<S3SinkConfig, 'prefix'>, stream: string): string {
  return `${config.prefix}_manifest/${stream}/`;
}

export function dataPrefix(config: Pick<S3SinkConfig, 'prefix'>, stream: string): string {
  return `${config.prefix}${stream}/`;
}

/** One record as an NDJSON line. */
function ndjsonLine(record: StoredRecord): string {
  return `${JSON.stringify({ offset: record.offset, key: record.key, value: record.value, timestamp: record.timestamp })}\n`;
}

function csvField(value: unknown): string {
  if (value === undefined || value === null) return '';
  const text = typeof value === 'string' ? value : typeof value === 'object' ? JSON.stringify(value) : String(value);
  return /[",\r\n]/.test(text) || text !== text.trim() ? `"${text.replace(/"/g, '""')}"` : text;
}

/** One record as a CSV row (RFC 4180): its value's `columns`, or the value itself for a single `value` column. */
function csvLine(record: StoredRecord, columns: string[]): string {
  const value = record.value;
  const row = columns.map((column) =>
    column === 'value' && (typeof value !== 'object' || value === null) ? csvField(value)
    : column === 'key' && !(typeof value === 'object' && value !== null && 'key' in value) ? csvField(record.key)
    : csvField(typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[column] : undefined),
  );
  return `${row.join(',')}\r\n`;
}

export class S3SinkPublisher {
  private readonly options: S3SinkOptions;
  private readonly config: S3SinkConfig;
  private readonly bucket: Bucket;
  private position = -1;
  private files = 0;
  private state: S3SinkStatus['state'] = 'publishing';
  private lastError: string | null = null;
  private retryInMs: number | null = null;
  private stopping = false;
  private wait: AbortController | null = null;
  private loop: Promise<void> | null = null;

  constructor(options: S3SinkOptions) {
    this.options = options;
    this.config = options.config;
    this.bucket = Bucket.unchecked({ ...options.s3, bucket: options.config.bucket });
  }

  start(): void {
    this.loop ??= this.run();
  }

  /** Stops after the round in flight (a file being published is committed or abandoned: both are safe). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wait?.abort();
    await this.loop?.catch(() => {});
    this.state = 'stopped';
    this.bucket.close();
  }

  status(): S3SinkStatus {
    const { bucket, prefix } = this.config;
    return { bucket, prefix, stream: this.options.stream, published: Math.max(0, this.position), files: this.files, state: this.state, lastError: this.lastError, retryInMs: this.retryInMs };
  }

  private async run(): Promise<void> {
    let backoff = MIN_BACKOFF_MS;
    while (!this.stopping) {
      try {
        if (this.position < 0) await this.recover();
        await this.publishRound();
        backoff = MIN_BACKOFF_MS;
        if (this.state === 'retrying') this.state = 'publishing';
        this.retryInMs = null;
      } catch (error) {
        const e = asTributaryError(error);
        this.lastError = `${e.code}: ${e.message}`;
        this.state = 'retrying';
        this.retryInMs = backoff;
        this.options.onError?.(e);
        await this.sleep(backoff);
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
      }
    }
  }

  /** Resolves after `ms`, or at once on stop. */
  private async sleep(ms: number): Promise<void> {
    const controller = new AbortController();
    this.wait = controller;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      controller.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    this.wait = null;
  }

  /** Waits for a record at `offset` for at most `ms` (Infinity: until one comes), or until stop. */
  private async waitForRecord(offset: number, ms: number): Promise<void> {
    const controller = new AbortController();
    this.wait = controller;
    const timer = Number.isFinite(ms) ? setTimeout(() => controller.abort(), Math.max(0, ms)) : undefined;
    await this.options.transport.waitForAppend(this.options.topic, 0, offset, controller.signal);
    clearTimeout(timer);
    this.wait = null;
  }

  /** The position from the manifest. */
  private async recover(): Promise<void> {
    const entries = await this.bucket.list(manifestPrefix(this.config, this.options.stream));
    let position = 0;
    if (entries.length > 0) {
      const last = await this.readEntry(entries[entries.length - 1]);
      position = last.to + 1;
    }
    this.files = entries.length;
    this.position = position;
  }

  private async readEntry(key: string): Promise<ManifestEntry> {
    const bytes = await this.bucket.get(key);
    if (bytes === null) throw new TributaryError('ERR_S3_UNAVAILABLE', `manifest entry s3://${this.config.bucket}/${key} vanished`);
    const entry = JSON.parse(Buffer.from(bytes).toString('utf8')) as ManifestEntry;
    if (!Number.isSafeInteger(entry.from) || !Number.isSafeInteger(entry.to) || entry.to < entry.from) {
      throw new TributaryError('ERR_INTERNAL', `manifest entry s3://${this.config.bucket}/${key} is malformed`);
    }
    return entry;
  }

  /** Gathers one file's records (or waits for them), and publishes it when it is due. */
  private async publishRound(): Promise<void> {
    const { transport, topic } = this.options;
    const { rollBytes, rollRecords, rollIntervalMs, format } = this.config;
    const columns = this.config.columns ?? ['value'];
    const parts: string[] = [];
    if (format === 'csv') parts.push(`${columns.map(csvField).join(',')}\r\n`);
    let bytes = parts.length > 0 ? Buffer.byteLength(parts[0]) : 0;
    let records = 0;
    let from = this.position;
    let next = this.position;
    let firstAt = 0;
    while (!this.stopping) {
      const batch = transport.read(topic, 0, next, Math.min(READ_BATCH, rollRecords - records));
      if (batch.length > 0 && records === 0 && batch[0].offset > next) {
        // Retention dropped records before they were published: say so, and go on from what is kept.
        this.lastError = `ERR_S3_SINK_EXPIRED: sink offsets ${next}..${batch[0].offset - 1} expired from the sink log before they were published`;
        from = next = batch[0].offset;
      }
      let full = false;
      for (const record of batch) {
        const line = format === 'csv' ? csvLine(record, columns) : ndjsonLine(record);
        const size = Buffer.byteLength(line);
        if (records > 0 && bytes + size > rollBytes) {
          full = true;
          break;
        }
        if (records === 0) firstAt = Date.now();
        parts.push(line);
        bytes += size;
        records++;
        next = record.offset + 1;
        if (records >= rollRecords) {
          full = true;
          break;
        }
      }
      const due = records > 0 && (full || Date.now() - firstAt >= rollIntervalMs);
      if (due) {
        await this.publish(from, next - 1, records, parts.join(''));
        return;
      }
      if (batch.length === 0) {
        await this.waitForRecord(next, records > 0 ? firstAt + rollIntervalMs - Date.now() : Infinity);
        if (this.stopping) return;
      }
    }
  }

  private async publish(from: number, to: number, records: number, body: string): Promise<void> {
    const { stream } = this.options;
    const file = `${dataPrefix(this.config, stream)}${pad(from)}-${pad(to)}.${this.config.format}`;
    await this.bucket.put(file, body, this.config.format === 'csv' ? 'text/csv' : 'application/x-ndjson');
    const entry: ManifestEntry = { version: 1, file, from, to, records, bytes: Buffer.byteLength(body), format: this.config.format, createdAt: new Date().toISOString() };
    const entryKey = `${manifestPrefix(this.config, stream)}${pad(from)}.json`;
    const won = await this.bucket.putIfAbsent(entryKey, JSON.stringify(entry));
    // Committed before by a publisher that did not move on (or runs beside us): its entry wins.
    const committed = won ? entry : await this.readEntry(entryKey);
    const startingHere = `${dataPrefix(this.config, stream)}${pad(from)}-`;
    const losers = (await this.bucket.list(startingHere)).filter((key) => key !== committed.file);
    if (losers.length > 0) await this.bucket.delete(losers);
    this.position = committed.to + 1;
    if (won) {
      this.files++;
      this.options.onPublished?.(entry);
    }
  }
}
