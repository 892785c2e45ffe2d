/**
 * The Kafka part of a running graph: creates its topics (edge topics, missing source and sink
 * topics, one dead-letter topic per Kafka-fed node), builds the {@link KafkaEdgeLog} of every
 * Kafka edge a node consumes (the graph's partition workers run over them, as over the embedded
 * log), and answers status and reads of its Kafka sinks and dead letters.
 *
 * Lifecycle: preparing (topics) → running; while the brokers cannot be reached the graph's Kafka
 * edges are degraded with the reason, and preparation retries with exponential backoff (0.5 s
 * doubling to 30 s). `waitReady` lets a deploy report ERR_KAFKA_UNAVAILABLE at once.
 */
import type { Broker, BrokerProducer } from '../../connectors/broker.ts';
import type { BrokerPool } from '../../connectors/kafka/broker-pool.ts';
import type { KafkaCommitLedger } from '../../connectors/kafka/kafka-commit-ledger.ts';
import type { KafkaS3State } from '../../connectors/kafka/kafka-s3-state.ts';
import type { KafkaStateLedger } from '../../connectors/kafka/kafka-state-ledger.ts';
import { KafkaEdgeLog } from '../../connectors/kafka/kafka-edge-log.ts';
import { translateKafkaError } from '../../connectors/kafka/kafka-errors.ts';
import type { StateStore } from '../../connectors/state/state-store.ts';
import type { StoredRecord } from '../../connectors/transport.ts';
import { Backoff } from '../../runtime/backoff.ts';
import { TributaryError } from '../../runtime/errors.ts';
import { DEFAULT_PARTITIONS, type EdgeSpec, type GraphSpec, type NodeSpec } from '../graph-spec.ts';
import type { GraphFaults } from '../graph-faults.ts';
import type { Topology } from '../topology.ts';
import { CommitInterval, DEFAULT_COMMIT_INTERVAL_MS } from './commit-interval.ts';
import { edgeBrokers, isKafkaEdge, kafkaDeadLetterTopic, kafkaGroupOf, kafkaHops, kafkaNodes, kafkaSinkOf, transactionalIdOf } from './kafka-topics.ts';

export interface KafkaRuntimeOptions {
  pool: BrokerPool;
  /** Where commits of Kafka-fed state are decided without a bucket: the local log.db. */
  ledger: KafkaCommitLedger;
  /** With a bucket: Kafka-fed state in S3, shared by every process consuming the groups. */
  s3State?: KafkaS3State;
}

export interface KafkaGraphOptions extends KafkaRuntimeOptions {
  topology: Topology;
  /** Where errors of the graph's Kafka timers are reported. */
  faults: GraphFaults;
  /** The graph's state store: Kafka-fed nodes keep state there unless the platform has a bucket. */
  stateStore: StateStore;
}

const REFRESH_MS = 1000;

export class KafkaGraph {
  readonly nodes: Set<string>;
  private readonly options: KafkaGraphOptions;
  private readonly spec: GraphSpec;
  private readonly graph: string;
  private readonly logs = new Map<EdgeSpec, KafkaEdgeLog>();
  /** Idempotent producers per (node, cluster): nodes do not queue behind each other's sends (kafkajs sends one request at a time per idempotent producer). */
  private readonly producers = new Map<string, Promise<BrokerProducer>>();
  /** End offsets of sink and dead-letter topics, as of the last refresh. */
  private readonly heads = new Map<string, number[]>();
  private prepared = false;
  private stopped = false;
  private failure: TributaryError | null = null;
  private readonly backoff = new Backoff(500, 30_000);
  private retryAt: number | null = null;
  private firstAttempt: Promise<void> | null = null;
  private timer: NodeJS.Timeout | null = null;
  private onReady: () => void = () => {};

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

