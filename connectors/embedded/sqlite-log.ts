/**
 * The embedded durable log: topics, committed offsets and function state in one SQLite database
 * (`log.db`, WAL). A batch of appended records is one row (base offset, count, V8-serialized
 * records) — what Kafka calls a record batch — so a million records cost a thousand inserts.
 * `commit` applies appends, offsets and state writes in one transaction: that single transaction
 * is what exactly-once edges are built on.
 *
 * Durability: `synchronous=NORMAL` survives a crash of the process (kill -9) without an fsync
 * per commit; a power loss may drop the last commits. `fsync: true` selects `synchronous=FULL`.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { deserialize, serialize } from 'node:v8';
import type { CommitSet, LogRecord, StateWrite, StoredRecord, Transport } from '../transport.ts';

/** Records kept decoded per partition for consumers at the head (halved when exceeded). */
const TAIL_RECORDS = 50_000;

type EncodedRecord = [key: string | null, value: unknown, timestamp: number, headers: Record<string, string> | undefined];

export interface SqliteLogOptions {
  dataDir: string;
  /** fsync every commit (default false: durable across process crashes, not power loss). */
  fsync?: boolean;
}

export class SqliteLog implements Transport {
  private readonly db: DatabaseSync;
  private readonly heads = new Map<string, number>();
  private readonly topicPartitions = new Map<string, number>();
  private readonly appended = new EventEmitter();
  /**
   * The most recent committed records of each partition, decoded: consumers that keep up read
   * them from here instead of SQLite. Holds records only after their transaction committed.
   */
  private readonly tails = new Map<string, { base: number; records: LogRecord[] }>();
  private readonly stmt: Record<string, StatementSync>;

