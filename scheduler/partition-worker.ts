/**
 * The one delivery engine: the consumer of one input partition of one edge of one node. It reads
 * a batch from the partition's EdgePartitionLog (connectors/edge-log.ts: the embedded log or a
 * broker), runs the node's function over it on a replica, and commits per the edge's delivery:
 *
 *   at-most-once   commit the input offset, then run, then append outputs and state. A crash may
 *                  lose the batch; it is never delivered twice.
 *   at-least-once  run, append outputs and state, then commit the input offset in a second unit.
 *                  A crash between the two redelivers; nothing is lost.
 *   exactly-once   run, then append outputs, state and the input offset as ONE unit. A crash
 *                  anywhere leaves all of it or none of it.
 *
 * State goes through the node's StateStore: the batch's writes are staged (S3: uploaded), the
 * log's commit decides, and the store promotes them. Batches of one state partition never
 * overlap, whichever input edge they come from (`exclusive`): a node with two inputs would
 * otherwise run two batches over one copy of the state, and ship it twice after a redeploy,
 * each commit overwriting the other's writes.
 *
 * A failed batch is handled as its error's class says (runtime/errors.ts `handling`): `retry`
 * backs off and retries the same batch; `bisect` and `never` halve the batch until the record
 * responsible is alone, then dead-letter it with the error — at once for `never`, after the
 * node's attempts for `bisect` (a record that crashes its host included) — and the rest of the
 * batch proceeds at the halved size until the failed batch is passed. At-most-once does the same
 * over the records it already took: a timing-out record is dead-lettered, the others still run.
 *
 * A log may defer a commit (Kafka keeps a transaction open for its commit interval): the writes of
 * units not yet committed stay in the worker's overlay, so a replica that lost its copy of the
 * state is shipped the committed state with them on top; and any failure of the log makes the
 * worker open it again, which resumes from the last offset that did commit (state reloaded).
 * Records the transport could not decode are dead-lettered without running.
 *
 * The worker holds only its log, the state store and the callbacks of its context, so where it
 * runs (the control plane, or a host process next to the isolates) is a placement choice.
 */
import type { EdgeCommit, EdgePartitionLog, EdgeRecord } from '../connectors/edge-log.ts';
import type { StagedState, StateStore } from '../connectors/state/state-store.ts';
import type { LogRecord, StateWrite } from '../connectors/transport.ts';
import { Backoff } from '../runtime/backoff.ts';
import { TributaryError, asTributaryError } from '../runtime/errors.ts';
import type { WireBatch, WireBatchResult, WireRecord } from '../runtime/guest/wire.ts';
import type { GraphFaults } from './graph-faults.ts';
import type { Delivery, EdgeSpec, NodeSpec } from './graph-spec.ts';
import type { NodeStats } from './node-stats.ts';
import type { Topology } from './topology.ts';

export interface StatePartitions {
  /** Current epoch of a state partition; `bump` invalidates what isolates hold. */
  get(partition: number): number;
  bump(partition: number): void;
  /** Notes that a partition's next batch runs on `replica`; a change of replica bumps its epoch. */
  use(partition: number, replica: number): void;
  /** Runs `work` alone on a state partition: batches of one partition, from any input edge, never overlap. */
  exclusive<T>(partition: number, work: () => Promise<T>): Promise<T>;
}

export interface TaskContext {
  /** Where env.STATE partitions are read from and committed to (embedded or S3). */
  stateStore: StateStore;
  topology: Topology;
  /** Where errors of the worker's own loop (not of a batch) are reported: the graph's status and the platform's guard. */
  faults: GraphFaults;
  node: NodeSpec;
  /** Where the node's dead letters go (the embedded log's topic, or the node's Kafka topic). */
  deadLetterTopic: string;
  stats: NodeStats;
  /** Runs the node's function over a batch on the replica `instanceTag`. */
  process(batch: WireBatch, instanceTag: string): Promise<WireBatchResult>;
  /** Replica the next batch of `partition` goes to; -1 when the node is scaled to zero. */
  replicaFor(partition: number): number;
  /** Asks for a replica when the node is scaled to zero and records arrived. */
  wake(): void;
  /** The instance tag replica `replica` runs under now (a recycled replica gets a new one). */
  instanceTag(replica: number): string;
  /** Reports a batch's service on a replica (straggler detection). */
  replicaDone(replica: number, records: number, elapsedMs: number): void;
  epochs: StatePartitions;
  maxBatchRecords: number;
  maxAttempts: number;
  /** Called after a commit with the records it appended to sinks. */
  onSinkAppend?(records: LogRecord[]): void;
}

