/**
 * Predicts a graph's end-to-end latency from measured per-node arrival and service rates, as a
 * function of each node's replica count, and composes nodes along the DAG's critical path.
 *
 * A node's records wait in an M/M/c queue (erlang-c.ts) whose servers are its *effective*
 * replicas — min(replicas, input partitions, host cores): a partition is consumed by one task at a
 * time, and a host runs one isolate at a time, so replicas past either bound add nothing to a
 * CPU-bound node. On top of the queue wait comes the batch it rides in (its fixed overhead and the
 * record's own service) and, on exactly-once Kafka edges, the commit delay: together the node's floor, which no replica
 * count removes. When the floors along the critical path exceed the SLO, the SLO is unreachable.
 */
import type { Dag } from '../dag.ts';
import { waitQuantile } from './erlang-c.ts';

export interface NodeSignals {
  id: string;
  /** Records/s arriving on the node's input edges (measured). */
  arrivalRate: number;
  /** Mean service time per record (s), measured on one replica: batch time over records (DS2's useful time). */
  recordServiceS: number;
  /**
   * What one more record adds to a batch (s; NodeStats.recordMarginalMs), when measured. The
   * latency model serves records at this rate, with the fixed cost of a batch in its floor
   * (`batchOverheadS`): on a node whose batches are mostly a host round trip, recordServiceS would
   * make every record pay the whole trip and ask for replicas that batching already makes unneeded.
   */
  marginalServiceS?: number;
  /**
   * The isolate's CPU time per record (s; NodeStats.recordCpuMs), when hosts report it. The
   * latency model's servers are cores (effective replicas ≤ cores), so this is its service time
   * first: wall-clock service stretches on a busy machine and would ask for replicas that the
   * same starved cores cannot run. A node whose records wait on I/O inside the isolate is sized on
   * its CPU; its backlog (ScalingInput demand) scales it when that is not enough.
   */
  recordCpuS?: number;
  /** Mean wall time of a batch (s): dispatch, isolate, commit. */
  batchServiceS: number;
  /**
   * What a batch costs whatever its size (s): the intercept of batch time over records
   * (NodeStats.batchOverheadMs). When given, the floor is this plus one record's service, not the
   * mean batch time: batches grow with the backlog, and that growth is queueing, which the
   * Erlang C wait already counts (and more replicas remove).
   */
  batchOverheadS?: number;
  /** Partitions of the node's input edges (upper bound on parallel consumers). */
  partitions: number;
  /**
   * Delay before the node's outputs become visible that no replica can shorten (s): on an
   * exactly-once Kafka edge, the commit interval (outputs are read_committed: they wait for the
   * transaction, committed at most every interval). 0 on the embedded log, which commits per batch.
   */
  commitDelayS?: number;
}

export interface ModelOptions {
  /** Host processes (cores) available to run isolates. */
  cores: number;
  /** Percentile of the SLO, e.g. 99. */
  percentile: number;
}

export function effectiveServers(replicas: number, signals: NodeSignals, options: ModelOptions): number {
  return Math.max(0, Math.min(replicas, signals.partitions, options.cores));
}

/** Predicted p-th percentile sojourn time (s) of a node with `replicas`; Infinity if it cannot keep up. */
export function nodeLatency(replicas: number, signals: NodeSignals, options: ModelOptions): number {
  const servers = effectiveServers(replicas, signals, options);
  if (servers === 0) return signals.arrivalRate > 0 ? Infinity : 0;
  const floor = nodeFloor(signals);
  if (signals.recordServiceS <= 0) return floor;
  const serviceRate = 1 / signals.recordServiceS;
  return waitQuantile(servers, signals.arrivalRate, serviceRate, options.percentile / 100) + floor;
}

/**
 * The latency a node has with no queueing at all (s): a batch of the record alone (the batch
 * overhead plus its own service; the mean batch time when the overhead is not measured) and the
 * commit delay — what no replica count removes.
 */
export function nodeFloor(signals: NodeSignals): number {
  const batch = signals.batchOverheadS === undefined ? signals.batchServiceS : Math.min(signals.batchServiceS, signals.batchOverheadS + signals.recordServiceS);
  return batch + (signals.commitDelayS ?? 0);
}

/**
 * End-to-end prediction: the critical path, the path through the node DAG with the largest sum
 * of predicted node latencies (sources and sinks add nothing), found by one longest-path pass
 * over the DAG's topological order — O(nodes + edges), never by enumerating paths.
 */
export function endToEndLatency(dag: Dag, latencyOf: (node: string) => number): { latencyS: number; criticalPath: string[] } {
  const { weight, path } = dag.longestPath(latencyOf);
  return { latencyS: weight, criticalPath: path };
}
