/**
 * A deployed graph while it runs: an EdgeLog per (node, input edge) — the embedded log or Kafka,
 * the one difference between the transports — and one PartitionWorker per partition of it this
 * process owns; the replicas each node runs on, state epochs, and the ingest and read paths of its
 * sources and sinks.
 */
import type { EdgeLog } from '../connectors/edge-log.ts';
import { EmbeddedEdgeLog } from '../connectors/embedded/embedded-edge-log.ts';
import { EmbeddedStateStore } from '../connectors/state/embedded-state-store.ts';
import type { StateStore } from '../connectors/state/state-store.ts';
import type { LogRecord, StoredRecord, Transport } from '../connectors/transport.ts';
import { TributaryError } from '../runtime/errors.ts';
import type { Guard } from '../runtime/guard.ts';
import type { WireBatch, WireBatchResult } from '../runtime/guest/wire.ts';
import { DEFAULT_SCALE_TO_ZERO_AFTER_MS, type EdgeSpec, type GraphSpec, type NodeSpec } from './graph-spec.ts';
import { RECYCLE_COOLDOWN_MS, STRAGGLER_EVENTS, StragglerDetector, type StragglerEvent } from './autoscaler/straggler.ts';
import { ScalingCost, type ScalingCostSnapshot } from './autoscaler/scaling-cost.ts';
import { GraphFaults } from './graph-faults.ts';
import { GraphLifecycle, type GraphState } from './graph-lifecycle.ts';
import { LatencyRecorder } from './latency-recorder.ts';
import { NodeStats } from './node-stats.ts';
import { PartitionWorker, type StatePartitions, type TaskContext } from './partition-worker.ts';
import { TimerSchedule } from './timer-schedule.ts';
import { DEFAULT_IDLE_TIMEOUT_MS, INGESTED_HEADER, NodeWatermarks, readEventTime } from './watermarks.ts';
import { Topology } from './topology.ts';
import { KafkaGraph, type KafkaRuntimeOptions } from './kafka/kafka-graph.ts';
import { isKafkaEdge, kafkaSinkOf, kafkaSourceOf } from './kafka/kafka-topics.ts';

export interface GraphRuntimeOptions {
  transport: Transport;
  /** Where env.STATE lives (default: the embedded store, in the transport's own database). */
  stateStore?: StateStore;
  /** Frees the isolate of a replica that was scaled away or recycled. */
  releaseReplica?(node: NodeSpec, instanceTag: string): void;
  /** Called on every replica change, with the reason. */
  onReplicas?(node: string, replicas: number, reason: string): void;
  /** Called when a straggling replica is recycled. */
  onStraggler?(node: string, replica: number): void;
  /** Called after every batch a node's replica served. */
  onBatch?(node: string, records: number, elapsedMs: number): void;
  /** Called with the end-to-end latency (ms) of records committed to sinks. */
  onSinkLatency?(latenciesMs: number[]): void;
  /** Runs `process` of the node's current function version on replica `instanceTag`. */
  process(node: NodeSpec, batch: WireBatch, instanceTag: string): Promise<WireBatchResult>;
  maxBatchRecords?: number;
  maxAttempts?: number;
  /** Ingest answers 429 when a source edge's unconsumed records exceed this (default 200000). */
  maxLagRecords?: number;
  /** Kafka clients and state, for graphs with Kafka sources, sinks or edges. */
  kafka?: KafkaRuntimeOptions;
  /** Reports errors caught in the graph's loops, timers and handlers (default: log only). */
  guard?: Guard;
  /** Prefix of ingest idempotency keys: the graph's incarnation (default `<graph>/`; starts with it, so a delete of the graph's prefix removes them). */
  idempotencyScope?: string;
}

export interface IngestRecord {
  key?: string | null;
  value: unknown;
  /** Event time, ms since the epoch (default: the arrival time; a source's `eventTime.field` overrides both). */
  timestamp?: number;
}

/** One input edge of a node: its log, and the workers of the partitions this process owns. */
interface NodeInput {
  node: NodeSpec;
  edge: EdgeSpec;
  /** Null until the transport is ready (Kafka: the graph's topics exist). */
  log: EdgeLog | null;
  workers: PartitionWorker[];
  /** Assignment changes of this input, one at a time. */
  changing: Promise<void>;
}

