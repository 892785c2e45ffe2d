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
 * Timers (runtime/stream-timers.ts) are keys of the state partition, so a batch's timer writes
 * commit with it. One worker per state partition fires them — the one of the node's first input
 * edge that has the partition (`firesTimers`): when the partition's earliest timer is due (the
 * node's TimerSchedule), it runs a timer batch, `onTimer` over the due timers, under the state
 * partition's exclusion, and commits its outputs, state writes and the timers' deletions as one
 * unit that moves no input offset; a crash before that commit fires them again, after it never.
 * Timer batches and record batches alternate while both are due, so neither starves the other;
 * an idle worker sleeps until the next due time, and a node scaled to zero is woken for it.
 *
 * The worker holds only its log, the state store and the callbacks of its context, so where it
 * runs (the control plane, or a host process next to the isolates) is a placement choice.
 */
import type { EdgeCommit, EdgePartitionLog, EdgeRecord } from '../connectors/edge-log.ts';
import type { StagedState, StateStore } from '../connectors/state/state-store.ts';
import type { LogRecord, StateWrite } from '../connectors/transport.ts';
import { Backoff } from '../runtime/backoff.ts';
import { TributaryError, asTributaryError } from '../runtime/errors.ts';
import type { WireBatch, WireBatchResult, WireRecord, WireTimer, WireTimerFire } from '../runtime/guest/wire.ts';
import { MAX_TIMERS_PER_FIRE, WATERMARKS_KEY, earliestTimers } from '../runtime/stream-timers.ts';
import type { GraphFaults } from './graph-faults.ts';
import type { Delivery, EdgeSpec, NodeSpec } from './graph-spec.ts';
import type { NodeStats } from './node-stats.ts';
import type { TimerSchedule } from './timer-schedule.ts';
import { INGESTED_HEADER, MARKER_HEADER, WATERMARK_HEADER, readEventTime, type NodeWatermarks } from './watermarks.ts';
import type { EventTimeSpec } from './graph-spec.ts';
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
  /** `cpuMs`: the batch's isolate CPU time, as the host reported it (straggler detection). */
  replicaDone(replica: number, records: number, elapsedMs: number, cpuMs?: number): void;
  epochs: StatePartitions;
  /** When each state partition's next timer is due, shared by the node's workers. */
  timers: TimerSchedule;
  /** The node's event-time watermarks; null when the graph has no event time. */
  watermarks: NodeWatermarks | null;
  /** How the source an input edge comes from carries event time (undefined: not a source, or none). */
  sourceEventTime(from: string): { spec: EventTimeSpec; kafka: boolean } | undefined;
  /** The watermark origins of an upstream node: each of its partitions (`<node>/<p>`). */
  upstreamOrigins(from: string): string[];
  maxBatchRecords: number;
  maxAttempts: number;
  /** Called after a commit with the records it appended to sinks. */
  onSinkAppend?(records: LogRecord[]): void;
}

type StoredRecord = EdgeRecord;

/** How often an idle worker with event timers pending looks whether its watermark moved (inputs going idle move it). */
const EVENT_TIMER_RECHECK_MS = 250;

/**
 * The watermark a batch's outputs carry downstream: the partition's, held below its earliest
 * event timer still pending — that timer's outputs, stamped with its time, are yet to come (a
 * timer batch fires at most MAX_TIMERS_PER_FIRE of the due ones).
 */
function forwardedWatermark(watermark: number | undefined, result: WireBatchResult): number | undefined {
  const pending = result.nextTimers?.event ?? null;
  return watermark === undefined || pending === null ? watermark : Math.min(watermark, pending - 1);
}

