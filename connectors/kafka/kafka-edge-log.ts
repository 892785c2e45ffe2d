/**
 * Kafka as an EdgeLog (connectors/edge-log.ts): the input edge of one node on one topic, consumed
 * in the node's consumer group. Kafka decides which partitions this process owns (every
 * `tributary serve` process running the graph is a member of the group, so partitions spread
 * over processes and move to the survivors when one dies); every join reports the new assignment,
 * and each owned partition gets a fresh {@link KafkaPartitionLog}.
 *
 * Reading. The group consumer fetches; each partition buffers what was fetched (bounded in records
 * and bytes: a full buffer holds the fetch back) and the partition worker reads from the buffer.
 *
 * Committing, per the edge's delivery:
 *
 *   at-most-once   `{ next }` commits the group's offset (with this member's generation) at once,
 *                  before the function runs; outputs are then produced by an idempotent producer,
 *                  and a send that fails loses them (reported), it is never repeated.
 *   at-least-once  outputs are produced (acks=-1) and acknowledged, state applied, then the offset
 *                  commit is deferred to at most every `commitIntervalMs`. A crash redelivers from
 *                  the last committed offset; nothing is lost.
 *   exactly-once   consume-transform-produce in one Kafka transaction per partition and interval:
 *                  the units' outputs and dead letters, and the group's offset (`sendOffsets`),
 *                  commit together (KIP-98); readers use read_committed. The units' sealed state
 *                  is staged in the {@link KafkaStateLedger} before the commit (the offset commit
 *                  carries what the ledger names) and promoted after.
 *                  `commit(unit)` resolves once the unit is in the open transaction; a transaction
 *                  that fails breaks the partition log until the worker opens it again.
 *
 * Fencing. `open()` registers a transactional producer with the stable transactionalId of the
 * partition (InitProducerId), which bumps the producer epoch — any older producer with that id, a
 * zombie owner included, can no longer commit — and completes or aborts the transaction it left.
 * Only then is the committed offset read, staged state recovered, and the fetch position moved
 * there. kafkajs's OffsetFetch lacks KIP-447's requireStable, and even after InitProducerId the
 * group coordinator applies a committed transaction's offsets asynchronously, so the offset read
 * is raised to the last commit the ledger applied, and re-read while a staged commit is past it.
 * One producer per input partition, because kafkajs sends TxnOffsetCommit v0-v2 without KIP-447's
 * member id and generation: the group coordinator cannot fence a zombie's offsets, only the
 * transaction coordinator can, per transactionalId. Any failure inside a transaction discards the
 * producer (kafkajs #1355/#1416 leave a failed one unusable).
 */
import type { Broker, BrokerAppend, BrokerBatch, BatchControl, BrokerProducer, BrokerRecord, BrokerTransaction, GroupConsumer } from '../broker.ts';
import type { EdgeCommit, EdgeLog, EdgePartitionLog, EdgeRecord, PartitionOffsets } from '../edge-log.ts';
import { TributaryError, asTributaryError } from '../../runtime/errors.ts';
import { Backoff } from '../../runtime/backoff.ts';
import type { SealedEntries } from './kafka-commit-ledger.ts';
import type { KafkaStateLedger } from './kafka-state-ledger.ts';
import { translateKafkaError } from './kafka-errors.ts';
import { MAX_BATCH_INPUT_BYTES } from '../../runtime/limits.ts';

export type KafkaDelivery = 'at-most-once' | 'at-least-once' | 'exactly-once';
export type KafkaEdgeState = 'starting' | 'running' | 'degraded' | 'stopped';

/** Where the edge log reports what it cannot throw to anyone (a timer's commit, a consumer crash). */
export interface KafkaEdgeFaults {
  wrap<A extends unknown[]>(where: string, context: Record<string, string>, fn: (...args: A) => unknown): (...args: A) => void;
  run(where: string, context: Record<string, string>, fn: () => unknown): void;
  report(where: string, context: Record<string, string>, cause: unknown): void;
}

