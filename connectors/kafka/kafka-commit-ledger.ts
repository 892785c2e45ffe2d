/**
 * The decision record of state committed with Kafka. A node's state goes through its StateStore
 * (embedded or S3) whatever its transport; the store seals a batch's writes into entries for the
 * `state` table of the embedded log's database (`log.db`: the rows themselves, or S3's manifest
 * rows). The embedded log commits those entries in its own transaction; Kafka cannot commit a
 * SQLite write inside its transaction, so exactly-once edges use the committed consumer offset as
 * the decision of a two-step commit, kept here per (namespace, input topic, input partition):
 *
 *   1. stage    the transaction's sealed entries, with the offset `end` it commits, in
 *               `kafka_state_pending` (one row per input partition), before the Kafka commit;
 *   2. commit   the Kafka transaction: outputs + the group's offset `end`;
 *   3. promote  write the staged entries to `state` and record `end` in `kafka_state_applied`,
 *               in one SQLite transaction; then the store is told (`StagedState.committed`).
 *
 * A crash between 2 and 3 leaves a staged row behind. Whoever owns the partition next first
 * fences the old producer (InitProducerId completes or aborts its transaction), then reads the
 * committed offset C and calls {@link recover}: staged entries with `end <= C` belong to a
 * committed transaction and are promoted; others to an aborted one and are dropped. The state
 * is then exactly the state as of C, which is what the replay from C reads.
 *
 * Applying is idempotent: entries of a batch ending at or below the applied offset are skipped,
 * so promoting twice, or an at-least-once replay of a batch already applied, changes nothing.
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

/** What a StateStore sealed: rows of the `state` table. */
export type SealedEntries = CommitSet['state'];

