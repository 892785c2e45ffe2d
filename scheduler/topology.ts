/**
 * Where a graph's records live: the log topic of every edge, sink and dead-letter queue, the
 * consumer group of every node, and how a node's outputs are routed to partitions. Edge lookups
 * (`inputs`, `outputs`, `topicOf`, asked per batch) are maps built once, and the node DAG with
 * its topological order is built once for the autoscaler's critical path.
 */
import type { LogRecord, Transport } from '../connectors/transport.ts';
import { Dag } from './dag.ts';
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
  private readonly inputEdges = new Map<string, EdgeSpec[]>();
  private readonly outputEdges = new Map<string, EdgeSpec[]>();
  /** Topic of each spec edge, by `from`/`to` (edges are unique per pair). */
  private readonly edgeTopics = new Map<string, string>();
  /** Output routes per node or source; cleared when a topic's partition count changes. */
  private readonly routes = new Map<string, OutputRoute[]>();
  /** The nodes and the edges between them (sources and sinks add no latency), in topological order. */
  readonly nodeDag: Dag;

  constructor(graph: string, spec: GraphSpec, transport: Transport) {
    this.graph = graph;
    this.spec = spec;
    for (const n of spec.nodes) this.kinds.set(n.id, 'node');
    for (const s of spec.sources) this.kinds.set(s.id, 'source');
    for (const s of spec.sinks) this.kinds.set(s.id, 'sink');
    for (const edge of spec.edges) {
      append(this.inputEdges, edge.to, edge);
      append(this.outputEdges, edge.from, edge);
      this.edgeTopics.set(edgeKey(edge), this.computeTopic(edge));
    }
    this.nodeDag = Dag.of(
      spec.nodes.map((n) => n.id),
      spec.edges.filter((e) => this.kinds.get(e.from) === 'node' && this.kinds.get(e.to) === 'node'),
    );
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
    return this.edgeTopics.get(edgeKey(edge)) ?? this.computeTopic(edge);
  }

  private computeTopic(edge: Pick<EdgeSpec, 'from' | 'to' | 'transport'>): string {
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
    this.routes.clear();
  }

  partitions(topic: string): number {
    return this.partitionCounts.get(topic) ?? 1;
  }

  kindOf(id: string): 'node' | 'source' | 'sink' | undefined {
    return this.kinds.get(id);
  }

  inputs(node: string): readonly EdgeSpec[] {
    return this.inputEdges.get(node) ?? [];
  }

  outputs(from: string): readonly OutputRoute[] {
    let routes = this.routes.get(from);
    if (!routes) {
      routes = (this.outputEdges.get(from) ?? []).map((edge) => {
        const topic = this.topicOf(edge);
        return { edge, topic, partitions: this.partitions(topic), byKey: edge.partitionBy === 'key' };
      });
      this.routes.set(from, routes);
    }
    return routes;
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

function edgeKey(edge: Pick<EdgeSpec, 'from' | 'to'>): string {
  return `${edge.from}\u0000${edge.to}`;
}

function append<K, V>(map: Map<K, V[]>, key: K, value: V): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
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
