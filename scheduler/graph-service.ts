/**
 * Graph lifecycle in the control plane: deploy (validate, persist, swap the running graph without
 * losing or repeating a committed record), delete, status, and recovery of every deployed graph
 * when the platform starts.
 *
 * A stored graph that cannot launch (it no longer validates — deployed before a limit existed,
 * or its function is gone — or its runtime fails to start) does not stop the platform nor the
 * other graphs: it is degraded, with the reason in its status, until it is redeployed or deleted.
 */
import type { SqliteLog } from '../connectors/embedded/sqlite-log.ts';
import { EmbeddedStateStore } from '../connectors/state/embedded-state-store.ts';
import type { StateStore } from '../connectors/state/state-store.ts';
import { asTributaryError, TributaryError } from '../runtime/errors.ts';
import { MAX_GRAPHS } from '../runtime/limits.ts';
import { defaultGuard, type Guard } from '../runtime/guard.ts';
import { assertFunctionName } from '../runtime/function-registry.ts';
import type { FunctionService } from '../runtime/function-service.ts';
import { GraphRuntime, type IngestRecord } from './graph-runtime.ts';
import { validateGraph, type GraphSpec } from './graph-spec.ts';
import { GraphStore, type StoredGraph } from './graph-store.ts';
import { Topology } from './topology.ts';
import { Autoscaler } from './autoscaler/autoscaler.ts';
import { ModelPolicy, type ResourceBudget, type ScalingPolicy } from './autoscaler/policy.ts';
import type { GraphMetrics } from './graph-metrics.ts';
import type { KafkaRuntimeOptions } from './kafka/kafka-graph.ts';
import { KafkaCleanup, type KafkaCleanupOutcome } from './kafka/kafka-cleanup.ts';
import type { GraphError } from './graph-faults.ts';
import { S3Sinks, type S3SinksOptions } from './s3-sinks.ts';
import { parseSeekRequest, planSeek, seekEmbedded, type SeekPlan, type SeekResult } from './source-seek.ts';
import { seekKafka } from './kafka/kafka-seek.ts';

export interface GraphServiceOptions {
  maxBatchRecords?: number;
  maxLagRecords?: number;
  /** Prometheus series of graphs (signals, decisions, latency). */
  metrics?: GraphMetrics;
  /** Host cores available to isolates: the autoscaler's CPU budget (default 1). */
  cores?: number;
  /** What the machine offers now (ready hosts, isolate memory), read on every autoscaler decision (default: `cores` hosts). */
  resources?(): ResourceBudget;
  /** Frees a replica's isolate on every host (scale-down, straggler recycling). */
  releaseReplica?(instanceTag: string): void;
  /** Scaling policy per graph (default: the latency model). Benches swap in baselines. */
  policy?(graph: string): ScalingPolicy;
  /** Autoscaler decision interval (default 1000 ms); 0 disables the autoscaler. */
  autoscaleIntervalMs?: number;
  /** Autoscaler stable window before scaling down (default 10000 ms). */
  stableWindowMs?: number;
  /** Where env.STATE lives (default: the embedded store, in the log's database). */
  stateStore?: StateStore;
  /** Records deploys and deletes where other control planes see them (S3 shared deployments). */
  recorder?: GraphRecorder;
  /** Kafka clients and the state store of Kafka-fed nodes (graphs with Kafka sources, sinks or edges). */
  kafka?: KafkaRuntimeOptions;
  /** Reports errors caught in the graphs' timers and handlers (default: log only). */
  guard?: Guard;
  /** Graphs' `"type": "s3"` sinks: the platform's S3 settings and which buckets they may write (default: none). */
  s3Sinks?: S3SinksOptions;
  /** Longest a delete waits for the Kafka brokers to remove the graph's topics and groups before answering (default 10000 ms). */
  kafkaCleanupWaitMs?: number;
}

/** What a delete did beyond removing the graph: its Kafka topics and groups (null for a graph that had none). */
export interface GraphDeleted {
  kafka: KafkaCleanupOutcome | null;
}