/** A record's headers as its function sees them: without the platform's own. */
function userHeaders(headers: Record<string, string> | undefined): Record<string, string> {
  if (headers === undefined) return {};
  if (!(WATERMARK_HEADER in headers) && !(INGESTED_HEADER in headers)) return headers;
  const { [WATERMARK_HEADER]: _watermark, [INGESTED_HEADER]: _ingested, ...rest } = headers;
  return rest;
}

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
  /** This worker fires the state partition's timers (see the header). */
  private readonly firesTimers: boolean;
  /** Timers the next timer batch may fire: halved while a failing timer batch is narrowed down. */
  private timerLimit = MAX_TIMERS_PER_FIRE;
  /** Failed runs of a timer batch of one; past maxAttempts its timer is dropped with `timerError`. */
  private timerAttempts = 0;
  private timerError: string | null = null;
  /** A timer batch ran last: records get the next turn. */
  private timersRanLast = false;
  /** The highest watermark this worker's outputs have carried to every partition downstream (markers). */
  private broadcast = -Infinity;
  /** Set when the edge comes from a source with event time: this worker derives its partition's watermark. */
  private readonly source: { spec: EventTimeSpec; kafka: boolean; origin: string } | undefined;

  constructor(ctx: TaskContext, edge: EdgeSpec, log: EdgePartitionLog, firesTimers: boolean) {
    this.ctx = ctx;
    this.edge = edge;
    this.log = log;
    this.batchLimit = ctx.maxBatchRecords;
    this.firesTimers = firesTimers;
    const source = ctx.watermarks === null ? undefined : ctx.sourceEventTime(edge.from);
    this.source = source && { ...source, origin: `${edge.from}/${log.partition}` };
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
          if (this.firesTimers) await this.loadTimers();
          if (this.ctx.watermarks !== null && this.source === undefined) this.ctx.watermarks.expect(this.partition, this.ctx.upstreamOrigins(this.edge.from));
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

  /** Takes and processes one batch (of records, or of due timers), or waits for one. */
  private async step(): Promise<void> {
    const timersDue = this.timersDue();
    if (timersDue && !this.timersRanLast) {
      this.timersRanLast = true;
      return this.fireTimers();
    }
    this.timersRanLast = false;
    const records = await this.take();
    if (this.abandoned || !this.running) return;
    if (records.length === 0) {
      if (!timersDue) await this.waitForWork();
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

  /**
   * Event time: what the batch's records tell of their origins' watermarks (a source edge: its
   * highest event time less the out-of-orderness; otherwise each record's header), the partition's
   * watermark before and after them, and the records late against it (when the node asks).
   */
  private observeWatermarks(records: StoredRecord[]): { records: StoredRecord[]; before: number | null; watermark: number | null; late: Set<StoredRecord>; markers: Set<StoredRecord> } {
    const marks = this.ctx.watermarks!;
    const now = Date.now();
    const before = marks.of(this.partition, now);
    const source = this.source;
    if (source !== undefined) {
      const field = source.kafka ? source.spec.field : undefined;
      if (field !== undefined) {
        // A Kafka source's event time is read here (an HTTP source's at ingest).
        records = records.map((r) => {
          if (r.decodeError !== undefined) return r;
          const at = readEventTime(r.value, field);
          return at === null
            ? { ...r, decodeError: `no event time (ms or ISO 8601) in field '${field}'` }
            : { ...r, timestamp: at, headers: { ...r.headers, [INGESTED_HEADER]: String(r.timestamp) } };
        });
      }
      let highest = -Infinity;
      for (const r of records) if (r.decodeError === undefined && r.timestamp > highest) highest = r.timestamp;
      marks.observe(this.partition, source.origin, highest - (source.spec.outOfOrdernessMs ?? 0), now);
    }
    const markers = new Set<StoredRecord>();
    if (source === undefined) {
      for (const r of records) {
        marks.observeHeader(this.partition, r.headers?.[WATERMARK_HEADER], now);
        if (r.headers?.[MARKER_HEADER] !== undefined) markers.add(r);
      }
    }
    const late = new Set<StoredRecord>();
    const allowed = this.ctx.node.late?.allowedMs;
    if (allowed !== undefined && before !== null) for (const r of records) if (r.decodeError === undefined && !markers.has(r) && r.timestamp < before - allowed) late.add(r);
    return { records, before, watermark: marks.of(this.partition, now), late, markers };
  }

  /** The headers of a node's outputs: its partition's watermark, and the arrival of what they came from. */
  private outputHeaders(watermark: number | undefined, ingested: string | undefined): { headers?: Record<string, string> } {
    if (watermark === undefined && ingested === undefined) return {};
    const headers: Record<string, string> = {};
    if (watermark !== undefined) headers[WATERMARK_HEADER] = `${this.ctx.node.id}/${this.partition}:${watermark}`;
    if (ingested !== undefined) headers[INGESTED_HEADER] = ingested;
    return { headers };
  }

  /** Adds the partition's origins' watermarks to the batch's state writes when they moved. */
  private persistWatermarks(result: WireBatchResult): void {
    const stored = this.ctx.watermarks?.persisted(this.partition) ?? null;
    if (stored !== null) result.writes.push([WATERMARKS_KEY, stored]);
  }

  private async processBatch(records: StoredRecord[]): Promise<void> {
    const { stats } = this.ctx;
    const started = performance.now();
    const end = records[records.length - 1].offset + 1;
    const timed = this.ctx.watermarks === null ? null : this.observeWatermarks(records);
    if (timed !== null) records = timed.records;
    const runnable = timed === null ? records.filter((r) => r.decodeError === undefined) : records.filter((r) => r.decodeError === undefined && !timed.late.has(r) && !timed.markers.has(r));
    const watermark = timed?.watermark ?? undefined;
    const result: WireBatchResult = runnable.length > 0 ? await this.dispatch(runnable, undefined, watermark) : { emits: [], failures: [], writes: [] };
    if (this.abandoned) return;
    const forwarded = forwardedWatermark(watermark, result);
    const emitted: LogRecord[] = result.emits.map((e) => ({ key: e.key, value: e.value, timestamp: runnable[e.index].timestamp, ...this.outputHeaders(forwarded, runnable[e.index].headers?.[INGESTED_HEADER]) }));
    const deadLetters = result.failures.map((f) => this.deadLetter(runnable[f.index], f.error.message));
    for (const r of records) if (r.decodeError !== undefined) deadLetters.push(this.deadLetter(r, `ERR_BAD_RECORD: ${r.decodeError}`));
    if (timed !== null) for (const r of timed.late) deadLetters.push(this.deadLetter(r, `ERR_LATE_RECORD: event time ${r.timestamp} is ${timed.before! - r.timestamp} ms behind the watermark ${timed.before} (allowed lateness ${this.ctx.node.late!.allowedMs} ms)`));
    this.persistWatermarks(result);
    const unit = await this.unitOf(result, emitted, deadLetters, started, end, forwarded);
    if (unit === null) return;
    if (this.delivery === 'exactly-once') {
      await this.log.commit({ ...unit, next: end });
    } else {
      if (unit.appends.length > 0 || unit.state !== null) await this.log.commit(unit);
      // at-least-once: a crash right here redelivers the batch; at-most-once committed before.
      if (this.delivery === 'at-least-once') await this.log.commit({ appends: [], state: null, next: end });
    }
    this.ctx.timers.set(this.partition, result.nextTimers);
    if (timed !== null) this.ctx.timers.poke(this.partition);
    this.advance(records.length, end);
    stats.failed += deadLetters.length;
    if (forwarded !== undefined) this.broadcast = Math.max(this.broadcast, forwarded);
    stats.recordBatch(records.length - (timed?.markers.size ?? 0), performance.now() - started, result.coldStart === true);
    this.backoff.reset();
  }

  /**
   * A batch's outputs, dead letters and staged state writes as one unit moving no offset (the
   * caller sets `next`); null when the worker stopped meanwhile. `through`: the input offset the
   * unit covers up to, for a batch of records.
   */
  private async unitOf(result: WireBatchResult, emitted: LogRecord[], deadLetters: LogRecord[], started: number, through?: number, forwarded?: number): Promise<EdgeCommit | null> {
    const { topology, node, stateStore } = this.ctx;
    const routes = topology.outputs(node.id);
    const appends = routes.flatMap((route) => topology.route(route, emitted));
    if (forwarded !== undefined && forwarded > this.broadcast) {
      // The watermark moved: partitions downstream that get no output from this batch get a marker.
      const marker: LogRecord = { key: null, value: null, timestamp: forwarded, headers: { [WATERMARK_HEADER]: `${node.id}/${this.partition}:${forwarded}`, [MARKER_HEADER]: '1' } };
      for (const route of routes) {
        if (topology.kindOf(route.edge.to) === 'sink') continue;
        for (let p = 0; p < route.partitions; p++) {
          if (!appends.some((a) => a.topic === route.topic && a.partition === p && a.records.length > 0)) appends.push({ topic: route.topic, partition: p, records: [marker] });
        }
      }
    }
    if (deadLetters.length > 0) appends.push({ topic: this.ctx.deadLetterTopic, partition: 0, records: deadLetters });
    let state: StagedState | null = null;
    const writes = result.writes.map(([key, value]) => ({ key, value }));
    if (writes.length > 0) {
      // May fail (S3 down): the batch then fails before its commit, and is retried.
      state = await stateStore.stage({ namespace: topology.stateNamespace(node.id), partition: this.partition, epoch: this.ctx.epochs.get(this.partition), writes });
      if (this.abandoned) {
        state.aborted();
        return null;
      }
    }
    // An S3 publish follows the commit: a power loss must not undo a commit already published.
    const durable = state !== null && stateStore.kind === 's3';
    const unit: EdgeCommit = { appends, state: state && this.tracked(state, writes), next: null, through, durable, startedAt: started };
    const sinkRecords = appends.filter((a) => topology.isSinkTopic(a.topic)).flatMap((a) => a.records);
    if (sinkRecords.length > 0 && this.ctx.onSinkAppend) unit.onVisible = () => this.ctx.onSinkAppend!(sinkRecords);
    return unit;
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
  private async dispatch(records: StoredRecord[], fire?: WireTimerFire, watermark?: number): Promise<WireBatchResult> {
    const { node, topology, stateStore, epochs } = this.ctx;
    let replica = this.ctx.replicaFor(this.partition);
    if (replica < 0) {
      this.ctx.wake();
      replica = this.ctx.replicaFor(this.partition);
    }
    epochs.use(this.partition, replica);
    const tag = this.ctx.instanceTag(replica);
    const dispatched = performance.now();
    const wire: WireRecord[] = records.map((r) => ({ key: r.key, value: r.value, headers: userHeaders(r.headers), offset: r.offset, timestamp: r.timestamp }));
    const namespace = topology.stateNamespace(node.id);
    const state = { namespace, partition: this.partition, epoch: epochs.get(this.partition) };
    const batch: WireBatch = { records: wire, state, maxAttempts: this.ctx.maxAttempts, ...(fire && { fire }), ...(watermark !== undefined && { watermark }) };
    let result = await this.ctx.process(batch, tag);
    let loadMs = 0;
    if (result.needState) {
      const loading = performance.now();
      const snapshot = await this.stateSnapshot(namespace);
      // Loading state (S3: a listing and a GET per key) is not the replica's service time.
      loadMs = performance.now() - loading;
      result = await this.ctx.process({ ...batch, state: { ...state, snapshot } }, tag);
      if (result.needState) throw new TributaryError('ERR_INTERNAL', 'replica refused the state snapshot');
    }
    if (records.length > 0) this.ctx.replicaDone(replica, records.length, performance.now() - dispatched - loadMs, result.cpuMs);
    return result;
  }

  private timersDue(): boolean {
    if (!this.firesTimers) return false;
    const next = this.ctx.timers.of(this.partition);
    const now = Date.now();
    if (next.processing !== null && next.processing <= now) return true;
    const watermark = next.event === null ? null : (this.ctx.watermarks?.of(this.partition, now) ?? null);
    return watermark !== null && watermark >= next.event!;
  }

  /** The partition's earliest timer, from its committed state (and the units not decided yet). */
  private async loadTimers(): Promise<void> {
    const namespace = this.ctx.topology.stateNamespace(this.ctx.node.id);
    const entries = await this.ctx.epochs.exclusive(this.partition, () => this.stateSnapshot(namespace));
    this.ctx.timers.set(this.partition, earliestTimers(entries.map(([key, value]) => ({ key, value }))));
    this.ctx.watermarks?.load(this.partition, entries.find(([key]) => key === WATERMARKS_KEY)?.[1], Date.now());
  }

  /** Waits for records, or (the timers' worker) until the partition's next timer is due. */
  private async waitForWork(): Promise<void> {
    if (!this.firesTimers) return this.log.waitForData(this.next, this.idle.signal);
    const wake = new AbortController();
    const stopWaiting = () => wake.abort();
    this.idle.signal.addEventListener('abort', stopWaiting, { once: true });
    const unwatch = this.ctx.timers.watch(this.partition, stopWaiting);
    const next = this.ctx.timers.of(this.partition);
    // Event timers wait for the watermark, which an input going idle can move too: look again now and then.
    const recheck = next.event !== null && this.ctx.watermarks !== null ? Date.now() + EVENT_TIMER_RECHECK_MS : null;
    const at = next.processing === null ? recheck : recheck === null ? next.processing : Math.min(next.processing, recheck);
    // setTimeout holds at most 2^31-1 ms; a later timer re-arms on waking.
    const timer = at === null ? undefined : setTimeout(stopWaiting, Math.min(2 ** 31 - 1, Math.max(0, at - Date.now())));
    try {
      await this.log.waitForData(this.next, wake.signal);
    } finally {
      clearTimeout(timer);
      unwatch();
      this.idle.signal.removeEventListener('abort', stopWaiting);
    }
  }

  /** Runs `onTimer` over the partition's due timers and commits what they did as one unit. */
  private async fireTimers(): Promise<void> {
    const { epochs } = this.ctx;
    const failure = await epochs.exclusive(this.partition, async () => {
      try {
        await this.runTimers();
        return null;
      } catch (error) {
        epochs.bump(this.partition);
        return { error };
      }
    });
    if (failure) await this.onTimerFailure(failure.error);
  }

  private async runTimers(): Promise<void> {
    const { stats } = this.ctx;
    const started = performance.now();
    const drop = this.timerError !== null;
    const now = Date.now();
    const watermark = this.ctx.watermarks?.of(this.partition, now) ?? undefined;
    const result = await this.dispatch([], { now, limit: this.timerLimit, ...(drop && { drop }) }, watermark);
    if (this.abandoned) return;
    const fired = result.fired ?? [];
    // Outputs of a timer carry its due time as their timestamp; an event timer's, the firing as their arrival.
    const firedAt = String(now);
    const forwarded = forwardedWatermark(watermark, result);
    const emitted: LogRecord[] = result.emits.map((e) => ({ key: e.key, value: e.value, timestamp: fired[e.index].at, ...this.outputHeaders(forwarded, fired[e.index].kind === 'event' ? firedAt : undefined) }));
    const deadLetters = result.failures.map((f) => this.timerDeadLetter(fired[f.index], drop ? this.timerError! : f.error.message));
    const unit = await this.unitOf(result, emitted, deadLetters, started, undefined, forwarded);
    if (unit === null) return;
    if (unit.appends.length > 0 || unit.state !== null) await this.log.commit(unit);
    this.ctx.timers.set(this.partition, result.nextTimers ?? { processing: null, event: null });
    if (forwarded !== undefined) this.broadcast = Math.max(this.broadcast, forwarded);
    stats.timersFired += fired.length;
    stats.failed += deadLetters.length;
    this.timerLimit = MAX_TIMERS_PER_FIRE;
    this.timerAttempts = 0;
    this.timerError = null;
  }

  /** A timer batch failed as a whole: retry, halve it, or drop its one timer to the dead letters. */
  private async onTimerFailure(error: unknown): Promise<void> {
    if (this.abandoned) return;
    const { stats, node } = this.ctx;
    if (!(error instanceof TributaryError)) this.ctx.faults.report('partition.timers', { node: node.id, topic: this.log.topic, partition: String(this.partition) }, error);
    const known = asTributaryError(error);
    stats.recordError(`${known.code}: ${known.message}`);
    if (known.handling === 'retry') return this.backoff.sleep(this.idle.signal);
    if (this.timerLimit > 1) {
      this.timerLimit = Math.ceil(this.timerLimit / 2);
      return;
    }
    if (known.handling === 'bisect' && ++this.timerAttempts < this.ctx.maxAttempts) return this.backoff.sleep(this.idle.signal);
    this.timerError = `${known.code}: ${known.message}`;
  }

  private timerDeadLetter(timer: WireTimer, error: string): LogRecord {
    return {
      key: timer.key,
      value: { error, timer: { key: timer.key, at: timer.at, kind: timer.kind }, source: { node: this.ctx.node.id, partition: this.partition } },
      timestamp: Date.now(),
    };
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
