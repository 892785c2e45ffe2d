/**
 * The embedded durable log: topics, committed offsets and function state in one SQLite database
 * (`log.db`, WAL). A batch of appended records is one row (base offset, count, V8-serialized
 * records) — what Kafka calls a record batch — so a million records cost a thousand inserts.
 * `commit` applies appends, offsets and state writes in one transaction: that single transaction
 * is what exactly-once edges are built on.
 *
 * Durability (`durability`, per log; `durable`, per commit):
 * - `'process-crash'` (default, `synchronous=NORMAL`): a commit that returned survives the
 *   process dying at any instant (kill -9, OOM): its WAL frames are in the OS page cache. A power
 *   loss or kernel crash may drop the most recent commits — always a suffix, never a torn or
 *   reordered one — up to the last checkpoint or fsynced commit.
 * - `'fsync'` (`synchronous=FULL`; also `fsync: true`): every commit is on stable storage
 *   (as far as the disk honours fsync) before `commit` returns.
 * - `CommitSet.durable`: that one commit is fsynced as in `'fsync'`, and with it every commit
 *   before it (an fsync of the WAL covers all its frames). For commits that gate an external
 *   effect — an ingest's 202, a Kafka offset, an S3 publish.
 *
 * Retention (connectors/embedded/log-retention.ts): batches every consumer group has committed
 * past are deleted inside the offset commits themselves (source edges registered with
 * `keepConsumed` instead keep them by age and size, for replay) — every 16th commit of a partition, in
 * its transaction, at most 256 batches, found by an index range (O(batches deleted)) — sinks and
 * dead letters are kept by age and size (checked at every append to them), and idempotency keys
 * expire after `idempotencyTtlMs`. A maintenance step (one unref'd timer for the whole log, every
 * `maintenanceIntervalMs`) deletes what commits left, applies age limits, prunes expired keys and
 * returns free pages to the file system in small steps (see log-schema.ts). So an idle partition
 * keeps at most 15 consumed batches until the next step.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { deserialize, serialize } from 'node:v8';
import { defaultGuard, type Guard } from '../../runtime/guard.ts';
import { MAX_BATCH_INPUT_BYTES } from '../../runtime/limits.ts';
import { withDefaults } from '../../runtime/options.ts';
import type { CommitSet, LogRecord, StateWrite, StoredRecord, Transport } from '../transport.ts';
import { AppendWaiters } from './append-waiters.ts';
import { openLogDatabase } from './log-schema.ts';
import { DEFAULT_RETENTION, RetentionRules, isRetainedTopic, type RetentionLimits } from './log-retention.ts';
import { TailCache } from './tail-cache.ts';

type EncodedRecord = [key: string | null, value: unknown, timestamp: number, headers: Record<string, string> | undefined];

/** `'process-crash'`: commits survive kill -9, not power loss. `'fsync'`: every commit survives power loss. */
export type Durability = 'process-crash' | 'fsync';

export interface SqliteLogOptions {
  dataDir: string;
  /** What a returned commit survives (default `'process-crash'`; see the file comment). */
  durability?: Durability;
  /** Kept for existing callers: `true` is `durability: 'fsync'`. */
  fsync?: boolean;
  /** How long an idempotency key is remembered (default 24 h). A key older than this is accepted again, and pruned. */
  idempotencyTtlMs?: number;
  /** Delete edge batches every consumer group committed past (default true; false keeps every record, e.g. for a baseline). */
  truncateConsumed?: boolean;
  /** Age and size retention of sink and dead-letter partitions (default 7 days, 1 GiB each). */
  retention?: Partial<RetentionLimits>;
  /** Decoded tail cache: records kept per partition (default 10 000). */
  tailMaxRecordsPerPartition?: number;
  /** Decoded tail cache: bytes kept per partition (default 4 MiB); a larger batch is not cached. */
  tailMaxBytesPerPartition?: number;
  /** Decoded tail cache: bytes kept over all partitions, least recently used evicted first (default 32 MiB). */
  tailMaxBytes?: number;
  /** Period of the maintenance step (default 10 000 ms); 0 runs it only when `maintain()` is called. */
  maintenanceIntervalMs?: number;
  /** An existing database without incremental auto-vacuum up to this size is converted at open (default 256 MiB). */
  vacuumOnOpenMaxBytes?: number;
  /** The clock of idempotency expiry and age retention (ms since epoch); tests inject one. */
  now?: () => number;
  /** Reports a failing maintenance step (default: logged). */
  guard?: Guard;
}