/**
 * Where graph deploys are recorded so that other control planes see them
 * (connectors/s3/shared-deployments.ts). It also applies them to the local GraphStore.
 */
export interface GraphRecorder {
  putGraph(name: string, spec: GraphSpec): Promise<StoredGraph>;
  deleteGraph(name: string): Promise<void>;
}

export class GraphService {
  private readonly runtimes = new Map<string, GraphRuntime>();
  private readonly autoscalers = new Map<string, Autoscaler>();
  private readonly store: GraphStore;
  private readonly log: SqliteLog;
  private readonly functions: FunctionService;
  private readonly options: GraphServiceOptions;
  private readonly stateStore: StateStore;
  /** Version of the spec each running graph was launched with. */
  private readonly launched = new Map<string, number>();
  /** Deploys and deletes of one graph run one at a time. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** Stored graphs that could not launch, with why. */
  private readonly degraded = new Map<string, GraphError>();
  /** New names being deployed right now: they count against MAX_GRAPHS before they are stored. */
  private readonly arriving = new Set<string>();
  private readonly guard: Guard;
  /** Removes deleted graphs' Kafka topics and groups, retrying until done. */
  private readonly kafkaCleanup: KafkaCleanup | null;
  /** The S3 sinks' publishers of running graphs. */
  private readonly s3Sinks: S3Sinks;

  constructor(store: GraphStore, log: SqliteLog, functions: FunctionService, options: GraphServiceOptions = {}) {
    this.store = store;
    this.log = log;
    this.functions = functions;
    this.options = options;
    this.guard = options.guard ?? defaultGuard;
    this.stateStore = options.stateStore ?? new EmbeddedStateStore(log);
    this.s3Sinks = new S3Sinks(log, options.s3Sinks);
    const metrics = options.metrics;
    this.kafkaCleanup = options.kafka
      ? new KafkaCleanup({ pool: options.kafka.pool, store, guard: this.guard, waitMs: options.kafkaCleanupWaitMs, onPending: (n) => metrics?.kafkaCleanupsPending.set(n) })
      : null;
  }

  /**
   * Restarts every deployed graph from its committed offsets. Each is validated again first
   * (limits and functions may have changed since it was stored); one that fails is degraded.
   */
  start(): void {
    this.kafkaCleanup?.resume();
    for (const name of this.store.names()) {
      try {
        const stored = this.store.get(name);
        if (stored) this.launch(this.revalidated(stored));
      } catch (error) {
        this.degrade(name, 'graph.launch', error);
      }
    }
  }

  /** The stored graph with its spec validated against today's limits and functions. */
  private revalidated(graph: StoredGraph): StoredGraph {
    return { ...graph, spec: validateGraph(graph.spec, (fn) => this.functions.registry.get(fn) !== null) };
  }

  private degrade(name: string, where: string, cause: unknown): void {
    const error = asTributaryError(cause);
    this.degraded.set(name, { where, code: error.code, message: error.message, at: new Date().toISOString() });
    this.guard.report(where, { graph: name }, cause);
  }

  /**
   * Stops the graph's autoscaler and runtime (after their in-flight batches commit). With
   * `keepServing` the stopped runtime stays in place for ingest until the next launch replaces it.
   */
  private async halt(name: string, deleting = false, keepServing = false): Promise<void> {
    this.autoscalers.get(name)?.stop();
    this.autoscalers.delete(name);
    // Left in place while it stops: ingest still appends to its log, which the next runtime reads.
    await this.runtimes.get(name)?.stop({ deleting });
    if (!keepServing) this.runtimes.delete(name);
    // After the runtime: its last batches are in the sink logs the next publisher starts from.
    await this.s3Sinks.stop(name);
  }

