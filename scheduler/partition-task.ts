/**
 * The consumer of one partition of one input edge of one node: reads a batch from the edge's
 * log, runs the node's function over it in an isolate, and commits per the edge's delivery:
 *
 *   at-most-once   commit the input offset, then run, then append outputs. A crash may lose the
 *                  batch; it is never delivered twice.
 *   at-least-once  run, append outputs (and state) durably, then commit the input offset in a
 *                  second transaction. A crash between the two redelivers; nothing is lost.
 *   exactly-once   run, then append outputs, write state and commit the input offset in ONE
 *                  transaction. A crash anywhere leaves all of it or none of it.
 *
 * State goes through the node's StateStore (connectors/state/state-store.ts): the batch's writes
 * are staged first (S3: uploaded), and what the store seals joins the batch's transaction, so
 * state commits with the batch on every store.
 *
 * Records that throw on every attempt go to the node's dead-letter log with their error. A batch
 * the function cannot finish at all (timeout, OOM) is halved until the poison record is alone.
 */
import type { StagedState, StateStore } from '../connectors/state/state-store.ts';
import type { CommitSet, LogRecord, StoredRecord, Transport } from '../connectors/transport.ts';
import { TributaryError, isRecordFault } from '../runtime/errors.ts';
import type { WireBatch, WireBatchResult, WireRecord } from '../runtime/guest/wire.ts';
import type { GraphFaults } from './graph-faults.ts';
import type { Delivery, EdgeSpec, NodeSpec } from './graph-spec.ts';
import type { NodeStats } from './node-stats.ts';
import type { Topology } from './topology.ts';

export interface TaskContext {
  transport: Transport;
  /** Where env.STATE partitions are read from and committed to (embedded or S3). */
  stateStore: StateStore;
  topology: Topology;
  /** Where errors of the task's own loop (not of a batch) are reported: the graph's status and the platform's guard. */
  faults: GraphFaults;
  node: NodeSpec;
  stats: NodeStats;
  /** Runs the node's function over a batch on the replica `instanceTag`. */
  process(batch: WireBatch, instanceTag: string): Promise<WireBatchResult>;
  /** Replica the next batch of `partition` goes to; -1 when the node is scaled to zero. */
  replicaFor(partition: number): number;
  /** Asks for a replica when the node is scaled to zero and records arrived. */
  wake(): void;
  /** Reports a batch's service on a replica (straggler detection). */
  replicaDone(replica: number, records: number, elapsedMs: number): void;
  /** Current epoch of a state partition; `bump` invalidates what isolates hold. */
  epochs: { get(partition: number): number; bump(partition: number): void };
  maxBatchRecords: number;
  maxAttempts: number;
  /** Called after a commit with the records it appended to sinks. */
  onSinkAppend?(records: LogRecord[]): void;
}

const IDLE_WAIT_MS = 250;
const MAX_BACKOFF_MS = 2000;

export class PartitionTask {
  readonly edge: EdgeSpec;
  readonly partition: number;
  readonly topic: string;
  private readonly ctx: TaskContext;
  private readonly group: string;
  private running = false;
  /** Set once stopped: a batch finishing after that must not commit. */
  private abandoned = false;
  private loop: Promise<void> | null = null;
  /** Next offset to read; the committed offset, except for at-most-once mid-batch. */
  private next = 0;
  private batchLimit: number;
  private poisonAttempts = 0;
  private backoffMs = 0;
  /** Replica that processed the previous batch: a change of replica invalidates its state copy. */
  private lastReplica = -1;

  constructor(ctx: TaskContext, edge: EdgeSpec, partition: number) {
    this.ctx = ctx;
    this.edge = edge;
    this.partition = partition;
    this.topic = ctx.topology.topicOf(edge);
    this.group = ctx.topology.group(ctx.node.id);
    this.batchLimit = ctx.maxBatchRecords;
  }

  get delivery(): Delivery {
    return this.edge.delivery;
  }

  get committed(): number {
    return this.ctx.transport.committed(this.group, this.topic, this.partition);
  }