/** What one maintenance step did. */
export interface MaintenanceReport {
  idempotencyKeysPruned: number;
  batchesDeleted: number;
  pagesFreed: number;
}

const DAY_MS = 24 * 3600_000;
/** Offset commits of a partition between two deletions of its consumed batches (the maintenance step deletes between). */
const TRUNCATE_EVERY_COMMITS = 16;
/** Batches one commit deletes per partition at most; the maintenance step deletes the rest. */
const TRUNCATE_ROWS_PER_COMMIT = 256;
/** Batches the maintenance step deletes per partition at most. */
const TRUNCATE_ROWS_PER_STEP = 4096;
/** Every this many keyed commits, one of them also prunes up to twice as many expired keys. */
const IDEMPOTENCY_PRUNE_EVERY = 128;
const IDEMPOTENCY_PRUNE_ROWS_PER_STEP = 4096;
/** Free pages kept for reuse (4 MiB, or a tenth of the file); beyond that, returned in steps of 8 MiB. */
const VACUUM_SLACK_PAGES = 1024;
const VACUUM_STEP_PAGES = 2048;

/** In-memory changes of a transaction, applied only once it committed. */
interface Effects {
  appended: Array<[id: string, base: number, records: LogRecord[], bytes: number]>;
  heads: Map<string, number>;
  starts: Map<string, number>;
  storedBytes: Map<string, number>;
  /** Partitions a bounded delete left unfinished. */
  unfinished: Set<string>;
  batchesDeleted: number;
}

function noEffects(): Effects {
  return { appended: [], heads: new Map(), starts: new Map(), storedBytes: new Map(), unfinished: new Set(), batchesDeleted: 0 };
}