  private launch(graph: StoredGraph): GraphRuntime {
    this.degraded.delete(graph.name);
    this.s3Sinks.check(graph.spec);
    const metrics = this.options.metrics;
    const labels = (node: string) => ({ graph: graph.name, node });
    // Ingest keys are scoped to this incarnation of the name ('' for graphs stored before incarnations: the old scope).
    const incarnation = this.store.incarnation(graph.name);
    const runtime = new GraphRuntime(graph.name, graph.spec, {
      idempotencyScope: `${Topology.prefix(graph.name)}${incarnation ? `@${incarnation}/` : ''}`,
      transport: this.log,
      stateStore: this.stateStore,
      process: (node, batch, tag) => this.functions.process(this.functions.registry.require(node.function), batch, tag),
      maxBatchRecords: this.options.maxBatchRecords,
      maxLagRecords: this.options.maxLagRecords,
      kafka: this.options.kafka,
      releaseReplica: (_node, tag) => this.options.releaseReplica?.(tag),
      onReplicas: (node, replicas, reason) => {
        metrics?.replicas.set(labels(node), replicas);
        if (reason === 'woke on first record') metrics?.decisions.inc({ ...labels(node), action: 'wake' });
      },
      onStraggler: (node) => metrics?.stragglers.inc(labels(node)),
      onBatch: (node, records, elapsedMs) => {
        metrics?.batchService.observe(labels(node), elapsedMs / 1000);
        metrics?.recordService.observe(labels(node), elapsedMs / 1000 / Math.max(1, records));
      },
      onSinkLatency: (latencies) => {
        for (const ms of latencies) metrics?.endToEnd.observe({ graph: graph.name }, ms / 1000);
      },
      guard: this.guard,
    });
    // Sink and dead-letter retention of this graph (deleteTopics forgets it on delete).
    this.log.setRetention(Topology.prefix(graph.name), graph.spec.retention ?? null);
    for (const sink of graph.spec.sinks) {
      if (sink.type === 'log') this.log.setRetention(runtime.topology.sinkTopic(sink.id), sink.retention ?? null);
    }
    // Source edges keep what was consumed, for replay (a seek), before their consumers start.
    for (const source of graph.spec.sources) {
      if (source.type !== 'http') continue;
      for (const route of runtime.topology.outputs(source.id)) {
        if (runtime.topology.kindOf(route.edge.to) === 'node') this.log.keepConsumed(route.topic, source.retention ?? {});
      }
    }
    try {
      runtime.start();
    } catch (error) {
      void runtime.stop().catch(() => {});
      throw error;
    }
    this.runtimes.set(graph.name, runtime);
    this.launched.set(graph.name, graph.version);
    this.s3Sinks.start(graph.name, graph.spec, runtime.topology, incarnation);
    for (const node of graph.spec.nodes) metrics?.replicas.set(labels(node.id), runtime.replicaCount(node.id));
    const intervalMs = this.options.autoscaleIntervalMs ?? 1000;
    if (intervalMs > 0) {
      const autoscaler = new Autoscaler(runtime, {
        policy: this.options.policy?.(graph.name) ?? new ModelPolicy(),
        cores: this.options.cores ?? 1,
        intervalMs,
        stableWindowMs: this.options.stableWindowMs,
        resources: this.options.resources,
        memoryMbOf: (node) => {
          const fn = graph.spec.nodes.find((n) => n.id === node)?.function;
          return fn === undefined ? undefined : this.functions.registry.get(fn)?.memoryLimitMb;
        },
        onDecision: (node, decision) => {
          metrics?.decisions.inc({ ...labels(node), action: decision.action });
          metrics?.arrivalRate.set(labels(node), decision.arrivalRate);
          metrics?.queueDepth.set(labels(node), decision.queueDepth);
          metrics?.busyFraction.set(labels(node), Math.min(1, runtime.takeBusyMs(node) / intervalMs / Math.max(1, runtime.replicaCount(node))));
          if (decision.predictedMs !== null) metrics?.predictedLatency.set(labels(node), decision.predictedMs / 1000);
          if (decision.measuredMs !== null) metrics?.measuredLatency.set(labels(node), decision.measuredMs / 1000);
          const lagMs = runtime.watermarkLagMs(node);
          if (lagMs !== null) metrics?.watermarkLag.set(labels(node), lagMs / 1000);
          const cost = runtime.scalingCost(node);
          if (cost.addMs !== null) metrics?.scalingCost.set({ ...labels(node), change: 'add' }, cost.addMs / 1000);
          if (cost.removeMs !== null) metrics?.scalingCost.set({ ...labels(node), change: 'remove' }, cost.removeMs / 1000);
        },
        onSlo: (slo) => {
          const graphLabel = { graph: graph.name };
          metrics?.sloReachable.set(graphLabel, slo.reachable ? 1 : 0);
          if (slo.predictedMs !== null) metrics?.sloPredicted.set(graphLabel, slo.predictedMs / 1000);
          if (slo.measuredMs !== null) metrics?.sloMeasured.set(graphLabel, slo.measuredMs / 1000);
          metrics?.resourceCores.set(graphLabel, slo.resources.cores);
          if (slo.resources.memoryBudgetMb !== null) metrics?.resourceMemory.set({ ...graphLabel, kind: 'budget' }, slo.resources.memoryBudgetMb * 1024 * 1024);
          if (slo.resources.memoryUsedMb !== null) metrics?.resourceMemory.set({ ...graphLabel, kind: 'used' }, slo.resources.memoryUsedMb * 1024 * 1024);
        },
      });
      this.autoscalers.set(graph.name, autoscaler);
      autoscaler.start();
    }
    return runtime;
  }

