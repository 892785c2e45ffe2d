/**
 * Where the state writes of a Kafka-fed node are decided. Kafka cannot commit a state store's
 * write inside its transaction, so exactly-once uses the group's committed offset as the decision
 * of a two-step commit, per (state namespace, input partition, input topic):
 *
 *   1. stage    the transaction's writes, with the offset `end` it commits, before the Kafka commit;
 *   2. commit   the Kafka transaction: outputs + the group's offset `end` (+ the metadata `stage` returned);
 *   3. promote  make the staged writes the partition's state.
 *
 * Whoever owns the partition next first fences the old producer (InitProducerId completes or
 * aborts its transaction), then reads the committed offset and calls {@link recover}: a staged
 * transaction the offset covers is promoted, any other dropped. The state is then exactly the
 * state as of the offset, which is what the replay from it reads.
 *
 * Two implementations: {@link KafkaCommitLedger} (the local `log.db`, for embedded state) and
 * `KafkaS3State` (the bucket, shared by every process that consumes the group).
 */
import type { SealedEntries } from './kafka-commit-ledger.ts';

/** The group's committed offset of one partition, as read after fencing. */
export interface CommittedOffset {
  /** The next offset to read; -1 when the group has none. */
  offset: number;
  metadata: string | null;
}

export interface KafkaStateLedger {
  /**
   * Makes the caller the partition's owner (on every activation, after fencing the previous
   * producer and before `recover`); returns the token its stages must carry.
   */
  claim(ns: string, partition: number, topic: string): Promise<string>;
  /** The end offset of the last transaction (or batch) whose writes were applied, or -1. */
  applied(ns: string, partition: number, topic: string): Promise<number>;
  /**
   * The staged transaction not yet resolved: its end offset and the token its offset commit
   * carries as metadata (null for a row staged before tokens existed), or null when none is.
   */
  pending(ns: string, partition: number, topic: string): Promise<PendingTransaction | null>;
  /** Input topics with a staged transaction not yet resolved on a state partition. */
  pendingTopics(ns: string, partition: number): Promise<string[]>;
  /**
   * Resolves what a previous owner staged, once `committed` was read after fencing it: the staged
   * transaction committed when the committed metadata is its token. (Its end offset alone cannot
   * tell: a transaction of timers consumes no input, so it ends where the one before it did.)
   */
  recover(ns: string, partition: number, topic: string, committed: CommittedOffset): Promise<void>;
  /**
   * Exactly-once, before the Kafka commit: keeps the entries aside until the commit decides.
   * Returns the token the offset commit must carry as its metadata. Throws ERR_KAFKA_FENCED,
   * staging nothing, when `owner` is no longer the partition's owner.
   */
  stage(ns: string, partition: number, topic: string, end: number, entries: SealedEntries, owner: string): Promise<string>;
  /** Exactly-once, after the Kafka commit: the staged entries become the state. */
  promote(ns: string, partition: number, topic: string): Promise<void>;
  /**
   * At-most/at-least-once: applies a batch's entries unless one ending at or after `end` was
   * applied; `end` null (a batch of timers, which reads no input) applies them in any case.
   */
  apply(ns: string, partition: number, topic: string, end: number | null, entries: SealedEntries): Promise<void>;
}

export interface PendingTransaction {
  end: number;
  txn: string | null;
}