/** The commit interval in force (a fixed number of ms, or "auto" learning from what it observes). */
export interface CommitIntervalSource {
  readonly ms: number;
  observe(latencyMs: number): void;
}

export interface KafkaEdgeLogOptions {
  /** The input's cluster: its consumer group, transactional producers and dead-letter topic. */
  broker: Broker;
  topic: string;
  group: string;
  delivery: KafkaDelivery;
  /** The cluster an output topic is produced to. */
  brokerOf(topic: string): Broker;
  /** The shared idempotent producer of a cluster (at-most/at-least-once outputs). */
  producerFor(broker: Broker): Promise<BrokerProducer>;
  /** Discards a cluster's shared producer after a failed send. */
  dropProducer(broker: Broker): void;
  /** Stable per input partition: the fencing identity of exactly-once. */
  transactionalId(partition: number): string;
  /** Where the node's state commits are decided (local, or shared in S3). */
  ledger: KafkaStateLedger;
  /** The consuming node's state namespace. */
  namespace: string;
  interval: CommitIntervalSource;
  /** Commit every exactly-once unit at once (state partitions shared with other input edges). */
  commitEachUnit: boolean;
  faults: KafkaEdgeFaults;
  /** Labels of reported errors (node, topic). */
  context: Record<string, string>;
  /**
   * The node's other Kafka input edges: they share its state partitions. A crash between one
   * edge's Kafka commit and its promote leaves a staged row that edge's own `open` would recover;
   * this edge must not run a state partition before that, so its `open` settles them too.
   */
  siblings?: Array<{ topic: string; group: string; broker: Broker; transactionalId(partition: number): string }>;
  /** Records buffered per partition ahead of the worker (default 4096), and bytes (default 8 MiB). */
  bufferRecords?: number;
  bufferBytes?: number;
}

/** Re-reads of a partition's offset while a staged transaction's outcome is unknown (10 × 100 ms). */
const STABLE_OFFSET_RETRIES = 10;
const STABLE_OFFSET_WAIT_MS = 100;
/** Heads and committed offsets of the whole topic are refreshed this often (status, autoscaler). */
const REFRESH_MS = 1000;
/**
 * An owned partition whose worker has committed everything it was handed, with nothing buffered
 * or in a transaction, and whose head has not moved for this long, counts as caught up: the
 * offsets left between its committed offset and the head are ones a read_committed consumer never
 * hands over — transaction markers (every committed or aborted transaction writes one per
 * partition, KIP-98) and aborted records — so its lag is 0, not the marker count, and an idle
 * Kafka-fed node can scale to zero. Records of an upstream transaction still open keep the head
 * moving while it produces; one left open longer than this (a stalled producer) reads as idle
 * until it commits, and the first record it lets through wakes the node.
 */
const MARKERS_SETTLE_MS = 2 * 1000;
/** at-most/at-least-once units whose sends may be in flight behind the worker. */
const MAX_UNSENT = 4;
/** A fetched batch waits this long at most for its partition to be opened. */
const OPEN_WAIT_MS = 5000;

export class KafkaEdgeLog implements EdgeLog {
  readonly topic: string;
  readonly options: KafkaEdgeLogOptions;
  state: KafkaEdgeState = 'starting';
  reason: string | null = null;
  retryAt: number | null = null;
  private readonly backoff = new Backoff(500, 30_000);
  private consumer: GroupConsumer | null = null;
  private readonly logs = new Map<number, KafkaPartitionLog>();
  private owned: number[] = [];
  private listener: (partitions: number[]) => void = () => {};
  private stopped = false;
  private restartTimer: NodeJS.Timeout | null = null;
  private refreshTimer: NodeJS.Timeout | null = null;
  private heads: number[] = [];
  private committed: number[] = [];
  /** Per partition, the head last seen by offsets() and since when (for MARKERS_SETTLE_MS). */
  private seenHeads: Array<{ head: number; since: number }> = [];

