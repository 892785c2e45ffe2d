/**
 * Where a graph's Kafka records live. An edge is on Kafka when it starts at a Kafka source (the
 * source's topic), ends at a Kafka sink (the sink's topic), or says `"transport": "kafka"` (a topic
 * of its own, `tributary.<graph>.<from>.<to>`). A node fed by Kafka edges dead-letters to
 * `tributary.<graph>.<node>.dlq` on its input's cluster, and consumes in the group
 * `tributary.<graph>.<node>` (a Kafka source's own `group` when it names one).
 */
import { Dag } from '../dag.ts';
import type { EdgeSpec, GraphSpec, KafkaSinkSpec, KafkaSourceSpec } from '../graph-spec.ts';

type EdgeEnds = Pick<EdgeSpec, 'from' | 'to' | 'transport'>;

interface KafkaEndpoints {
  sources: Map<string, KafkaSourceSpec>;
  sinks: Map<string, KafkaSinkSpec>;
}

/** Kafka sources and sinks of a spec by id, built once per spec: these lookups run per edge and per batch. */
const endpointsOf = new WeakMap<GraphSpec, KafkaEndpoints>();

function endpoints(spec: GraphSpec): KafkaEndpoints {
  let found = endpointsOf.get(spec);
  if (!found) {
    found = { sources: new Map(), sinks: new Map() };
    for (const source of spec.sources) if (source.type === 'kafka') found.sources.set(source.id, source);
    for (const sink of spec.sinks) if (sink.type === 'kafka') found.sinks.set(sink.id, sink);
    endpointsOf.set(spec, found);
  }
  return found;
}

export function kafkaSourceOf(spec: GraphSpec, id: string): KafkaSourceSpec | undefined {
  return endpoints(spec).sources.get(id);
}

export function kafkaSinkOf(spec: GraphSpec, id: string): KafkaSinkSpec | undefined {
  return endpoints(spec).sinks.get(id);
}

export function isKafkaEdge(spec: GraphSpec, edge: EdgeEnds): boolean {
  return edge.transport === 'kafka' || kafkaSourceOf(spec, edge.from) !== undefined || kafkaSinkOf(spec, edge.to) !== undefined;
}

/** The edge's Kafka topic, or null for an edge on the embedded log. */
export function kafkaTopicOf(graph: string, spec: GraphSpec, edge: EdgeEnds): string | null {
  const source = kafkaSourceOf(spec, edge.from);
  if (source) return source.topic;
  const sink = kafkaSinkOf(spec, edge.to);
  if (sink) return sink.topic;
  return edge.transport === 'kafka' ? `tributary.${graph}.${edge.from}.${edge.to}` : null;
}

/** The brokers the edge's spec names (a source's or sink's own), or undefined for the platform's. */
export function edgeBrokers(spec: GraphSpec, edge: EdgeEnds): string[] | undefined {
  return kafkaSourceOf(spec, edge.from)?.brokers ?? kafkaSinkOf(spec, edge.to)?.brokers;
}

/**
 * The consumer group of a Kafka edge's consuming node: the source's `group`, else
 * `tributary.<graph>.<node>`; a node with several input edges has one group per edge
 * (`tributary.<graph>.<node>.<from>`), because two consumers of different topics in one group
 * would split one assignment between them and leave partitions unconsumed.
 */
export function kafkaGroupOf(graph: string, spec: GraphSpec, edge: EdgeEnds): string {
  const own = kafkaSourceOf(spec, edge.from)?.group;
  if (own !== undefined) return own;
  const inputs = spec.edges.filter((e) => e.to === edge.to).length;
  return inputs > 1 ? `tributary.${graph}.${edge.to}.${edge.from}` : `tributary.${graph}.${edge.to}`;
}

export function kafkaDeadLetterTopic(graph: string, node: string): string {
  return `tributary.${graph}.${node}.dlq`;
}

/** `${graph}/${node}/${topic}/${partition}`: one transactional producer per input partition, stable across restarts and processes. */
export function transactionalIdOf(graph: string, node: string, topic: string, partition: number): string {
  return `${graph}/${node}/${topic}/${partition}`;
}

/** Nodes consuming at least one Kafka edge. */
export function kafkaNodes(spec: GraphSpec): Set<string> {
  const nodes = new Set(spec.nodes.map((n) => n.id));
  return new Set(spec.edges.filter((e) => nodes.has(e.to) && isKafkaEdge(spec, e)).map((e) => e.to));
}

/** Kafka hops (nodes consuming a Kafka edge) on the graph's longest path: they share its SLO. */
export function kafkaHops(spec: GraphSpec): number {
  const consumers = kafkaNodes(spec);
  const ids = [...spec.sources.map((s) => s.id), ...spec.nodes.map((n) => n.id), ...spec.sinks.map((s) => s.id)];
  const { weight } = Dag.of(ids, spec.edges).longestPath((id) => (consumers.has(id) ? 1 : 0));
  return Math.max(1, weight);
}
