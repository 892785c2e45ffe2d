/**
 * Where a graph's records live: the log topic of every edge, sink and dead-letter queue, the
 * consumer group of every node, and how a node's outputs are routed to partitions.
 */
import type { LogRecord, Transport } from '../connectors/transport.ts';
import { DEFAULT_PARTITIONS, type EdgeSpec, type GraphSpec } from './graph-spec.ts';
import { kafkaNodes, kafkaTopicOf } from './kafka/kafka-topics.ts';

export interface OutputRoute {
  edge: EdgeSpec;
  topic: string;
  partitions: number;
  byKey: boolean;
}

export class Topology {
  readonly graph: string;
  readonly spec: GraphSpec;
  private readonly kinds = new Map<string, 'node' | 'source' | 'sink'>();
  private readonly partitionCounts = new Map<string, number>();
  private readonly roundRobin = new Map<string, number>();

  constructor(graph: string, spec: GraphSpec, transport: Transport) {
    this.graph = graph;
    this.spec = spec;
    for (const n of spec.nodes) this.kinds.set(n.id, 'node');
    for (const s of spec.sources) this.kinds.set(s.id, 'source');
    for (const s of spec.sinks) this.kinds.set(s.id, 'sink');
    for (const edge of spec.edges) {
      const topic = this.topicOf(edge);
      // Kafka topics are created asynchronously by KafkaGraph, which reports their partitions here.
      if (kafkaTopicOf(graph, spec, edge) !== null) continue;
      if (this.kinds.get(edge.to) === 'sink') this.partitionCounts.set(topic, transport.ensureTopic(topic, 1));
      else this.partitionCounts.set(topic, transport.ensureTopic(topic, edge.partitions ?? DEFAULT_PARTITIONS));
    }
    const onKafka = kafkaNodes(spec);
    for (const node of spec.nodes.filter((n) => !onKafka.has(n.id))) this.partitionCounts.set(this.deadLetterTopic(node.id), transport.ensureTopic(this.deadLetterTopic(node.id), 1));
  }

  static prefix(graph: string): string {
    return `${graph}/`;
  }

  /** An edge into a sink writes the sink's log; any other edge has a log of its own (Kafka edges: a Kafka topic). */
  topicOf(edge: Pick<EdgeSpec, 'from' | 'to' | 'transport'>): string {
    const kafka = kafkaTopicOf(this.graph, this.spec, edge);
    if (kafka !== null) return kafka;
    return this.kinds.get(edge.to) === 'sink' ? this.sinkTopic(edge.to) : `${this.graph}/e/${edge.from}->${edge.to}`;
  }

  sinkTopic(sink: string): string {
    return `${this.graph}/sink/${sink}`;
  }

  isSinkTopic(topic: string): boolean {
    return topic.startsWith(`${this.graph}/sink/`);
  }

  deadLetterTopic(node: string): string {
    return `${this.graph}/dlq/${node}`;
  }

  group(node: string): string {
    return `${this.graph}/${node}`;
  }

  stateNamespace(node: string): string {
    return `${this.graph}/${node}`;
  }

  /** Records the partition count of a topic created outside the embedded log (Kafka). */
  setPartitions(topic: string, partitions: number): void {
    this.partitionCounts.set(topic, partitions);
  }

  partitions(topic: string): number {
    return this.partitionCounts.get(topic) ?? 1;
  }

  kindOf(id: string): 'node' | 'source' | 'sink' | undefined {
    return this.kinds.get(id);
  }

  /** Every source-to-sink path through the DAG, as the node ids along it. */
  nodePaths(): string[][] {
    const paths: string[][] = [];
    const walk = (id: string, trail: string[]) => {
      const next = this.spec.edges.filter((e) => e.from === id);
      if (next.length === 0 || this.kinds.get(id) === 'sink') {
        if (trail.length > 0) paths.push(trail);
        return;
      }
      for (const edge of next) walk(edge.to, this.kinds.get(edge.to) === 'node' ? [...trail, edge.to] : trail);
    };
    for (const source of this.spec.sources) walk(source.id, []);
    return paths;
  }

  inputs(node: string): EdgeSpec[] {
    return this.spec.edges.filter((e) => e.to === node);
  }

  outputs(from: string): OutputRoute[] {
    return this.spec.edges
      .filter((e) => e.from === from)
      .map((edge) => {
        const topic = this.topicOf(edge);
        return { edge, topic, partitions: this.partitions(topic), byKey: edge.partitionBy === 'key' };
      });
  }

  /** Splits records over a route's partitions: by key hash, or round-robin. */
  route(route: OutputRoute, records: LogRecord[]): Array<{ topic: string; partition: number; records: LogRecord[] }> {
    if (route.partitions === 1) return records.length ? [{ topic: route.topic, partition: 0, records }] : [];
    const buckets: LogRecord[][] = Array.from({ length: route.partitions }, () => []);
    let next = this.roundRobin.get(route.topic) ?? 0;
    for (const record of records) {
      const partition = route.byKey && record.key !== null ? partitionOf(record.key, route.partitions) : next++ % route.partitions;
      buckets[partition].push(record);
    }
    this.roundRobin.set(route.topic, next % route.partitions);
    return buckets.flatMap((bucket, partition) => (bucket.length ? [{ topic: route.topic, partition, records: bucket }] : []));
  }
}

/** FNV-1a of the key: stable across processes and restarts, so a key always lands in one partition. */
export function partitionOf(key: string, partitions: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % partitions;
}
