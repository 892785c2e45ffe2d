/**
 * One input partition of one edge as the partition worker (scheduler/partition-worker.ts) sees
 * it, whatever carries it: the embedded SQLite log (connectors/embedded/embedded-edge-log.ts) or
 * Kafka. Everything is asynchronous, so a transport that talks to a broker fits the same shape,
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

export interface EdgeCommit {
  /** Outputs and dead letters. */
  appends: Array<TopicPartition & { records: LogRecord[] }>;
  /** The input offset to commit with them (the next one to read); null commits none. */
  next: number | null;
  /** The batch's staged state writes; null when it wrote none. */
  state: StagedState | null;
  /**
   * The commit gates an effect another party sees (an S3 state publish after it): it must be on
   * stable storage before `commit` resolves.
   */
  durable?: boolean;
}

export interface EdgePartitionLog {
  readonly topic: string;
  readonly partition: number;
  /** Takes ownership (a transport with owners fences older ones) and returns the offset to resume from. */
  open(): Promise<number>;
  /** Up to `max` records from `from`; none at the head. */
  read(from: number, max: number): Promise<StoredRecord[]>;
  /** Resolves when a `read` from `from` would return records, or when `signal` aborts; never rejects. */
  waitForData(from: number, signal: AbortSignal): Promise<void>;
  /** Applies one unit (see above); rejects when nothing of it took effect. */
  commit(unit: EdgeCommit): Promise<void>;
  /** Records appended but not yet committed by the consumer: the partition's lag. */
  lag(): number;
  /** Records appended so far (the arrival counter the autoscaler differentiates). */
  head(): number;
  /** Gives up ownership; an open transaction is aborted. */
  close(): Promise<void>;
}

/** The input partitions of one edge of one node, and which of them this process owns. */
export interface EdgeLog {
  readonly topic: string;
  /** Partitions this process owns now (the embedded log: all of them). */
  assignment(): number[];
  partition(partition: number): EdgePartitionLog;
}