type StoredRecord = EdgeRecord;

/** Writes of a unit whose commit the log has not decided yet. */
interface PendingWrites {
  writes: StateWrite[];
}

export class PartitionWorker {
  readonly edge: EdgeSpec;
  readonly log: EdgePartitionLog;
  private readonly ctx: TaskContext;
  private running = false;
  /** Set once stopped: a batch finishing after that must not commit. */
  private abandoned = false;
  private loop: Promise<void> | null = null;
  /** Wakes an idle wait when the worker stops. */
  private idle = new AbortController();
  /** Next offset to read from the log. */
  private next = 0;
  /** At-most-once: records whose offset is committed and that are still to run. */
  private held: StoredRecord[] = [];
  private batchLimit: number;
  /** While isolating a failed batch: its end; batches stay at the halved size until past it. */
  private suspectEnd: number | null = null;
  /** Failed runs of the single record at the front. */
  private attempts = 0;
  private readonly backoff = new Backoff(20, 2000);
  /** Units committed to the log whose state it has not promoted yet, oldest first. */
  private pending: PendingWrites[] = [];

  constructor(ctx: TaskContext, edge: EdgeSpec, log: EdgePartitionLog) {
    this.ctx = ctx;
    this.edge = edge;
    this.log = log;
    this.batchLimit = ctx.maxBatchRecords;
  }

  get partition(): number {
    return this.log.partition;
  }

  get delivery(): Delivery {
    return this.edge.delivery;
  }

  get lag(): number {
    return this.log.lag();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abandoned = false;
    this.idle = new AbortController();
    this.loop = this.run();
  }

  /**
   * Stops after the batch in flight commits. A batch still running after `graceMs` is abandoned:
   * it will not commit, and the next owner of the partition processes it again — safe for
   * at-least-once and exactly-once, whose offsets it never moved.
   */
  async stop(graceMs = 2000, options: { flush?: boolean } = {}): Promise<void> {
    this.running = false;
    this.idle.abort();
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([this.loop ?? Promise.resolve(), grace]);
    clearTimeout(timer);
    this.abandoned = true;
    // A graceful stop makes deferred commits visible (what was done before an abandoned batch
    // included: that batch never joins them); a revoked partition (another owner now) aborts them.
    if (options.flush) await this.log.flush().catch(() => {});
    await this.log.close().catch(() => {});
  }

  /**
   * The worker's loop; it never rejects. A failing batch goes through `onFailure`; anything else
   * that throws (the log, or `onFailure` itself) is reported in the graph's status, and the loop
   * backs off and goes on.
   */
  private async run(): Promise<void> {
    let opened = false;
    while (this.running) {
      try {
        if (!opened) {
          // Under the state partition's exclusion: opening may settle what another input edge left on it.
          this.next = await this.ctx.epochs.exclusive(this.partition, () => this.log.open());
          opened = true;
          // Whatever was not committed is gone: the isolate reloads the committed state.
          this.pending = [];
          this.ctx.epochs.bump(this.partition);
        }
        await this.step();
      } catch (error) {
        if (this.abandoned || !this.running) return; // stopping: the log may be closing under us
        this.ctx.faults.report('partition.loop', { node: this.ctx.node.id, topic: this.log.topic, partition: String(this.partition) }, error);
        opened = false;
        await this.backoff.sleep(this.idle.signal);
      }
    }
  }

  /** Takes and processes one batch, or waits for one. */
  private async step(): Promise<void> {
    const records = await this.take();
    if (this.abandoned || !this.running) return;
    if (records.length === 0) {
      await this.log.waitForData(this.next, this.idle.signal);
      return;
    }
    const { epochs } = this.ctx;
    const failure = await epochs.exclusive(this.partition, async () => {
      try {
        await this.processBatch(records);
        return null;
      } catch (error) {
        // Whatever the isolate holds for this partition may now be ahead of the committed state.
        epochs.bump(this.partition);
        return { error };
      }
    });
    if (failure) await this.onFailure(records, failure.error);
  }

