/**
 * Process graph specs: the JSON users deploy, and its validation. Validation reports every
 * problem at once, each with the JSON path it concerns, rather than stopping at the first.
 */
import { TributaryError, type ErrorCode } from '../runtime/errors.ts';
import { checkKafkaEdge, checkKafkaGraph, checkKafkaSink, checkKafkaSource } from './kafka/kafka-spec.ts';

export type Delivery = 'at-most-once' | 'at-least-once' | 'exactly-once';
export type PartitionBy = 'key' | 'round-robin';

export const DELIVERIES: readonly Delivery[] = ['at-most-once', 'at-least-once', 'exactly-once'];
export const DEFAULT_PARTITIONS = 4;
export const DEFAULT_SCALE_TO_ZERO_AFTER_MS = 60_000;

export interface NodeSpec {
  id: string;
  function: string;
  replicas: { min: number; max: number };
  /** Idle time before a node with replicas.min 0 scales to zero (default: the graph's, else 60000). */
  scaleToZeroAfterMs?: number;
}

export type SourceSpec = { id: string; type: 'http' } | KafkaSourceSpec;

/** Records of an existing Kafka topic (created with the edge's `partitions` if missing). */
export interface KafkaSourceSpec {
  id: string;
  type: 'kafka';
  topic: string;
  /** Consumer group (default `tributary.<graph>.<node>`); a source naming one feeds one node. */
  group?: string;
  /** `host:port` list (default: the platform's `--kafka-brokers`). */
  brokers?: string[];
}

export type SinkSpec = { id: string; type: 'log' } | KafkaSinkSpec;

export interface KafkaSinkSpec {
  id: string;
  type: 'kafka';
  topic: string;
  brokers?: string[];
}

export interface EdgeSpec {
  from: string;
  to: string;
  delivery: Delivery;
  /** 'key': records with the same key go to the same partition, in order. Default 'round-robin'. */
  partitionBy?: PartitionBy;
  /** Partitions of the edge's log (default 4). Fixed once the edge exists. */
  partitions?: number;
  /** 'kafka': the edge is a Kafka topic (default 'embedded', the SQLite log). Edges from Kafka sources and into Kafka sinks are on Kafka. */
  transport?: 'embedded' | 'kafka';
  /** Kafka edges: ms between commits of the consuming node (default 100), or 'auto' to fit the graph's SLO. */
  commitIntervalMs?: number | 'auto';
}

export interface GraphSpec {
  nodes: NodeSpec[];
  sources: SourceSpec[];
  sinks: SinkSpec[];
  edges: EdgeSpec[];
  slo?: { latencyMs: number; percentile: number };
  scaleToZeroAfterMs?: number;
}