/** Epochs start from the boot time so an isolate can never hold state from a previous process's epoch. */
let epochBase = Date.now();

export class GraphRuntime {
  readonly name: string;
  readonly spec: GraphSpec;
  readonly topology: Topology;
  readonly stats = new Map<string, NodeStats>();
  /** Source ingest → sink commit, per record. */
  readonly latency = new LatencyRecorder();
  /** The Kafka edges' consumers and topics; null for a graph wholly on the embedded log. */
  readonly kafka: KafkaGraph | null;
  /** Errors caught in the graph's control-plane loops; `errors` in its status. */
  readonly faults: GraphFaults;
  /** starting → running ⇄ rescaling / degraded → stopping → stopped (scheduler/graph-lifecycle.ts). */
  readonly lifecycle = new GraphLifecycle();
  /** Inputs whose assignment is changing. */
  private reassigning = 0;
  private readonly options: GraphRuntimeOptions;
  private readonly stateStore: StateStore;
  private readonly inputs: NodeInput[] = [];
  private readonly nodeSpecs = new Map<string, NodeSpec>();
  private readonly inputsByNode = new Map<string, NodeInput[]>();
  private readonly replicas = new Map<string, number>();
  private readonly stragglers = new Map<string, StragglerDetector>();
  private readonly costs = new Map<string, ScalingCost>();
  /**
   * Steer batches away from stragglers and recycle them (default true). Benches and tests turn it
   * off on one graph to measure the p99 without mitigation in the same run.
   */
  mitigateStragglers = true;
  /** Per node: batches steered away from a straggling owner, recyclings, their last events (bounded), and the replicas' recycle generations and times. */
  private readonly stragglerLog = new Map<string, { steered: number; recycled: number; events: StragglerEvent[]; generation: Map<number, number>; recycledAt: Map<number, number>; awaiting: Map<number, StragglerEvent> }>();
  /**
   * Replicas whose first batch after a change measures its cost: `${node}#${replica}` → whether
   * the replica was added (else it took over a removed one's partitions) and the node's usual
   * batch time then. Bounded by the nodes' replicas.max.
   */
  private readonly costProbes = new Map<string, { added: boolean; baselineMs: number }>();
  private readonly lastActivity = new Map<string, number>();
  private readonly busyMs = new Map<string, number>();
  private readonly epochs = new Map<string, number>();
  private readonly contexts = new Map<string, TaskContext>();
  /** The graph's idle timeout for watermarks (the least its sources set); null without event time. */
  private get eventTimeIdleMs(): number | null {
    const timed = this.spec.sources.filter((s) => s.eventTime !== undefined);
    return timed.length === 0 ? null : Math.min(...timed.map((s) => s.eventTime!.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS));
  }
  /** A new runtime (deploy, restart) starts a new epoch: isolates reload state they may hold from before. */
  private readonly epochSeed = ++epochBase;

  constructor(name: string, spec: GraphSpec, options: GraphRuntimeOptions) {
    this.name = name;
    this.spec = spec;
    this.options = options;
    this.faults = new GraphFaults(name, options.guard);
    this.stateStore = options.stateStore ?? new EmbeddedStateStore(options.transport);
    this.topology = new Topology(name, spec, options.transport);
    if (KafkaGraph.needed(spec) && !options.kafka) throw new TributaryError('ERR_INTERNAL', 'graph has Kafka edges but the platform has no Kafka configuration');
    this.kafka = KafkaGraph.needed(spec) ? new KafkaGraph({ ...options.kafka!, topology: this.topology, faults: this.faults, stateStore: this.stateStore }) : null;
    for (const node of spec.nodes) {
      this.nodeSpecs.set(node.id, node);
      this.stats.set(node.id, new NodeStats());
      this.stragglers.set(node.id, new StragglerDetector());
      this.costs.set(node.id, new ScalingCost());
      this.stragglerLog.set(node.id, { steered: 0, recycled: 0, events: [], generation: new Map(), recycledAt: new Map(), awaiting: new Map() });
      this.replicas.set(node.id, Math.max(1, node.replicas.min));
      const inputs: NodeInput[] = [];
      for (const edge of this.topology.inputs(node.id)) {
        const log = isKafkaEdge(spec, edge) ? null : new EmbeddedEdgeLog({ transport: options.transport, topic: this.topology.topicOf(edge), group: this.topology.group(node.id) });
        inputs.push({ node, edge, log, workers: [], changing: Promise.resolve() });
      }
      this.inputsByNode.set(node.id, inputs);
      this.inputs.push(...inputs);
    }
  }

