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
  /** The end offset of a staged transaction not yet resolved, or null. */
  pendingEnd(ns: string, partition: number, topic: string): Promise<number | null>;
  /** Input topics with a staged transaction not yet resolved on a state partition. */
  pendingTopics(ns: string, partition: number): Promise<string[]>;
  /** Resolves what a previous owner staged, once `committed` was read after fencing it. */
  recover(ns: string, partition: number, topic: string, committed: CommittedOffset): Promise<void>;
  /**
   * Exactly-once, before the Kafka commit: keeps the entries aside until the commit decides.
   * Returns the metadata the offset commit must carry (null: none). Throws ERR_KAFKA_FENCED,
   * staging nothing, when `owner` is no longer the partition's owner.
   */
  stage(ns: string, partition: number, topic: string, end: number, entries: SealedEntries, owner: string): Promise<string | null>;
  /** Exactly-once, after the Kafka commit: the staged entries become the state. */
  promote(ns: string, partition: number, topic: string): Promise<void>;
  /** At-most/at-least-once: applies a batch's entries unless one ending at or after `end` was applied. */
  apply(ns: string, partition: number, topic: string, end: number, entries: SealedEntries): Promise<void>;
}
