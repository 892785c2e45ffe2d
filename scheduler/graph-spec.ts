/**
 * Process graph specs: the JSON users deploy, and its validation. Validation reports every
 * problem at once, each with the JSON path it concerns, rather than stopping at the first —
 * except sizes: a list longer than its limit is refused by its length alone, before anything
 * iterates it. Everything after that is linear in the spec's size (no recursion down it).
 */
import { TributaryError, type ErrorCode } from '../runtime/errors.ts';
import {
  MAX_EDGE_PARTITIONS,
  MAX_GRAPH_EDGES,
  MAX_GRAPH_NODES,
  MAX_GRAPH_PARTITIONS,
  MAX_REPLICAS,
  MAX_SCALE_TO_ZERO_AFTER_MS,
  MAX_RETENTION_AGE_MS,
  MAX_RETENTION_BYTES,
  MAX_SLO_LATENCY_MS,
} from '../runtime/limits.ts';
import { findCycles } from './dag.ts';
import { checkKafkaEdge, checkKafkaGraph, checkKafkaSink, checkKafkaSource } from './kafka/kafka-spec.ts';
import { checkS3Sink, s3SinkOf, type S3SinkSpec } from './s3-sink-spec.ts';

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
  /**
   * Event time: records older than the partition's watermark by more than `allowedMs` (default 0)
   * are not run but dead-lettered with ERR_LATE_RECORD. Without it a node runs every record.
   */
  late?: { allowedMs: number };
}

/**
 * How a source's records carry event time (scheduler/watermarks.ts): `field`, a dot path into the
 * value holding ms since the epoch or an ISO 8601 string (default: the record's own timestamp —
 * the ingest request's `timestamp`, else the arrival time; Kafka's record timestamp); watermarks
 * trail the highest event time seen by `outOfOrdernessMs` (default 0); an input silent for
 * `idleTimeoutMs` (default 10000) stops holding watermarks back.
 */
export interface EventTimeSpec {
  field?: string;
  outOfOrdernessMs?: number;
  idleTimeoutMs?: number;
}

/**
 * An HTTP source's records stay on its edges after they are consumed, for replay (a seek,
 * docs/replay.md): `retention` per edge partition, oldest first, by age since the append and by
 * bytes (default 24 h and 256 MiB; `{"maxAgeMs": 0}` keeps nothing consumed). A Kafka source's
 * retention is its topic's, set on the brokers.
 */
export type SourceSpec = ({ id: string; type: 'http'; retention?: Retention } | KafkaSourceSpec) & { eventTime?: EventTimeSpec };

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

/** A log sink may keep its records longer or shorter than the graph's `retention` says. */
export type SinkSpec = { id: string; type: 'log'; retention?: Retention } | KafkaSinkSpec | S3SinkSpec;
export type { S3SinkSpec };

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
  /**
   * How long the graph's log sinks and dead letters are kept (per partition, oldest first): by
   * age (ms since the append) and by bytes. Unset fields take the platform's defaults (7 days,
   * 1 GiB). Edge logs are not subject to it: they are truncated once consumed.
   */
  retention?: Retention;
}

export interface Retention {
  maxAgeMs?: number;
  maxBytes?: number;
}

export interface Problem {
  path: string;
  code: ErrorCode;
  message: string;
}

const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
/** Cycles named one by one in the problems; a graph with more gets one more problem saying so. */
const MAX_REPORTED_CYCLES = 10;
/** Problems spelled out in the error's message (all of them are in `problems`). */
const MAX_SUMMARY_PROBLEMS = 20;

/**
 * Ceilings on a spec's lists, checked by length before anything iterates them. Sources and sinks
 * need an edge each (one that they feed, or that feeds them), so they are bounded by the edges.
 */
const LIST_LIMITS = { nodes: MAX_GRAPH_NODES, edges: MAX_GRAPH_EDGES, sources: MAX_GRAPH_EDGES, sinks: MAX_GRAPH_EDGES } as const;
const LIST_LIMIT_NAMES = { nodes: 'MAX_GRAPH_NODES', edges: 'MAX_GRAPH_EDGES', sources: 'MAX_GRAPH_EDGES', sinks: 'MAX_GRAPH_EDGES' } as const;

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A value for an error message, cut to 80 characters (an id or name may be as long as the body). */
function shown(value: unknown): string {
  const text = typeof value === 'string' ? value : String(value);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}

