/**
 * One input partition of one edge as the partition worker (scheduler/partition-worker.ts) sees
 * it, whatever carries it: the embedded SQLite log (connectors/embedded/embedded-edge-log.ts) or
 * Kafka (connectors/kafka/kafka-edge-log.ts). Everything is asynchronous, so a transport that talks to a broker fits the same shape,
 * and the worker holding one needs nothing else from the process it runs in.
 *
 * The worker implements the three deliveries with one primitive, `commit(unit)`, whose unit says
 * what becomes visible together:
 *
 *   at-most-once   commit({ next })                 before the function runs, then
 *                  commit({ appends, state })       after it
 *   at-least-once  commit({ appends, state })       then commit({ next }): a crash in between redelivers
 *   exactly-once   commit({ appends, state, next }) one unit: all of it or none of it
 *
 * State goes through a StateStore ("stage, the transport's commit decides, promote"): the worker
 * stages the batch's writes, passes the staged state in the unit, and the log seals it right
 * before its commit and calls `committed()` or `aborted()` once the outcome is known.
 */
import type { StagedState } from './state/state-store.ts';
import type { LogRecord, StoredRecord, TopicPartition } from './transport.ts';

/** A record as read from an edge; `decodeError` set when the transport could not decode its bytes (dead-lettered unrun). */
export interface EdgeRecord extends StoredRecord {
  decodeError?: string;
}

export interface EdgeCommit {
  /** Outputs and dead letters. */
  appends: Array<TopicPartition & { records: LogRecord[] }>;
  /** The input offset to commit with them (the next one to read); null commits none. */
  next: number | null;
  /** The batch's staged state writes; null when it wrote none. */
  state: StagedState | null;
  /** The input offset the appends and state cover up to (exclusive): replays at or below it are recognised. */
  through?: number;
  /**
   * The commit gates an effect another party sees (an S3 state publish after it): it must be on
   * stable storage before `commit` resolves.
   */
  durable?: boolean;
  /** Called once the unit's appends are visible to readers (a broker may defer its commit). */
  onVisible?(): void;
  /** `performance.now()` when the batch started: what a log with a commit interval measures. */
  startedAt?: number;
}

/** One partition's offsets as status and the autoscaler see them. */
export interface PartitionOffsets {
  partition: number;
  /** The next offset to be written (the arrival counter the autoscaler differentiates). */
  head: number;
  /** The consumer's committed offset (the next to read). */
  committed: number;
  lag: number;
  /** This process consumes the partition now. */
  owned: boolean;
}

/**
 * One input partition while this process owns it. A broker may defer a commit (a transaction
 * kept open for its commit interval): `commit` then resolves once the unit is part of the open
 * transaction, and a later failure of that transaction makes every following `read` and `commit`
 * reject until `open` is called again, which resumes from the last offset that did commit.
 */
export interface EdgePartitionLog {
  readonly topic: string;
  readonly partition: number;
  /** Takes ownership (a transport with owners fences older ones) and returns the offset to resume from; may be called again. */
  open(): Promise<number>;
  /** Up to `max` records from `from` and about MAX_BATCH_INPUT_BYTES of them (at least one); none at the head. */
  read(from: number, max: number): Promise<EdgeRecord[]>;
  /** Resolves when a `read` from `from` would return records (or reject), or when `signal` aborts; never rejects. */
  waitForData(from: number, signal: AbortSignal): Promise<void>;
  /** Applies one unit (see above); rejects when nothing of it took effect. */
  commit(unit: EdgeCommit): Promise<void>;
  /** Makes what `commit` deferred visible now (a graceful stop). */
  flush(): Promise<void>;
  /** Records appended but not yet committed by the consumer: the partition's lag. */
  lag(): number;
  /** Records appended so far (the arrival counter the autoscaler differentiates). */
  head(): number;
  /** Gives up ownership; an open transaction is aborted. */
  close(): Promise<void>;
}

/**
 * The input partitions of one edge of one node, and which of them this process owns. Ownership
 * may change while it runs (a broker's consumer group): `start` reports every new assignment, and
 * the caller stops the workers of the old one before starting those of the new.
 */
export interface EdgeLog {
  readonly topic: string;
  /** Starts consuming; `onAssignment` gets the partitions this process owns, now and after every change. */
  start(onAssignment: (partitions: number[]) => void): void;
  /** Partitions this process owns now (the embedded log: all of them). */
  assignment(): number[];
  /** The log of an owned partition, for the current assignment. */
  partition(partition: number): EdgePartitionLog;
  /** Every partition of the edge, owned or not. */
  offsets(): PartitionOffsets[];
  stop(): Promise<void>;
}
