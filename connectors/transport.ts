/**
 * The contract between the scheduler and a transport (the embedded log, Kafka): partitioned,
 * append-only topics with per-consumer-group committed offsets, and a transaction that makes
 * appends, offset commits and state writes visible together or not at all.
 *
 * Offsets are per (topic, partition), start at 0 and are contiguous. A consumer group's
 * committed offset is the next offset it will read.
 */

/** A record on a topic. `value` is any structured-clonable value; `timestamp` is ms since epoch. */
export interface LogRecord {
  key: string | null;
  value: unknown;
  timestamp: number;
  headers?: Record<string, string>;
}

export interface StoredRecord extends LogRecord {
  offset: number;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A state write: `value` null deletes the key. Strings are stored as text, bytes as blobs. */
export interface StateWrite {
  key: string;
  value: string | Uint8Array | null;
}

/** Everything one batch commits. Applied atomically by `commit`. */
export interface CommitSet {
  appends: Array<TopicPartition & { records: LogRecord[] }>;
  offsets: Array<TopicPartition & { group: string; next: number }>;
  state: Array<{ namespace: string; partition: number; writes: StateWrite[] }>;
  /**
   * Makes the commit idempotent: a set whose key was already committed is skipped as a whole.
   * Ingest uses it so a client retrying after a lost response does not append twice.
   */
  idempotencyKey?: string;
  /**
   * Makes this one transaction durable on stable storage before `commit` returns (fsync), whatever
   * the log's durability mode. Set it when the commit gates an effect another party sees — an
   * ingest's 202, a Kafka offset, an S3 publish — so a power loss cannot undo what was promised.
   */
  durable?: boolean;
}

export interface Transport {
  /** Creates the topic if missing; an existing topic keeps its partition count, which is returned. */
  ensureTopic(topic: string, partitions: number): number;
  partitions(topic: string): number;
  /**
   * Up to `max` records from `from` (inclusive), stopping once they take `maxBytes` (default
   * MAX_BATCH_INPUT_BYTES; at least one record is returned when any is there, however large); fewer
   * or none at the head. Retention may have deleted the records below some offset: a read from
   * below it starts at the first record kept.
   */
  read(topic: string, partition: number, from: number, max: number, maxBytes?: number): StoredRecord[];
  /** The next offset to be written. */
  head(topic: string, partition: number): number;
  committed(group: string, topic: string, partition: number): number;
  /**
   * Resolves when a `read` from `offset` would return records (the head exceeds `offset`, and the
   * first offset still kept), or after `timeoutMs`; `Infinity` waits for the append alone, with no timer.
   */
  waitForData(topic: string, partition: number, offset: number, timeoutMs: number): Promise<void>;
  /**
   * Resolves when a `read` from `offset` would return records, or when `signal` aborts (check
   * `signal.aborted`); never rejects. Woken by the append itself: no timer, no polling, and an
   * aborted waiter is removed at once.
   */
  waitForAppend(topic: string, partition: number, offset: number, signal?: AbortSignal): Promise<void>;
  /** Applies a whole CommitSet in one transaction; false when its idempotencyKey was already committed. */
  commit(set: CommitSet): boolean;
  stateSnapshot(namespace: string, partition: number): StateWrite[];
  /** Deletes the topics starting with `prefix`, their offsets and the idempotency keys under it. */
  deleteTopics(prefix: string): void;
  deleteState(namespacePrefix: string): void;
  close(): void;
}

export function emptyCommitSet(): CommitSet {
  return { appends: [], offsets: [], state: [] };
}