/**
 * Checks `input` against the spec, the platform's limits and the set of deployed functions;
 * returns the typed spec or throws with `problems`: ERR_GRAPH_TOO_LARGE when size limits are the
 * only problem, ERR_GRAPH_CYCLE when cycles are, ERR_GRAPH_INVALID otherwise.
 */
export function validateGraph(input: unknown, functionExists: (name: string) => boolean): GraphSpec {
  const problems: Problem[] = [];
  const problem = (path: string, message: string, code: ErrorCode = 'ERR_GRAPH_INVALID') => problems.push({ path, code, message });
  if (!isObject(input)) throw new TributaryError('ERR_GRAPH_INVALID', 'graph spec must be a JSON object', { details: { problems: [{ path: '$', code: 'ERR_GRAPH_INVALID', message: 'not an object' }] } });

  // Sizes first, by length alone: a million-element list is refused without being walked.
  for (const key of ['nodes', 'edges', 'sources', 'sinks'] as const) {
    const value = input[key];
    if (Array.isArray(value) && value.length > LIST_LIMITS[key]) {
      problem(`$.${key}`, `${value.length} ${key}: at most ${LIST_LIMITS[key]} (${LIST_LIMIT_NAMES[key]})`, 'ERR_GRAPH_TOO_LARGE');
    }
  }
  if (problems.length > 0) throw invalidGraph(problems);

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
    else if (!functionExists(node.function)) problem(`${path}.function`, `unknown function '${shown(node.function)}'`, 'ERR_NOT_FOUND');
    const replicas = node.replicas ?? { min: 1, max: 1 };
    if (!isObject(replicas)) problem(`${path}.replicas`, 'replicas must be {min, max}');
    else {
      const { min, max } = replicas;
      if (!Number.isInteger(min) || (min as number) < 0) problem(`${path}.replicas.min`, 'min must be an integer ≥ 0');
      if (!Number.isInteger(max) || (max as number) < 1) problem(`${path}.replicas.max`, 'max must be an integer ≥ 1');
      else if ((max as number) > MAX_REPLICAS) {
        problem(`${path}.replicas.max`, `max ${shown(max)} exceeds ${MAX_REPLICAS} (MAX_REPLICAS): more isolates than one machine can run side by side add no capacity`, 'ERR_GRAPH_TOO_LARGE');
      }
      if (Number.isInteger(min) && Number.isInteger(max) && (min as number) > (max as number)) problem(`${path}.replicas`, 'min must not exceed max');
    }
    checkScaleToZero(node.scaleToZeroAfterMs, `${path}.scaleToZeroAfterMs`, problem);
    if (node.late !== undefined && !(isObject(node.late) && (node.late.allowedMs === undefined || isMs(node.late.allowedMs, MAX_EVENT_TIME_MS)))) {
      problem(`${path}.late`, `late must be {allowedMs?: integer in [0, ${MAX_EVENT_TIME_MS}]}`);
    }
  });
  sources.forEach((source, i) => {
    declare(source, `$.sources[${i}]`, 'source');
    checkEventTime(source.eventTime, `$.sources[${i}].eventTime`, problem);
    if (source.type === 'kafka') {
      checkKafkaSource(source, `$.sources[${i}]`, problem);
      if (source.retention !== undefined) problem(`$.sources[${i}].retention`, "a Kafka source's records are kept as its topic's retention says (set on the brokers)");
    } else if (source.type !== 'http') problem(`$.sources[${i}].type`, `unsupported source type '${shown(source.type)}' (supported: http, kafka)`);
  });
  sinks.forEach((sink, i) => {
    declare(sink, `$.sinks[${i}]`, 'sink');
    if (sink.type === 'kafka') checkKafkaSink(sink, `$.sinks[${i}]`, problem);
    else if (sink.type === 's3') checkS3Sink(sink, `$.sinks[${i}]`, problem);
    else if (sink.type !== 'log') problem(`$.sinks[${i}].type`, `unsupported sink type '${shown(sink.type)}' (supported: log, kafka, s3)`);
  });

  const fed = new Set<string>();
  const feeds = new Set<string>();
  const adjacency = new Map<string, string[]>();
  const seenEdges = new Set<string>();
  const kafkaSinks = new Set(sinks.filter((s) => s.type === 'kafka').map((s) => s.id));
  let totalPartitions = 0;
  edges.forEach((edge, i) => {
    const path = `$.edges[${i}]`;
    const { from, to } = edge;
    if (typeof from !== 'string' || !kinds.has(from)) problem(`${path}.from`, `dangling edge: no node or source '${shown(from)}'`);
    else if (kinds.get(from) === 'sink') problem(`${path}.from`, `a sink ('${from}') cannot be the start of an edge`);
    if (typeof to !== 'string' || !kinds.has(to)) problem(`${path}.to`, `dangling edge: no node or sink '${shown(to)}'`);
    else if (kinds.get(to) === 'source') problem(`${path}.to`, `a source ('${to}') cannot be the end of an edge`);
    if (!DELIVERIES.includes(edge.delivery as Delivery)) {
      problem(`${path}.delivery`, `unknown delivery '${shown(edge.delivery)}' (use ${DELIVERIES.join(', ')})`);
    }
    if (edge.partitionBy !== undefined && edge.partitionBy !== 'key' && edge.partitionBy !== 'round-robin') {
      problem(`${path}.partitionBy`, `unknown partitionBy '${shown(edge.partitionBy)}' (use key or round-robin)`);
    }
    const partitions = edge.partitions;
    if (partitions !== undefined && !(Number.isInteger(partitions) && (partitions as number) >= 1)) {
      problem(`${path}.partitions`, `partitions must be an integer in [1, ${MAX_EDGE_PARTITIONS}]`);
    } else if (partitions !== undefined && (partitions as number) > MAX_EDGE_PARTITIONS) {
      problem(`${path}.partitions`, `partitions ${shown(partitions)} exceeds ${MAX_EDGE_PARTITIONS} (MAX_EDGE_PARTITIONS)`, 'ERR_GRAPH_TOO_LARGE');
    } else {
      // What the edge's log will have: into an embedded sink always 1; otherwise as set, by default 4 (1 into a Kafka sink).
      const intoSink = typeof to === 'string' && kinds.get(to) === 'sink';
      const embeddedSink = intoSink && !kafkaSinks.has(to as string);
      totalPartitions += embeddedSink ? 1 : ((partitions as number | undefined) ?? (intoSink ? 1 : DEFAULT_PARTITIONS));
    }
    checkKafkaEdge(edge, path, problem);
    if (typeof from === 'string' && typeof to === 'string') {
      if (seenEdges.has(`${from}->${to}`)) problem(path, `duplicate edge ${from} -> ${to}`);
      seenEdges.add(`${from}->${to}`);
      fed.add(to);
      feeds.add(from);
      const next = adjacency.get(from);
      if (next) next.push(to);
      else adjacency.set(from, [to]);
    }
  });
  if (totalPartitions > MAX_GRAPH_PARTITIONS) {
    problem('$.edges', `${totalPartitions} partitions over all edges: at most ${MAX_GRAPH_PARTITIONS} (MAX_GRAPH_PARTITIONS); each is a log partition and a consumer task`, 'ERR_GRAPH_TOO_LARGE');
  }
  for (const [id, kind] of kinds) {
    if (kind !== 'source' && !fed.has(id)) problem(`$.${kind}s[id=${id}]`, `${kind} '${id}' has no incoming edge: nothing feeds it`);
    if (kind === 'source' && !feeds.has(id)) problem(`$.sources[id=${id}]`, `source '${id}' feeds nothing`);
  }
  const cycles = findCycles(adjacency, MAX_REPORTED_CYCLES + 1);
  for (const cycle of cycles.slice(0, MAX_REPORTED_CYCLES)) problem('$.edges', `cycle: ${cycle.join(' -> ')}`, 'ERR_GRAPH_CYCLE');
  if (cycles.length > MAX_REPORTED_CYCLES) problem('$.edges', `more cycles than the ${MAX_REPORTED_CYCLES} above`, 'ERR_GRAPH_CYCLE');
  checkKafkaGraph({ nodes, sources, sinks, edges, hasSlo: input.slo !== undefined }, problem);

  const slo = input.slo;
  if (slo !== undefined) {
    const latencyOk = isObject(slo) && typeof slo.latencyMs === 'number' && slo.latencyMs > 0 && slo.latencyMs <= MAX_SLO_LATENCY_MS;
    const percentileOk = isObject(slo) && typeof slo.percentile === 'number' && slo.percentile > 0 && slo.percentile < 100;
    if (!latencyOk || !percentileOk) problem('$.slo', `slo must be {latencyMs in (0, ${MAX_SLO_LATENCY_MS}], percentile in (0, 100)}`);
  }
  checkScaleToZero(input.scaleToZeroAfterMs, '$.scaleToZeroAfterMs', problem);
  checkRetention(input.retention, '$.retention', problem);
  sinks.forEach((s, i) => checkRetention(s.retention, `$.sinks[${i}].retention`, problem));
  sources.forEach((s, i) => s.type !== 'kafka' && checkRetention(s.retention, `$.sources[${i}].retention`, problem));

  if (problems.length > 0) throw invalidGraph(problems);
  // Only the fields the platform reads are kept: nothing else of the input is stored.
  return {
    nodes: nodes.map((n) => ({
      id: n.id as string,
      function: n.function as string,
      replicas: isObject(n.replicas) ? { min: n.replicas.min as number, max: n.replicas.max as number } : { min: 1, max: 1 },
      ...(n.scaleToZeroAfterMs !== undefined ? { scaleToZeroAfterMs: n.scaleToZeroAfterMs as number } : {}),
      ...(isObject(n.late) ? { late: { allowedMs: (n.late.allowedMs as number | undefined) ?? 0 } } : {}),
    })),
    sources: sources.map((s): SourceSpec => ({
      ...(s.type === 'kafka'
        ? { id: s.id as string, type: 'kafka' as const, topic: s.topic as string, ...(s.group !== undefined ? { group: s.group as string } : {}), ...kafkaBrokers(s.brokers) }
        : { id: s.id as string, type: 'http' as const, ...(isObject(s.retention) ? { retention: retentionOf(s.retention) } : {}) }),
      ...(isObject(s.eventTime) ? { eventTime: eventTimeOf(s.eventTime) } : {}),
    })),
    sinks: sinks.map((s): SinkSpec =>
      s.type === 'kafka'
        ? { id: s.id as string, type: 'kafka', topic: s.topic as string, ...kafkaBrokers(s.brokers) }
        : s.type === 's3'
          ? s3SinkOf(s)
          : { id: s.id as string, type: 'log', ...(isObject(s.retention) ? { retention: retentionOf(s.retention) } : {}) },
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
    ...(isObject(slo) ? { slo: { latencyMs: slo.latencyMs as number, percentile: slo.percentile as number } } : {}),
    ...(input.scaleToZeroAfterMs !== undefined ? { scaleToZeroAfterMs: input.scaleToZeroAfterMs as number } : {}),
    ...(isObject(input.retention) ? { retention: retentionOf(input.retention) } : {}),
  };
}

