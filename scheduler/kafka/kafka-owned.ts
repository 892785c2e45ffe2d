/**
 * What a graph owns on Kafka: what the platform created or named for it, and what deleting the
 * graph must remove. The user's topics — a Kafka source's `topic`, a Kafka sink's `topic`, even
 * when the platform created them because they were missing — and a Kafka source's own `group`
 * are the user's and are never listed.
 */
import type { GraphSpec } from '../graph-spec.ts';
import { edgeBrokers, isKafkaEdge, kafkaDeadLetterTopic, kafkaGroupOf, kafkaNodes, kafkaSinkOf, kafkaSourceOf, kafkaTopicOf } from './kafka-topics.ts';

/** A consumer group and the topic it consumes (where its committed offsets are). */
export interface OwnedGroup {
  group: string;
  topic: string;
}

/** What a graph owns on one cluster. */
export interface KafkaOwnedOnCluster {
  /** The cluster's bootstrap brokers as the spec names them; undefined for the platform's (`--kafka-brokers`). */
  brokers?: string[];
  /** Edge topics between two nodes (`tributary.<graph>.<from>.<to>`) and dead-letter topics (`tributary.<graph>.<node>.dlq`). */
  topics: string[];
  /** The groups Tributary named for the node inputs it consumes (`tributary.<graph>.<node>[.<from>]`). */
  groups: OwnedGroup[];
}

/**
 * Everything the graph `graph` deployed as `spec` owns on Kafka, per cluster (empty for a graph
 * without Kafka edges).
 *
 * @example
 *   kafkaOwned('wc', spec)
 *   // [{ brokers: undefined, topics: ['tributary.wc.split.count', 'tributary.wc.split.dlq', 'tributary.wc.count.dlq'],
 *   //    groups: [{ group: 'tributary.wc.split', topic: 'lines' }, { group: 'tributary.wc.count', topic: 'tributary.wc.split.count' }] }]
 */
export function kafkaOwned(graph: string, spec: GraphSpec): KafkaOwnedOnCluster[] {
  // A user topic that happens to carry a platform name stays the user's.
  const userTopics = new Set<string>();
  for (const endpoint of [...spec.sources, ...spec.sinks]) if (endpoint.type === 'kafka') userTopics.add(endpoint.topic);
  const clusters = new Map<string, KafkaOwnedOnCluster & { topicSet: Set<string> }>();
  const on = (brokers: string[] | undefined) => {
    const key = brokers ? [...brokers].sort().join(',') : '';
    let cluster = clusters.get(key);
    if (!cluster) {
      cluster = { brokers, topics: [], groups: [], topicSet: new Set() };
      clusters.set(key, cluster);
    }
    return cluster;
  };
  const addTopic = (brokers: string[] | undefined, topic: string) => {
    const cluster = on(brokers);
    if (userTopics.has(topic) || cluster.topicSet.has(topic)) return;
    cluster.topicSet.add(topic);
    cluster.topics.push(topic);
  };
  const consumers = kafkaNodes(spec);
  for (const edge of spec.edges) {
    if (!isKafkaEdge(spec, edge)) continue;
    const brokers = edgeBrokers(spec, edge);
    const topic = kafkaTopicOf(graph, spec, edge)!;
    const source = kafkaSourceOf(spec, edge.from);
    if (!source && !kafkaSinkOf(spec, edge.to)) addTopic(brokers, topic);
    if (consumers.has(edge.to) && source?.group === undefined) on(brokers).groups.push({ group: kafkaGroupOf(graph, spec, edge), topic });
  }
  for (const node of consumers) {
    // On the cluster of the node's inputs (validated to be one), as KafkaGraph creates it.
    const input = spec.edges.find((e) => e.to === node && isKafkaEdge(spec, e))!;
    addTopic(edgeBrokers(spec, input), kafkaDeadLetterTopic(graph, node));
  }
  return [...clusters.values()]
    .map(({ brokers, topics, groups }) => ({ ...(brokers ? { brokers } : {}), topics, groups }))
    .filter((c) => c.topics.length > 0 || c.groups.length > 0);
}
