/**
 * Where `env.STATE` partitions live between batches. The guest holds a partition's state in its
 * isolate (shipped as a snapshot, versioned by epoch); a StateStore is what that snapshot is read
 * from and what a batch's writes are committed to. Two implementations share one contract suite
 * (test/state-store-contract.ts): the embedded store (state rows in the log's own SQLite, the
 * reference) and S3 (connectors/s3/s3-state-store.ts).
 *
 * The commit protocol is what makes exactly-once possible whatever the store:
 *
 *   const staged = await store.stage(batch);        // may do I/O (S3: upload the writes)
 *   set.state.push(...staged.seal());               // synchronously, right before the commit
 *   transport.commit(set);                          // outputs + offset + sealed entries, one transaction
 *   staged.committed();                             // or staged.aborted() if it did not commit
 *
 * Contract:
 * - Writes become visible to `snapshot` only if the transaction carrying `seal()`'s entries
 *   committed, and then even if the process died before `committed()` was called (a new store over
 *   the same log and storage recovers them).
 * - Batches of one partition take effect in the order their `seal()` was called; a key's value is
 *   the one written by the last committed batch that wrote it. Recovery is idempotent: applying a
 *   committed batch again leaves the same values.
 * - `snapshot(ns, p)` holds exactly the partition's keys: namespaces and partitions never see each
 *   other's keys. Strings come back as strings, bytes as bytes.
 */
import type { CommitSet, StateWrite } from '../transport.ts';

/** What one batch wrote to one state partition: the final value per key, null deleting it. */
export interface StateBatch {
  /** `<graph>/<node>` (Topology.stateNamespace): one function instance's state, never shared. */
  namespace: string;
  partition: number;
  /** The epoch the writes were made under; names staged data, for diagnostics. */
  epoch: number;
  writes: StateWrite[];
}

export interface StagedState {
  /**
   * The entries to add to the batch's `CommitSet.state`. Call synchronously right before
   * `transport.commit`: batches of a partition are ordered by this call.
   */
  seal(): CommitSet['state'];
  /** The transaction committed: the store may publish the writes (in the background). */
  committed(): void;
  /** The batch will not commit (abandoned, or its transaction failed): staged data may go. */
  aborted(): void;
}

export interface StateStore {
  readonly kind: 'embedded' | 's3';
  /** Every committed key and value of a partition, sorted by key. */
  snapshot(namespace: string, partition: number): Promise<StateWrite[]>;
  /** Prepares a batch's writes for its transaction (see the protocol above). */
  stage(batch: StateBatch): Promise<StagedState>;
  /** Deletes the state of every namespace starting with `prefix` (`<graph>/` on graph delete). */
  deleteNamespaces(prefix: string): Promise<void>;
  /** Finishes background work it can finish quickly; committed state is never lost by closing. */
  close(): Promise<void>;
}