  get lag(): number {
    return this.ctx.transport.head(this.topic, this.partition) - this.committed;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.next = this.committed;
    this.loop = this.run();
  }

  /**
   * Stops after the batch in flight commits. A batch still running after `graceMs` is abandoned:
   * it will not commit, and the next owner of the partition processes it again — safe for
   * at-least-once and exactly-once, whose offsets it never moved.
   */
  async stop(graceMs = 2000): Promise<void> {
    this.running = false;
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, graceMs)));
    await Promise.race([this.loop, grace]);
    clearTimeout(timer);
    this.abandoned = true;
  }

  /**
   * The task's loop; it never rejects. A failing batch goes through `onFailure`; anything else
   * that throws (the log, or `onFailure` itself) is reported in the graph's status, and the loop
   * backs off and goes on.
   */
  private async run(): Promise<void> {
    while (this.running) {
      try {
        if (await this.step()) return;
      } catch (error) {
        if (this.abandoned || !this.running) return; // stopping: the log may be closing under us
        this.ctx.faults.report('partition.loop', { node: this.ctx.node.id, topic: this.topic, partition: String(this.partition) }, error);
        this.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(20, this.backoffMs * 2));
        await new Promise((resolve) => setTimeout(resolve, this.backoffMs));
      }
    }
  }

  /** Reads and processes one batch, or waits for one; true when the task was abandoned meanwhile. */
  private async step(): Promise<boolean> {
    const { transport } = this.ctx;
    const records = transport.read(this.topic, this.partition, this.next, this.batchLimit);
    if (records.length === 0) {
      await transport.waitForData(this.topic, this.partition, this.next, IDLE_WAIT_MS);
      return this.abandoned;
    }
    try {
      await this.processBatch(records);
      this.backoffMs = 0;
    } catch (error) {
      await this.onFailure(records, error);
    }
    return false;
  }

  private async processBatch(records: StoredRecord[]): Promise<void> {
    const { transport, topology, node, stats } = this.ctx;
    const started = performance.now();
    const end = records[records.length - 1].offset + 1;
    const offset = { group: this.group, topic: this.topic, partition: this.partition, next: end };
    if (this.delivery === 'at-most-once') {
      // Committed before the function runs: from here on this batch may be lost, never repeated.
      transport.commit({ appends: [], offsets: [offset], state: [] });
      this.next = end;
    }
    const result = await this.run_(records);
    if (this.abandoned) return;
    const set: CommitSet = { appends: [], offsets: [], state: [] };
    const emitted: LogRecord[] = result.emits.map((e) => ({ key: e.key, value: e.value, timestamp: records[e.index].timestamp }));
    for (const route of topology.outputs(node.id)) set.appends.push(...topology.route(route, emitted));
    if (result.failures.length > 0) {
      set.appends.push({
        topic: topology.deadLetterTopic(node.id),
        partition: 0,
        records: result.failures.map((f) => deadLetter(records[f.index], this.topic, this.partition, f.error.message)),
      });
    }
    let staged: StagedState | null = null;
    if (result.writes.length > 0) {
      // May fail (S3 down): the batch then fails before its transaction, and is retried.
      staged = await this.ctx.stateStore.stage({
        namespace: topology.stateNamespace(node.id),
        partition: this.partition,
        epoch: this.ctx.epochs.get(this.partition),
        writes: result.writes.map(([key, value]) => ({ key, value })),
      });
      if (this.abandoned) return staged.aborted();
    }
    try {
      // seal() right before the commit, with no await between: the store orders batches by it.
      if (staged !== null) set.state.push(...staged.seal());
      if (this.delivery === 'exactly-once') set.offsets.push(offset);
      transport.commit(set);
    } catch (error) {
      staged?.aborted();
      throw error;
    }
    staged?.committed();
    // at-least-once: a crash right here redelivers the batch; at-most-once already committed.
    if (this.delivery === 'at-least-once') transport.commit({ appends: [], offsets: [offset], state: [] });
    this.next = end;
    stats.failed += result.failures.length;
    stats.recordBatch(records.length, performance.now() - started);
    if (this.ctx.onSinkAppend) {
      for (const append of set.appends) if (topology.isSinkTopic(append.topic)) this.ctx.onSinkAppend(append.records);
    }
    this.batchLimit = this.ctx.maxBatchRecords;
    this.poisonAttempts = 0;
  }

  /** Dispatches to the owning replica; ships the state partition when the isolate lacks it. */
  private async run_(records: StoredRecord[]): Promise<WireBatchResult> {
    const { node, topology, stateStore, epochs } = this.ctx;
    let replica = this.ctx.replicaFor(this.partition);
    if (replica < 0) {
      this.ctx.wake();
      replica = this.ctx.replicaFor(this.partition);
    }
    // Another replica may hold an older copy of this partition's state at the same epoch.
    if (replica !== this.lastReplica && this.lastReplica !== -1) epochs.bump(this.partition);
    this.lastReplica = replica;
    const tag = `${topology.graph}/${node.id}#${replica}`;
    const dispatched = performance.now();
    const wire: WireRecord[] = records.map((r) => ({ key: r.key, value: r.value, headers: r.headers ?? {}, offset: r.offset, timestamp: r.timestamp }));
    const namespace = topology.stateNamespace(node.id);
    const state = { namespace, partition: this.partition, epoch: epochs.get(this.partition) };
    let result = await this.ctx.process({ records: wire, state, maxAttempts: this.ctx.maxAttempts }, tag);
    let loadMs = 0;
    if (result.needState) {
      const loading = performance.now();
      const snapshot = (await stateStore.snapshot(namespace, this.partition)).map((w) => [w.key, w.value!] as [string, string | Uint8Array]);
      // Loading state (S3: a listing and a GET per key) is not the replica's service time.
      loadMs = performance.now() - loading;
      result = await this.ctx.process({ records: wire, state: { ...state, snapshot }, maxAttempts: this.ctx.maxAttempts }, tag);
      if (result.needState) throw new TributaryError('ERR_INTERNAL', 'replica refused the state snapshot');
    }
    this.ctx.replicaDone(replica, records.length, performance.now() - dispatched - loadMs);
    return result;
  }

  private async onFailure(records: StoredRecord[], error: unknown): Promise<void> {
    if (this.abandoned) return;
    const { stats, epochs, transport, topology, node } = this.ctx;
    // Whatever the isolate holds for this partition may now be ahead of the committed state.
    epochs.bump(this.partition);
    const known = error instanceof TributaryError ? error : new TributaryError('ERR_INTERNAL', String((error as Error)?.message ?? error));
    stats.recordError(`${known.code}: ${known.message}`);
    if (this.delivery === 'at-most-once') return; // the offset moved already: the batch is given up
    const userFault = isRecordFault(known.code);
    if (userFault && records.length > 1) {
      this.batchLimit = Math.max(1, Math.ceil(records.length / 2));
      return;
    }
    if (userFault && ++this.poisonAttempts >= this.ctx.maxAttempts) {
      // A single record that kills its batch every time: dead-letter it and move on.
      const end = records[0].offset + 1;
      transport.commit({
        appends: [{ topic: topology.deadLetterTopic(node.id), partition: 0, records: [deadLetter(records[0], this.topic, this.partition, `${known.code}: ${known.message}`)] }],
        offsets: [{ group: this.group, topic: this.topic, partition: this.partition, next: end }],
        state: [],
      });
      this.next = end;
      stats.failed++;
      this.poisonAttempts = 0;
      this.batchLimit = this.ctx.maxBatchRecords;
      return;
    }
    this.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(20, this.backoffMs * 2));
    await new Promise((resolve) => setTimeout(resolve, this.backoffMs));
  }
}

function deadLetter(record: StoredRecord, topic: string, partition: number, error: string): LogRecord {
  return {
    key: record.key,
    value: { error, record: { key: record.key, value: record.value, timestamp: record.timestamp }, source: { topic, partition, offset: record.offset } },
    timestamp: Date.now(),
  };
}
