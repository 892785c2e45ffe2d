/**
 * The most recent committed records of each partition, decoded: consumers that keep up read them
 * from memory instead of SQLite. Bounded three ways, so a few huge records cannot pin memory:
 *
 * - records per partition (`maxRecordsPerPartition`): oldest batches dropped first;
 * - bytes per partition (`maxBytesPerPartition`): a batch larger than the bound is not cached;
 * - bytes over all partitions (`maxBytes`): the least recently used partition tails are evicted.
 *
 * Bytes are the batch's serialized size (what `commit` writes) plus RECORD_OVERHEAD_BYTES per
 * record: a decoded record is a JS object whose header, fields and timestamp take about that much
 * of the heap beyond its payload, which for small records is most of it. A tail always ends at the head of
 * its partition: a batch that is not cached ends the tail, and the next one starts a new one.
 */
import type { LogRecord, StoredRecord } from '../transport.ts';

/** Heap a decoded record takes beyond its serialized payload (object, key, timestamp, offset copy). */
const RECORD_OVERHEAD_BYTES = 96;

export interface TailCacheLimits {
  maxRecordsPerPartition: number;
  maxBytesPerPartition: number;
  maxBytes: number;
}

interface Segment {
  base: number;
  records: LogRecord[];
  bytes: number;
}

class PartitionTail {
  readonly segments: Segment[] = [];
  records = 0;
  bytes = 0;

  get base(): number {
    return this.segments[0].base;
  }

  get end(): number {
    const last = this.segments[this.segments.length - 1];
    return last.base + last.records.length;
  }

  /** Drops the oldest segment, or the oldest records of the only one; returns the bytes freed. */
  dropOldest(keepRecords: number): number {
    if (this.segments.length > 1 || keepRecords <= 0) {
      const dropped = this.segments.shift()!;
      this.records -= dropped.records.length;
      this.bytes -= dropped.bytes;
      return dropped.bytes;
    }
    const only = this.segments[0];
    const drop = only.records.length - keepRecords;
    const freed = Math.floor((only.bytes * drop) / only.records.length);
    only.records = only.records.slice(drop);
    only.base += drop;
    only.bytes -= freed;
    this.records -= drop;
    this.bytes -= freed;
    return freed;
  }
}

export class TailCache {
  private readonly limits: TailCacheLimits;
  /** In least-recently-used order: the first entry is the next to evict. */
  private readonly tails = new Map<string, PartitionTail>();
  private totalBytes = 0;

  constructor(limits: TailCacheLimits) {
    this.limits = { ...limits, maxBytesPerPartition: Math.min(limits.maxBytesPerPartition, limits.maxBytes) };
  }

  /** Bytes held over all partitions. */
  get bytes(): number {
    return this.totalBytes;
  }

  /** Records `records` (serialized size `bytes`) committed at `base` of partition `id`. */
  append(id: string, base: number, records: LogRecord[], serializedBytes: number): void {
    const bytes = serializedBytes + records.length * RECORD_OVERHEAD_BYTES;
    let tail = this.tails.get(id);
    if (tail !== undefined && tail.end !== base) {
      this.delete(id);
      tail = undefined;
    }
    if (bytes > this.limits.maxBytesPerPartition || records.length === 0) {
      // Too large to cache: the tail would no longer end at the head, so it goes too.
      if (tail !== undefined) this.delete(id);
      return;
    }
    if (tail === undefined) tail = new PartitionTail();
    this.tails.delete(id);
    this.tails.set(id, tail);
    tail.segments.push({ base, records: records.slice(), bytes });
    tail.records += records.length;
    tail.bytes += bytes;
    this.totalBytes += bytes;
    const { maxRecordsPerPartition, maxBytesPerPartition, maxBytes } = this.limits;
    while (tail.records > maxRecordsPerPartition) this.totalBytes -= tail.dropOldest(Math.floor(maxRecordsPerPartition / 2));
    // The newest batch fits alone (checked above): older ones go until the partition fits.
    while (tail.bytes > maxBytesPerPartition && tail.segments.length > 1) this.totalBytes -= tail.dropOldest(0);
    for (const [other, lru] of this.tails) {
      if (this.totalBytes <= maxBytes || lru === tail) break;
      this.delete(other);
    }
  }

  /**
   * Up to `max` records from `from` and about `maxBytes` (a record counts as its batch's bytes
   * shared evenly; at least one record), or null when the tail does not hold `from`.
   */
  read(id: string, from: number, max: number, maxBytes: number): StoredRecord[] | null {
    const tail = this.tails.get(id);
    if (tail === undefined || from < tail.base || from >= tail.end) return null;
    this.tails.delete(id);
    this.tails.set(id, tail);
    const { segments } = tail;
    let lo = 0;
    let hi = segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (segments[mid].base <= from) lo = mid;
      else hi = mid - 1;
    }
    const out: StoredRecord[] = [];
    let bytes = 0;
    for (let s = lo; s < segments.length && out.length < max; s++) {
      const { base, records } = segments[s];
      const each = segments[s].bytes / records.length;
      for (let i = Math.max(0, from - base); i < records.length && out.length < max; i++) {
        if (out.length > 0 && bytes + each > maxBytes) return out;
        bytes += each;
        out.push({ offset: base + i, ...records[i] });
      }
    }
    return out;
  }

  /** Forgets batches wholly below `start` (retention deleted them from the log). */
  trimBelow(id: string, start: number): void {
    const tail = this.tails.get(id);
    if (tail === undefined) return;
    if (start >= tail.end) return this.delete(id);
    // A batch straddling `start` stays whole, as it does in the log.
    while (tail.segments[0].base + tail.segments[0].records.length <= start) this.totalBytes -= tail.dropOldest(0);
  }

  delete(id: string): void {
    const tail = this.tails.get(id);
    if (tail === undefined) return;
    this.totalBytes -= tail.bytes;
    this.tails.delete(id);
  }

  deletePrefix(prefix: string): void {
    for (const id of [...this.tails.keys()]) if (id.startsWith(prefix)) this.delete(id);
  }
}