  /** Prepares the topics (retrying), then calls `onReady`: the edge logs can be built. */
  start(onReady: () => void): void {
    this.onReady = onReady;
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
      this.retryAt = Date.now() + this.backoff.next();
    }
  }

  private afterAttempt(): void {
    if (this.stopped) return;
    if (!this.prepared) {
      const retry = this.options.faults.wrap('kafka.prepare', {}, () => this.prepareOnce().then(() => this.afterAttempt()));
      this.timer = setTimeout(retry, Math.max(0, (this.retryAt ?? Date.now()) - Date.now()));
      return;
    }
    this.onReady();
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

  /** The topics exist and the edge logs can run. */
  get ready(): boolean {
    return this.prepared;
  }

  /** Why the graph's Kafka part cannot consume now (topics not created, a consumer down), or null. */
  degradedReason(): string | null {
    if (!this.prepared) return this.failure ? `${this.failure.code}: ${this.failure.message}` : null;
    for (const log of this.logs.values()) if (log.state === 'degraded') return `${log.topic}: ${log.reason}`;
    return null;
  }

  /** Where Kafka-fed nodes keep state: S3 when the platform has a bucket, else the graph's store. */
  get stateStore(): StateStore {
    return this.options.s3State?.store ?? this.options.stateStore;
  }

  private get ledger(): KafkaStateLedger {
    return this.options.s3State ?? this.options.ledger;
  }

  /** The log of a Kafka edge `node` consumes (after `onReady`). */
  /**
   * How long a node's outputs wait for their transaction (ms): the commit interval of its
   * exactly-once Kafka input edges (read_committed readers see outputs only once it commits), the
   * longest if several; 0 for other deliveries, which make outputs visible as they are produced.
   */
  commitDelayMs(node: string): number {
    let delay = 0;
    for (const [edge, log] of this.logs) if (edge.to === node && edge.delivery === 'exactly-once') delay = Math.max(delay, log.options.interval.ms);
    return delay;
  }

  edgeLog(node: NodeSpec, edge: EdgeSpec): KafkaEdgeLog {
    let log = this.logs.get(edge);
    if (log) return log;
    const { topology, faults } = this.options;
    const topic = topology.topicOf(edge);
    const deadLetterTopic = kafkaDeadLetterTopic(this.graph, node.id);
    const input = this.brokerOf(edge);
    const outputBrokers = new Map(topology.outputs(node.id).map((route) => [route.topic, this.brokerOf(route.edge)]));
    log = new KafkaEdgeLog({
      broker: input,
      topic,
      group: kafkaGroupOf(this.graph, this.spec, edge),
      delivery: edge.delivery,
      brokerOf: (t) => (t === deadLetterTopic ? input : (outputBrokers.get(t) ?? input)),
      producerFor: (broker) => this.producerFor(node.id, broker),
      dropProducer: (broker) => this.dropProducer(node.id, broker),
      transactionalId: (partition) => transactionalIdOf(this.graph, node.id, topic, partition),
      ledger: this.ledger,
      namespace: topology.stateNamespace(node.id),
      interval: new CommitInterval({ setting: edge.commitIntervalMs, sloLatencyMs: this.spec.slo?.latencyMs, hops: kafkaHops(this.spec) }),
      // Two input edges over one state partition: each batch commits at once, so two edges never hold uncommitted writes over one copy.
      commitEachUnit: topology.inputs(node.id).length > 1,
      siblings: topology
        .inputs(node.id)
        .filter((other) => other !== edge && other.delivery === 'exactly-once')
        .map((other) => {
          const otherTopic = topology.topicOf(other);
          return {
            topic: otherTopic,
            group: kafkaGroupOf(this.graph, this.spec, other),
            broker: this.brokerOf(other),
            transactionalId: (partition: number) => transactionalIdOf(this.graph, node.id, otherTopic, partition),
          };
        }),
      faults,
      context: { node: node.id, topic },
    });
    this.logs.set(edge, log);
    return log;
  }

  deadLetterTopic(node: string): string {
    return kafkaDeadLetterTopic(this.graph, node);
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

  /** End offsets of the Kafka sinks and dead-letter topics, for status (one admin round per second). */
  private async refresh(): Promise<void> {
    if (this.stopped) return;
    const { topology } = this.options;
    const topics: Array<[string, Broker]> = [];
    for (const sink of this.spec.sinks) {
      const edge = topology.inputs(sink.id)[0];
      if (sink.type === 'kafka' && edge) topics.push([topology.topicOf(edge), this.brokerOf(edge)]);
    }
    for (const node of this.nodes) topics.push([kafkaDeadLetterTopic(this.graph, node), this.nodeBroker(node)]);
    for (const [topic, broker] of topics) {
      try {
        this.heads.set(topic, await broker.highWatermarks(topic));
      } catch {
        // the edge logs report the broker's state; keep the last figures
      }
    }
  }

  /** Stops the edge logs (after the graph's workers stopped) and the producers. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([...this.logs.values()].map((log) => log.stop()));
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
    return (this.heads.get(this.options.topology.topicOf(edge)) ?? []).reduce((a, b) => a + b, 0);
  }

  /** The dead-letter topic's end offset (exactly-once writes add a transaction marker per commit). */
  deadLetterCount(node: string): number {
    return this.heads.get(kafkaDeadLetterTopic(this.graph, node))?.[0] ?? 0;
  }

  /** The Kafka fields of an edge's status; `partitions` and offsets come from its log (consumed edges) or the topic's heads. */
  edgeStatus(edge: EdgeSpec) {
    const { topology } = this.options;
    const log = this.logs.get(edge);
    const degraded = !this.prepared ? this.failure : null;
    const state = degraded ? 'degraded' : (log?.state ?? (this.prepared ? 'running' : 'starting'));
    const reason = degraded ? `${degraded.code}: ${degraded.message}` : (log?.reason ?? null);
    const retryAt = degraded ? this.retryAt : (log?.retryAt ?? null);
    const consumed = topology.kindOf(edge.to) === 'node';
    const partitions = log
      ? log.offsets().map(({ partition, head, committed, lag, owned }) => ({ partition, head, committed, lag, ...(owned ? { owned } : {}) }))
      : (this.heads.get(topology.topicOf(edge)) ?? []).map((head, partition) => ({ partition, head, committed: head, lag: 0 }));
    return {
      transport: 'kafka' as const,
      topic: topology.topicOf(edge),
      brokers: this.brokerOf(edge).brokers,
      state,
      ...(reason ? { reason, attempts: degraded ? this.backoff.attempts : log?.attempts, retryInMs: retryAt ? Math.max(0, retryAt - Date.now()) : null } : {}),
      ...(consumed
        ? {
            group: kafkaGroupOf(this.graph, this.spec, edge),
            // null for at-most-once, which commits before every batch; "auto" shows its current choice.
            commitIntervalMs: edge.delivery === 'at-most-once' ? null : (edge.commitIntervalMs ?? DEFAULT_COMMIT_INTERVAL_MS),
            ...(edge.commitIntervalMs === 'auto' ? { autoIntervalMs: log?.options.interval.ms ?? null } : {}),
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
