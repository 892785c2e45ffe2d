/**
 * The Kafka part of a running graph: creates its topics (edge topics, missing source and sink
 * topics, one dead-letter topic per Kafka-fed node), runs a {@link KafkaEdgeTask} per Kafka edge
 * a node consumes, and answers status and reads for them.
 *
 * Lifecycle: preparing (topics) → running; while the brokers cannot be reached the graph's Kafka
 * edges are degraded with the reason, and preparation retries with exponential backoff (0.5 s
 * doubling to 30 s). `waitReady` lets a deploy report ERR_KAFKA_UNAVAILABLE at once.
 */
import type { Broker, BrokerProducer } from '../../connectors/broker.ts';
import type { BrokerPool } from '../../connectors/kafka/broker-pool.ts';
import type { KafkaStateStore } from '../../connectors/kafka/kafka-state-store.ts';
import { translateKafkaError } from '../../connectors/kafka/kafka-errors.ts';
import type { StoredRecord } from '../../connectors/transport.ts';
import { TributaryError } from '../../runtime/errors.ts';
import { DEFAULT_PARTITIONS, type EdgeSpec, type GraphSpec, type NodeSpec } from '../graph-spec.ts';
import type { GraphFaults } from '../graph-faults.ts';
import type { KafkaTaskContext as TaskContext } from './kafka-partition.ts';
import type { Topology } from '../topology.ts';
import { CommitInterval, DEFAULT_COMMIT_INTERVAL_MS } from './commit-interval.ts';
import { KafkaEdgeTask } from './kafka-edge-task.ts';
import type { KafkaOutput } from './kafka-partition.ts';
import { edgeBrokers, isKafkaEdge, kafkaDeadLetterTopic, kafkaGroupOf, kafkaHops, kafkaNodes, kafkaSinkOf, transactionalIdOf } from './kafka-topics.ts';

export interface KafkaRuntimeOptions {
  pool: BrokerPool;
  state: KafkaStateStore;
}

export interface KafkaGraphOptions extends KafkaRuntimeOptions {
  topology: Topology;
  /** Where errors of the graph's Kafka timers are reported. */
  faults: GraphFaults;
  contextFor(node: NodeSpec): TaskContext;
}

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;
const REFRESH_MS = 1000;

interface Offsets {
  heads: number[];
  committed: number[];
}

export class KafkaGraph {
  readonly nodes: Set<string>;
  private readonly options: KafkaGraphOptions;
  private readonly spec: GraphSpec;
  private readonly graph: string;
  private readonly tasks: KafkaEdgeTask[] = [];
  private readonly taskOf = new Map<EdgeSpec, KafkaEdgeTask>();
  /** Idempotent producers per (node, cluster): nodes do not queue behind each other's sends (kafkajs sends one request at a time per idempotent producer). */
  private readonly producers = new Map<string, Promise<BrokerProducer>>();
  private readonly offsets = new Map<string, Offsets>();
  private prepared = false;
  private stopped = false;
  private failure: TributaryError | null = null;
  private attempts = 0;
  private retryAt: number | null = null;
  private firstAttempt: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(options: KafkaGraphOptions) {
    this.options = options;
    this.spec = options.topology.spec;
    this.graph = options.topology.graph;
    this.nodes = kafkaNodes(this.spec);
  }

  static needed(spec: GraphSpec): boolean {
    return spec.edges.some((e) => isKafkaEdge(spec, e));
  }

  private brokerOf(edge: EdgeSpec): Broker {
    return this.options.pool.get(edgeBrokers(this.spec, edge));
  }

  /** The broker of a node's inputs (validated to be one cluster). */
  private nodeBroker(node: string): Broker {
    return this.brokerOf(this.options.topology.inputs(node)[0]);
  }

  start(): void {
    this.firstAttempt = this.prepareOnce();
    this.options.faults.run('kafka.prepare', {}, () => this.firstAttempt!.then(() => this.afterAttempt()));
  }

  /**
   * Resolves once the graph's topics exist; rejects with ERR_KAFKA_UNAVAILABLE (or the broker's
   * refusal) if the first attempt failed. Preparation goes on retrying either way.
   */
  async waitReady(): Promise<void> {
    await this.firstAttempt;
    if (!this.prepared && this.failure) throw this.failure;
  }