/** Longest out-of-orderness, idle timeout or allowed lateness: a day. */
export const MAX_EVENT_TIME_MS = 86_400_000;
const FIELD_PATTERN = /^[A-Za-z0-9_$-]{1,64}(\.[A-Za-z0-9_$-]{1,64}){0,7}$/;
const isMs = (v: unknown, max: number) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;

function checkEventTime(value: unknown, path: string, problem: (path: string, message: string) => void): void {
  if (value === undefined) return;
  if (!isObject(value)) return problem(path, 'eventTime must be {field?, outOfOrdernessMs?, idleTimeoutMs?}');
  for (const key of Object.keys(value)) if (!['field', 'outOfOrdernessMs', 'idleTimeoutMs'].includes(key)) problem(`${path}.${key.slice(0, 64)}`, 'unknown eventTime setting (known: field, outOfOrdernessMs, idleTimeoutMs)');
  if (value.field !== undefined && !(typeof value.field === 'string' && FIELD_PATTERN.test(value.field) && !value.field.split('.').some((s) => s === '__proto__' || s === 'constructor' || s === 'prototype'))) {
    problem(`${path}.field`, 'field must be a dot path of up to 8 names of [A-Za-z0-9_$-] (not __proto__, constructor, prototype)');
  }
  if (value.outOfOrdernessMs !== undefined && !isMs(value.outOfOrdernessMs, MAX_EVENT_TIME_MS)) problem(`${path}.outOfOrdernessMs`, `outOfOrdernessMs must be an integer in [0, ${MAX_EVENT_TIME_MS}]`);
  if (value.idleTimeoutMs !== undefined && !(isMs(value.idleTimeoutMs, MAX_EVENT_TIME_MS) && (value.idleTimeoutMs as number) >= 1)) problem(`${path}.idleTimeoutMs`, `idleTimeoutMs must be an integer in [1, ${MAX_EVENT_TIME_MS}]`);
}

