/**
 * The local {@link KafkaStateLedger}: Kafka-fed state kept in the embedded log's database
 * (`log.db`, the `state` table the embedded StateStore reads), for a platform without a bucket.
 * Per (namespace, input topic, input partition):
 *
 *   1. stage    the transaction's sealed entries, with the offset `end` it commits and a fresh
 *               token, in `kafka_state_pending` (one row per input partition), before the Kafka commit;
 *   2. commit   the Kafka transaction: outputs + the group's offset `end`, the token as its metadata;
 *   3. promote  write the staged entries to `state` and record `end` in `kafka_state_applied`,
 *               in one SQLite transaction that deletes the row.
 *
 * A crash between 2 and 3 leaves a staged row behind. Whoever owns the partition next first
 * fences the old producer (InitProducerId completes or aborts its transaction), then reads the
 * committed offset and metadata and calls {@link recover}: a row whose token the metadata
 * carries belongs to the committed transaction and is promoted; any other to an aborted one and
 * is dropped. (The offset cannot tell: a transaction of timers reads no input, so it commits the
 * offset the transaction before it did.) The state is then exactly the state as of the committed
 * offset, which is what the replay from it reads.
 *
 * Promoting twice changes nothing (the row goes with the first). At-least-once applies are
 * idempotent: entries of a batch ending at or below the applied offset are skipped, so a replay
 * of a batch already applied changes nothing; a batch of timers (no end) always applies.
 *
 * Owners. Every activation of a partition claims it with a fresh owner token ({@link claim}), and
 * only the current owner can stage: a zombie (a previous owner still running, its producer fenced)
 * staging after the claim gets ERR_KAFKA_FENCED, so it can never replace the live owner's staged
 * row between its stage and its promote, nor leave a row for the next activation to misread.
 *
 * Every exactly-once commit is staged and promoted, with or without writes: the applied offset is
 * then a committed offset this ledger knows for certain. The log needs that because kafkajs
 * reads offsets without KIP-447's `requireStable`, and the group coordinator applies a committed
 * transaction's offsets asynchronously after the transaction completes: a read right after
 * fencing the previous owner can return an older offset than the one it committed.
 */
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { deserialize, serialize } from 'node:v8';
import { TributaryError } from '../../runtime/errors.ts';
import type { CommitSet } from '../transport.ts';
import type { CommittedOffset, KafkaStateLedger, PendingTransaction } from './kafka-state-ledger.ts';

interface PendingRow {
  end_offset: number;
  writes: Uint8Array;
  txn: string | null;
}

/** What a StateStore sealed: rows of the `state` table. */
export type SealedEntries = CommitSet['state'];

export class KafkaCommitLedger implements KafkaStateLedger {
  private readonly db: DatabaseSync;
  private readonly stmt: Record<string, StatementSync>;

  /** Opens `log.db` in `dataDir`; the embedded log (SqliteLog) must have created its `state` table. */
  constructor(dataDir: string) {
    this.db = new DatabaseSync(join(dataDir, 'log.db'));
    this.db.exec(`
      PRAGMA journal_mode = WAL;
      PRAGMA busy_timeout = 5000;
      CREATE TABLE IF NOT EXISTS kafka_state_applied (
        ns TEXT NOT NULL, partition INTEGER NOT NULL, topic TEXT NOT NULL, next INTEGER NOT NULL,
        PRIMARY KEY (ns, partition, topic)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS kafka_state_owner (
        ns TEXT NOT NULL, partition INTEGER NOT NULL, topic TEXT NOT NULL, owner TEXT NOT NULL,
        PRIMARY KEY (ns, partition, topic)) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS kafka_state_pending (
        ns TEXT NOT NULL, partition INTEGER NOT NULL, topic TEXT NOT NULL, end_offset INTEGER NOT NULL, writes BLOB NOT NULL, txn TEXT,
        PRIMARY KEY (ns, partition, topic)) WITHOUT ROWID;`);
    // A log.db from before transaction tokens: its rows keep a null token (recovered by offset).
    const columns = this.db.prepare('PRAGMA table_info(kafka_state_pending)').all() as Array<{ name: string }>;
    if (!columns.some((c) => c.name === 'txn')) this.db.exec('ALTER TABLE kafka_state_pending ADD COLUMN txn TEXT');
    // Every write here gates a Kafka effect: a stage precedes the transaction that commits the
    // offset, an at-least-once apply precedes the offset commit. On this connection only, each
    // commit is fsynced (synchronous=FULL), so a power loss cannot drop state Kafka already
    // counts as done; the log's own connection keeps its durability mode.
    this.db.exec('PRAGMA synchronous = FULL');
    this.stmt = {
      applied: this.db.prepare('SELECT next FROM kafka_state_applied WHERE ns = ? AND partition = ? AND topic = ?'),
      setApplied: this.db.prepare('INSERT INTO kafka_state_applied (ns, partition, topic, next) VALUES (?, ?, ?, ?) ON CONFLICT (ns, partition, topic) DO UPDATE SET next = excluded.next'),
      pending: this.db.prepare('SELECT end_offset, writes, txn FROM kafka_state_pending WHERE ns = ? AND partition = ? AND topic = ?'),
      pendingTopics: this.db.prepare('SELECT topic FROM kafka_state_pending WHERE ns = ? AND partition = ?'),
      stage: this.db.prepare(
        'INSERT OR REPLACE INTO kafka_state_pending (ns, partition, topic, end_offset, writes, txn) SELECT ?, ?, ?, ?, ?, ? WHERE (SELECT owner FROM kafka_state_owner WHERE ns = ? AND partition = ? AND topic = ?) = ?',
      ),
      claim: this.db.prepare('INSERT INTO kafka_state_owner (ns, partition, topic, owner) VALUES (?, ?, ?, ?) ON CONFLICT (ns, partition, topic) DO UPDATE SET owner = excluded.owner'),
      unstage: this.db.prepare('DELETE FROM kafka_state_pending WHERE ns = ? AND partition = ? AND topic = ?'),
      put: this.db.prepare('INSERT INTO state (ns, partition, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (ns, partition, key) DO UPDATE SET value = excluded.value'),
      delete: this.db.prepare('DELETE FROM state WHERE ns = ? AND partition = ? AND key = ?'),
    };
  }