  /** One context per node: its workers share its state partitions' epochs and exclusion. */
  private taskContext(node: NodeSpec): TaskContext {
    const existing = this.contexts.get(node.id);
    if (existing) return existing;
    const context: TaskContext = {
      stateStore: this.kafka?.nodes.has(node.id) ? this.kafka.stateStore : this.stateStore,
      topology: this.topology,
      faults: this.faults,
      node,
      deadLetterTopic: this.kafka?.nodes.has(node.id) ? this.kafka.deadLetterTopic(node.id) : this.topology.deadLetterTopic(node.id),
      stats: this.stats.get(node.id)!,
      process: (batch: WireBatch, tag: string) => this.options.process(node, batch, tag),
      replicaFor: (partition: number) => this.replicaFor(node, partition),
      wake: () => this.wake(node.id),
      replicaDone: (replica: number, records: number, elapsedMs: number, cpuMs?: number) => this.replicaDone(node, replica, records, elapsedMs, cpuMs),
      instanceTag: (replica: number) => this.instanceTag(node.id, replica),
      epochs: this.statePartitions(node),
      timers: new TimerSchedule(),
      watermarks: this.eventTimeIdleMs === null ? null : new NodeWatermarks(this.eventTimeIdleMs),
      sourceEventTime: (from: string) => {
        const source = this.spec.sources.find((s) => s.id === from);
        return source?.eventTime === undefined ? undefined : { spec: source.eventTime, kafka: source.type === 'kafka' };
      },
      upstreamOrigins: (from: string) => {
        const inputs = this.inputsByNode.get(from) ?? [];
        const partitions = Math.max(0, ...inputs.map((input) => this.topology.partitions(this.topology.topicOf(input.edge))));
        return Array.from({ length: partitions }, (_, p) => `${from}/${p}`);
      },
      maxBatchRecords: this.options.maxBatchRecords ?? 1000,
      maxAttempts: this.options.maxAttempts ?? 3,
      onSinkAppend: (records: LogRecord[]) => {
        const now = Date.now();
        // From arrival: a record whose timestamp is its event time carries its arrival in a header.
        const latencies = records.map((record) => now - Number(record.headers?.[INGESTED_HEADER] ?? record.timestamp));
        for (const ms of latencies) this.latency.record(ms);
        this.options.onSinkLatency?.(latencies);
      },
    };
    this.contexts.set(node.id, context);
    return context;
  }

  /**
   * Epochs, replica and exclusion per state partition of a node, shared by the workers of all its
   * input edges.
   */
  private statePartitions(node: NodeSpec): StatePartitions {
    const key = (partition: number) => `${node.id}\u0000${partition}`;
    const lastReplica = new Map<number, number>();
    const locks = new Map<number, Promise<unknown>>();
    const bump = (partition: number) => void this.epochs.set(key(partition), ++epochBase);
    return {
      get: (partition) => this.epochs.get(key(partition)) ?? this.epochSeed,
      bump,
      use: (partition, replica) => {
        // Another replica may hold an older copy of this partition's state at the same epoch.
        const last = lastReplica.get(partition);
        if (last !== undefined && last !== replica) bump(partition);
        lastReplica.set(partition, replica);
      },
      exclusive: <T>(partition: number, work: () => Promise<T>): Promise<T> => {
        const run = (locks.get(partition) ?? Promise.resolve()).then(work, work);
        const settled = run.then(
          () => {},
          () => {},
        );
        locks.set(partition, settled);
        void settled.then(() => {
          if (locks.get(partition) === settled) locks.delete(partition);
        });
        return run;
      },
    };
  }

  start(): void {
    for (const input of this.inputs) if (input.log) this.startInput(input, input.log);
    if (!this.kafka) return this.observeHealth();
    // Kafka edges get their logs once the graph's topics exist.
    this.kafka.start(() => {
      if (!this.lifecycle.live) return;
      for (const input of this.inputs) if (!input.log) this.startInput(input, this.kafka!.edgeLog(input.node, input.edge));
      this.observeHealth();
    });
  }

