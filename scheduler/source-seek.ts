/**
 * Replay: a seek rewinds (or fast-forwards) the consumer group of a source's edges to an offset
 * or to a time, and optionally resets the state of every node downstream of it, so that a fixed
 * function reprocesses what the source edge still keeps (docs/replay.md).
 *
 * This file is the seek's plan and its effect on the logs; `GraphService.seek` runs it while the
 * graph is paused — halted exactly as for a redeploy, so no batch of the old runtime can commit
 * after the offsets moved (its in-flight batches commit first, or are abandoned uncommitted), and
 * the new runtime opens every partition afresh from the moved offsets, its isolates under new
 * state epochs.
 *
 *   embedded  the groups' offsets, the skipped edges' offsets and the reset nodes' state
 *             deletions are ONE SQLite transaction: a kill -9 leaves the seek done or not at all.
 *   Kafka     (kafka/kafka-seek.ts) the brokers set the groups' offsets (the groups are empty once the graph halted),
 *             then one transaction of the commit ledger forgets the offsets it applied and
 *             deletes the reset nodes' state. A crash between the two resumes where the graph was
 *             (the ledger's applied offsets win over lower committed ones): repeat the seek.
 *
 * With `resetState`, the nodes reset are those reachable from the seeked edges' nodes; their
 * input edges from other reset nodes are moved to their heads, since what is queued there was
 * derived from the history being replayed and will be derived again. Their inputs from elsewhere
 * (another source) keep their offsets.
 */
import type { CommitSet, StateWrite } from '../connectors/transport.ts';
import { TributaryError } from '../runtime/errors.ts';
import type { EdgeSpec } from './graph-spec.ts';
import { isKafkaEdge } from './kafka/kafka-topics.ts';
import type { Topology } from './topology.ts';

/** Where a seek moves each partition: one offset for all, offsets of some partitions, or a time. */
export type SeekTarget = { kind: 'offset'; offset: number } | { kind: 'offsets'; offsets: Map<number, number> } | { kind: 'timestamp'; at: number };

export interface SeekRequest {
  target: SeekTarget;
  /** Reset the state (timers and watermarks included) of every node downstream of the source. */
  resetState: boolean;
  /** Only the source's edge into this node (needed for offsets when the source feeds several). */
  node?: string;
}

export interface PartitionSeek {
  partition: number;
  /** The offset the group would have resumed from. */
  from: number;
  /** The offset it resumes from now. */
  to: number;
  /** The first offset the edge still keeps, and the next to be written, as of the seek. */
  earliest: number;
  head: number;
}

export interface SeekResult {
  graph: string;
  source: string;
  resetState: boolean;
  edges: Array<{ node: string; topic: string; transport: 'embedded' | 'kafka'; partitions: PartitionSeek[] }>;
  /**
   * Where each sink's log (log and S3 sinks: partition 0) or Kafka topic (per partition) stood
   * when the graph paused: the replay's outputs are appended from these offsets on.
   */
  sinks: Record<string, { heads: number[] }>;
  /** With resetState: the nodes whose state was deleted, and the edges between them moved to their heads. */
  reset: { nodes: string[]; skipped: Array<{ from: string; to: string; partitions: Array<{ partition: number; from: number; to: number }> }> };
}