  constructor(options: KafkaEdgeLogOptions) {
    this.options = options;
    this.topic = options.topic;
  }

  get attempts(): number {
    return this.backoff.attempts;
  }

  start(onAssignment: (partitions: number[]) => void): void {
    this.listener = onAssignment;
    this.options.faults.run('kafka.connect', this.options.context, () => this.connect());
    this.scheduleRefresh();
  }

  assignment(): number[] {
    return this.owned;
  }

  partition(partition: number): KafkaPartitionLog {
    let log = this.logs.get(partition);
    if (!log) this.logs.set(partition, (log = new KafkaPartitionLog(this, partition, () => this.consumer)));
    return log;
  }

  offsets(now = Date.now()): PartitionOffsets[] {
    const owned = new Set(this.owned);
    return this.heads.map((refreshed, partition) => {
      const live = owned.has(partition) ? this.logs.get(partition) : undefined;
      const head = Math.max(refreshed, live?.highWatermark ?? 0);
      let committed = Math.max(this.committed[partition] ?? 0, live?.committedOffset ?? 0, 0);
      const seen = this.seenHeads[partition];
      if (seen?.head !== head) this.seenHeads[partition] = { head, since: now };
      // Only markers (or aborted records) left: the committed offset is the head less those (see MARKERS_SETTLE_MS).
      else if (committed < head && live?.caughtUp() && now - seen.since >= MARKERS_SETTLE_MS) committed = head;
      return { partition, head, committed, lag: Math.max(0, head - committed), owned: owned.has(partition) };
    });
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const { broker, group, topic, faults, context } = this.options;
    const consumer = broker.consumer({ group, topic, readCommitted: true });
    this.consumer = consumer;
    try {
      await consumer.start({
        onBatch: async (batch, control) => {
          // Batches of a stopped or replaced consumer, or of a partition no longer ours, are not taken.
          if (this.stopped || this.consumer !== consumer || !this.owned.includes(batch.partition)) return;
          await this.logs.get(batch.partition)?.feed(batch, control);
        },
        onAssignment: faults.wrap('kafka.assignment', context, (partitions: number[]) => {
          if (!this.stopped && this.consumer === consumer) this.assign(partitions);
        }),
        onCrash: faults.wrap('kafka.crash', context, (error: unknown) => this.crashed(consumer, error)),
      });
      if (this.consumer !== consumer) return;
      this.state = 'running';
      this.reason = null;
      this.retryAt = null;
      this.backoff.reset();
    } catch (error) {
      this.crashed(consumer, error);
    }
  }

  /** After a join: every owned partition gets a fresh log (its worker opens it: fence, seek). */
  private assign(partitions: number[]): void {
    this.owned = [...partitions].sort((a, b) => a - b);
    for (const log of this.logs.values()) log.revoke();
    this.logs.clear();
    for (const p of this.owned) this.partition(p);
    this.listener(this.owned);
  }

  private crashed(consumer: GroupConsumer, error: unknown): void {
    if (this.stopped || this.consumer !== consumer) return;
    const known = translateKafkaError(error, `consuming '${this.topic}' in group '${this.options.group}'`);
    this.consumer = null;
    this.state = 'degraded';
    this.reason = `${known.code}: ${known.message}`;
    const wait = this.backoff.next();
    this.retryAt = Date.now() + wait;
    this.assign([]);
    const { faults, context } = this.options;
    const restart = faults.wrap('kafka.connect', context, () => {
      this.restartTimer = null;
      return this.connect();
    });
    faults.run('kafka.restart', context, async () => {
      try {
        await consumer.stop();
      } finally {
        // Reconnect even when stopping the crashed consumer failed (that failure is reported).
        if (!this.stopped) this.restartTimer = setTimeout(restart, wait);
      }
    });
  }

  private scheduleRefresh(): void {
    if (this.stopped) return;
    const refresh = this.options.faults.wrap('kafka.refresh', this.options.context, async () => {
      try {
        await this.refresh();
      } finally {
        this.scheduleRefresh();
      }
    });
    this.refreshTimer = setTimeout(refresh, this.heads.length === 0 ? 0 : REFRESH_MS);
  }