  /**
   * Moves the lifecycle to what the inputs show: degraded while one cannot consume (the reason
   * from its transport), rescaling while assignments change, running otherwise.
   */
  observeHealth(): void {
    const { lifecycle } = this;
    if (!lifecycle.live) return;
    const degraded = this.kafka?.degradedReason() ?? null;
    let next: GraphState;
    if (degraded !== null) next = 'degraded';
    else if (this.kafka && !this.kafka.ready) return; // still starting: topics are being created
    else next = this.reassigning > 0 && lifecycle.state !== 'starting' ? 'rescaling' : 'running';
    if (next === lifecycle.state || lifecycle.can(next)) lifecycle.to(next, degraded);
  }

  private startInput(input: NodeInput, log: EdgeLog): void {
    input.log = log;
    // A node's inputs run partition p only where each of them owns it (see reassign): a change of
    // one input's assignment re-evaluates them all.
    log.start(() => {
      for (const each of this.inputsByNode.get(input.node.id)!) if (each.log) this.queueReassign(each, each.log);
    });
  }

  private queueReassign(input: NodeInput, log: EdgeLog): void {
    const context = { node: input.node.id, topic: log.topic };
    this.reassigning++;
    this.observeHealth();
    input.changing = input.changing
      .then(() => this.reassign(input, log))
      .catch((error) => this.faults.report('partition.assign', context, error))
      .finally(() => {
        this.reassigning--;
        this.observeHealth();
      });
  }

  /**
   * An input's partitions to run changed (its assignment, or another input's of the node): the
   * workers of partitions it no longer runs, or whose log was replaced by a new assignment, stop
   * (a revoked partition's deferred commits are aborted: its next owner redoes them); the others
   * go on; one starts per partition to run that has none, opening its partition afresh.
   * Partition p of every input of a node feeds state partition p, so p runs only where every
   * input that has a partition p owns it: on Kafka, the groups of a node's inputs are separate
   * and, while they rebalance one after the other, two processes could otherwise run one state
   * partition at once.
   */
  private async reassign(input: NodeInput, log: EdgeLog): Promise<void> {
    const others = this.inputsByNode.get(input.node.id)!.filter((other) => other !== input);
    const toRun = () =>
      log.assignment().filter((p) => others.every((other) => p >= this.topology.partitions(this.topology.topicOf(other.edge)) || (other.log?.assignment().includes(p) ?? false)));
    const wanted = new Set(toRun());
    const current = (worker: PartitionWorker) => wanted.has(worker.log.partition) && log.partition(worker.log.partition) === worker.log;
    const stopping = input.workers.filter((worker) => !current(worker));
    input.workers = input.workers.filter(current);
    await Promise.all(stopping.map((worker) => worker.stop()));
    if (!this.lifecycle.live) return;
    // Changes queue up (another reassign follows one that arrived meanwhile); this one takes the latest assignment.
    const running = new Set(input.workers.map((worker) => worker.log.partition));
    for (const p of toRun()) {
      if (running.has(p)) continue;
      // Partition p's timers are fired by the first input that has a partition p.
      const timersInput = this.inputsByNode.get(input.node.id)!.find((other) => p < this.topology.partitions(this.topology.topicOf(other.edge)));
      const worker = new PartitionWorker(this.taskContext(input.node), input.edge, log.partition(p), timersInput === input);
      input.workers.push(worker);
      worker.start();
    }
  }

  /**
   * Stops every worker after its in-flight batch commits (deferred commits made visible), then the
   * logs. With `deleting`, the lifecycle ends in `deleting` until {@link deleted} is called.
   */
  async stop(options: { deleting?: boolean } = {}): Promise<void> {
    if (!this.lifecycle.live) return;
    this.lifecycle.to('stopping');
    await Promise.all(this.inputs.map((input) => input.changing));
    await Promise.all(this.inputs.flatMap((input) => input.workers.map((worker) => worker.stop(2000, { flush: true }))));
    await Promise.all(this.inputs.map((input) => input.log?.stop()));
    await this.kafka?.stop();
    this.lifecycle.to(options.deleting ? 'deleting' : 'stopped');
  }