function eventTimeOf(value: Record<string, unknown>): EventTimeSpec {
  return {
    ...(value.field !== undefined ? { field: value.field as string } : {}),
    ...(value.outOfOrdernessMs !== undefined ? { outOfOrdernessMs: value.outOfOrdernessMs as number } : {}),
    ...(value.idleTimeoutMs !== undefined ? { idleTimeoutMs: value.idleTimeoutMs as number } : {}),
  };
}

function checkRetention(value: unknown, path: string, problem: (path: string, message: string) => void): void {
  if (value === undefined) return;
  const within = (v: unknown, max: number) => v === undefined || (typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max);
  if (!isObject(value) || !within(value.maxAgeMs, MAX_RETENTION_AGE_MS) || !within(value.maxBytes, MAX_RETENTION_BYTES)) {
    problem(path, `retention must be {maxAgeMs?: integer in [0, ${MAX_RETENTION_AGE_MS}], maxBytes?: integer in [0, ${MAX_RETENTION_BYTES}]}`);
  }
}

function retentionOf(value: Record<string, unknown>): Retention {
  return {
    ...(value.maxAgeMs !== undefined ? { maxAgeMs: value.maxAgeMs as number } : {}),
    ...(value.maxBytes !== undefined ? { maxBytes: value.maxBytes as number } : {}),
  };
}

