/**
 * Validation of the Kafka parts of a graph spec, called by `validateGraph` on the raw JSON; each
 * problem names its JSON path. The rules that are not plain field checks:
 *
 * - A node's edges are all on one transport: a node fed by Kafka writes Kafka edges and sinks,
 *   and one fed by the embedded log writes the embedded log. (An exactly-once commit spans one
 *   system: a Kafka transaction cannot include a SQLite commit, and vice versa.)
 * - HTTP sources and log sinks are embedded; Kafka sources and sinks are Kafka.
 * - Exactly-once needs the input and every output of the node on one Kafka cluster: a
 *   transaction spans one cluster.
 * - `commitIntervalMs` is set on the Kafka edge a node consumes (the consumer commits), not on an
 *   at-most-once edge (which commits before every batch); "auto" needs the graph's `slo`.
 */
import { clusterKey, parseBrokers } from '../../connectors/kafka/brokers.ts';

type Problem = (path: string, message: string) => unknown;
type Raw = Record<string, unknown>;

const TOPIC_PATTERN = /^[A-Za-z0-9._-]{1,249}$/;
export const MAX_COMMIT_INTERVAL_MS = 60_000;

function checkEndpoint(item: Raw, path: string, problem: Problem): void {
  if (typeof item.topic !== 'string' || !TOPIC_PATTERN.test(item.topic) || item.topic === '.' || item.topic === '..') {
    problem(`${path}.topic`, 'topic must be a Kafka topic name: 1-249 of [A-Za-z0-9._-]');
  }
  if (item.brokers !== undefined && parseBrokers(item.brokers) === null) {
    problem(`${path}.brokers`, 'brokers must be host:port strings (an array, or one comma-separated string)');
  }
}

export function checkKafkaSource(source: Raw, path: string, problem: Problem): void {
  checkEndpoint(source, path, problem);
  if (source.group !== undefined && !(typeof source.group === 'string' && source.group.length > 0 && source.group.length <= 255)) {
    problem(`${path}.group`, 'group must be a string of 1-255 characters');
  }
}

export function checkKafkaSink(sink: Raw, path: string, problem: Problem): void {
  checkEndpoint(sink, path, problem);
}

export function checkKafkaEdge(edge: Raw, path: string, problem: Problem): void {
  if (edge.transport !== undefined && edge.transport !== 'embedded' && edge.transport !== 'kafka') {
    problem(`${path}.transport`, `unknown transport '${String(edge.transport)}' (use embedded or kafka)`);
  }
  const interval = edge.commitIntervalMs;
  if (interval !== undefined && interval !== 'auto' && !(Number.isInteger(interval) && (interval as number) >= 1 && (interval as number) <= MAX_COMMIT_INTERVAL_MS)) {
    problem(`${path}.commitIntervalMs`, `commitIntervalMs must be an integer in [1, ${MAX_COMMIT_INTERVAL_MS}] (ms) or "auto"`);
  }
}

export interface RawGraph {
  nodes: Raw[];
  sources: Raw[];
  sinks: Raw[];
  edges: Raw[];
  hasSlo: boolean;
}

export function checkKafkaGraph(graph: RawGraph, problem: Problem): void {
  const sources = new Map(graph.sources.filter((s) => typeof s.id === 'string').map((s) => [s.id as string, s]));
  const sinks = new Map(graph.sinks.filter((s) => typeof s.id === 'string').map((s) => [s.id as string, s]));
  const nodes = new Set(graph.nodes.map((n) => n.id).filter((id): id is string => typeof id === 'string'));
  const cluster = (item: Raw | undefined) => clusterKey(parseBrokers(item?.brokers) ?? []); // '' = the platform's
  const onKafka = (edge: Raw) => edge.transport === 'kafka' || sources.get(edge.from as string)?.type === 'kafka' || sinks.get(edge.to as string)?.type === 'kafka';
  // Edges by their ends, built once: the checks below stay linear in the edges.
  const into = new Map<unknown, Raw[]>();
  const outOf = new Map<unknown, Raw[]>();
  const firstOutOf = new Map<unknown, number>();
  const add = (map: Map<unknown, Raw[]>, key: unknown, edge: Raw) => {
    const list = map.get(key);
    if (list) list.push(edge);
    else map.set(key, [edge]);
  };
  graph.edges.forEach((edge, i) => {
    add(into, edge.to, edge);
    add(outOf, edge.from, edge);
    if (!firstOutOf.has(edge.from)) firstOutOf.set(edge.from, i);
  });

  graph.edges.forEach((edge, i) => {
    const path = `$.edges[${i}]`;
    const source = sources.get(edge.from as string);
    const sink = sinks.get(edge.to as string);
    if (edge.transport === 'embedded' && (source?.type === 'kafka' || sink?.type === 'kafka')) {
      problem(`${path}.transport`, 'an edge from a Kafka source or into a Kafka sink is on Kafka: drop "transport": "embedded"');
    }
    if (edge.transport === 'kafka' && source?.type === 'http') problem(`${path}.transport`, 'an http source writes the embedded log: feed Kafka edges from a source of type kafka');
    if (edge.transport === 'kafka' && sink?.type === 'log') problem(`${path}.transport`, 'a log sink is read from the embedded log: use a sink of type kafka');
    if (edge.commitIntervalMs !== undefined) {
      if (!onKafka(edge)) problem(`${path}.commitIntervalMs`, 'commitIntervalMs applies to Kafka edges only');
      else if (!nodes.has(edge.to as string)) problem(`${path}.commitIntervalMs`, 'commitIntervalMs belongs on an edge a node consumes (the consuming node commits)');
      else if (edge.delivery === 'at-most-once') problem(`${path}.commitIntervalMs`, 'at-most-once commits before every batch: commitIntervalMs does not apply');
      else if (edge.commitIntervalMs === 'auto' && !graph.hasSlo) problem(`${path}.commitIntervalMs`, '"auto" picks the interval from the graph\'s slo: add "slo": {"latencyMs", "percentile"}');
    }
    if (source?.type === 'kafka' && source.group !== undefined && outOf.get(edge.from)!.length > 1 && firstOutOf.get(edge.from) === i) {
      problem(`$.sources[id=${String(edge.from)}].group`, `source '${String(edge.from)}' names a group but feeds several edges: each node consumes in its own group (drop "group")`);
    }
  });

  for (const node of nodes) {
    const inputs = into.get(node) ?? [];
    const outputs = outOf.get(node) ?? [];
    const kafkaIn = inputs.filter(onKafka);
    const kafkaOut = outputs.filter(onKafka);
    const path = `$.nodes[id=${node}]`;
    if ((kafkaIn.length > 0 && (kafkaIn.length < inputs.length || kafkaOut.length < outputs.length)) || (kafkaIn.length === 0 && kafkaOut.length > 0)) {
      problem(path, `node '${node}' mixes transports: all edges into and out of a node must be on one transport (Kafka: sources and sinks of type kafka, "transport": "kafka" between nodes)`);
      continue;
    }
    if (kafkaIn.length === 0) continue;
    const inClusters = new Set(kafkaIn.map((e) => cluster(sources.get(e.from as string))));
    if (inClusters.size > 1) problem(path, `node '${node}' reads Kafka edges on different clusters: a node's inputs share one cluster`);
    if (kafkaIn.some((e) => e.delivery === 'exactly-once')) {
      const input = [...inClusters][0];
      if (kafkaOut.some((e) => cluster(sinks.get(e.to as string)) !== input)) {
        problem(path, `node '${node}' consumes an exactly-once edge but writes to another Kafka cluster: a transaction spans one cluster`);
      }
    }
  }
}