  /** What the graph owned is removed from every store. */
  deleted(): void {
    if (this.lifecycle.state === 'deleting') this.lifecycle.to('stopped');
  }

  /** How far the node's lowest watermark trails the clock; null without event time (or before any record). */
  watermarkLagMs(node: string): number | null {
    const spec = this.nodeSpecs.get(node);
    return spec === undefined ? null : (this.taskContext(spec).watermarks?.summary(Date.now()).lagMs ?? null);
  }

  replicaCount(node: string): number {
    return this.replicas.get(node) ?? 0;
  }

  /**
   * The replica a partition's next batch goes to: its owner (partition mod replicas), unless the
   * owner straggles, then the less loaded of two random healthy replicas. -1 when scaled to zero.
   */
  private replicaFor(node: NodeSpec, partition: number): number {
    const count = this.replicas.get(node.id) ?? 0;
    this.lastActivity.set(node.id, Date.now());
    if (count === 0) return -1;
    const owner = partition % count;
    const detector = this.stragglers.get(node.id)!;
    const chosen = this.mitigateStragglers && detector.isStraggler(owner, count) ? detector.alternative(owner, count) : owner;
    if (chosen !== owner) this.stragglerLog.get(node.id)!.steered++;
    detector.begin(chosen);
    return chosen;
  }

  private replicaDone(node: NodeSpec, replica: number, records: number, elapsedMs: number, cpuMs?: number): void {
    const detector = this.stragglers.get(node.id)!;
    // Isolate CPU time, not wall time: on a busy machine a healthy replica's batch waits for a
    // core and looks slow by the clock; only its own CPU time says its isolate is the slow one.
    detector.end(replica, (cpuMs ?? elapsedMs) / Math.max(1, records), records);
    if (cpuMs !== undefined) this.stats.get(node.id)!.recordCpu(records, cpuMs);
    const probe = this.costProbes.get(`${node.id}#${replica}`);
    if (probe) {
      this.costProbes.delete(`${node.id}#${replica}`);
      const cost = this.costs.get(node.id)!;
      if (probe.added) cost.observeAdd(elapsedMs - probe.baselineMs);
      else cost.observeRemove(elapsedMs - probe.baselineMs);
    }
    this.busyMs.set(node.id, (this.busyMs.get(node.id) ?? 0) + elapsedMs);
    this.options.onBatch?.(node.id, records, elapsedMs);
    const count = this.replicas.get(node.id) ?? 0;
    const log = this.stragglerLog.get(node.id)!;
    const awaiting = log.awaiting.get(replica);
    if (awaiting && detector.samples(replica) >= detector.minimumSamples) {
      awaiting.gotGainMsPerRecord = round(awaiting.slowMsPerRecord - detector.perRecordMs(replica)!, 4);
      log.awaiting.delete(replica);
    }
    const now = Date.now();
    const cooled = now - (log.recycledAt.get(replica) ?? -Infinity) >= RECYCLE_COOLDOWN_MS;
    if (this.mitigateStragglers && cooled && detector.isStraggler(replica, count) && detector.inFlight(replica) === 0) {
      // Recycle: a fresh isolate, under a new instance tag, replaces the slow one; its record starts clean.
      const slow = detector.perRecordMs(replica)!;
      const peers = detector.peersMs(replica, count)!;
      this.options.releaseReplica?.(node, this.instanceTag(node.id, replica));
      log.generation.set(replica, (log.generation.get(replica) ?? 0) + 1);
      log.recycledAt.set(replica, now);
      log.recycled++;
      const event: StragglerEvent = {
        replica,
        at: new Date(now).toISOString(),
        instanceTag: this.instanceTag(node.id, replica),
        slowMsPerRecord: round(slow, 4),
        peersMsPerRecord: round(peers, 4),
        expectedGainMsPerRecord: round(slow - peers, 4),
        gotGainMsPerRecord: null,
      };
      log.events.push(event);
      if (log.events.length > STRAGGLER_EVENTS) log.events.shift();
      log.awaiting.set(replica, event);
      detector.reset(replica);
      this.options.onStraggler?.(node.id, replica);
    }
  }

  /** The tag replica `replica` of `node` runs under: `<graph>/<node>#<replica>`, with `.<n>` after its n-th recycling. */
  instanceTag(node: string, replica: number): string {
    const generation = this.stragglerLog.get(node)?.generation.get(replica) ?? 0;
    return `${this.name}/${node}#${replica}${generation > 0 ? `.${generation}` : ''}`;
  }