  /** Heads and committed offsets of every partition of the topic, owned or not (one admin round). */
  private async refresh(): Promise<void> {
    const { broker, group, topic } = this.options;
    try {
      this.heads = await broker.highWatermarks(topic);
      this.committed = await broker.committed(group, topic);
    } catch {
      // The consumer reports the broker's state; keep the last figures.
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    if (this.restartTimer) clearTimeout(this.restartTimer);
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    const consumer = this.consumer;
    this.consumer = null;
    await consumer?.stop();
  }
}

interface OpenTransaction {
  tx: BrokerTransaction;
  openedAt: number;
  /** The offset the transaction commits (the last unit's `next`). */
  end: number;
  units: EdgeCommit[];
  /** The sends of its units, one after another; the first failure is kept. */
  sending: Promise<void>;
  sendError: unknown;
}

/** One owned partition of a Kafka edge, for one assignment. */
export class KafkaPartitionLog implements EdgePartitionLog {
  readonly topic: string;
  readonly partition: number;
  highWatermark = 0;
  /** The group's committed offset as this owner knows it. */
  committedOffset = -1;
  private readonly edge: KafkaEdgeLog;
  private readonly options: KafkaEdgeLogOptions;
  private readonly consumer: () => GroupConsumer | null;
  private buffer: BrokerRecord[] = [];
  private bufferBytes = 0;
  /** The next offset the buffer takes; null until opened. */
  private expect: number | null = null;
  private readonly dataWaiters = new Set<() => void>();
  private readonly spaceWaiters = new Set<() => void>();
  private readonly openWaiters = new Set<() => void>();
  private closed = false;
  /** Why the partition must be opened again (a failed transaction or offset commit). */
  private broken: TributaryError | null = null;
  /** Commits, flushes, opens and closes run one at a time. */
  private lock: Promise<unknown> = Promise.resolve();
  private producer: BrokerProducer | null = null;
  private owner: string | null = null;
  private txn: OpenTransaction | null = null;
  /** at-least-once: the offset processed and not yet committed. */
  private uncommitted: number | null = null;
  private lastCommitAt = 0;
  private lastCommitMs = 0;
  private timer: NodeJS.Timeout | null = null;
  /** at-most/at-least-once: the units' sends (and state) in order; never rejects. */
  private sending: Promise<void> = Promise.resolve();
  private unsent = 0;

  constructor(edge: KafkaEdgeLog, partition: number, consumer: () => GroupConsumer | null) {
    this.edge = edge;
    this.options = edge.options;
    this.topic = edge.topic;
    this.partition = partition;
    this.consumer = consumer;
  }

  private get delivery(): KafkaDelivery {
    return this.options.delivery;
  }

  private get context(): Record<string, string> {
    return { ...this.options.context, partition: String(this.partition) };
  }

  /** Runs `work` after everything queued on this partition. */
  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const next = this.lock.then(work, work);
    this.lock = next.catch(() => {});
    return next;
  }

  /** A fetched batch: buffered for the worker; waits (heartbeating) while the buffer is full. */
  async feed(batch: BrokerBatch, control: BatchControl): Promise<void> {
    this.highWatermark = Math.max(this.highWatermark, batch.highWatermark);
    if (this.expect === null && !this.closed) await this.until(this.openWaiters, control, OPEN_WAIT_MS);
    // Fetched before our seek took effect. (A fetch waits for every batch of the previous one, so
    // once the seek is applied no older batch can arrive. Comparing offsets instead would wait
    // forever when the first batch after the seek holds only aborted records, which the consumer
    // skips without handing over.)
    if (this.closed || this.expect === null || control.isStale()) return;
    const expect = this.expect;
    for (const record of batch.records) {
      if (record.offset < expect) continue;
      this.buffer.push(record);
      this.bufferBytes += approximateBytes(record);
      this.expect = record.offset + 1;
    }
    if (batch.records.length > 0) control.resolve(batch.records[batch.records.length - 1].offset);
    wakeAll(this.dataWaiters);
    const maxRecords = this.options.bufferRecords ?? 4096;
    const maxBytes = this.options.bufferBytes ?? 8 * 1024 * 1024;
    while (!this.closed && (this.buffer.length >= maxRecords || this.bufferBytes >= maxBytes) && !control.isStale()) {
      await this.until(this.spaceWaiters, control, Infinity);
    }
  }