export class KafkaCommitLedger {
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
        ns TEXT NOT NULL, partition INTEGER NOT NULL, topic TEXT NOT NULL, end_offset INTEGER NOT NULL, writes BLOB NOT NULL,
        PRIMARY KEY (ns, partition, topic)) WITHOUT ROWID;`);
    // Every write here gates a Kafka effect: a stage precedes the transaction that commits the
    // offset, an at-least-once apply precedes the offset commit. On this connection only, each
    // commit is fsynced (synchronous=FULL), so a power loss cannot drop state Kafka already
    // counts as done; the log's own connection keeps its durability mode.
    this.db.exec('PRAGMA synchronous = FULL');
    this.stmt = {
      applied: this.db.prepare('SELECT next FROM kafka_state_applied WHERE ns = ? AND partition = ? AND topic = ?'),
      setApplied: this.db.prepare('INSERT INTO kafka_state_applied (ns, partition, topic, next) VALUES (?, ?, ?, ?) ON CONFLICT (ns, partition, topic) DO UPDATE SET next = excluded.next'),
      pending: this.db.prepare('SELECT end_offset, writes FROM kafka_state_pending WHERE ns = ? AND partition = ? AND topic = ?'),
      pendingTopics: this.db.prepare('SELECT topic FROM kafka_state_pending WHERE ns = ? AND partition = ?'),
      stage: this.db.prepare(
        'INSERT OR REPLACE INTO kafka_state_pending (ns, partition, topic, end_offset, writes) SELECT ?, ?, ?, ?, ? WHERE (SELECT owner FROM kafka_state_owner WHERE ns = ? AND partition = ? AND topic = ?) = ?',
      ),
      claim: this.db.prepare('INSERT INTO kafka_state_owner (ns, partition, topic, owner) VALUES (?, ?, ?, ?) ON CONFLICT (ns, partition, topic) DO UPDATE SET owner = excluded.owner'),
      unstage: this.db.prepare('DELETE FROM kafka_state_pending WHERE ns = ? AND partition = ? AND topic = ?'),
      put: this.db.prepare('INSERT INTO state (ns, partition, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (ns, partition, key) DO UPDATE SET value = excluded.value'),
      delete: this.db.prepare('DELETE FROM state WHERE ns = ? AND partition = ? AND key = ?'),
    };
  }

  /** The end offset of the last batch whose writes were applied, or -1. */
  applied(ns: string, partition: number, topic: string): number {
    const row = this.stmt.applied.get(ns, partition, topic) as { next: number } | undefined;
    return row ? Number(row.next) : -1;
  }

  /** Applies a batch's entries (at-most/at-least-once) unless one ending at or after `end` was applied. */
  apply(ns: string, partition: number, topic: string, end: number, entries: SealedEntries): boolean {
    return this.transaction(() => this.applyLocked(ns, partition, topic, end, entries));
  }

  /** Input topics with a staged (not yet promoted) transaction on a state partition. */
  pendingTopics(ns: string, partition: number): string[] {
    return (this.stmt.pendingTopics.all(ns, partition) as Array<{ topic: string }>).map((r) => r.topic);
  }

  /** The end offset of a staged (not yet promoted) transaction, or null. */
  pendingEnd(ns: string, partition: number, topic: string): number | null {
    const row = this.stmt.pending.get(ns, partition, topic) as { end_offset: number } | undefined;
    return row ? Number(row.end_offset) : null;
  }

  /**
   * Makes the caller the partition's owner (on every activation, after fencing the previous
   * producer and before `recover`); returns the token its stages must carry.
   */
  claim(ns: string, partition: number, topic: string): string {
    const owner = randomUUID();
    this.stmt.claim.run(ns, partition, topic, owner);
    return owner;
  }

  /**
   * Exactly-once, before the Kafka commit: keeps the entries aside until the commit's outcome is
   * known. Throws ERR_KAFKA_FENCED, staging nothing, when `owner` is no longer the partition's owner.
   */
  stage(ns: string, partition: number, topic: string, end: number, entries: SealedEntries, owner: string): void {
    const { changes } = this.stmt.stage.run(ns, partition, topic, end, serialize(entries), ns, partition, topic, owner);
    if (Number(changes) === 0) throw new TributaryError('ERR_KAFKA_FENCED', `partition ${partition} of '${topic}' has a newer owner`);
  }

  /** Exactly-once, after the Kafka commit: applies the staged entries; returns them (none if nothing was staged). */
  promote(ns: string, partition: number, topic: string): SealedEntries {
    return this.transaction(() => {
      const row = this.stmt.pending.get(ns, partition, topic) as { end_offset: number; writes: Uint8Array } | undefined;
      if (!row) return [];
      const entries = decodeEntries(ns, partition, deserialize(row.writes));
      this.applyLocked(ns, partition, topic, Number(row.end_offset), entries);
      this.stmt.unstage.run(ns, partition, topic);
      return entries;
    });
  }

  /**
   * Resolves a staged row after the partition's previous transaction is settled and `committed`
   * read; returns the entries it promoted (the store must learn of them: S3 publishes its rows).
   */
  recover(ns: string, partition: number, topic: string, committed: number): { outcome: 'promoted' | 'dropped' | 'none'; entries: SealedEntries } {
    const row = this.stmt.pending.get(ns, partition, topic) as { end_offset: number } | undefined;
    if (!row) return { outcome: 'none', entries: [] };
    if (committed >= Number(row.end_offset)) return { outcome: 'promoted', entries: this.promote(ns, partition, topic) };
    this.stmt.unstage.run(ns, partition, topic);
    return { outcome: 'dropped', entries: [] };
  }

  deleteNamespace(prefix: string): void {
    this.db.prepare('DELETE FROM kafka_state_applied WHERE substr(ns, 1, ?) = ?').run(prefix.length, prefix);
    this.db.prepare('DELETE FROM kafka_state_pending WHERE substr(ns, 1, ?) = ?').run(prefix.length, prefix);
    this.db.prepare('DELETE FROM kafka_state_owner WHERE substr(ns, 1, ?) = ?').run(prefix.length, prefix);
  }

  close(): void {
    this.db.close();
  }

  private applyLocked(ns: string, partition: number, topic: string, end: number, entries: SealedEntries): boolean {
    if (end <= this.applied(ns, partition, topic)) return false;
    for (const entry of entries) {
      for (const write of entry.writes) {
        if (write.value === null) this.stmt.delete.run(entry.namespace, entry.partition, write.key);
        else this.stmt.put.run(entry.namespace, entry.partition, write.key, write.value);
      }
    }
    this.stmt.setApplied.run(ns, partition, topic, end);
    return true;
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

/** Staged entries; a row staged before entries were sealed by a StateStore holds `[key, value]` pairs of the partition's own state. */
function decodeEntries(ns: string, partition: number, stored: unknown): SealedEntries {
  const list = stored as unknown[];
  if (list.length > 0 && Array.isArray(list[0])) {
    return [{ namespace: ns, partition, writes: (list as Array<[string, string | Uint8Array | null]>).map(([key, value]) => ({ key, value })) }];
  }
  return list as SealedEntries;
}
