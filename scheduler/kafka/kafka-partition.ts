/**
 * The consumer of one partition of one Kafka input edge of one node, while this process owns it:
 * takes the batches the group consumer fetched, runs the node's function over them in an
 * isolate, and commits per the edge's delivery:
 *
 *   at-most-once   commit the group's offset past the batch (with this member's generation),
 *                  then run, then produce. A crash may lose the batch; never delivers it twice.
 *   at-least-once  run, produce (idempotent producer, acks=-1) and await the acks, apply state,
 *                  then commit the offset, at most every `commitIntervalMs`. A crash redelivers
 *                  from the last committed offset; nothing is lost.
 *   exactly-once   consume-transform-produce in one Kafka transaction per partition and
 *                  interval: outputs, dead letters and the group's offset (`sendOffsets`) commit
 *                  together (KIP-98); readers use read_committed. State writes are staged and
 *                  applied once the commit is known (see KafkaStateStore).
 *
 * Fencing. Every (re)assignment of the partition to this process "activates" it: a new
 * transactional producer with the stable transactionalId `${graph}/${node}/${topic}/${partition}`
 * registers (InitProducerId), which bumps the producer epoch — any older producer with that id,
 * a zombie owner included, can no longer commit — and completes or aborts the transaction it left.
 * Only then is the committed offset read, staged state recovered, and the fetch position moved
 * there. kafkajs's OffsetFetch lacks KIP-447's requireStable, and even after InitProducerId the
 * group coordinator applies a committed transaction's offsets asynchronously, so the offset read
 * is raised to the last commit this data directory promoted, and re-read while a staged commit
 * is past it (found by test/kafka-crash-recovery.test.ts: a stale read redid a committed batch).
 * One producer per input partition, because kafkajs sends TxnOffsetCommit v0-v2 without
 * KIP-447's member id and generation: the group coordinator cannot fence a zombie's offsets, only
 * the transaction coordinator can, per transactionalId.
 *
 * Any failure inside a transaction (broker loss, fencing, host crash) discards the producer
 * (kafkajs #1355/#1416 leave a failed one unusable) and re-activates the partition: everything
 * since the last commit is redone, and the function's state is reloaded as of that commit.
 */
import type { BatchControl, Broker, BrokerAppend, BrokerBatch, BrokerProducer, BrokerRecord, BrokerTransaction, GroupConsumer } from '../../connectors/broker.ts';
import type { KafkaStateStore } from '../../connectors/kafka/kafka-state-store.ts';
import type { LogRecord, StateWrite, Transport } from '../../connectors/transport.ts';
import { TributaryError, asTributaryError } from '../../runtime/errors.ts';
import type { WireBatchResult, WireRecord } from '../../runtime/guest/wire.ts';
import type { Delivery, EdgeSpec } from '../graph-spec.ts';
import type { TaskContext } from '../partition-worker.ts';
import type { OutputRoute } from '../topology.ts';
import type { CommitInterval } from './commit-interval.ts';

/** The worker's context plus the embedded log, where Kafka-fed state still lives. */
export type KafkaTaskContext = TaskContext & { transport: Transport };

export interface KafkaOutput {
  route: OutputRoute;
  broker: Broker;
  sink: boolean;
}

export interface KafkaPartitionContext {
  task: KafkaTaskContext;
  edge: EdgeSpec;
  topic: string;
  group: string;
  /** The input's cluster: its transactional producers and dead-letter topic live there. */
  broker: Broker;
  consumer(): GroupConsumer | null;
  outputs: KafkaOutput[];
  deadLetterTopic: string;
  /** The shared idempotent producer of a cluster (at-most/at-least-once outputs). */
  producerFor(broker: Broker): Promise<BrokerProducer>;
  /** Discards a cluster's shared producer after a failed send: the next send gets a new one. */
  dropProducer(broker: Broker): void;
  state: KafkaStateStore;
  interval: CommitInterval;
  transactionalId(partition: number): string;
  /**
   * The node has other input edges on the same state partitions: each batch then runs and
   * commits alone on its state partition (the worker's `exclusive`), exactly-once committing it
   * at once, so two edges never hold uncommitted writes over one copy of the state.
   */
  sharedState: boolean;
}