  /** Straggler mitigation of a node, for the status: steered batches, recyclings, expected and measured gains. */
  stragglerStatus(node: string) {
    const log = this.stragglerLog.get(node);
    if (!log) return null;
    return { mitigation: this.mitigateStragglers, steeredBatches: log.steered, recycled: log.recycled, events: log.events.slice(-5) };
  }

  /** Sets a node's replica count; isolates of replicas scaled away are released. */
  setReplicas(node: string, count: number, reason = 'autoscaler'): void {
    const spec = this.nodeSpecs.get(node);
    if (!spec || !Number.isFinite(count)) return;
    const bounded = Math.max(spec.replicas.min, Math.min(spec.replicas.max, count));
    const before = this.replicas.get(node) ?? 0;
    if (bounded === before) return;
    const resting = this.lifecycle.state;
    if (this.lifecycle.can('rescaling')) this.lifecycle.to('rescaling', `${node}: ${before} -> ${bounded} replicas (${reason})`);
    this.replicas.set(node, bounded);
    for (let r = bounded; r < before; r++) this.options.releaseReplica?.(spec, this.instanceTag(node, r));
    this.probeCost(node, before, bounded);
    this.options.onReplicas?.(node, bounded, reason);
    // Replicas are isolates started on demand: the change is done once the old ones are released.
    if (this.lifecycle.state === 'rescaling' && this.reassigning === 0) this.lifecycle.to(resting === 'rescaling' ? 'running' : resting);
  }

  /**
   * The next batch of each replica the change touches measures its cost against the usual batch
   * time: the added replicas' (cold start, state shipped, partitions moved onto them), or after a
   * removal the remaining replicas' (they take the removed ones' partitions and their state).
   * From or to zero is a cold start or an idle stop, not a rescale: not measured.
   */
  private probeCost(node: string, before: number, after: number): void {
    const stats = this.stats.get(node)!;
    for (const key of [...this.costProbes.keys()]) if (key.startsWith(`${node}#`)) this.costProbes.delete(key);
    if (before === 0 || after === 0 || stats.batches === 0) return;
    const baselineMs = stats.batchMs;
    if (after > before) for (let r = before; r < after; r++) this.costProbes.set(`${node}#${r}`, { added: true, baselineMs });
    else for (let r = 0; r < after; r++) this.costProbes.set(`${node}#${r}`, { added: false, baselineMs });
  }

  /** The measured cost of adding and of removing one of the node's replicas. */
  scalingCost(node: string): ScalingCostSnapshot {
    return this.costs.get(node)?.snapshot() ?? { addMs: null, removeMs: null, adds: 0, removes: 0 };
  }

  /** A node scaled to zero got a record: back to one replica at once (its cold start is in the latency). */
  private wake(node: string): void {
    if ((this.replicas.get(node) ?? 0) === 0) this.setReplicas(node, 1, 'woke on first record');
  }

  scaleToZeroAfterMs(node: string): number {
    const spec = this.nodeSpecs.get(node);
    return spec?.scaleToZeroAfterMs ?? this.spec.scaleToZeroAfterMs ?? DEFAULT_SCALE_TO_ZERO_AFTER_MS;
  }

  /** Batch time a node spent since the last call (ms), for its busy fraction. */
  takeBusyMs(node: string): number {
    const busy = this.busyMs.get(node) ?? 0;
    this.busyMs.set(node, 0);
    return busy;
  }

  /**
   * What the autoscaler measures of a node, from its input logs: heads (the arrival counter),
   * partitions and queued records — the embedded workers' logs, or Kafka's offsets.
   */
  nodeSignals(node: string) {
    const stats = this.stats.get(node)!;
    let inputHeads = 0;
    let queueDepth = 0;
    let partitions = 0;
    const commitDelayMs = this.kafka?.commitDelayMs(node) ?? 0;
    for (const input of this.inputsByNode.get(node) ?? []) {
      for (const p of input.log?.offsets() ?? []) {
        inputHeads += p.head;
        queueDepth += p.lag;
        partitions++;
      }
    }
    return { inputHeads, partitions, queueDepth, processed: stats.processed, recordMs: stats.recordMs, batchMs: stats.batchMs, batchOverheadMs: stats.batchOverheadMs, recordMarginalMs: stats.recordMarginalMs, recordCpuMs: stats.recordCpuMs, commitDelayMs };
  }