  /** The next batch: from the log, or (at-most-once) from the records already taken. */
  private async take(): Promise<StoredRecord[]> {
    if (this.delivery !== 'at-most-once') return this.log.read(this.next, this.batchLimit);
    if (this.held.length === 0) {
      const records = await this.log.read(this.next, this.ctx.maxBatchRecords);
      if (records.length === 0) return records;
      const end = records[records.length - 1].offset + 1;
      // Committed before the function runs: from here on these records may be lost, never repeated.
      await this.log.commit({ appends: [], next: end, state: null });
      this.next = end;
      this.held = records;
    }
    return this.held.slice(0, this.batchLimit);
  }

  private async processBatch(records: StoredRecord[]): Promise<void> {
    const { topology, node, stats, stateStore } = this.ctx;
    const started = performance.now();
    const end = records[records.length - 1].offset + 1;
    const runnable = records.filter((r) => r.decodeError === undefined);
    const result: WireBatchResult = runnable.length > 0 ? await this.dispatch(runnable) : { emits: [], failures: [], writes: [] };
    if (this.abandoned) return;
    const emitted: LogRecord[] = result.emits.map((e) => ({ key: e.key, value: e.value, timestamp: runnable[e.index].timestamp }));
    const appends = topology.outputs(node.id).flatMap((route) => topology.route(route, emitted));
    const deadLetters = result.failures.map((f) => this.deadLetter(runnable[f.index], f.error.message));
    for (const r of records) if (r.decodeError !== undefined) deadLetters.push(this.deadLetter(r, `ERR_BAD_RECORD: ${r.decodeError}`));
    if (deadLetters.length > 0) appends.push({ topic: this.ctx.deadLetterTopic, partition: 0, records: deadLetters });
    let state: StagedState | null = null;
    const writes = result.writes.map(([key, value]) => ({ key, value }));
    if (writes.length > 0) {
      // May fail (S3 down): the batch then fails before its commit, and is retried.
      state = await stateStore.stage({ namespace: topology.stateNamespace(node.id), partition: this.partition, epoch: this.ctx.epochs.get(this.partition), writes });
      if (this.abandoned) return state.aborted();
    }
    // An S3 publish follows the commit: a power loss must not undo a commit already published.
    const durable = state !== null && stateStore.kind === 's3';
    const unit: EdgeCommit = { appends, state: state && this.tracked(state, writes), next: null, through: end, durable, startedAt: started };
    const sinkRecords = appends.filter((a) => topology.isSinkTopic(a.topic)).flatMap((a) => a.records);
    if (sinkRecords.length > 0 && this.ctx.onSinkAppend) unit.onVisible = () => this.ctx.onSinkAppend!(sinkRecords);
    if (this.delivery === 'exactly-once') {
      await this.log.commit({ ...unit, next: end });
    } else {
      if (appends.length > 0 || state !== null) await this.log.commit(unit);
      // at-least-once: a crash right here redelivers the batch; at-most-once committed before.
      if (this.delivery === 'at-least-once') await this.log.commit({ appends: [], state: null, next: end });
    }
    this.advance(records.length, end);
    stats.failed += deadLetters.length;
    stats.recordBatch(records.length, performance.now() - started);
    this.backoff.reset();
  }

  /** The staged state, its writes kept in the overlay until the log commits or aborts it. */
  private tracked(state: StagedState, writes: PendingWrites['writes']): StagedState {
    const entry: PendingWrites = { writes };
    this.pending.push(entry);
    const settle = () => {
      this.pending = this.pending.filter((p) => p !== entry);
    };
    return {
      seal: () => state.seal(),
      committed: () => {
        state.committed();
        settle();
      },
      aborted: () => {
        state.aborted();
        settle();
      },
    };
  }

  /** The first `count` records of the batch are done, up to offset `end`. */
  private advance(count: number, end: number): void {
    if (this.delivery === 'at-most-once') this.held = this.held.slice(count);
    else this.next = end;
    this.attempts = 0;
    if (this.suspectEnd === null || end >= this.suspectEnd) {
      this.suspectEnd = null;
      this.batchLimit = this.ctx.maxBatchRecords;
    }
  }