  constructor(options: SqliteLogOptions) {
    mkdirSync(options.dataDir, { recursive: true });
    this.db = new DatabaseSync(join(options.dataDir, 'log.db'));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA synchronous = ${options.fsync ? 'FULL' : 'NORMAL'};
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS batches (
        topic TEXT NOT NULL, partition INTEGER NOT NULL, base INTEGER NOT NULL, count INTEGER NOT NULL, payload BLOB NOT NULL,
        PRIMARY KEY (topic, partition, base)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS offsets (
        grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
        PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS idempotency (key TEXT PRIMARY KEY, committed_at INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS state (
        ns TEXT NOT NULL, partition INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, -- BLOB affinity: text stays text
        PRIMARY KEY (ns, partition, key)) WITHOUT ROWID;`);
    this.appended.setMaxListeners(0);
    this.stmt = {
      insertBatch: this.db.prepare('INSERT INTO batches (topic, partition, base, count, payload) VALUES (?, ?, ?, ?, ?)'),
      batchAt: this.db.prepare('SELECT base FROM batches WHERE topic = ? AND partition = ? AND base <= ? ORDER BY base DESC LIMIT 1'),
      batchesFrom: this.db.prepare('SELECT base, count, payload FROM batches WHERE topic = ? AND partition = ? AND base >= ? ORDER BY base LIMIT ?'),
      head: this.db.prepare('SELECT MAX(base + count) AS head FROM batches WHERE topic = ? AND partition = ?'),
      committed: this.db.prepare('SELECT next FROM offsets WHERE grp = ? AND topic = ? AND partition = ?'),
      upsertOffset: this.db.prepare('INSERT INTO offsets (grp, topic, partition, next) VALUES (?, ?, ?, ?) ON CONFLICT (grp, topic, partition) DO UPDATE SET next = excluded.next'),
      putState: this.db.prepare('INSERT INTO state (ns, partition, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (ns, partition, key) DO UPDATE SET value = excluded.value'),
      deleteState: this.db.prepare('DELETE FROM state WHERE ns = ? AND partition = ? AND key = ?'),
      snapshot: this.db.prepare('SELECT key, value FROM state WHERE ns = ? AND partition = ? ORDER BY key'),
    };
    for (const row of this.db.prepare('SELECT topic, partitions FROM topics').all() as Array<{ topic: string; partitions: number }>) {
      this.topicPartitions.set(row.topic, row.partitions);
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
    const id = `${topic}\u0000${partition}`;
    let head = this.heads.get(id);
    if (head === undefined) {
      head = Number((this.stmt.head.get(topic, partition) as { head: number | null }).head ?? 0);
      this.heads.set(id, head);
    }
    return head;
  }

  read(topic: string, partition: number, from: number, max: number): StoredRecord[] {
    if (from >= this.head(topic, partition) || max <= 0) return [];
    const tail = this.tails.get(`${topic}\u0000${partition}`);
    if (tail !== undefined && from >= tail.base) {
      const start = from - tail.base;
      const end = Math.min(tail.records.length, start + max);
      const out: StoredRecord[] = new Array(end - start);
      for (let i = start; i < end; i++) out[i - start] = { offset: tail.base + i, ...tail.records[i] };
      return out;
    }
    const first = this.stmt.batchAt.get(topic, partition, from) as { base: number } | undefined;
    const out: StoredRecord[] = [];
    let base = first?.base ?? 0;
    while (out.length < max) {
      const rows = this.stmt.batchesFrom.all(topic, partition, base, 64) as Array<{ base: number; count: number; payload: Uint8Array }>;
      for (const row of rows) {
        if (row.base + row.count <= from) continue;
        const records = deserialize(row.payload) as EncodedRecord[];
        for (let i = Math.max(0, from - row.base); i < records.length && out.length < max; i++) {
          const [key, value, timestamp, headers] = records[i];
          out.push({ offset: row.base + i, key, value, timestamp, headers });
        }
        if (out.length >= max) break;
      }
      if (rows.length < 64) break;
      base = rows[rows.length - 1].base + 1;
    }
    return out;
  }

  committed(group: string, topic: string, partition: number): number {
    const row = this.stmt.committed.get(group, topic, partition) as { next: number } | undefined;
    return row ? Number(row.next) : 0;
  }

  waitForData(topic: string, partition: number, offset: number, timeoutMs: number): Promise<void> {
    if (this.head(topic, partition) > offset) return Promise.resolve();
    const event = `${topic}\u0000${partition}`;
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.appended.off(event, done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.appended.on(event, done);
    });
  }

  commit(set: CommitSet): boolean {
    if (set.appends.length === 0 && set.offsets.length === 0 && set.state.length === 0) return true;
    const newHeads = new Map<string, number>();
    const committed: Array<[id: string, base: number, records: LogRecord[]]> = [];
    this.db.exec('BEGIN IMMEDIATE');
    try {
      if (set.idempotencyKey !== undefined) {
        const inserted = this.db.prepare('INSERT OR IGNORE INTO idempotency (key, committed_at) VALUES (?, ?)').run(set.idempotencyKey, Date.now());
        if (Number(inserted.changes) === 0) {
          this.db.exec('ROLLBACK');
          return false;
        }
      }
      for (const append of set.appends) {
        if (append.records.length === 0) continue;
        const id = `${append.topic}\u0000${append.partition}`;
        const base = newHeads.get(id) ?? this.head(append.topic, append.partition);
        const encoded: EncodedRecord[] = append.records.map((r) => [r.key, r.value, r.timestamp, r.headers]);
        this.stmt.insertBatch.run(append.topic, append.partition, base, encoded.length, serialize(encoded));
        newHeads.set(id, base + encoded.length);
        committed.push([id, base, append.records]);
      }
      for (const o of set.offsets) this.stmt.upsertOffset.run(o.group, o.topic, o.partition, o.next);
      for (const s of set.state) {
        for (const write of s.writes) {
          if (write.value === null) this.stmt.deleteState.run(s.namespace, s.partition, write.key);
          else this.stmt.putState.run(s.namespace, s.partition, write.key, write.value);
        }
      }
      this.db.exec('COMMIT');
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    }
    for (const [id, base, records] of committed) this.remember(id, base, records);
    // Heads move only once the transaction is durable.
    for (const [id, head] of newHeads) {
      this.heads.set(id, head);
      this.appended.emit(id);
    }
    return true;
  }

  private remember(id: string, base: number, records: LogRecord[]): void {
    let tail = this.tails.get(id);
    if (tail === undefined || tail.base + tail.records.length !== base) {
      tail = { base, records: [] };
      this.tails.set(id, tail);
    }
    for (const record of records) tail.records.push(record);
    if (tail.records.length > TAIL_RECORDS) {
      const drop = tail.records.length - TAIL_RECORDS / 2;
      tail.records = tail.records.slice(drop);
      tail.base += drop;
    }
  }

  /** Appends in their own transaction (ingest, at-least-once outputs). */
  append(topic: string, partition: number, records: LogRecord[]): void {
    this.commit({ appends: [{ topic, partition, records }], offsets: [], state: [] });
  }

  stateSnapshot(namespace: string, partition: number): StateWrite[] {
    return (this.stmt.snapshot.all(namespace, partition) as Array<{ key: string; value: string | Uint8Array }>).map((row) => ({ key: row.key, value: row.value }));
  }

  deleteTopics(prefix: string): void {
    this.db.prepare('DELETE FROM batches WHERE substr(topic, 1, ?) = ?').run(prefix.length, prefix);
    this.db.prepare('DELETE FROM offsets WHERE substr(topic, 1, ?) = ?').run(prefix.length, prefix);
    this.db.prepare('DELETE FROM topics WHERE substr(topic, 1, ?) = ?').run(prefix.length, prefix);
    for (const key of [...this.heads.keys()]) if (key.startsWith(prefix)) this.heads.delete(key);
    for (const key of [...this.tails.keys()]) if (key.startsWith(prefix)) this.tails.delete(key);
    for (const key of [...this.topicPartitions.keys()]) if (key.startsWith(prefix)) this.topicPartitions.delete(key);
  }

  deleteState(namespacePrefix: string): void {
    this.db.prepare('DELETE FROM state WHERE substr(ns, 1, ?) = ?').run(namespacePrefix.length, namespacePrefix);
  }

  close(): void {
    this.db.close();
  }
}