function partitionId(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

function splitId(id: string): [topic: string, partition: number] {
  const at = id.lastIndexOf('\u0000');
  return [id.slice(0, at), Number(id.slice(at + 1))];
}

/** The smallest string greater than every string starting with `prefix`, or null when there is none to compute simply. */
function prefixEnd(prefix: string): string | null {
  if (prefix.length === 0) return null;
  // Below the surrogates, UTF-16 order is code point order, which is SQLite's (UTF-8 memcmp) order.
  const last = prefix.charCodeAt(prefix.length - 1);
  if (last >= 0xd7ff) return null;
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}

export class SqliteLog implements Transport {
  readonly durability: Durability;
  private readonly db: DatabaseSync;
  private readonly incrementalVacuum: boolean;
  private readonly heads = new Map<string, number>();
  /** First offset still stored per partition, once retention deleted below it. */
  private readonly starts = new Map<string, number>();
  /** Stored payload bytes of retained (sink, dead-letter) partitions appended to by this process. */
  private readonly storedBytes = new Map<string, number>();
  /** Retained partitions whose size must be checked (limits lowered). */
  private readonly sizeChecks = new Set<string>();
  /** Partitions whose consumed batches a bounded delete left behind. */
  private readonly truncationPending = new Set<string>();
  /** Offset commits per partition since its consumed batches were last deleted. */
  private readonly commitsSinceTruncation = new Map<string, number>();
  private readonly topicPartitions = new Map<string, number>();
  private readonly waiters = new AppendWaiters();
  private readonly tail: TailCache;
  private readonly retention: RetentionRules;
  private readonly stmt: Record<string, StatementSync>;
  private readonly now: () => number;
  private readonly idempotencyTtlMs: number;
  private readonly truncateConsumed: boolean;
  private readonly timer: NodeJS.Timeout | null = null;
  private keyedCommits = 0;
  private closed = false;

  constructor(options: SqliteLogOptions) {
    mkdirSync(options.dataDir, { recursive: true });
    this.durability = options.durability === 'fsync' || options.fsync === true ? 'fsync' : 'process-crash';
    const opened = openLogDatabase(join(options.dataDir, 'log.db'), {
      synchronous: this.durability === 'fsync' ? 'FULL' : 'NORMAL',
      vacuumOnOpenMaxBytes: options.vacuumOnOpenMaxBytes ?? 256 * 1024 * 1024,
    });
    this.db = opened.db;
    this.incrementalVacuum = opened.incrementalVacuum;
    this.now = options.now ?? Date.now;
    this.idempotencyTtlMs = options.idempotencyTtlMs ?? DAY_MS;
    this.truncateConsumed = options.truncateConsumed ?? true;
    this.retention = new RetentionRules(withDefaults(DEFAULT_RETENTION, options.retention));
    this.tail = new TailCache({
      maxRecordsPerPartition: Math.max(2, options.tailMaxRecordsPerPartition ?? 10_000),
      maxBytesPerPartition: options.tailMaxBytesPerPartition ?? 4 * 1024 * 1024,
      maxBytes: options.tailMaxBytes ?? 32 * 1024 * 1024,
    });
    this.stmt = {
      insertBatch: this.db.prepare('INSERT INTO batches (topic, partition, base, count, bytes, appended_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?)'),
      batchAt: this.db.prepare('SELECT base FROM batches WHERE topic = ? AND partition = ? AND base <= ? ORDER BY base DESC LIMIT 1'),
      batchesFrom: this.db.prepare('SELECT base, count, payload FROM batches WHERE topic = ? AND partition = ? AND base >= ? ORDER BY base'),
      lastBatch: this.db.prepare('SELECT base + count AS head FROM batches WHERE topic = ? AND partition = ? ORDER BY base DESC LIMIT 1'),
      logStart: this.db.prepare('SELECT start FROM log_starts WHERE topic = ? AND partition = ?'),
      setLogStart: this.db.prepare('INSERT INTO log_starts (topic, partition, start) VALUES (?, ?, ?) ON CONFLICT (topic, partition) DO UPDATE SET start = max(start, excluded.start)'),
      committed: this.db.prepare('SELECT next FROM offsets WHERE grp = ? AND topic = ? AND partition = ?'),
      upsertOffset: this.db.prepare('INSERT INTO offsets (grp, topic, partition, next) VALUES (?, ?, ?, ?) ON CONFLICT (grp, topic, partition) DO UPDATE SET next = excluded.next'),
      minCommitted: this.db.prepare('SELECT MIN(next) AS low FROM offsets WHERE topic = ? AND partition = ?'),
      deleteConsumed: this.db.prepare(`
        DELETE FROM batches WHERE topic = ?1 AND partition = ?2 AND base IN (
          SELECT base FROM batches WHERE topic = ?1 AND partition = ?2 AND base < ?3 AND base + count <= ?3 ORDER BY base LIMIT ?4)
        RETURNING base + count AS end, coalesce(bytes, length(payload)) AS bytes`),
      oldestBatches: this.db.prepare('SELECT base, count, coalesce(bytes, length(payload)) AS bytes, appended_at FROM batches WHERE topic = ? AND partition = ? ORDER BY base LIMIT ?'),
      firstAppendedAt: this.db.prepare('SELECT base FROM batches WHERE topic = ? AND partition = ? AND appended_at >= ? ORDER BY base LIMIT 1'),
      deleteBelow: this.db.prepare('DELETE FROM batches WHERE topic = ? AND partition = ? AND base < ?'),
      partitionBytes: this.db.prepare('SELECT coalesce(SUM(coalesce(bytes, length(payload))), 0) AS bytes FROM batches WHERE topic = ? AND partition = ?'),
      claimKey: this.db.prepare('INSERT INTO idempotency (key, committed_at) VALUES (?1, ?2) ON CONFLICT (key) DO UPDATE SET committed_at = excluded.committed_at WHERE idempotency.committed_at <= ?3'),
      pruneKeys: this.db.prepare('DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE committed_at <= ? ORDER BY committed_at LIMIT ?)'),
      putState: this.db.prepare('INSERT INTO state (ns, partition, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (ns, partition, key) DO UPDATE SET value = excluded.value'),
      deleteState: this.db.prepare('DELETE FROM state WHERE ns = ? AND partition = ? AND key = ?'),
      snapshot: this.db.prepare('SELECT key, value FROM state WHERE ns = ? AND partition = ? ORDER BY key'),
    };
    for (const row of this.db.prepare('SELECT topic, partitions FROM topics').all() as Array<{ topic: string; partitions: number }>) {
      this.topicPartitions.set(row.topic, row.partitions);
    }
    const intervalMs = options.maintenanceIntervalMs ?? 10_000;
    if (intervalMs > 0) {
      const guard = options.guard ?? defaultGuard;
      this.timer = setInterval(guard.wrap('log.maintenance', {}, () => this.maintain()), intervalMs);
      this.timer.unref();
    }
  }

  ensureTopic(topic: string, partitions: number): number {
    const existing = this.topicPartitions.get(topic);
    if (existing !== undefined) return existing;
    this.db.prepare('INSERT OR IGNORE INTO topics (topic, partitions) VALUES (?, ?)').run(topic, partitions);
    this.topicPartitions.set(topic, partitions);
    return partitions;
  }

  partitions(topic: string): number {
    const count = this.topicPartitions.get(topic);
    if (count === undefined) throw new Error(`unknown topic ${topic}`);
    return count;
  }

  head(topic: string, partition: number): number {
    const id = partitionId(topic, partition);
    let head = this.heads.get(id);
    if (head === undefined) {
      const last = this.stmt.lastBatch.get(topic, partition) as { head: number } | undefined;
      head = last === undefined ? this.start(topic, partition) : Number(last.head);
      this.heads.set(id, head);
    }
    return head;
  }

  /**
   * The first offset still stored: 0 until retention deleted batches, then the base of the first
   * batch kept (the head when none is left). Offsets below it are gone; a read from below starts here.
   */
  start(topic: string, partition: number): number {
    const id = partitionId(topic, partition);
    let start = this.starts.get(id);
    if (start === undefined) {
      start = Number((this.stmt.logStart.get(topic, partition) as { start: number } | undefined)?.start ?? 0);
      this.starts.set(id, start);
    }
    return start;
  }

  read(topic: string, partition: number, from: number, max: number, maxBytes = MAX_BATCH_INPUT_BYTES): StoredRecord[] {
    if (from >= this.head(topic, partition) || max <= 0) return [];
    const cached = this.tail.read(partitionId(topic, partition), from, max, maxBytes);
    if (cached !== null) return cached;
    // Below the first batch kept, there is no batch at or before `from`: start at the first kept.
    const first = this.stmt.batchAt.get(topic, partition, from) as { base: number } | undefined;
    const out: StoredRecord[] = [];
    let bytes = 0;
    // Row by row: a batch is read whole, and the byte bound may stop at the first one.
    for (const row of this.stmt.batchesFrom.iterate(topic, partition, first?.base ?? 0) as Iterable<{ base: number; count: number; payload: Uint8Array }>) {
      if (row.base + row.count <= from) continue;
      // A record counts as its batch's serialized bytes shared evenly (as the tail cache counts it).
      const each = row.payload.length / row.count;
      const records = deserialize(row.payload) as EncodedRecord[];
      for (let i = Math.max(0, from - row.base); i < records.length; i++) {
        if (out.length === max || (out.length > 0 && bytes + each > maxBytes)) return out;
        bytes += each;
        const [key, value, timestamp, headers] = records[i];
        out.push({ offset: row.base + i, key, value, timestamp, headers });
      }
    }
    return out;
  }

  committed(group: string, topic: string, partition: number): number {
    const row = this.stmt.committed.get(group, topic, partition) as { next: number } | undefined;
    return row ? Number(row.next) : 0;
  }

  waitForData(topic: string, partition: number, offset: number, timeoutMs: number): Promise<void> {
    return this.waitReadable(topic, partition, offset, undefined, timeoutMs);
  }

  waitForAppend(topic: string, partition: number, offset: number, signal?: AbortSignal): Promise<void> {
    return this.waitReadable(topic, partition, offset, signal, Infinity);
  }

  /** Waiters currently registered (no waiter outlives its append, abort or timeout). */
  get waiterCount(): number {
    return this.waiters.size;
  }

  private waitReadable(topic: string, partition: number, offset: number, signal: AbortSignal | undefined, timeoutMs: number): Promise<void> {
    // Below the first offset kept, records become readable only once the head passes that offset.
    const after = Math.max(offset, this.start(topic, partition));
    if (this.closed || this.head(topic, partition) > after) return Promise.resolve();
    return this.waiters.wait(partitionId(topic, partition), after, signal, timeoutMs);
  }

  commit(set: CommitSet): boolean {
    if (set.appends.length === 0 && set.offsets.length === 0 && set.state.length === 0) return true;
    const syncOnce = set.durable === true && this.durability !== 'fsync';
    const effects = noEffects();
    if (syncOnce) this.db.exec('PRAGMA synchronous = FULL');
    try {
      this.db.exec('BEGIN IMMEDIATE');
      try {
        if (set.idempotencyKey !== undefined && !this.claimKey(set.idempotencyKey)) {
          this.db.exec('ROLLBACK');
          return false;
        }
        this.applyInTransaction(set, effects);
        this.db.exec('COMMIT');
      } catch (error) {
        if (this.db.isTransaction) this.db.exec('ROLLBACK');
        throw error;
      }
    } finally {
      if (syncOnce) this.db.exec('PRAGMA synchronous = NORMAL');
    }
    this.applyEffects(effects);
    return true;
  }

  /** Claims an idempotency key: false when it was committed less than the TTL ago. */
  private claimKey(key: string): boolean {
    const now = this.now();
    if (Number(this.stmt.claimKey.run(key, now, now - this.idempotencyTtlMs).changes) === 0) return false;
    // Amortized pruning: expired keys go at up to twice the rate keys arrive, never by a scan.
    if (++this.keyedCommits % IDEMPOTENCY_PRUNE_EVERY === 0) this.stmt.pruneKeys.run(now - this.idempotencyTtlMs, 2 * IDEMPOTENCY_PRUNE_EVERY);
    return true;
  }

  private applyInTransaction(set: CommitSet, effects: Effects): void {
    const now = this.now();
    const retained = new Set<string>();
    for (const append of set.appends) {
      if (append.records.length === 0) continue;
      const { topic, partition } = append;
      const id = partitionId(topic, partition);
      const base = effects.heads.get(id) ?? this.head(topic, partition);
      const encoded: EncodedRecord[] = append.records.map((r) => [r.key, r.value, r.timestamp, r.headers]);
      const payload = serialize(encoded);
      if (this.retained(topic)) {
        effects.storedBytes.set(id, (effects.storedBytes.get(id) ?? this.storedBytesOf(topic, partition)) + payload.length);
        retained.add(id);
      }
      this.stmt.insertBatch.run(topic, partition, base, encoded.length, payload.length, now, payload);
      effects.heads.set(id, base + encoded.length);
      effects.appended.push([id, base, append.records, payload.length]);
    }
    const advanced = new Set<string>();
    for (const o of set.offsets) {
      this.stmt.upsertOffset.run(o.group, o.topic, o.partition, o.next);
      advanced.add(partitionId(o.topic, o.partition));
    }
    for (const s of set.state) {
      for (const write of s.writes) {
        if (write.value === null) this.stmt.deleteState.run(s.namespace, s.partition, write.key);
        else this.stmt.putState.run(s.namespace, s.partition, write.key, write.value);
      }
    }
    if (this.truncateConsumed) {
      for (const id of advanced) {
        // Every few commits of a partition, not every one: a delete of several batches costs little more than of one.
        const since = (this.commitsSinceTruncation.get(id) ?? 0) + 1;
        if (since < TRUNCATE_EVERY_COMMITS) {
          this.commitsSinceTruncation.set(id, since);
          effects.unfinished.add(id);
          continue;
        }
        this.commitsSinceTruncation.delete(id);
        this.deleteConsumed(id, TRUNCATE_ROWS_PER_COMMIT, effects);
      }
    }
    for (const id of retained) {
      const [topic] = splitId(id);
      if (effects.storedBytes.get(id)! > this.retention.of(topic).maxBytes) this.applyRetention(id, now, effects);
    }
  }

  /** Kept by age and size: sinks and dead letters, and source edges kept for replay. */
  private retained(topic: string): boolean {
    return isRetainedTopic(topic) || this.retention.keepsConsumed(topic);
  }

  /** Deletes batches of partition `id` every group committed past, `limit` rows at most. */
  private deleteConsumed(id: string, limit: number, effects: Effects): void {
    const [topic, partition] = splitId(id);
    // A source edge keeps what was consumed for replay: its age and size rule decide (applyRetention).
    if (this.retention.keepsConsumed(topic)) return;
    const low = (this.stmt.minCommitted.get(topic, partition) as { low: number | null }).low;
    if (low === null) return; // no group has committed here: nothing is known to be consumed
    const deleted = this.stmt.deleteConsumed.all(topic, partition, low, limit) as Array<{ end: number; bytes: number }>;
    if (deleted.length === 0) return;
    let start = 0;
    let bytes = 0;
    for (const row of deleted) {
      start = Math.max(start, Number(row.end));
      bytes += Number(row.bytes);
    }
    this.recordDeleted(id, start, deleted.length, bytes, effects);
    if (deleted.length === limit) effects.unfinished.add(id);
  }

  /**
   * Age and size retention of a sink, dead-letter or kept source-edge partition, oldest batches
   * first; a source edge's never past what every group has committed (nothing unconsumed goes).
   */
  private applyRetention(id: string, now: number, effects: Effects): void {
    const [topic, partition] = splitId(id);
    const { maxAgeMs, maxBytes } = this.retention.of(topic);
    let consumed = Infinity;
    if (this.retention.keepsConsumed(topic)) {
      const low = (this.stmt.minCommitted.get(topic, partition) as { low: number | null }).low;
      if (low === null) return; // no group has committed here: nothing is known to be consumed
      consumed = Number(low);
    }
    const head = effects.heads.get(id) ?? this.head(topic, partition);
    const expired = now - maxAgeMs;
    // Unknown (not appended to by this process, limits unchanged): within its size limit already.
    const stored = effects.storedBytes.get(id) ?? this.storedBytes.get(id) ?? null;
    const rows = this.stmt.oldestBatches.iterate(topic, partition, TRUNCATE_ROWS_PER_STEP) as Iterable<{ base: number; count: number; bytes: number; appended_at: number }>;
    // Over the limit, down to 15/16 of it: the next deletions come in chunks, not one batch per append.
    const target = stored !== null && stored > maxBytes ? maxBytes - Math.floor(maxBytes / 16) : Infinity;
    let cut = -1;
    let bytes = 0;
    let count = 0;
    for (const row of rows) {
      const end = Number(row.base) + Number(row.count);
      const tooOld = Number(row.appended_at) <= expired;
      // The size rule keeps the newest batch; the age rule does not.
      const tooBig = stored! - bytes > target && end < head;
      if ((!tooOld && !tooBig) || end > consumed) break;
      cut = end;
      bytes += Number(row.bytes);
      count++;
    }
    if (cut < 0) return;
    this.stmt.deleteBelow.run(topic, partition, cut);
    this.recordDeleted(id, cut, count, bytes, effects);
    if (count === TRUNCATE_ROWS_PER_STEP) effects.unfinished.add(id);
  }

  private recordDeleted(id: string, start: number, count: number, bytes: number, effects: Effects): void {
    const [topic, partition] = splitId(id);
    this.stmt.setLogStart.run(topic, partition, start);
    effects.starts.set(id, Math.max(effects.starts.get(id) ?? 0, start));
    effects.batchesDeleted += count;
    const stored = effects.storedBytes.get(id) ?? this.storedBytes.get(id);
    if (stored !== undefined) effects.storedBytes.set(id, Math.max(0, stored - bytes));
  }

  /** Stored payload bytes of a retained partition (summed once per process, then counted). */
  private storedBytesOf(topic: string, partition: number): number {
    const id = partitionId(topic, partition);
    let bytes = this.storedBytes.get(id);
    if (bytes === undefined) {
      bytes = Number((this.stmt.partitionBytes.get(topic, partition) as { bytes: number }).bytes);
      this.storedBytes.set(id, bytes);
    }
    return bytes;
  }

  private applyEffects(effects: Effects): void {
    for (const [id, base, records, bytes] of effects.appended) {
      // Sinks and dead letters have no consumer at the head (they are read by offset over HTTP).
      if (!isRetainedTopic(id.slice(0, id.lastIndexOf('\u0000')))) this.tail.append(id, base, records, bytes);
    }
    for (const [id, bytes] of effects.storedBytes) this.storedBytes.set(id, bytes);
    for (const [id, start] of effects.starts) {
      this.starts.set(id, Math.max(this.starts.get(id) ?? 0, start));
      this.tail.trimBelow(id, start);
    }
    for (const id of effects.unfinished) this.truncationPending.add(id);
    // Heads move only once the transaction is durable.
    for (const [id, head] of effects.heads) {
      this.heads.set(id, head);
      this.waiters.wake(id, head);
    }
  }

  /**
   * One maintenance step, bounded in work: prunes expired idempotency keys, finishes truncations
   * commits left unfinished, applies age (and lowered size) limits to sinks and dead letters, and
   * returns free pages beyond a slack to the file system. The log's timer runs it every
   * `maintenanceIntervalMs`; tests and benches may call it directly.
   */
  maintain(): MaintenanceReport {
    const report: MaintenanceReport = { idempotencyKeysPruned: 0, batchesDeleted: 0, pagesFreed: 0 };
    if (this.closed) return report;
    const now = this.now();
    report.idempotencyKeysPruned = Number(this.stmt.pruneKeys.run(now - this.idempotencyTtlMs, IDEMPOTENCY_PRUNE_ROWS_PER_STEP).changes);
    const effects = noEffects();
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const pending = [...this.truncationPending];
      this.truncationPending.clear();
      if (this.truncateConsumed) for (const id of pending) this.deleteConsumed(id, TRUNCATE_ROWS_PER_STEP, effects);
      for (const [topic, partitions] of this.topicPartitions) {
        if (!this.retained(topic)) continue;
        for (let partition = 0; partition < partitions; partition++) {
          const id = partitionId(topic, partition);
          if (this.head(topic, partition) === this.start(topic, partition)) continue;
          if (this.sizeChecks.delete(id)) this.storedBytesOf(topic, partition);
          this.applyRetention(id, now, effects);
        }
      }
      this.db.exec('COMMIT');
    } catch (error) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw error;
    }
    this.applyEffects(effects);
    report.batchesDeleted = effects.batchesDeleted;
    report.pagesFreed = this.vacuumStep();
    return report;
  }

  /** Returns free pages beyond the slack to the file system, one bounded step. */
  private vacuumStep(): number {
    if (!this.incrementalVacuum) return 0;
    const free = Number((this.db.prepare('PRAGMA freelist_count').get() as { freelist_count: number }).freelist_count);
    const pages = Number((this.db.prepare('PRAGMA page_count').get() as { page_count: number }).page_count);
    const slack = Math.max(VACUUM_SLACK_PAGES, Math.floor(pages / 10));
    if (free <= slack) return 0;
    const step = Math.min(VACUUM_STEP_PAGES, free - slack);
    this.db.exec(`PRAGMA incremental_vacuum(${step})`);
    return free - Number((this.db.prepare('PRAGMA freelist_count').get() as { freelist_count: number }).freelist_count);
  }

  /**
   * Sets the age and size limits of the sink and dead-letter topics starting with `topicPrefix`
   * (e.g. `<graph>/` for a graph-level setting, `<graph>/sink/<id>` for one sink); the longest
   * matching prefix wins, unset limits take the log's defaults, `null` removes the setting.
   * Applied by the next maintenance step, and at every append.
   */
  setRetention(topicPrefix: string, limits: Partial<RetentionLimits> | null): void {
    this.retention.set(topicPrefix, limits);
    for (const [topic, partitions] of this.topicPartitions) {
      if (!isRetainedTopic(topic) || !topic.startsWith(topicPrefix)) continue;
      for (let p = 0; p < partitions; p++) this.sizeChecks.add(partitionId(topic, p));
    }
  }

  /**
   * Keeps the consumed batches of an edge topic (a source edge) for replay, by age and size
   * (`limits`' unset fields: 24 h, 256 MiB per partition), never deleting a batch some group has
   * not committed past; `null` returns it to truncation once consumed. Held in memory: the graph
   * service registers its source edges at every launch, before their consumers start.
   */
  keepConsumed(topic: string, limits: Partial<RetentionLimits> | null): void {
    this.retention.keepConsumed(topic, limits);
    const partitions = this.topicPartitions.get(topic) ?? 0;
    for (let p = 0; p < partitions; p++) this.sizeChecks.add(partitionId(topic, p));
  }

  /** The age and size limits a topic is kept under (sinks, dead letters, kept source edges; other topics are kept until consumed). */
  retentionOf(topic: string): RetentionLimits | null {
    return this.retained(topic) ? this.retention.of(topic) : null;
  }

  /**
   * The first offset of a partition appended at or after `at` (ms since the epoch, the batch's
   * append time), at or above the first offset kept; the head when none was. Batch granularity:
   * the records of one append share its time.
   */
  offsetAtTime(topic: string, partition: number, at: number): number {
    const row = this.stmt.firstAppendedAt.get(topic, partition, at) as { base: number } | undefined;
    return row === undefined ? this.head(topic, partition) : Math.max(Number(row.base), this.start(topic, partition));
  }

  /** Appends in their own transaction (ingest, at-least-once outputs). */
  append(topic: string, partition: number, records: LogRecord[]): void {
    this.commit({ appends: [{ topic, partition, records }], offsets: [], state: [] });
  }

  stateSnapshot(namespace: string, partition: number): StateWrite[] {
    return (this.stmt.snapshot.all(namespace, partition) as Array<{ key: string; value: string | Uint8Array }>).map((row) => ({ key: row.key, value: row.value }));
  }

  deleteTopics(prefix: string): void {
    const end = prefixEnd(prefix);
    // Ranges over the primary keys (and offsets_by_partition) where the prefix allows it: no scan of other graphs' rows.
    const where = (column: string) => (end === null ? `substr(${column}, 1, ${prefix.length}) = ?1` : `${column} >= ?1 AND ${column} < ?2`);
    const args = end === null ? [prefix] : [prefix, end];
    this.db.exec('BEGIN IMMEDIATE');
    try {
      for (const [table, column] of [['batches', 'topic'], ['offsets', 'topic'], ['topics', 'topic'], ['log_starts', 'topic'], ['idempotency', 'key']]) {
        this.db.prepare(`DELETE FROM ${table} WHERE ${where(column)}`).run(...args);
      }
      this.db.exec('COMMIT');
    } catch (error) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw error;
    }
    for (const map of [this.heads, this.starts, this.storedBytes, this.commitsSinceTruncation, this.topicPartitions]) {
      for (const key of [...map.keys()]) if (key.startsWith(prefix)) map.delete(key);
    }
    for (const set of [this.sizeChecks, this.truncationPending]) for (const key of [...set]) if (key.startsWith(prefix)) set.delete(key);
    this.tail.deletePrefix(prefix);
    this.retention.forget(prefix);
    this.waiters.wakePrefix(prefix);
  }

  deleteState(namespacePrefix: string): void {
    this.db.prepare('DELETE FROM state WHERE substr(ns, 1, ?) = ?').run(namespacePrefix.length, namespacePrefix);
  }

  /** Bytes the decoded tail cache holds (serialized size). */
  get tailCacheBytes(): number {
    return this.tail.bytes;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== null) clearInterval(this.timer);
    this.waiters.wakeAll();
    this.db.close();
  }
}
