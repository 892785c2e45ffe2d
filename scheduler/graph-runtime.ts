/**
 * A deployed graph while it runs: one PartitionTask per (node, input edge, partition), the
 * replicas each node runs on, state epochs, and the ingest and read paths of its sources and sinks.
 */
import type { LogRecord, StoredRecord, Transport } from '../connectors/transport.ts';
import { TributaryError } from '../runtime/errors.ts';
import type { WireBatch, WireBatchResult } from '../runtime/guest/wire.ts';
import type { GraphSpec, NodeSpec } from './graph-spec.ts';
import { LatencyRecorder } from './latency-recorder.ts';
import { NodeStats } from './node-stats.ts';
import { PartitionTask } from './partition-task.ts';
import { Topology } from './topology.ts';

export interface GraphRuntimeOptions {
  transport: Transport;
  /** Runs `process` of the node's current function version on replica `instanceTag`. */
  process(node: NodeSpec, batch: WireBatch, instanceTag: string): Promise<WireBatchResult>;
  maxBatchRecords?: number;
  maxAttempts?: number;
  /** Ingest answers 429 when a source edge's unconsumed records exceed this (default 200000). */
  maxLagRecords?: number;
}

export interface IngestRecord {
  key?: string | null;
  value: unknown;
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
  private readonly options: GraphRuntimeOptions;
  private readonly tasks: PartitionTask[] = [];
  private readonly replicas = new Map<string, number>();
  private readonly epochs = new Map<string, number>();
  /** A new runtime (deploy, restart) starts a new epoch: isolates reload state they may hold from before. */
  private readonly epochSeed = ++epochBase;

  constructor(name: string, spec: GraphSpec, options: GraphRuntimeOptions) {
    this.name = name;
    this.spec = spec;
    this.options = options;
    this.topology = new Topology(name, spec, options.transport);
    for (const node of spec.nodes) {
      this.stats.set(node.id, new NodeStats());
      this.replicas.set(node.id, Math.max(1, node.replicas.min));
      for (const edge of this.topology.inputs(node.id)) {
        const partitions = this.topology.partitions(this.topology.topicOf(edge));
        for (let partition = 0; partition < partitions; partition++) this.tasks.push(new PartitionTask(this.taskContext(node), edge, partition));
      }
    }
  }

  private taskContext(node: NodeSpec) {
    const stateKey = (partition: number) => `${node.id}\u0000${partition}`;
    return {
      transport: this.options.transport,
      topology: this.topology,
      node,
      stats: this.stats.get(node.id)!,
      process: (batch: WireBatch, tag: string) => this.options.process(node, batch, tag),
      replicaFor: (partition: number) => partition % (this.replicas.get(node.id) ?? 1),
      epochs: {
        get: (partition: number) => this.epochs.get(stateKey(partition)) ?? this.epochSeed,
        bump: (partition: number) => this.epochs.set(stateKey(partition), ++epochBase),
      },
      maxBatchRecords: this.options.maxBatchRecords ?? 1000,
      maxAttempts: this.options.maxAttempts ?? 3,
      onSinkAppend: (records: LogRecord[]) => {
        const now = Date.now();
        for (const record of records) this.latency.record(now - record.timestamp);
      },
    };
  }

  start(): void {
    for (const task of this.tasks) task.start();
  }

  /** Stops every task after its in-flight batch commits. */
  async stop(): Promise<void> {
    await Promise.all(this.tasks.map((task) => task.stop()));
  }

  replicaCount(node: string): number {
    return this.replicas.get(node) ?? 0;
  }

  /**
   * Appends records to every edge out of `source`, durably, before answering. Refuses the whole
   * request with ERR_BACKPRESSURE when an edge is too far behind: nothing half-accepted.
   */
  ingest(source: string, records: IngestRecord[], idempotencyKey?: string): { accepted: number; duplicate: boolean } {
    if (this.topology.kindOf(source) !== 'source') throw new TributaryError('ERR_NOT_FOUND', `graph '${this.name}' has no source '${source}'`);
    const routes = this.topology.outputs(source);
    const maxLag = this.options.maxLagRecords ?? 200_000;
    for (const route of routes) {
      if (this.edgeLag(route.topic, route.edge.to) + records.length > maxLag) {
        throw new TributaryError('ERR_BACKPRESSURE', `edge ${route.edge.from} -> ${route.edge.to} has more than ${maxLag} records waiting; retry later`);
      }
    }
    const now = Date.now();
    const log: LogRecord[] = records.map((r) => ({ key: r.key ?? null, value: r.value, timestamp: now }));
    const appended = this.options.transport.commit({
      appends: routes.flatMap((route) => this.topology.route(route, log)),
      offsets: [],
      state: [],
      idempotencyKey: idempotencyKey === undefined ? undefined : `${this.name}/${source}/${idempotencyKey}`,
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
      const queueDepth = this.tasks.filter((t) => this.topology.inputs(node.id).includes(t.edge)).reduce((sum, t) => sum + t.lag, 0);
      nodes[node.id] = {
        function: node.function,
        replicas: this.replicaCount(node.id),
        replicasRange: node.replicas,
        queueDepth,
        processed: stats.processed,
        failed: stats.failed,
        batches: stats.batches,
        latency: { batchMs: round(stats.batchMs), perRecordMs: round(stats.recordMs, 4) },
        lastError: stats.lastError,
        deadLetters: transport.head(this.topology.deadLetterTopic(node.id), 0),
      };
    }
    const edges = this.spec.edges.map((edge) => {
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
    const sinks = Object.fromEntries(this.spec.sinks.map((s) => [s.id, { records: transport.head(this.topology.sinkTopic(s.id), 0) }]));
    const latency = { p50Ms: this.latency.percentile(50), p99Ms: this.latency.percentile(99) };
    return { name: this.name, nodes, edges, sinks, endToEndLatency: latency };
  }
}

function round(value: number, digits = 3): number {
  return Number(value.toFixed(digits));
}