  private serialize<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const next = previous.then(work, work);
    this.locks.set(name, next.catch(() => {}));
    return next;
  }

  /** Deploys or updates: the old runtime stops after committing its in-flight batches, the new one resumes from there. */
  deploy(name: string, input: unknown): Promise<StoredGraph> {
    assertFunctionName(name);
    const spec = validateGraph(input, (fn) => this.functions.registry.get(fn) !== null);
    this.s3Sinks.check(spec);
    const isNew = !this.store.has(name) && !this.arriving.has(name);
    if (isNew && this.store.count() + this.arriving.size >= MAX_GRAPHS) {
      throw new TributaryError('ERR_QUOTA_EXCEEDED', `${MAX_GRAPHS} graphs are deployed (MAX_GRAPHS): delete one before deploying '${name}'`);
    }
    if (isNew) this.arriving.add(name);
    const deployed = this.serialize(name, async () => {
      // A deleted predecessor's Kafka topics and groups must be gone before this graph creates its own.
      await this.kafkaCleanup?.clearFor(name, spec);
      // Shared deployments: recorded in the bucket first, so that a failure there changes nothing.
      const recorded = this.options.recorder ? await this.options.recorder.putGraph(name, spec) : null;
      await this.halt(name);
      const stored = recorded ?? this.store.put(name, spec);
      let runtime: GraphRuntime;
      try {
        runtime = this.launch(stored);
      } catch (error) {
        this.degrade(name, 'graph.launch', error);
        throw error;
      }
      // Unreachable brokers: the graph stays deployed, its Kafka edges degraded and retrying.
      await runtime.kafka?.waitReady().catch((error: TributaryError) => {
        throw new TributaryError(error.code, `graph '${name}' deployed (version ${stored.version}) but its Kafka edges are degraded, retrying with backoff: ${error.message}`, {
          details: { graph: { name, version: stored.version } },
        });
      });
      return stored;
    });
    if (isNew) void deployed.finally(() => this.arriving.delete(name)).catch(() => {});
    return deployed;
  }

  /**
   * Brings the running graph in line with the GraphStore after a deploy or delete made by another
   * control plane (shared deployments): relaunches it on the new version, or stops it and deletes
   * its records and state. A no-op when it already runs the stored version.
   */
  refresh(name: string): Promise<void> {
    return this.serialize(name, async () => {
      const stored = this.store.get(name);
      if (stored ? this.launched.get(name) === stored.version : !this.launched.has(name) && !this.degraded.has(name)) return;
      await this.halt(name);
      if (stored) {
        try {
          this.launch(this.revalidated(stored));
        } catch (error) {
          // Degraded meanwhile; the rejection makes shared deployments retry at its next poll.
          this.launched.delete(name);
          this.degrade(name, 'graph.launch', error);
          throw error;
        }
        return;
      }
      this.degraded.delete(name);
      await this.options.metrics?.forget(name);
      this.log.deleteTopics(Topology.prefix(name));
      await this.deleteState(name);
      this.forgetKafkaState(name);
      this.launched.delete(name);
    });
  }

  /** The graph's state in its store and, with a bucket, its Kafka-fed nodes' state in S3. */
  private async deleteState(name: string): Promise<void> {
    await this.stateStore.deleteNamespaces(Topology.prefix(name));
    await this.options.kafka?.s3State?.deleteNamespaces(Topology.prefix(name));
  }

  /**
   * The state of the graph's Kafka-fed nodes: staged writes, owners and applied offsets in the
   * local ledger, values in the log's own state rows (in S3 with a bucket: {@link deleteState}).
   */
  private forgetKafkaState(name: string): void {
    this.options.kafka?.ledger.deleteNamespace(Topology.prefix(name));
    this.log.deleteState(Topology.prefix(name));
  }

  /**
   * Stops the graph, deletes its state (embedded or S3), its spec, its embedded-log records,
   * offsets and idempotency keys, then what it owns on Kafka (kafka/kafka-owned.ts), waiting for
   * the brokers at most `kafkaCleanupWaitMs`: `kafka.state` is `pending` when they did not finish
   * in time, and the cleanup goes on in the background (kafka/kafka-cleanup.ts).
   */
  delete(name: string): Promise<GraphDeleted> {
    return this.serialize(name, async () => {
      const stored = this.store.get(name);
      if (!stored) throw new TributaryError('ERR_NOT_FOUND', `no graph named '${name}'`);
      const wasRunning = this.runtimes.has(name);
      const runtime = this.runtimes.get(name);
      await this.halt(name, true);
      // Recorded before the graph is removed, so that a crash from here on leaves it to the next start.
      const cleanup = this.kafkaCleanup?.record(name, this.store.incarnation(name) ?? '', stored.spec) ?? null;
      try {
        // State first: when its store fails (S3 down) the graph runs on and the delete can be retried.
        await this.deleteState(name);
        if (this.options.recorder) await this.options.recorder.deleteGraph(name);
        else this.store.delete(name);
      } catch (error) {
        if (cleanup !== null) this.kafkaCleanup!.cancel(cleanup);
        if (wasRunning) {
          try {
            this.launch(stored);
          } catch (relaunch) {
            this.degrade(name, 'graph.launch', relaunch);
          }
        }
        throw error;
      }
      this.degraded.delete(name);
      this.launched.delete(name);
      await this.options.metrics?.forget(name);
      this.log.deleteTopics(Topology.prefix(name));
      this.forgetKafkaState(name);
      // The runtime has stopped, so its consumers have left their groups: groups, then topics.
      const kafka = cleanup === null ? null : await this.kafkaCleanup!.settle(cleanup);
      runtime?.deleted();
      return { kafka };
    });
  }

  runtime(name: string): GraphRuntime {
    const runtime = this.runtimes.get(name);
    if (runtime) return runtime;
    const degraded = this.degraded.get(name);
    if (degraded) throw new TributaryError('ERR_UNAVAILABLE', `graph '${name}' is degraded, not running: ${degraded.code}: ${degraded.message}`);
    throw new TributaryError('ERR_NOT_FOUND', `no graph named '${name}'`);
  }

  list(): StoredGraph[] {
    return this.store.list();
  }

  describe(name: string) {
    const stored = this.store.get(name);
    if (!stored) throw new TributaryError('ERR_NOT_FOUND', `no graph named '${name}'`);
    const degraded = this.degraded.get(name);
    if (degraded && !this.runtimes.has(name)) {
      const status = { name, state: 'degraded' as const, reason: `${degraded.code}: ${degraded.message}`, nodes: {}, edges: [], sinks: {}, endToEndLatency: { p50Ms: null, p99Ms: null }, errors: { count: 1, last: degraded } };
      return { ...stored, status };
    }
    const status = this.runtime(name).status();
    for (const [id, s3] of Object.entries(this.s3Sinks.status(name))) Object.assign((status.sinks as Record<string, object>)[id] ?? {}, { s3 });
    const autoscaler = this.autoscalers.get(name);
    const decisions = autoscaler?.decisions;
    for (const [id, node] of Object.entries(status.nodes)) {
      const d = decisions?.get(id);
      Object.assign(node as object, {
        predictedLatencyMs: d?.predictedMs ?? null,
        measuredLatencyMs: d?.measuredMs ?? null,
        lastDecision: d ? { at: new Date(d.at).toISOString(), action: d.action, from: d.from, to: d.replicas, reason: d.reason } : null,
      });
    }
    // The last replica changes, newest first: what the autoscaler did and why.
    const history = (autoscaler?.history ?? []).slice().reverse().map((d) => ({ at: new Date(d.at).toISOString(), node: d.node, action: d.action, from: d.from, to: d.replicas, reason: d.reason }));
    return { ...stored, status: { ...status, slo: autoscaler?.slo() ?? null, decisions: history } };
  }

  autoscaler(name: string): Autoscaler | undefined {
    return this.autoscalers.get(name);
  }

  /**
   * Rewinds (or fast-forwards) the consumers of a source's edges to an offset or a time, and with
   * `resetState` deletes the state of every node downstream (scheduler/source-seek.ts). The graph
   * pauses as for a redeploy: its running batches commit (or are abandoned uncommitted after
   * 2 s), the offsets and state change, and a new runtime resumes from them. A refused seek
   * (bad body, offset out of range) is refused before anything pauses.
   *
   * @example await graphs.seek('wc', 'lines', { timestamp: Date.now() - 3600_000, resetState: true })
   */
  seek(name: string, source: string, body: unknown): Promise<SeekResult> {
    const request = parseSeekRequest(body);
    return this.serialize(name, async () => {
      const stored = this.store.get(name);
      if (!stored) throw new TributaryError('ERR_NOT_FOUND', `no graph named '${name}'`);
      const runtime = this.runtime(name);
      if (runtime.lifecycle.state === 'deleting') throw new TributaryError('ERR_UNAVAILABLE', `graph '${name}' is being deleted`);
      const plan = planSeek(runtime.topology, source, request);
      const seekOnce = (apply: boolean) => this.applySeek(runtime.topology, plan, apply);
      await seekOnce(false); // refuses out-of-range offsets while the graph still runs
      // Ingest goes on into the stopped runtime's log meanwhile: it lands after the moved offsets.
      await this.halt(name, false, true);
      try {
        return await seekOnce(true);
      } finally {
        try {
          this.launch(stored);
        } catch (error) {
          this.runtimes.delete(name);
          this.degrade(name, 'graph.launch', error);
        }
      }
    });
  }

  private applySeek(topology: Topology, plan: SeekPlan, apply: boolean): Promise<SeekResult> {
    if (!plan.kafka) {
      if (plan.resetNodes.length > 0 && this.stateStore.kind !== 'embedded') {
        throw new TributaryError('ERR_BAD_REQUEST', 'seek: resetState needs the embedded state store; state in S3 (--s3-bucket) cannot be reset yet');
      }
      return Promise.resolve(seekEmbedded(this.log, topology, plan, apply));
    }
    const kafka = this.options.kafka;
    if (!kafka) throw new TributaryError('ERR_INTERNAL', 'graph has Kafka edges but the platform has no Kafka configuration');
    if (kafka.s3State) throw new TributaryError('ERR_BAD_REQUEST', 'seek: Kafka edges whose state is in S3 (--s3-bucket) cannot be sought yet');
    return seekKafka({ broker: (brokers) => kafka.pool.get(brokers), ledger: kafka.ledger }, topology, plan, apply);
  }

  ingest(name: string, source: string, records: IngestRecord[], idempotencyKey?: string) {
    return this.runtime(name).ingest(source, records, idempotencyKey);
  }

  async close(): Promise<void> {
    this.kafkaCleanup?.stop();
    for (const autoscaler of this.autoscalers.values()) autoscaler.stop();
    this.autoscalers.clear();
    await Promise.all([...this.runtimes.values()].map((r) => r.stop()));
    this.runtimes.clear();
    await this.s3Sinks.close();
  }
}