  /** Waits for a wake-up in `waiters`, heartbeating every second, for at most `timeoutMs`. */
  private async until(waiters: Set<() => void>, control: BatchControl, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      let wake!: () => void;
      const woken = new Promise<boolean>((resolve) => (wake = () => resolve(true)));
      waiters.add(wake);
      let timer: NodeJS.Timeout | undefined;
      const beat = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), Math.min(1000, Math.max(0, deadline - Date.now())))));
      const wasWoken = await Promise.race([woken, beat]);
      clearTimeout(timer);
      waiters.delete(wake);
      if (wasWoken || this.closed || Date.now() >= deadline) return;
      await control.heartbeat();
    }
  }

  open(): Promise<number> {
    return this.serialize(async () => {
      if (this.closed) throw new TributaryError('ERR_KAFKA_UNAVAILABLE', `partition ${this.partition} of '${this.topic}' is no longer owned`);
      await this.deactivate();
      const { broker, group, topic, ledger, namespace } = this.options;
      let committed: number;
      if (this.delivery === 'exactly-once') {
        const producer = broker.producer({ transactionalId: this.options.transactionalId(this.partition) });
        try {
          await producer.connect(); // InitProducerId: fences older producers of this partition, settles their transaction
        } catch (error) {
          await producer.disconnect();
          throw error;
        }
        this.producer = producer;
        // Right after fencing, before reading what is staged: from here on a zombie cannot stage.
        this.owner = await ledger.claim(namespace, this.partition, topic);
        committed = await this.settle({ broker, group, topic });
        const pending = await ledger.pendingTopics(namespace, this.partition);
        for (const sibling of this.options.siblings ?? []) if (pending.includes(sibling.topic)) await this.settleSibling(sibling);
      } else {
        committed = (await broker.committed(group, topic))[this.partition] ?? -1;
      }
      // A group without a committed offset starts at the earliest record still in the log.
      const start = committed >= 0 ? committed : ((await broker.lowWatermarks(topic))[this.partition] ?? 0);
      this.committedOffset = committed;
      this.uncommitted = null;
      this.lastCommitAt = Date.now();
      this.broken = null;
      this.buffer = [];
      this.bufferBytes = 0;
      this.expect = start;
      this.consumer()?.seek(this.partition, start);
      wakeAll(this.spaceWaiters);
      wakeAll(this.openWaiters);
      return start;
    });
  }

  /**
   * Resolves what the previous owner of this partition of `edge` staged (its producer is fenced
   * by now): reads the committed offset, raised to what the ledger applied and re-read while a
   * staged commit is past it (the coordinator may not have applied it yet: no requireStable);
   * the ledger then promotes or drops it. Returns the committed offset.
   */
  private async settle(edge: { broker: Broker; group: string; topic: string }): Promise<number> {
    const { ledger, namespace } = this.options;
    const read = () => edge.broker.committedEntry(edge.group, edge.topic, this.partition);
    let committed = await read();
    const applied = await ledger.applied(namespace, this.partition, edge.topic);
    const pending = await ledger.pending(namespace, this.partition, edge.topic);
    // A transaction of timers ends where the one before it did: until its token shows, an offset equal to its end may be the older one.
    const unsettled = () => pending !== null && committed.metadata !== pending.txn && Math.max(committed.offset, applied) <= pending.end;
    for (let i = 0; unsettled() && i < STABLE_OFFSET_RETRIES; i++) {
      await new Promise((resolve) => setTimeout(resolve, STABLE_OFFSET_WAIT_MS));
      const again = await read();
      if (again.offset > committed.offset || (pending !== null && again.metadata === pending.txn)) committed = again;
    }
    await ledger.recover(namespace, this.partition, edge.topic, committed);
    return Math.max(committed.offset, applied);
  }

  /**
   * A transaction another input edge of the node staged on this state partition (a crash between
   * its Kafka commit and its promote): its producer is fenced and it is settled before this edge
   * runs the partition on a state that would lack a committed transaction's writes. The worker
   * opens under the state partition's exclusion, so a sibling in this process is never mid-commit.
   */
  private async settleSibling(sibling: NonNullable<KafkaEdgeLogOptions['siblings']>[number]): Promise<void> {
    const fence = sibling.broker.producer({ transactionalId: sibling.transactionalId(this.partition) });
    try {
      await fence.connect();
    } finally {
      await fence.disconnect();
    }
    await this.settle(sibling);
  }

  async read(from: number, max: number): Promise<EdgeRecord[]> {
    if (this.broken) throw this.broken;
    if (this.closed) return [];
    let drop = 0;
    while (drop < this.buffer.length && this.buffer[drop].offset < from) this.bufferBytes -= approximateBytes(this.buffer[drop++]);
    if (drop > 0) {
      this.buffer = this.buffer.slice(drop);
      wakeAll(this.spaceWaiters);
    }
    let end = 0;
    for (let bytes = 0; end < Math.min(max, this.buffer.length); end++) {
      bytes += approximateBytes(this.buffer[end]);
      if (end > 0 && bytes > MAX_BATCH_INPUT_BYTES) break;
    }
    return this.buffer.slice(0, end);
  }

  waitForData(from: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const ready = () => signal.aborted || (!this.closed && (this.broken !== null || (this.buffer.length > 0 && this.buffer[this.buffer.length - 1].offset >= from)));
      if (ready()) return resolve();
      const check = () => {
        if (!ready()) return;
        this.dataWaiters.delete(check);
        signal.removeEventListener('abort', check);
        resolve();
      };
      this.dataWaiters.add(check);
      signal.addEventListener('abort', check, { once: true });
    });
  }

  commit(unit: EdgeCommit): Promise<void> {
    return this.serialize(async () => {
      if (this.broken) {
        unit.state?.aborted();
        throw this.broken;
      }
      if (this.delivery === 'exactly-once') return this.joinTransaction(unit);
      try {
        await this.produceAndApply(unit);
      } catch (error) {
        unit.state?.aborted();
        throw error;
      }
      if (unit.next !== null) await this.commitOffset(unit.next);
    });
  }

  flush(): Promise<void> {
    return this.serialize(async () => {
      if (!this.broken) await this.commitPending();
    });
  }

  lag(): number {
    return Math.max(0, this.highWatermark - Math.max(0, this.committedOffset));
  }

  /** Everything handed to the worker is committed: nothing buffered, in a transaction, uncommitted or unsent. */
  caughtUp(): boolean {
    return !this.closed && this.expect !== null && this.buffer.length === 0 && this.txn === null && this.uncommitted === null && this.unsent === 0 && this.committedOffset >= this.expect;
  }

  head(): number {
    return this.highWatermark;
  }

  /** The partition left this process's assignment: nothing more is fetched into it. */
  revoke(): void {
    this.closed = true;
    this.expect = null;
    wakeAll(this.dataWaiters);
    wakeAll(this.spaceWaiters);
    wakeAll(this.openWaiters);
  }

  close(): Promise<void> {
    this.revoke();
    return this.serialize(() => this.deactivate());
  }

  // ---- at-most-once and at-least-once

  /**
   * The order decides what a crash in between does: at-least-once applies state once the outputs
   * are acknowledged (a crash repeats, never loses); at-most-once applies state first (a crash
   * loses outputs, never repeats a state update: a count is never emitted twice).
   */
  private async produceAndApply(unit: EdgeCommit): Promise<void> {
    if (this.delivery === 'at-most-once') await this.applyState(unit);
    // Sends (and, at-least-once, the state after them) run in unit order while the next batch
    // runs; the deferred offset commit waits for them, and a failure breaks the partition.
    // Bounded: at most MAX_UNSENT units behind (their outputs are held in memory until sent).
    if (this.unsent >= MAX_UNSENT) await this.sending;
    this.unsent++;
    this.sending = this.sending.then(async () => {
      try {
        if (this.broken) return unit.state?.aborted();
        if (unit.appends.length > 0) {
          try {
            await this.send(unit.appends);
          } catch (error) {
            // at-most-once never repeats: those outputs are lost, and the batch is done.
            if (this.delivery === 'at-most-once') this.options.faults.report('kafka.send', this.context, error);
            else {
              unit.state?.aborted();
              // Not `breakWith` (its deactivate waits for this chain): the worker reopens and redoes.
              this.broken = translateKafkaError(error, `producing the outputs of ${this.topic}/${this.partition}`);
              return wakeAll(this.dataWaiters);
            }
          }
        }
        if (this.delivery !== 'at-most-once') await this.applyState(unit);
        unit.onVisible?.();
      } catch (error) {
        this.broken = asTributaryError(error);
        wakeAll(this.dataWaiters);
      } finally {
        this.unsent--;
      }
    });
  }

  private async applyState(unit: EdgeCommit): Promise<void> {
    if (!unit.state) return;
    const { ledger, namespace } = this.options;
    // A unit of timers reads no input: it has no end to skip a redelivery by.
    await ledger.apply(namespace, this.partition, this.topic, unit.through ?? null, unit.state.seal());
    unit.state.committed();
  }

  private async commitOffset(next: number): Promise<void> {
    if (this.delivery === 'at-most-once') return this.commitConsumerOffset(next);
    this.uncommitted = next;
    if (Date.now() - this.lastCommitAt >= this.options.interval.ms) await this.commitPending();
    else this.armTimer(this.lastCommitAt);
  }

  private async commitConsumerOffset(next: number): Promise<void> {
    const consumer = this.consumer();
    if (!consumer) throw new TributaryError('ERR_KAFKA_UNAVAILABLE', 'consumer stopped');
    await consumer.commit(this.partition, next);
    this.committedOffset = next;
    this.lastCommitAt = Date.now();
  }

  private async send(appends: BrokerAppend[]): Promise<void> {
    const byBroker = new Map<Broker, BrokerAppend[]>();
    for (const append of appends) {
      const broker = this.options.brokerOf(append.topic);
      byBroker.set(broker, [...(byBroker.get(broker) ?? []), append]);
    }
    await Promise.all(
      [...byBroker].map(async ([broker, list]) => {
        try {
          await (await this.options.producerFor(broker)).send(list);
        } catch (error) {
          this.options.dropProducer(broker);
          throw error;
        }
      }),
    );
  }

  // ---- exactly-once

  private async joinTransaction(unit: EdgeCommit): Promise<void> {
    if (!this.producer) {
      unit.state?.aborted();
      throw new TributaryError('ERR_KAFKA_UNAVAILABLE', `partition ${this.partition} of '${this.topic}' is not open`);
    }
    if (!this.txn) {
      let tx: BrokerTransaction;
      try {
        tx = await this.producer.begin();
      } catch (error) {
        unit.state?.aborted();
        await this.breakWith(error);
        throw this.broken;
      }
      this.txn = { tx, openedAt: Date.now(), end: this.committedOffset, units: [], sending: Promise.resolve(), sendError: null };
    }
    const txn = this.txn;
    txn.units.push(unit);
    if (unit.next !== null) txn.end = unit.next;
    if (unit.appends.length > 0) {
      const appends = unit.appends;
      // Sends run one after another (a key's outputs keep their order) while the next batch runs.
      txn.sending = txn.sending.then(() => (txn.sendError === null ? txn.tx.send(appends) : undefined)).catch((error) => void (txn.sendError ??= error));
    }
    if (unit.startedAt !== undefined) this.options.interval.observe(performance.now() - unit.startedAt + this.lastCommitMs);
    // `unit.durable` needs nothing more: a Kafka commit is replicated before it completes.
    if (this.options.commitEachUnit || Date.now() - txn.openedAt >= this.options.interval.ms) await this.commitPending();
    else this.armTimer(txn.openedAt);
  }

  /** Commits what is deferred: the open transaction (exactly-once) or the processed offset (at-least-once). */
  private async commitPending(): Promise<void> {
    this.clearTimer();
    if (this.uncommitted !== null) {
      const next = this.uncommitted;
      // Never past outputs not yet acknowledged.
      await this.sending;
      if (this.broken) throw this.broken;
      try {
        await this.commitConsumerOffset(next);
      } catch (error) {
        await this.breakWith(error);
        throw this.broken;
      }
      if (this.uncommitted === next) this.uncommitted = null;
    }
    const txn = this.txn;
    if (!txn) return;
    const started = performance.now();
    const { ledger, namespace, group } = this.options;
    try {
      await txn.sending;
      if (txn.sendError !== null) throw txn.sendError;
      // Sealed in commit order, right before the commit; staged even without writes: the promoted
      // offset is what `open` trusts (see KafkaCommitLedger).
      const entries: SealedEntries = txn.units.flatMap((u) => (u.state ? u.state.seal() : []));
      const metadata = await ledger.stage(namespace, this.partition, this.topic, txn.end, entries, this.owner!);
      await txn.tx.sendOffsets(group, this.topic, this.partition, txn.end, metadata);
      await txn.tx.commit();
    } catch (error) {
      await this.breakWith(error);
      throw this.broken;
    }
    this.txn = null;
    this.committedOffset = txn.end;
    try {
      await ledger.promote(namespace, this.partition, this.topic);
    } catch (error) {
      // Committed on Kafka: the next open promotes it from what was staged.
      await this.breakWith(error);
      throw this.broken;
    }
    for (const unit of txn.units) {
      unit.state?.committed();
      unit.onVisible?.();
    }
    this.lastCommitMs = performance.now() - started;
  }

  /** A commit failed: everything since the last commit is dropped, and the worker must open the partition again. */
  private async breakWith(error: unknown): Promise<void> {
    this.broken = asTributaryError(translateKafkaError(error, `committing ${this.topic}/${this.partition}`));
    await this.deactivate();
    wakeAll(this.dataWaiters);
  }

  private armTimer(since: number): void {
    if (this.timer) return;
    const wait = Math.max(0, since + this.options.interval.ms - Date.now());
    const commit = this.options.faults.wrap('kafka.commit', this.context, () => {
      this.timer = null;
      // A failure breaks the partition; its worker, woken, opens it again.
      return this.serialize(() => (this.broken || this.closed ? Promise.resolve() : this.commitPending()));
    });
    this.timer = setTimeout(commit, wait);
  }

  private clearTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** Drops everything since the last commit: aborts the transaction and releases the producer. */
  private async deactivate(): Promise<void> {
    this.clearTimer();
    await this.sending;
    this.sending = Promise.resolve();
    const txn = this.txn;
    this.txn = null;
    if (txn) {
      await txn.sending;
      for (const unit of txn.units) unit.state?.aborted();
      await txn.tx.abort().catch(() => {}); // a failed abort is settled by the next InitProducerId
    }
    this.uncommitted = null;
    const producer = this.producer;
    this.producer = null;
    this.owner = null;
    await producer?.disconnect();
  }
}

function wakeAll(waiters: Set<() => void>): void {
  for (const wake of [...waiters]) wake();
}

/** A record's size for the buffer's byte bound: its key and value as fetched, plus overhead. */
function approximateBytes(record: BrokerRecord): number {
  return (record.bytes ?? 0) + 64;
}