function kafkaBrokers(value: unknown): { brokers?: string[] } {
  if (value === undefined) return {};
  const list = typeof value === 'string' ? value.split(',') : (value as string[]);
  return { brokers: list.map((b) => b.trim()).filter((b) => b !== '') };
}

function checkScaleToZero(value: unknown, path: string, problem: (path: string, message: string) => unknown): void {
  if (value !== undefined && !(Number.isInteger(value) && (value as number) > 0 && (value as number) <= MAX_SCALE_TO_ZERO_AFTER_MS)) {
    problem(path, `must be an integer in [1, ${MAX_SCALE_TO_ZERO_AFTER_MS}] (ms)`);
  }
}

/** The error for a spec's problems: its code is the problems' code when they share one of the graph-specific ones. */
function invalidGraph(problems: Problem[]): TributaryError {
  const codes = new Set(problems.map((p) => p.code));
  const [only] = codes;
  const code: ErrorCode = codes.size === 1 && (only === 'ERR_GRAPH_CYCLE' || only === 'ERR_GRAPH_TOO_LARGE') ? only : 'ERR_GRAPH_INVALID';
  const shownProblems = problems.slice(0, MAX_SUMMARY_PROBLEMS).map((p) => `${p.path}: ${p.message}`);
  if (problems.length > MAX_SUMMARY_PROBLEMS) shownProblems.push(`… ${problems.length - MAX_SUMMARY_PROBLEMS} more in "problems"`);
  const kind = code === 'ERR_GRAPH_TOO_LARGE' ? 'graph too large' : 'invalid graph';
  return new TributaryError(code, `${kind} (${problems.length} problem${problems.length > 1 ? 's' : ''}): ${shownProblems.join('; ')}`, { details: { problems } });
}