  async claim(ns: string, partition: number, topic: string): Promise<string> {
    const owner = randomUUID();
    this.stmt.claim.run(ns, partition, topic, owner);
    return owner;
  }

  async applied(ns: string, partition: number, topic: string): Promise<number> {
    return this.appliedNow(ns, partition, topic);
  }

  async pending(ns: string, partition: number, topic: string): Promise<PendingTransaction | null> {
    const row = this.stmt.pending.get(ns, partition, topic) as PendingRow | undefined;
    return row ? { end: Number(row.end_offset), txn: row.txn } : null;
  }

  async pendingTopics(ns: string, partition: number): Promise<string[]> {
    return (this.stmt.pendingTopics.all(ns, partition) as Array<{ topic: string }>).map((r) => r.topic);
  }

  async recover(ns: string, partition: number, topic: string, committed: CommittedOffset): Promise<void> {
    const row = this.stmt.pending.get(ns, partition, topic) as PendingRow | undefined;
    if (!row) return;
    const end = Number(row.end_offset);
    // A later offset than the row's can only follow its commit; a row without a token is an old log.db's.
    const committedIt = row.txn === null ? committed.offset >= end : committed.metadata === row.txn || committed.offset > end;
    if (committedIt) return this.promote(ns, partition, topic);
    this.stmt.unstage.run(ns, partition, topic);
  }

  /** `txn`: the token to stage under (a caller whose metadata names something of its own); by default a fresh one. */
  async stage(ns: string, partition: number, topic: string, end: number, entries: SealedEntries, owner: string, txn = `tributary-txn:${randomUUID()}`): Promise<string> {
    const { changes } = this.stmt.stage.run(ns, partition, topic, end, serialize(entries), txn, ns, partition, topic, owner);
    if (Number(changes) === 0) throw new TributaryError('ERR_KAFKA_FENCED', `partition ${partition} of '${topic}' has a newer owner`);
    return txn;
  }

  async promote(ns: string, partition: number, topic: string): Promise<void> {
    this.transaction(() => {
      const row = this.stmt.pending.get(ns, partition, topic) as PendingRow | undefined;
      if (!row) return;
      // Applied whatever its end: a transaction of timers ends where the one before it did.
      this.write(deserialize(row.writes) as SealedEntries);
      this.stmt.setApplied.run(ns, partition, topic, Math.max(Number(row.end_offset), this.appliedNow(ns, partition, topic)));
      this.stmt.unstage.run(ns, partition, topic);
    });
  }

  async apply(ns: string, partition: number, topic: string, end: number | null, entries: SealedEntries): Promise<void> {
    this.transaction(() => {
      if (end === null) return this.write(entries);
      if (end <= this.appliedNow(ns, partition, topic)) return;
      this.write(entries);
      this.stmt.setApplied.run(ns, partition, topic, end);
    });
  }

  /**
   * After a seek (the groups' offsets set while no process consumed them), in one transaction:
   * forgets what was applied and staged for the partitions `rewound` — the group's new committed
   * offset is then where `open` resumes, and replayed batches are applied again — and deletes the
   * state and ledger rows of exactly the namespaces `reset` (their state reset: timers and
   * watermarks are state rows too).
   */
  rewind(rewound: Array<{ ns: string; topic: string; partitions: number[] }>, reset: string[]): void {
    this.transaction(() => {
      for (const { ns, topic, partitions } of rewound) {
        for (const partition of partitions) {
          for (const table of ['kafka_state_applied', 'kafka_state_pending']) this.db.prepare(`DELETE FROM ${table} WHERE ns = ? AND partition = ? AND topic = ?`).run(ns, partition, topic);
        }
      }
      for (const ns of reset) {
        for (const table of ['kafka_state_applied', 'kafka_state_pending', 'kafka_state_owner', 'state']) this.db.prepare(`DELETE FROM ${table} WHERE ns = ?`).run(ns);
      }
    });
  }

  deleteNamespace(prefix: string): void {
    this.db.prepare('DELETE FROM kafka_state_applied WHERE substr(ns, 1, ?) = ?').run(prefix.length, prefix);
    this.db.prepare('DELETE FROM kafka_state_pending WHERE substr(ns, 1, ?) = ?').run(prefix.length, prefix);
    this.db.prepare('DELETE FROM kafka_state_owner WHERE substr(ns, 1, ?) = ?').run(prefix.length, prefix);
  }

  close(): void {
    this.db.close();
  }

  private appliedNow(ns: string, partition: number, topic: string): number {
    const row = this.stmt.applied.get(ns, partition, topic) as { next: number } | undefined;
    return row ? Number(row.next) : -1;
  }

  private write(entries: SealedEntries): void {
    for (const entry of entries) {
      for (const write of entry.writes) {
        if (write.value === null) this.stmt.delete.run(entry.namespace, entry.partition, write.key);
        else this.stmt.put.run(entry.namespace, entry.partition, write.key, write.value);
      }
    }
  }

  private transaction<T>(work: () => T): T {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      const result = work();
      this.db.exec('COMMIT');
      return result;
    } catch (error) {
      this.db.exec('ROLLBACK');
      throw error;
    }
  }
}