  /** Measured sojourn (ms) by Little's law: queued records over the arrival rate, plus a batch. */
  measuredLatencyMs(node: string, arrivalRate: number): number | null {
    const stats = this.stats.get(node)!;
    if (stats.batches === 0) return null;
    const { queueDepth } = this.nodeSignals(node);
    const queueMs = arrivalRate > 0 ? (queueDepth / arrivalRate) * 1000 : 0;
    return Math.round((queueMs + stats.batchMs) * 100) / 100;
  }

  /**
   * Appends records to every edge out of `source`, durably, before answering. Refuses the whole
   * request with ERR_BACKPRESSURE when an edge is too far behind (nothing half-accepted), and with
   * ERR_INGEST_TOO_LARGE when it holds more records than an edge may queue at all.
   */
  ingest(source: string, records: IngestRecord[], idempotencyKey?: string): { accepted: number; duplicate: boolean } {
    if (this.topology.kindOf(source) !== 'source') throw new TributaryError('ERR_NOT_FOUND', `graph '${this.name}' has no source '${source}'`);
    // A redeploy's stopping runtime still takes records (its successor resumes from the log); a deleted graph's topics are going.
    if (this.lifecycle.state === 'deleting') throw new TributaryError('ERR_UNAVAILABLE', `graph '${this.name}' is being deleted`);
    if (kafkaSourceOf(this.spec, source)) throw new TributaryError('ERR_BAD_REQUEST', `source '${source}' is a Kafka source: produce to its topic instead`);
    const routes = this.topology.outputs(source);
    const maxLag = this.options.maxLagRecords ?? 200_000;
    // No queue could ever take it: 429 would be answered forever.
    if (records.length > maxLag) throw new TributaryError('ERR_INGEST_TOO_LARGE', `${records.length} records in one request; an edge queues at most ${maxLag}: send smaller requests`);
    for (const route of routes) {
      if (this.edgeLag(route.topic, route.edge.to) + records.length > maxLag) {
        throw new TributaryError('ERR_BACKPRESSURE', `edge ${route.edge.from} -> ${route.edge.to} has more than ${maxLag} records waiting; retry later`);
      }
    }
    const now = Date.now();
    const field = this.spec.sources.find((s) => s.id === source)?.eventTime?.field;
    const arrival = { [INGESTED_HEADER]: String(now) };
    const log: LogRecord[] = records.map((r, i) => {
      const timestamp = field === undefined ? (r.timestamp ?? now) : eventTimeAt(r.value, field, i);
      return timestamp === now ? { key: r.key ?? null, value: r.value, timestamp } : { key: r.key ?? null, value: r.value, timestamp, headers: arrival };
    });
    const appended = this.options.transport.commit({
      appends: routes.flatMap((route) => this.topology.route(route, log)),
      offsets: [],
      state: [],
      idempotencyKey: idempotencyKey === undefined ? undefined : `${this.options.idempotencyScope ?? `${this.name}/`}${source}/${idempotencyKey}`,
    });
    return { accepted: records.length, duplicate: !appended };
  }

  private edgeLag(topic: string, consumer: string): number {
    if (this.topology.kindOf(consumer) !== 'node') return 0;
    const group = this.topology.group(consumer);
    let lag = 0;
    for (let p = 0; p < this.topology.partitions(topic); p++) {
      lag += this.options.transport.head(topic, p) - this.options.transport.committed(group, topic, p);
    }
    return lag;
  }

  /** Reads a sink, a log sink or (through the broker) a Kafka sink. */
  async readSinkRecords(sink: string, from: number, limit: number): Promise<StoredRecord[]> {
    if (this.kafka && kafkaSinkOf(this.spec, sink)) return this.kafka.readSink(sink, from, limit);
    return this.readSink(sink, from, limit);
  }

  /** Reads a node's dead letters, from the embedded log or (Kafka-fed nodes) the dead-letter topic. */
  async readDeadLetterRecords(node: string, from: number, limit: number): Promise<StoredRecord[]> {
    if (this.kafka?.nodes.has(node)) return this.kafka.readDeadLetters(node, from, limit);
    return this.readDeadLetters(node, from, limit);
  }