interface OpenTransaction {
  tx: BrokerTransaction;
  openedAt: number;
  end: number;
  writes: Map<string, string | Uint8Array | null>;
  sinkRecords: LogRecord[];
}

const MAX_BACKOFF_MS = 2000;
/** Re-reads of a partition's offset while a staged transaction's outcome is unknown (10 × 100 ms). */
const STABLE_OFFSET_RETRIES = 10;
const STABLE_OFFSET_WAIT_MS = 100;

export class KafkaPartition {
  readonly partition: number;
  private readonly ctx: KafkaPartitionContext;
  private lock: Promise<unknown> = Promise.resolve();
  private ready = false;
  private closed = false;
  /** Next offset to process (null: no committed offset yet, take what the consumer fetches). */
  private position: number | null = null;
  /** Last committed offset (the group's, as this owner knows it). */
  committed = -1;
  highWatermark = 0;
  private producer: BrokerProducer | null = null;
  private txn: OpenTransaction | null = null;
  /** at-least-once: processed end not yet committed, and when the last commit was. */
  private uncommitted: number | null = null;
  private lastCommitAt = 0;
  private timer: NodeJS.Timeout | null = null;
  private backoffMs = 0;
  /** Duration of the last exactly-once commit: part of a hop's latency for the "auto" interval. */
  private lastCommitMs = 0;
  /**
   * Writes evaluated since the partition's state last reached the store (exactly-once: the open
   * transaction's, at-least-once: the fetched batch's, each part of a halved batch as it is done):
   * a replica that lost its copy gets the committed state with these on top.
   */
  private overlay = new Map<string, string | Uint8Array | null>();
  /** This activation's owner token in the state store (exactly-once): its stages carry it. */
  private owner: string | null = null;
  lastError: TributaryError | null = null;

  constructor(ctx: KafkaPartitionContext, partition: number) {
    this.ctx = ctx;
    this.partition = partition;
  }

  private get delivery(): Delivery {
    return this.ctx.edge.delivery;
  }

  private get namespace(): string {
    return this.ctx.task.topology.stateNamespace(this.ctx.task.node.id);
  }