  /** Dispatches to the owning replica; ships the state partition when the isolate lacks it. */
  private async dispatch(records: StoredRecord[]): Promise<WireBatchResult> {
    const { node, topology, stateStore, epochs } = this.ctx;
    let replica = this.ctx.replicaFor(this.partition);
    if (replica < 0) {
      this.ctx.wake();
      replica = this.ctx.replicaFor(this.partition);
    }
    epochs.use(this.partition, replica);
    const tag = this.ctx.instanceTag(replica);
    const dispatched = performance.now();
    const wire: WireRecord[] = records.map((r) => ({ key: r.key, value: r.value, headers: r.headers ?? {}, offset: r.offset, timestamp: r.timestamp }));
    const namespace = topology.stateNamespace(node.id);
    const state = { namespace, partition: this.partition, epoch: epochs.get(this.partition) };
    let result = await this.ctx.process({ records: wire, state, maxAttempts: this.ctx.maxAttempts }, tag);
    let loadMs = 0;
    if (result.needState) {
      const loading = performance.now();
      const snapshot = await this.stateSnapshot(namespace);
      // Loading state (S3: a listing and a GET per key) is not the replica's service time.
      loadMs = performance.now() - loading;
      result = await this.ctx.process({ records: wire, state: { ...state, snapshot }, maxAttempts: this.ctx.maxAttempts }, tag);
      if (result.needState) throw new TributaryError('ERR_INTERNAL', 'replica refused the state snapshot');
    }
    this.ctx.replicaDone(replica, records.length, performance.now() - dispatched - loadMs);
    return result;
  }

  /** The committed state of the partition, with the writes of units the log has not decided yet on top. */
  private async stateSnapshot(namespace: string): Promise<Array<[string, string | Uint8Array]>> {
    const data = new Map<string, string | Uint8Array>();
    for (const w of await this.ctx.stateStore.snapshot(namespace, this.partition)) data.set(w.key, w.value!);
    for (const { writes } of this.pending) {
      for (const w of writes) {
        if (w.value === null) data.delete(w.key);
        else data.set(w.key, w.value);
      }
    }
    return [...data];
  }

  /** A batch failed as a whole: retry it, narrow it down, or dead-letter its one record (see the header). */
  private async onFailure(records: StoredRecord[], error: unknown): Promise<void> {
    if (this.abandoned) return;
    const { stats, node } = this.ctx;
    if (!(error instanceof TributaryError)) this.ctx.faults.report('partition.batch', { node: node.id, topic: this.log.topic, partition: String(this.partition) }, error);
    const known = asTributaryError(error);
    stats.recordError(`${known.code}: ${known.message}`);
    if (known.handling === 'retry') return this.backoff.sleep(this.idle.signal);
    if (records.length > 1) {
      this.suspectEnd ??= records[records.length - 1].offset + 1;
      this.batchLimit = Math.max(1, Math.ceil(records.length / 2));
      return;
    }
    if (known.handling === 'bisect' && ++this.attempts < this.ctx.maxAttempts) return this.backoff.sleep(this.idle.signal);
    await this.deadLetterAlone(records[0], known);
  }

  /** Dead-letters a record that fails every batch it is in, and moves past it. */
  private async deadLetterAlone(record: StoredRecord, error: TributaryError): Promise<void> {
    const { stats } = this.ctx;
    const end = record.offset + 1;
    const appends = [{ topic: this.ctx.deadLetterTopic, partition: 0, records: [this.deadLetter(record, `${error.code}: ${error.message}`)] }];
    await this.log.commit({ appends, state: null, next: this.delivery === 'at-most-once' ? null : end, through: end });
    this.advance(1, end);
    stats.failed++;
  }

  private deadLetter(record: StoredRecord, error: string): LogRecord {
    return {
      key: record.key,
      value: { error, record: { key: record.key, value: record.value, timestamp: record.timestamp }, source: { topic: this.log.topic, partition: this.partition, offset: record.offset } },
      timestamp: Date.now(),
    };
  }
}