  readSink(sink: string, from: number, limit: number): StoredRecord[] {
    if (this.topology.kindOf(sink) !== 'sink') throw new TributaryError('ERR_NOT_FOUND', `graph '${this.name}' has no sink '${sink}'`);
    return this.options.transport.read(this.topology.sinkTopic(sink), 0, from, limit);
  }

  readDeadLetters(node: string, from: number, limit: number): StoredRecord[] {
    if (this.topology.kindOf(node) !== 'node') throw new TributaryError('ERR_NOT_FOUND', `graph '${this.name}' has no node '${node}'`);
    return this.options.transport.read(this.topology.deadLetterTopic(node), 0, from, limit);
  }

  status() {
    const { transport } = this.options;
    const nodes: Record<string, unknown> = {};
    for (const node of this.spec.nodes) {
      const stats = this.stats.get(node.id)!;
      const onKafka = this.kafka?.nodes.has(node.id) ?? false;
      const { queueDepth } = this.nodeSignals(node.id);
      nodes[node.id] = {
        function: node.function,
        replicas: this.replicaCount(node.id),
        replicasRange: node.replicas,
        queueDepth,
        processed: stats.processed,
        failed: stats.failed,
        batches: stats.batches,
        timers: { fired: stats.timersFired, ...this.taskContext(node).timers.summary() },
        ...(this.eventTimeIdleMs !== null && { watermark: this.taskContext(node).watermarks!.summary(Date.now()) }),
        latency: { batchMs: round(stats.batchMs), perRecordMs: round(stats.recordMs, 4) },
        lastError: stats.lastError,
        deadLetters: onKafka ? this.kafka!.deadLetterCount(node.id) : transport.head(this.topology.deadLetterTopic(node.id), 0),
        scalingCost: this.scalingCost(node.id),
        stragglers: this.stragglerStatus(node.id),
      };
    }
    const edges = this.spec.edges.map((edge) => {
      if (this.kafka?.isKafkaEdge(edge)) return { from: edge.from, to: edge.to, delivery: edge.delivery, partitionBy: edge.partitionBy, ...this.kafka.edgeStatus(edge) };
      const topic = this.topology.topicOf(edge);
      const partitions = this.topology.partitions(topic);
      const consumer = this.topology.kindOf(edge.to) === 'node' ? this.topology.group(edge.to) : null;
      const perPartition = Array.from({ length: partitions }, (_, p) => {
        const head = transport.head(topic, p);
        const committed = consumer ? transport.committed(consumer, topic, p) : head;
        return { partition: p, head, committed, lag: head - committed };
      });
      return {
        from: edge.from,
        to: edge.to,
        delivery: edge.delivery,
        partitionBy: edge.partitionBy,
        committedOffset: perPartition.reduce((s, p) => s + p.committed, 0),
        lag: perPartition.reduce((s, p) => s + p.lag, 0),
        partitions: perPartition,
      };
    });
    const sinks = Object.fromEntries(
      this.spec.sinks.map((s) => [s.id, s.type === 'kafka' ? { topic: s.topic, offsets: this.kafka?.sinkOffsets(s.id) ?? 0 } : { records: transport.head(this.topology.sinkTopic(s.id), 0) }]),
    );
    const latency = { p50Ms: this.latency.percentile(50), p99Ms: this.latency.percentile(99) };
    this.observeHealth();
    const { lifecycle } = this;
    return {
      name: this.name,
      state: lifecycle.state,
      ...(lifecycle.reason !== null ? { reason: lifecycle.reason } : {}),
      transitions: lifecycle.transitions(),
      nodes,
      edges,
      sinks,
      endToEndLatency: latency,
      errors: this.faults.status(),
    };
  }
}

function round(value: number, digits = 3): number {
  return Number(value.toFixed(digits));
}

/** A record's event time from its value's `field`, or a clear refusal of the whole request. */
function eventTimeAt(value: unknown, field: string, index: number): number {
  const at = readEventTime(value, field);
  if (at === null) throw new TributaryError('ERR_BAD_REQUEST', `record ${index}: no event time at "${field}" in its value (ms since the epoch or an ISO 8601 string)`);
  return at;
}