  /** Runs `work` after everything queued on this partition: one batch, commit or activation at a time. */
  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.lock.then(work, work);
    this.lock = next.catch(() => {});
    return next;
  }

  /** (Re)assigned to this process: fence, read the committed offset, recover state, seek there. */
  assign(): Promise<void> {
    return this.serialize(async () => {
      await this.deactivate();
      await this.activate().catch((error) => this.retryActivation(error));
    });
  }

  /** An idle partition must still be activated (its zombie transaction fenced): retry with backoff. */
  private retryActivation(error: unknown): void {
    this.noteFailure(error);
    this.scheduleActivation();
  }

  private scheduleActivation(): void {
    this.clearTimer();
    const activate = this.guarded('kafka.activate', () => {
      this.timer = null;
      return this.serialize(async () => {
        if (this.closed || this.ready) return;
        await this.activate().catch((again) => this.retryActivation(again));
      });
    });
    this.timer = setTimeout(activate, this.backoffMs);
  }

  /** A timer callback whose failure is reported in the graph's status instead of escaping. */
  private guarded(where: string, fn: () => unknown): () => void {
    const { task, topic } = this.ctx;
    return task.faults.wrap(where, { node: task.node.id, topic, partition: String(this.partition) }, fn);
  }

  /** Revoked or stopping: commits an open transaction if `commit`, else aborts it; releases the producer. */
  release(commit: boolean): Promise<void> {
    return this.serialize(async () => {
      if (commit && this.ready) await this.commitNow().catch(() => {});
      await this.deactivate();
      this.closed = true;
    });
  }

  handle(batch: BrokerBatch, control: BatchControl): Promise<void> {
    return this.serialize(async () => {
      if (this.closed) return;
      this.highWatermark = Math.max(this.highWatermark, batch.highWatermark);
      if (!this.ready) {
        await this.sleepBackoff(control);
        try {
          await this.activate();
        } catch (error) {
          this.noteFailure(error);
          return;
        }
      }
      // Fetched before our seek took effect. (A fetch waits for every batch of the previous one, so
      // once the seek is applied no older batch can arrive. Comparing offsets instead would wait
      // forever when the first batch after the seek holds only aborted records, which the
      // consumer skips without handing over.)
      if (control.isStale()) return;
      const position = this.position;
      const records = position === null ? batch.records : batch.records.filter((r) => r.offset >= position);
      if (records.length === 0) {
        if (batch.records.length > 0) control.resolve(batch.records[batch.records.length - 1].offset);
        return;
      }
      try {
        await this.exclusively(() => this.processRecords(records));
        control.resolve(records[records.length - 1].offset);
        this.backoffMs = 0;
      } catch (error) {
        await this.fail(error);
      }
    });
  }

  /**
   * One fetched batch of the partition: the function runs over chunks of `maxBatchRecords`, and a
   * chunk's outputs are produced while the next chunk runs; every send is acknowledged before
   * anything that depends on it (state for at-least-once, any commit) happens.
   */
  private async processRecords(records: BrokerRecord[]): Promise<void> {
    const started = performance.now();
    const end = records[records.length - 1].offset + 1;
    if (this.delivery !== 'exactly-once') this.overlay.clear();
    if (this.delivery === 'at-most-once') {
      // Committed before the function runs: from here on these records may be lost, never repeated.
      const consumer = this.ctx.consumer();
      if (!consumer) throw new TributaryError('ERR_KAFKA_UNAVAILABLE', 'consumer stopped');
      await consumer.commit(this.partition, end);
      this.committed = end;
      this.position = end;
    }
    const max = this.ctx.task.maxBatchRecords;
    // Sends run one after another (a key's outputs keep their order) while the next chunk runs.
    let sending: Promise<void> = Promise.resolve();
    let sendError: unknown = null;
    const enqueue = (send: () => Promise<void>) => {
      sending = sending.then(() => (sendError === null ? send() : undefined)).catch((error) => void (sendError ??= error));
    };
    const writes = new Map<string, string | Uint8Array | null>();
    const sinkRecords: LogRecord[] = [];
    let failed = 0;
    try {
      for (let i = 0; i < records.length; i += max) {
        const chunk = records.slice(i, i + max);
        const chunkEnd = chunk[chunk.length - 1].offset + 1;
        const result = await this.evaluate(chunk);
        failed += result.failed;
        sinkRecords.push(...result.sinkRecords);
        if (this.delivery === 'exactly-once') {
          this.txn ??= { tx: await this.transactionalProducer().then((p) => p.begin()), openedAt: Date.now(), end, writes: new Map(), sinkRecords: [] };
          for (const [key, value] of result.writes) this.txn.writes.set(key, value);
          const tx = this.txn.tx;
          enqueue(() => tx.send(result.appends));
        } else if (this.delivery === 'at-most-once') {
          // State before producing: a crash in between loses outputs, never repeats a count.
          if (result.writes.size > 0) this.ctx.state.apply(this.namespace, this.partition, this.ctx.topic, chunkEnd, toWrites(result.writes));
          this.overlay.clear();
          enqueue(() => this.send(result.appends));
        } else {
          for (const [key, value] of result.writes) writes.set(key, value);
          enqueue(() => this.send(result.appends));
        }
      }
    } finally {
      // Never leave a send behind: the next batch, commit or abort must come after it.
      await sending;
    }
    if (sendError !== null && this.delivery !== 'at-most-once') throw sendError;
    if (sendError !== null) this.noteFailure(sendError); // at-most-once: those outputs are lost
    this.position = end;
    if (this.delivery === 'exactly-once') {
      const txn = this.txn!;
      txn.end = end;
      txn.sinkRecords.push(...sinkRecords);
      this.record(records.length, failed, started);
      if (this.ctx.sharedState || Date.now() - txn.openedAt >= this.ctx.interval.ms) await this.commitNow();
      else this.armTimer();
      return;
    }
    // at-least-once applies state once the outputs are acknowledged: a crash in between repeats, never loses.
    if (this.delivery === 'at-least-once' && writes.size > 0) this.ctx.state.apply(this.namespace, this.partition, this.ctx.topic, end, toWrites(writes));
    this.ctx.task.onSinkAppend?.(sinkRecords);
    this.record(records.length, failed, started);
    if (this.delivery === 'at-least-once') {
      this.uncommitted = end;
      if (Date.now() - this.lastCommitAt >= this.ctx.interval.ms) await this.commitNow();
      else this.armTimer();
    }
  }

  /** Runs a batch alone on its state partition when the node shares it between input edges. */
  private async exclusively(work: () => Promise<void>): Promise<void> {
    if (!this.ctx.sharedState) return work();
    const { epochs } = this.ctx.task;
    await epochs.exclusive(this.partition, async () => {
      try {
        await work();
      } catch (error) {
        // Before another edge's batch runs: the isolate may hold this batch's partial writes.
        epochs.bump(this.partition);
        throw error;
      }
    });
  }

  private record(records: number, failed: number, started: number): void {
    const elapsed = performance.now() - started;
    this.ctx.task.stats.failed += failed;
    this.ctx.task.stats.recordBatch(records, elapsed);
    this.ctx.interval.observe(elapsed + this.lastCommitMs);
  }

  /** Commits what is pending: the open transaction (exactly-once) or the processed offset (at-least-once). */
  private async commitNow(): Promise<void> {
    this.clearTimer();
    if (this.txn) {
      const commitStarted = performance.now();
      const txn = this.txn;
      // Staged even without writes: the promoted offset is what activation trusts (see KafkaStateStore).
      this.ctx.state.stage(this.namespace, this.partition, this.ctx.topic, txn.end, toWrites(txn.writes), this.owner!);
      await txn.tx.sendOffsets(this.ctx.group, this.ctx.topic, this.partition, txn.end);
      await txn.tx.commit();
      this.txn = null;
      this.overlay.clear();
      this.committed = txn.end;
      this.ctx.state.promote(this.namespace, this.partition, this.ctx.topic);
      this.ctx.task.onSinkAppend?.(txn.sinkRecords);
      this.lastCommitMs = performance.now() - commitStarted;
      return;
    }
    if (this.uncommitted !== null) {
      const consumer = this.ctx.consumer();
      if (!consumer) throw new TributaryError('ERR_KAFKA_UNAVAILABLE', 'consumer stopped');
      const end = this.uncommitted;
      await consumer.commit(this.partition, end);
      this.uncommitted = null;
      this.committed = end;
      this.lastCommitAt = Date.now();
    }
  }

  private armTimer(): void {
    if (this.timer || !this.ready) return;
    const since = this.txn ? this.txn.openedAt : this.lastCommitAt;
    const wait = Math.max(0, since + this.ctx.interval.ms - Date.now());
    const commit = this.guarded('kafka.commit', () => {
      this.timer = null;
      return this.serialize(async () => {
        if (this.closed || !this.ready) return;
        try {
          await this.commitNow();
        } catch (error) {
          await this.fail(error);
        }
      });
    });
    this.timer = setTimeout(commit, wait);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Runs the function; dead-letters what it cannot process; routes outputs. */
  private async evaluate(records: BrokerRecord[]) {
    const { task, outputs } = this.ctx;
    const good = records.filter((r) => r.decodeError === undefined);
    const deadLetters: LogRecord[] = records.filter((r) => r.decodeError !== undefined).map((r) => this.deadLetter(r, `ERR_KAFKA_DECODE: ${r.decodeError}`));
    const emitted: LogRecord[] = [];
    const writes = new Map<string, string | Uint8Array | null>();
    for (const part of good.length ? await this.isolate(good) : []) {
      for (const e of part.result.emits) emitted.push({ key: e.key, value: e.value, timestamp: part.records[e.index].timestamp });
      for (const f of part.result.failures) deadLetters.push(this.deadLetter(part.records[f.index], f.error.message));
      for (const [key, value] of part.result.writes) writes.set(key, value);
    }
    const appends: BrokerAppend[] = [];
    const sinkRecords: LogRecord[] = [];
    for (const output of outputs) {
      for (const routed of task.topology.route(output.route, emitted)) appends.push(routed);
      if (output.sink) sinkRecords.push(...emitted);
    }
    if (deadLetters.length) appends.push({ topic: this.ctx.deadLetterTopic, partition: 0, records: deadLetters });
    return { appends, writes, sinkRecords, failed: deadLetters.length };
  }

  /**
   * Dispatches to the owning replica. A batch the function cannot finish (timeout, OOM) is halved
   * until the record that kills it is alone; that one is retried, then dead-lettered.
   */
  private async isolate(records: BrokerRecord[]): Promise<Array<{ records: BrokerRecord[]; result: WireBatchResult }>> {
    try {
      return [{ records, result: this.settle(await this.runOnReplica(records)) }];
    } catch (error) {
      const known = asTributaryError(error);
      // Classified in runtime/errors.ts: 'retry' fails the batch (redone after backoff); the others isolate the record.
      if (known.handling === 'retry') throw known;
      this.ctx.task.epochs.bump(this.partition);
      if (records.length > 1) {
        const half = Math.ceil(records.length / 2);
        return [...(await this.isolate(records.slice(0, half))), ...(await this.isolate(records.slice(half)))];
      }
      for (let attempt = 2; known.handling === 'bisect' && attempt <= this.ctx.task.maxAttempts; attempt++) {
        try {
          return [{ records, result: this.settle(await this.runOnReplica(records)) }];
        } catch (retryError) {
          const again = asTributaryError(retryError);
          if (again.handling === 'retry') throw again;
          this.ctx.task.epochs.bump(this.partition);
        }
      }
      const failure = { index: 0, error: { code: known.code, message: `${known.code}: ${known.message}` } };
      return [{ records, result: { emits: [], failures: [failure] as WireBatchResult['failures'], writes: [] } }];
    }
  }

  /** A part of the batch is done: later parts that reload state must see its writes. */
  private settle(result: WireBatchResult): WireBatchResult {
    for (const [key, value] of result.writes) this.overlay.set(key, value);
    return result;
  }

  private async runOnReplica(records: BrokerRecord[]): Promise<WireBatchResult> {
    const { task } = this.ctx;
    let replica = task.replicaFor(this.partition);
    if (replica < 0) {
      task.wake();
      replica = task.replicaFor(this.partition);
    }
    task.epochs.use(this.partition, replica);
    const tag = `${task.topology.graph}/${task.node.id}#${replica}`;
    const dispatched = performance.now();
    const wire: WireRecord[] = records.map((r) => ({ key: r.key, value: r.value, headers: r.headers ?? {}, offset: r.offset, timestamp: r.timestamp }));
    const state = { namespace: this.namespace, partition: this.partition, epoch: task.epochs.get(this.partition) };
    let result = await task.process({ records: wire, state, maxAttempts: task.maxAttempts }, tag);
    if (result.needState) {
      // The committed state, plus what was evaluated since (the overlay): what the isolate lost.
      const data = new Map<string, string | Uint8Array>();
      for (const w of task.transport.stateSnapshot(this.namespace, this.partition)) data.set(w.key, w.value!);
      for (const [key, value] of this.overlay) {
        if (value === null) data.delete(key);
        else data.set(key, value);
      }
      result = await task.process({ records: wire, state: { ...state, snapshot: [...data] }, maxAttempts: task.maxAttempts }, tag);
      if (result.needState) throw new TributaryError('ERR_INTERNAL', 'replica refused the state snapshot');
    }
    task.replicaDone(replica, records.length, performance.now() - dispatched);
    return result;
  }

  private async send(appends: BrokerAppend[]): Promise<void> {
    const byBroker = new Map<Broker, BrokerAppend[]>();
    for (const append of appends) {
      const broker = append.topic === this.ctx.deadLetterTopic ? this.ctx.broker : this.ctx.outputs.find((o) => o.route.topic === append.topic)!.broker;
      byBroker.set(broker, [...(byBroker.get(broker) ?? []), append]);
    }
    await Promise.all(
      [...byBroker].map(async ([broker, list]) => {
        try {
          await (await this.ctx.producerFor(broker)).send(list);
        } catch (error) {
          this.ctx.dropProducer(broker);
          throw error;
        }
      }),
    );
  }

  private async transactionalProducer(): Promise<BrokerProducer> {
    if (!this.producer) throw new TributaryError('ERR_KAFKA_UNAVAILABLE', 'partition not active');
    return this.producer;
  }

  private async activate(): Promise<void> {
    const { broker, group, topic } = this.ctx;
    if (this.delivery === 'exactly-once') {
      const producer = broker.producer({ transactionalId: this.ctx.transactionalId(this.partition) });
      try {
        await producer.connect(); // InitProducerId: fences older producers of this partition, settles their transaction
      } catch (error) {
        await producer.disconnect();
        throw error;
      }
      this.producer = producer;
      // Right after fencing, before reading what is staged: from here on a zombie cannot stage.
      this.owner = this.ctx.state.claim(this.namespace, this.partition, topic);
    }
    let committed = (await broker.committed(group, topic))[this.partition] ?? -1;
    if (this.delivery === 'exactly-once') {
      const { state } = this.ctx;
      // kafkajs's OffsetFetch lacks KIP-447's requireStable: the group coordinator may not have
      // applied the settled transaction's offsets yet. A promoted commit is certain; a staged one
      // past the offset read is either aborted or not yet applied: re-read for up to a second.
      committed = Math.max(committed, state.applied(this.namespace, this.partition, topic));
      const pending = state.pendingEnd(this.namespace, this.partition, topic);
      for (let i = 0; pending !== null && committed < pending && i < STABLE_OFFSET_RETRIES; i++) {
        await new Promise((resolve) => setTimeout(resolve, STABLE_OFFSET_WAIT_MS));
        committed = Math.max(committed, (await broker.committed(group, topic))[this.partition] ?? -1);
      }
      state.recover(this.namespace, this.partition, topic, committed);
    }
    // A group without a committed offset starts at the earliest record still in the log.
    const start = committed >= 0 ? committed : ((await broker.lowWatermarks(topic))[this.partition] ?? 0);
    this.ctx.task.epochs.bump(this.partition);
    this.committed = committed;
    this.position = start;
    this.uncommitted = null;
    this.lastCommitAt = Date.now();
    this.ctx.consumer()?.seek(this.partition, start);
    this.ready = true;
  }

  /** Drops everything since the last commit: aborts the transaction and releases the producer. */
  private async deactivate(): Promise<void> {
    this.clearTimer();
    const txn = this.txn;
    this.txn = null;
    this.overlay.clear();
    if (txn) await txn.tx.abort().catch(() => {}); // a failed abort is settled by the next InitProducerId
    const producer = this.producer;
    this.producer = null;
    await producer?.disconnect();
    if (this.ready) this.ctx.task.epochs.bump(this.partition);
    this.ready = false;
  }

  /** A batch or commit failed: redo from the last commit (at-most-once: the batch is given up). */
  private async fail(error: unknown): Promise<void> {
    this.noteFailure(error);
    this.ctx.task.epochs.bump(this.partition);
    if (this.delivery === 'at-most-once') return; // the offset moved already
    await this.deactivate();
    // Re-activate soon even if no batch comes: fencing settles a transaction a failed abort left open.
    this.scheduleActivation();
  }

  private noteFailure(error: unknown): void {
    const known = error instanceof TributaryError ? error : new TributaryError('ERR_INTERNAL', String((error as Error)?.message ?? error));
    this.ctx.task.stats.recordError(`${known.code}: ${known.message}`);
    this.lastError = known;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(50, this.backoffMs * 2));
  }

  private async sleepBackoff(control: BatchControl): Promise<void> {
    if (this.backoffMs === 0) return;
    await new Promise((resolve) => setTimeout(resolve, this.backoffMs));
    await control.heartbeat();
  }

  private deadLetter(record: BrokerRecord, error: string): LogRecord {
    return {
      key: record.key,
      value: { error, record: { key: record.key, value: record.value, timestamp: record.timestamp }, source: { topic: this.ctx.topic, partition: this.partition, offset: record.offset } },
      timestamp: Date.now(),
    };
  }
}

function toWrites(writes: Map<string, string | Uint8Array | null>): StateWrite[] {
  return [...writes].map(([key, value]) => ({ key, value }));
}