export interface SeekPlan {
  graph: string;
  source: string;
  request: SeekRequest;
  /** The source's edges into nodes that are rewound. */
  edges: EdgeSpec[];
  /** Nodes whose state is reset (empty without resetState). */
  resetNodes: string[];
  /** Edges between reset nodes: moved to their heads. */
  skipEdges: EdgeSpec[];
  kafka: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isOffset = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * `{offset: n}` (every partition), `{offset: {"<partition>": n, …}}` (those named) or
 * `{timestamp: ms | "ISO 8601"}`, plus `resetState?: boolean` and `node?: string`.
 *
 * @example parseSeekRequest({ timestamp: '2026-12-02T10:00:00Z', resetState: true })
 */
export function parseSeekRequest(body: unknown): SeekRequest {
  const bad = (message: string) => new TributaryError('ERR_BAD_REQUEST', `seek: ${message}`);
  if (!isObject(body)) throw bad('body must be a JSON object {offset | timestamp, resetState?, node?}');
  for (const key of Object.keys(body)) if (!['offset', 'timestamp', 'resetState', 'node'].includes(key)) throw bad(`unknown field '${key.slice(0, 64)}' (known: offset, timestamp, resetState, node)`);
  if ((body.offset === undefined) === (body.timestamp === undefined)) throw bad('give exactly one of "offset" and "timestamp"');
  if (body.resetState !== undefined && typeof body.resetState !== 'boolean') throw bad('"resetState" must be true or false');
  if (body.node !== undefined && typeof body.node !== 'string') throw bad('"node" must be a node id');
  let target: SeekTarget;
  if (body.timestamp !== undefined) {
    const at = typeof body.timestamp === 'number' ? body.timestamp : typeof body.timestamp === 'string' && body.timestamp.length <= 64 ? Date.parse(body.timestamp) : NaN;
    if (!Number.isFinite(at) || at < 0 || at > 8.64e15) throw bad('"timestamp" must be ms since the epoch or an ISO 8601 string');
    target = { kind: 'timestamp', at: Math.floor(at) };
  } else if (isOffset(body.offset)) {
    target = { kind: 'offset', offset: body.offset };
  } else if (isObject(body.offset)) {
    const offsets = new Map<number, number>();
    for (const [key, value] of Object.entries(body.offset)) {
      if (!/^(0|[1-9][0-9]{0,8})$/.test(key)) throw bad(`"offset" keys must be partition numbers, not '${key.slice(0, 64)}'`);
      if (!isOffset(value)) throw bad(`"offset"."${key}" must be an integer ≥ 0`);
      offsets.set(Number(key), value);
    }
    if (offsets.size === 0) throw bad('"offset" names no partition');
    target = { kind: 'offsets', offsets };
  } else {
    throw bad('"offset" must be an integer ≥ 0 or a map of partition → offset');
  }
  return { target, resetState: body.resetState === true, ...(body.node !== undefined && { node: body.node }) };
}

/** Which edges a seek rewinds, which nodes it resets and which edges it skips; refuses what makes no sense. */
export function planSeek(topology: Topology, source: string, request: SeekRequest): SeekPlan {
  const { spec, graph } = topology;
  if (topology.kindOf(source) !== 'source') throw new TributaryError('ERR_NOT_FOUND', `graph '${graph}' has no source '${source}'`);
  const intoNodes = spec.edges.filter((e) => e.from === source && topology.kindOf(e.to) === 'node');
  if (intoNodes.length === 0) throw new TributaryError('ERR_BAD_REQUEST', `source '${source}' feeds only sinks: no consumer to rewind`);
  let edges = intoNodes;
  if (request.node !== undefined) {
    edges = intoNodes.filter((e) => e.to === request.node);
    if (edges.length === 0) throw new TributaryError('ERR_BAD_REQUEST', `source '${source}' has no edge into node '${request.node}' (it feeds ${intoNodes.map((e) => e.to).join(', ')})`);
  } else if (request.target.kind !== 'timestamp' && intoNodes.length > 1) {
    // Each edge is a log of its own, with its own offsets: one offset means nothing across them.
    throw new TributaryError('ERR_BAD_REQUEST', `source '${source}' feeds ${intoNodes.map((e) => e.to).join(', ')}: an offset seek names one of them in "node"`);
  }
  const resetNodes: string[] = [];
  if (request.resetState) {
    const seen = new Set<string>();
    const queue = edges.map((e) => e.to);
    while (queue.length > 0) {
      const node = queue.shift()!;
      if (seen.has(node)) continue;
      seen.add(node);
      resetNodes.push(node);
      for (const e of spec.edges) if (e.from === node && topology.kindOf(e.to) === 'node') queue.push(e.to);
    }
  }
  const reset = new Set(resetNodes);
  const skipEdges = spec.edges.filter((e) => reset.has(e.from) && reset.has(e.to));
  return { graph, source, request, edges, resetNodes, skipEdges, kafka: edges.some((e) => isKafkaEdge(spec, e)) };
}

/** The target of one partition, or null when the request leaves it alone (a map not naming it). */
export function targetOf(target: SeekTarget, partition: number, atTime: () => number): number | null {
  if (target.kind === 'offset') return target.offset;
  if (target.kind === 'offsets') return target.offsets.get(partition) ?? null;
  return atTime();
}

/** Refuses offsets outside what the edge keeps (no clamping: a replay of less than asked would pass unnoticed). */
export function checkRanges(plan: SeekPlan, edges: SeekResult['edges'], partitionsOf: Map<string, number>): void {
  const { target } = plan.request;
  if (target.kind === 'offsets') {
    for (const edge of edges) {
      const count = partitionsOf.get(edge.topic)!;
      for (const p of target.offsets.keys()) if (p >= count) throw new TributaryError('ERR_BAD_REQUEST', `seek: edge ${plan.source} -> ${edge.node} has ${count} partitions, no partition ${p}`);
    }
  }
  const outside = edges.flatMap((edge) => edge.partitions.filter((p) => p.to < p.earliest || p.to > p.head).map((p) => ({ node: edge.node, partition: p.partition, offset: p.to, earliest: p.earliest, head: p.head })));
  if (outside.length === 0) return;
  const shown = outside.slice(0, 8).map((o) => `partition ${o.partition} of ${plan.source} -> ${o.node}: ${o.offset} is outside [${o.earliest}, ${o.head}]`);
  throw new TributaryError('ERR_OFFSET_OUT_OF_RANGE', `seek: ${shown.join('; ')} (earliest retained offset, head)`, { details: { partitions: outside } });
}

/** The embedded log as a seek needs it (SqliteLog). */
export interface SeekableLog {
  head(topic: string, partition: number): number;
  start(topic: string, partition: number): number;
  committed(group: string, topic: string, partition: number): number;
  offsetAtTime(topic: string, partition: number, at: number): number;
  partitions(topic: string): number;
  stateSnapshot(namespace: string, partition: number): StateWrite[];
  commit(set: CommitSet): boolean;
}

/**
 * The seek on the embedded log: with `apply`, in one durable transaction (offsets moved, state
 * deleted); without, only what it would do (checked before the graph is paused).
 */
export function seekEmbedded(log: SeekableLog, topology: Topology, plan: SeekPlan, apply: boolean): SeekResult {
  const partitionsOf = new Map<string, number>();
  const edges = plan.edges.map((edge) => {
    const topic = topology.topicOf(edge);
    const group = topology.group(edge.to);
    const count = log.partitions(topic);
    partitionsOf.set(topic, count);
    const partitions: PartitionSeek[] = [];
    for (let p = 0; p < count; p++) {
      const to = targetOf(plan.request.target, p, () => log.offsetAtTime(topic, p, (plan.request.target as { at: number }).at));
      if (to === null) continue;
      partitions.push({ partition: p, from: log.committed(group, topic, p), to, earliest: log.start(topic, p), head: log.head(topic, p) });
    }
    return { node: edge.to, topic, transport: 'embedded' as const, partitions };
  });
  checkRanges(plan, edges, partitionsOf);
  const skipped = plan.skipEdges.map((edge) => {
    const topic = topology.topicOf(edge);
    const group = topology.group(edge.to);
    return { from: edge.from, to: edge.to, topic, group, partitions: Array.from({ length: log.partitions(topic) }, (_, p) => ({ partition: p, from: log.committed(group, topic, p), to: log.head(topic, p) })) };
  });
  if (apply) {
    const set: CommitSet = { appends: [], offsets: [], state: [], durable: true };
    for (const [i, edge] of edges.entries()) {
      const group = topology.group(plan.edges[i].to);
      for (const p of edge.partitions) set.offsets.push({ group, topic: edge.topic, partition: p.partition, next: p.to });
    }
    for (const skip of skipped) for (const p of skip.partitions) set.offsets.push({ group: skip.group, topic: skip.topic, partition: p.partition, next: p.to });
    for (const node of plan.resetNodes) {
      const namespace = topology.stateNamespace(node);
      const statePartitions = Math.max(0, ...topology.inputs(node).map((e) => log.partitions(topology.topicOf(e))));
      for (let p = 0; p < statePartitions; p++) {
        const writes = log.stateSnapshot(namespace, p).map((w) => ({ key: w.key, value: null }));
        if (writes.length > 0) set.state.push({ namespace, partition: p, writes });
      }
    }
    log.commit(set);
  }
  const sinks = Object.fromEntries(topology.spec.sinks.filter((sink) => sink.type !== 'kafka').map((sink) => [sink.id, { heads: [log.head(topology.sinkTopic(sink.id), 0)] }]));
  return seekResult(plan, edges, skipped, sinks);
}

export function seekResult(plan: SeekPlan, edges: SeekResult['edges'], skipped: Array<{ from: string; to: string; partitions: Array<{ partition: number; from: number; to: number }> }>, sinks: SeekResult['sinks']): SeekResult {
  return {
    graph: plan.graph,
    source: plan.source,
    resetState: plan.request.resetState,
    edges,
    sinks,
    reset: { nodes: plan.resetNodes, skipped: skipped.map(({ from, to, partitions }) => ({ from, to, partitions })) },
  };
}