  private async prepareOnce(): Promise<void> {
    try {
      await this.prepare();
      this.prepared = true;
      this.failure = null;
      this.retryAt = null;
    } catch (error) {
      this.failure = translateKafkaError(error, `graph '${this.graph}'`);
      this.attempts++;
      const backoff = Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (this.attempts - 1));
      this.retryAt = Date.now() + backoff;
    }
  }

  private afterAttempt(): void {
    if (this.stopped) return;
    if (!this.prepared) {
      const retry = this.options.faults.wrap('kafka.prepare', {}, () => this.prepareOnce().then(() => this.afterAttempt()));
      this.timer = setTimeout(retry, Math.max(0, (this.retryAt ?? Date.now()) - Date.now()));
      return;
    }
    for (const node of this.spec.nodes.filter((n) => this.nodes.has(n.id))) {
      for (const edge of this.options.topology.inputs(node.id)) {
        const task = this.edgeTask(node, edge);
        this.tasks.push(task);
        this.taskOf.set(edge, task);
      }
    }
    for (const task of this.tasks) task.start();
    this.scheduleRefresh();
  }

  private scheduleRefresh(): void {
    if (this.stopped) return;
    const refresh = this.options.faults.wrap('kafka.refresh', {}, async () => {
      try {
        await this.refresh();
      } finally {
        this.scheduleRefresh();
      }
    });
    this.timer = setTimeout(refresh, REFRESH_MS);
  }

  /** Creates every Kafka topic of the graph that is missing; records partition counts in the topology. */
  private async prepare(): Promise<void> {
    const { topology } = this.options;
    const clusters = new Set<Broker>();
    for (const edge of this.spec.edges.filter((e) => isKafkaEdge(this.spec, e))) clusters.add(this.brokerOf(edge));
    // Fail fast (2 s) when a cluster is unreachable, rather than after kafkajs's retries.
    for (const broker of clusters) await broker.probe(2000);
    for (const edge of this.spec.edges.filter((e) => isKafkaEdge(this.spec, e))) {
      const topic = topology.topicOf(edge);
      const wanted = edge.partitions ?? (kafkaSinkOf(this.spec, edge.to) ? 1 : DEFAULT_PARTITIONS);
      topology.setPartitions(topic, await this.brokerOf(edge).ensureTopic(topic, wanted));
    }
    for (const node of this.nodes) {
      const topic = kafkaDeadLetterTopic(this.graph, node);
      topology.setPartitions(topic, await this.nodeBroker(node).ensureTopic(topic, 1));
    }
  }

  private edgeTask(node: NodeSpec, edge: EdgeSpec): KafkaEdgeTask {
    const { topology } = this.options;
    const topic = topology.topicOf(edge);
    const outputs: KafkaOutput[] = topology.outputs(node.id).map((route) => ({
      route,
      broker: this.brokerOf(route.edge),
      sink: topology.kindOf(route.edge.to) === 'sink',
    }));
    return new KafkaEdgeTask({
      task: this.options.contextFor(node),
      edge,
      topic,
      group: kafkaGroupOf(this.graph, this.spec, edge),
      broker: this.brokerOf(edge),
      outputs,
      deadLetterTopic: kafkaDeadLetterTopic(this.graph, node.id),
      producerFor: (broker) => this.producerFor(node.id, broker),
      dropProducer: (broker) => this.dropProducer(node.id, broker),
      state: this.options.state,
      interval: new CommitInterval({ setting: edge.commitIntervalMs, sloLatencyMs: this.spec.slo?.latencyMs, hops: kafkaHops(this.spec) }),
      transactionalId: (partition) => transactionalIdOf(this.graph, node.id, topic, partition),
      sharedState: topology.inputs(node.id).length > 1,
    });
  }

  /** The idempotent producer of a node's at-most/at-least-once outputs to a cluster. */
  private producerFor(node: string, broker: Broker): Promise<BrokerProducer> {
    const key = `${node}\u0000${broker.brokers.join(',')}`;
    let producer = this.producers.get(key);
    if (!producer) {
      producer = (async () => {
        const p = broker.producer();
        await p.connect();
        return p;
      })();
      this.producers.set(key, producer);
      producer.catch(() => this.producers.delete(key));
    }
    return producer;
  }

  private dropProducer(node: string, broker: Broker): void {
    const key = `${node}\u0000${broker.brokers.join(',')}`;
    const producer = this.producers.get(key);
    this.producers.delete(key);
    void producer?.then((p) => p.disconnect()).catch(() => {});
  }

  /** Heads and committed offsets of every Kafka edge, for status (one admin round per second). */
  private async refresh(): Promise<void> {
    if (this.stopped) return;
    const { topology } = this.options;
    for (const edge of this.spec.edges.filter((e) => isKafkaEdge(this.spec, e))) {
      const topic = topology.topicOf(edge);
      const broker = this.brokerOf(edge);
      try {
        const heads = await broker.highWatermarks(topic);
        const committed = topology.kindOf(edge.to) === 'node' ? await broker.committed(kafkaGroupOf(this.graph, this.spec, edge), topic) : heads;
        this.offsets.set(topic, { heads, committed });
      } catch {
        // the edge task reports the broker's state; keep the last figures
      }
    }
    for (const node of this.nodes) {
      const topic = kafkaDeadLetterTopic(this.graph, node);
      try {
        this.offsets.set(topic, { heads: await this.nodeBroker(node).highWatermarks(topic), committed: [] });
      } catch {}
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all(this.tasks.map((t) => t.stop()));
    const producers = [...this.producers.values()];
    this.producers.clear();
    await Promise.all(producers.map((p) => p.then((x) => x.disconnect()).catch(() => {})));
  }

  isKafkaEdge(edge: EdgeSpec): boolean {
    return isKafkaEdge(this.spec, edge);
  }

  /** Sum of the sink topic's high watermarks (records plus transaction markers), as of the last refresh. */
  sinkOffsets(sink: string): number {
    const edge = this.options.topology.inputs(sink)[0];
    if (!edge) return 0;
    return (this.offsets.get(this.options.topology.topicOf(edge))?.heads ?? []).reduce((a, b) => a + b, 0);
  }

  /** The dead-letter topic's end offset (exactly-once writes add a transaction marker per commit). */
  deadLetterCount(node: string): number {
    return this.offsets.get(kafkaDeadLetterTopic(this.graph, node))?.heads[0] ?? 0;
  }

  /** What the autoscaler measures of a Kafka-fed node's inputs, as of the last refresh (once a second). */
  inputSignals(node: string): { inputHeads: number; partitions: number; queueDepth: number } {
    let inputHeads = 0;
    let partitions = 0;
    let queueDepth = 0;
    for (const edge of this.options.topology.inputs(node)) {
      for (const p of this.edgeOffsets(edge)) {
        inputHeads += p.head;
        queueDepth += p.lag;
        partitions++;
      }
    }
    return { inputHeads, partitions, queueDepth };
  }

  /** Queued records of a node's Kafka inputs, as of the last refresh. */
  queueDepth(node: string): number {
    return this.options.topology.inputs(node).reduce((sum, edge) => sum + this.edgeOffsets(edge).reduce((s, p) => s + p.lag, 0), 0);
  }

  private edgeOffsets(edge: EdgeSpec) {
    const topic = this.options.topology.topicOf(edge);
    const { heads, committed } = this.offsets.get(topic) ?? { heads: [], committed: [] };
    const task = this.taskOf.get(edge);
    return heads.map((head, partition) => {
      // A transaction marker after the last record keeps head one past the committed offset of a drained partition.
      const done = Math.max(committed[partition] ?? 0, 0);
      const owner = task?.partition(partition);
      return { partition, head, committed: done, lag: Math.max(0, head - done), ...(owner ? { owned: true } : {}) };
    });
  }

  edgeStatus(edge: EdgeSpec) {
    const { topology } = this.options;
    const task = this.taskOf.get(edge);
    const partitions = this.edgeOffsets(edge);
    const degraded = !this.prepared ? this.failure : null;
    const state = degraded ? 'degraded' : (task?.state ?? (this.prepared ? 'running' : 'starting'));
    const reason = degraded ? `${degraded.code}: ${degraded.message}` : (task?.reason ?? null);
    const retryAt = degraded ? this.retryAt : (task?.retryAt ?? null);
    return {
      transport: 'kafka' as const,
      topic: topology.topicOf(edge),
      brokers: this.brokerOf(edge).brokers,
      state,
      ...(reason ? { reason, attempts: degraded ? this.attempts : task?.attempts, retryInMs: retryAt ? Math.max(0, retryAt - Date.now()) : null } : {}),
      ...(topology.kindOf(edge.to) === 'node'
        ? {
            group: kafkaGroupOf(this.graph, this.spec, edge),
            // null for at-most-once, which commits before every batch; "auto" shows its current choice.
            commitIntervalMs: edge.delivery === 'at-most-once' ? null : (edge.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS),
            ...(edge.commitIntervalMs === 'auto' ? { autoIntervalMs: task?.commitIntervalMs ?? null } : {}),
          }
        : {}),
      committedOffset: partitions.reduce((s, p) => s + p.committed, 0),
      lag: partitions.reduce((s, p) => s + p.lag, 0),
      partitions,
    };
  }

  /** Committed records of a Kafka sink (its partition 0 unless told), through a throwaway read_committed consumer. */
  readSink(sink: string, from: number, limit: number, partition = 0): Promise<StoredRecord[]> {
    const edge = this.options.topology.inputs(sink)[0];
    return this.brokerOf(edge).read(this.options.topology.topicOf(edge), partition, from, limit);
  }

  readDeadLetters(node: string, from: number, limit: number): Promise<StoredRecord[]> {
    return this.nodeBroker(node).read(kafkaDeadLetterTopic(this.graph, node), 0, from, limit);
  }
}