export interface Problem {
  path: string;
  code: ErrorCode;
  message: string;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks `input` against the spec and the set of deployed functions; returns the typed spec or
 * throws ERR_GRAPH_INVALID (or ERR_GRAPH_CYCLE when cycles are the only problem) with `problems`.
 */
export function validateGraph(input: unknown, functionExists: (name: string) => boolean): GraphSpec {
  const problems: Problem[] = [];
  const problem = (path: string, message: string, code: ErrorCode = 'ERR_GRAPH_INVALID') => problems.push({ path, code, message });
  if (!isObject(input)) throw new TributaryError('ERR_GRAPH_INVALID', 'graph spec must be a JSON object', { details: { problems: [{ path: '$', code: 'ERR_GRAPH_INVALID', message: 'not an object' }] } });

  const list = (key: string): Record<string, unknown>[] => {
    const value = input[key] ?? [];
    if (!Array.isArray(value)) {
      problem(`$.${key}`, `${key} must be an array`);
      return [];
    }
    return value.map((item, i) => {
      if (!isObject(item)) problem(`$.${key}[${i}]`, 'must be an object');
      return isObject(item) ? item : {};
    });
  };
  const nodes = list('nodes');
  const sources = list('sources');
  const sinks = list('sinks');
  const edges = list('edges');

  const kinds = new Map<string, 'node' | 'source' | 'sink'>();
  const declare = (item: Record<string, unknown>, path: string, kind: 'node' | 'source' | 'sink') => {
    const id = item.id;
    if (typeof id !== 'string' || !ID_PATTERN.test(id)) return problem(`${path}.id`, 'id must be 1-64 of [A-Za-z0-9_.-]');
    if (kinds.has(id)) return problem(`${path}.id`, `duplicate id '${id}' (already a ${kinds.get(id)})`);
    kinds.set(id, kind);
  };
  nodes.forEach((node, i) => {
    const path = `$.nodes[${i}]`;
    declare(node, path, 'node');
    if (typeof node.function !== 'string') problem(`${path}.function`, 'function must be a function name');
    else if (!functionExists(node.function)) problem(`${path}.function`, `unknown function '${node.function}'`, 'ERR_NOT_FOUND');
    const replicas = node.replicas ?? { min: 1, max: 1 };
    if (!isObject(replicas)) problem(`${path}.replicas`, 'replicas must be {min, max}');
    else {
      const { min, max } = replicas;
      if (!Number.isInteger(min) || (min as number) < 0) problem(`${path}.replicas.min`, 'min must be an integer ≥ 0');
      if (!Number.isInteger(max) || (max as number) < 1) problem(`${path}.replicas.max`, 'max must be an integer ≥ 1');
      if (Number.isInteger(min) && Number.isInteger(max) && (min as number) > (max as number)) problem(`${path}.replicas`, 'min must not exceed max');
    }
    if (node.scaleToZeroAfterMs !== undefined && !(Number.isInteger(node.scaleToZeroAfterMs) && (node.scaleToZeroAfterMs as number) > 0)) {
      problem(`${path}.scaleToZeroAfterMs`, 'must be a positive integer (ms)');
    }
  });
  sources.forEach((source, i) => {
    declare(source, `$.sources[${i}]`, 'source');
    if (source.type === 'kafka') checkKafkaSource(source, `$.sources[${i}]`, problem);
    else if (source.type !== 'http') problem(`$.sources[${i}].type`, `unsupported source type '${String(source.type)}' (supported: http, kafka)`);
  });
  sinks.forEach((sink, i) => {
    declare(sink, `$.sinks[${i}]`, 'sink');
    if (sink.type === 'kafka') checkKafkaSink(sink, `$.sinks[${i}]`, problem);
    else if (sink.type !== 'log') problem(`$.sinks[${i}].type`, `unsupported sink type '${String(sink.type)}' (supported: log, kafka)`);
  });

  const fed = new Set<string>();
  const feeds = new Set<string>();
  const adjacency = new Map<string, string[]>();
  const seenEdges = new Set<string>();
  edges.forEach((edge, i) => {
    const path = `$.edges[${i}]`;
    const { from, to } = edge;
    if (typeof from !== 'string' || !kinds.has(from)) problem(`${path}.from`, `dangling edge: no node or source '${String(from)}'`);
    else if (kinds.get(from) === 'sink') problem(`${path}.from`, `a sink ('${from}') cannot be the start of an edge`);
    if (typeof to !== 'string' || !kinds.has(to)) problem(`${path}.to`, `dangling edge: no node or sink '${String(to)}'`);
    else if (kinds.get(to) === 'source') problem(`${path}.to`, `a source ('${to}') cannot be the end of an edge`);
    if (!DELIVERIES.includes(edge.delivery as Delivery)) {
      problem(`${path}.delivery`, `unknown delivery '${String(edge.delivery)}' (use ${DELIVERIES.join(', ')})`);
    }
    if (edge.partitionBy !== undefined && edge.partitionBy !== 'key' && edge.partitionBy !== 'round-robin') {
      problem(`${path}.partitionBy`, `unknown partitionBy '${String(edge.partitionBy)}' (use key or round-robin)`);
    }
    if (edge.partitions !== undefined && !(Number.isInteger(edge.partitions) && (edge.partitions as number) >= 1 && (edge.partitions as number) <= 256)) {
      problem(`${path}.partitions`, 'partitions must be an integer in [1, 256]');
    }
    checkKafkaEdge(edge, path, problem);
    if (typeof from === 'string' && typeof to === 'string') {
      if (seenEdges.has(`${from}->${to}`)) problem(path, `duplicate edge ${from} -> ${to}`);
      seenEdges.add(`${from}->${to}`);
      fed.add(to);
      feeds.add(from);
      adjacency.set(from, [...(adjacency.get(from) ?? []), to]);
    }
  });
  for (const [id, kind] of kinds) {
    if (kind !== 'source' && !fed.has(id)) problem(`$.${kind}s[id=${id}]`, `${kind} '${id}' has no incoming edge: nothing feeds it`);
    if (kind === 'source' && !feeds.has(id)) problem(`$.sources[id=${id}]`, `source '${id}' feeds nothing`);
  }
  for (const cycle of findCycles(adjacency)) problem('$.edges', `cycle: ${cycle.join(' -> ')}`, 'ERR_GRAPH_CYCLE');
  checkKafkaGraph({ nodes, sources, sinks, edges, hasSlo: input.slo !== undefined }, problem);

  const slo = input.slo;
  if (slo !== undefined) {
    if (!isObject(slo) || !(typeof slo.latencyMs === 'number' && slo.latencyMs > 0) || !(typeof slo.percentile === 'number' && slo.percentile > 0 && slo.percentile < 100)) {
      problem('$.slo', 'slo must be {latencyMs > 0, percentile in (0, 100)}');
    }
  }
  if (input.scaleToZeroAfterMs !== undefined && !(Number.isInteger(input.scaleToZeroAfterMs) && (input.scaleToZeroAfterMs as number) > 0)) {
    problem('$.scaleToZeroAfterMs', 'must be a positive integer (ms)');
  }

  if (problems.length > 0) {
    const codes = new Set(problems.map((p) => p.code));
    const code: ErrorCode = codes.size === 1 && codes.has('ERR_GRAPH_CYCLE') ? 'ERR_GRAPH_CYCLE' : 'ERR_GRAPH_INVALID';
    const summary = problems.map((p) => `${p.path}: ${p.message}`).join('; ');
    throw new TributaryError(code, `invalid graph (${problems.length} problem${problems.length > 1 ? 's' : ''}): ${summary}`, { details: { problems } });
  }
  return {
    nodes: nodes.map((n) => ({
      id: n.id as string,
      function: n.function as string,
      replicas: (n.replicas as NodeSpec['replicas']) ?? { min: 1, max: 1 },
      ...(n.scaleToZeroAfterMs !== undefined ? { scaleToZeroAfterMs: n.scaleToZeroAfterMs as number } : {}),
    })),
    sources: sources.map((s): SourceSpec =>
      s.type === 'kafka'
        ? { id: s.id as string, type: 'kafka', topic: s.topic as string, ...(s.group !== undefined ? { group: s.group as string } : {}), ...kafkaBrokers(s.brokers) }
        : { id: s.id as string, type: 'http' },
    ),
    sinks: sinks.map((s): SinkSpec =>
      s.type === 'kafka' ? { id: s.id as string, type: 'kafka', topic: s.topic as string, ...kafkaBrokers(s.brokers) } : { id: s.id as string, type: 'log' },
    ),
    edges: edges.map((e) => ({
      from: e.from as string,
      to: e.to as string,
      delivery: e.delivery as Delivery,
      partitionBy: (e.partitionBy as PartitionBy | undefined) ?? 'round-robin',
      ...(e.partitions !== undefined ? { partitions: e.partitions as number } : {}),
      ...(e.transport !== undefined ? { transport: e.transport as 'embedded' | 'kafka' } : {}),
      ...(e.commitIntervalMs !== undefined ? { commitIntervalMs: e.commitIntervalMs as number | 'auto' } : {}),
    })),
    ...(slo !== undefined ? { slo: slo as GraphSpec['slo'] } : {}),
    ...(input.scaleToZeroAfterMs !== undefined ? { scaleToZeroAfterMs: input.scaleToZeroAfterMs as number } : {}),
  };
}

function kafkaBrokers(value: unknown): { brokers?: string[] } {
  if (value === undefined) return {};
  const list = typeof value === 'string' ? value.split(',') : (value as string[]);
  return { brokers: list.map((b) => b.trim()).filter((b) => b !== '') };
}

/** Every elementary cycle found by depth-first search, each reported once as a path of ids. */
function findCycles(adjacency: Map<string, string[]>): string[][] {
  const cycles: string[][] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string) => {
    state.set(id, 'visiting');
    stack.push(id);
    for (const next of adjacency.get(id) ?? []) {
      if (state.get(next) === 'visiting') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(id, 'done');
  };
  for (const id of adjacency.keys()) if (!state.has(id)) visit(id);
  return cycles;
}
