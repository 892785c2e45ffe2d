/**
 * Scaling policies: given each node's measured signals, how many replicas it should run. The
 * autoscaler applies a policy's answer through its damping rules (autoscaler.ts); the policy
 * itself is a pure function, so baselines run through the very same machinery.
 */
import { Dag } from '../dag.ts';
import { effectiveServers, endToEndLatency, nodeLatency, type ModelOptions, type NodeSignals } from './latency-model.ts';

export interface NodeInput extends NodeSignals {
  replicas: number;
  min: number;
  max: number;
  queueDepth: number;
  /** ms since the node last had input or work. */
  idleMs: number;
  scaleToZeroAfterMs: number;
  /** Records/s the node processed (measured like the arrival rate). */
  processedRate?: number;
}

export type ScalingInput = {
  nodes: NodeInput[];
  slo?: { latencyMs: number; percentile: number };
  cores: number;
} & (
  | {
      /** The node DAG (Topology.nodeDag), over which the critical path is computed. */
      dag: Dag;
      paths?: never;
    }
  | {
      /** Or the DAG as source-to-sink paths of node ids (tests, benches), traced into a Dag. */
      paths: string[][];
      dag?: never;
    }
);

/**
 * Replicas the model policy adds in one decision at most. Each step adds one replica that raises
 * a node's effective servers, so a decision takes at most Σ min(max, partitions, cores) − current
 * steps anyway; this caps a decision's cost (a step is one O(nodes + edges) critical-path pass).
 */
export const MAX_POLICY_STEPS = 4096;

export interface ScalingDecision {
  node: string;
  replicas: number;
  reason: string;
  /** Predicted p-th percentile latency of the node at `replicas` (ms), when the policy models it. */
  predictedMs: number | null;
}

export interface ScalingPolicy {
  readonly name: string;
  /** The policy keeps its own windows (Knative's KPA): the autoscaler applies its answers as they are, without damping. */
  readonly selfDamped?: boolean;
  decide(input: ScalingInput): ScalingDecision[];
}

const ms = (seconds: number) => (Number.isFinite(seconds) ? Math.round(seconds * 1000 * 100) / 100 : null);

function idleToZero(node: NodeInput): ScalingDecision | null {
  // idleMs counts from the last record in or out, so it already means "no arrivals".
  if (node.min === 0 && node.queueDepth === 0 && node.idleMs >= node.scaleToZeroAfterMs) {
    return { node: node.id, replicas: 0, reason: `idle for ${Math.round(node.idleMs / 1000)} s ≥ scaleToZeroAfterMs`, predictedMs: 0 };
  }
  return null;
}

/**
 * Ours: the fewest replicas whose predicted end-to-end p-latency meets the SLO. Starts every node
 * at its minimum (at least 1 when it has work), then repeatedly adds a replica to the node on the
 * critical path where one more replica cuts the predicted latency most; stops when the SLO holds,
 * or when no replica adds capacity (partitions or cores exhausted) — it never scales up for nothing.
 * Without an SLO it targets 70% utilisation.
 */
export class ModelPolicy implements ScalingPolicy {
  readonly name = 'latency-model';

  decide(input: ScalingInput): ScalingDecision[] {
    const options: ModelOptions = { cores: input.cores, percentile: input.slo?.percentile ?? 99 };
    const byId = new Map(input.nodes.map((n) => [n.id, n]));
    const replicas = new Map<string, number>();
    const fixed = new Map<string, ScalingDecision>();
    for (const node of input.nodes) {
      const zero = idleToZero(node);
      if (zero) fixed.set(node.id, zero);
      const hasWork = node.arrivalRate > 0 || node.queueDepth > 0;
      replicas.set(node.id, zero ? 0 : Math.max(node.min, hasWork || node.replicas > 0 ? 1 : 0));
    }

    if (!input.slo) {
      return input.nodes.map((node) => {
        if (fixed.has(node.id)) return fixed.get(node.id)!;
        const busy = node.arrivalRate * node.recordServiceS;
        const wanted = Math.min(node.max, Math.max(replicas.get(node.id)!, Math.ceil(busy / 0.7)));
        return { node: node.id, replicas: wanted, reason: `no SLO: ${wanted} replica(s) keep utilisation ≤ 70% (load ${busy.toFixed(2)})`, predictedMs: ms(nodeLatency(wanted, node, options)) };
      });
    }

    const dag = input.dag ?? Dag.fromPaths(input.paths);
    // Predicted latency of each node at its current count, and at one more (computed when asked).
    const latency = new Map<string, number>();
    const oneMore = new Map<string, number>();
    for (const node of input.nodes) latency.set(node.id, fixed.has(node.id) ? 0 : nodeLatency(replicas.get(node.id)!, node, options));
    const latencyOf = (id: string) => latency.get(id) ?? 0;

    const slo = input.slo;
    const targetS = slo.latencyMs / 1000;
    const reasons = new Map<string, string>();
    for (let step = 0; ; step++) {
      const { latencyS, criticalPath } = endToEndLatency(dag, latencyOf);
      if (latencyS <= targetS) break;
      let best: { id: string; gain: number; after: number } | null = null;
      if (step < MAX_POLICY_STEPS) {
        for (const id of criticalPath) {
          const node = byId.get(id);
          if (!node || fixed.has(id)) continue;
          const current = replicas.get(id)!;
          if (current >= node.max || effectiveServers(current + 1, node, options) <= effectiveServers(current, node, options)) continue;
          const before = latency.get(id)!;
          let after = oneMore.get(id);
          if (after === undefined) oneMore.set(id, (after = nodeLatency(current + 1, node, options)));
          const gain = before === Infinity ? (after === Infinity ? 1e-9 : Infinity) : before - after;
          if (gain > 0 && (best === null || gain > best.gain)) best = { id, gain, after };
        }
      }
      if (best === null) {
        const why = step < MAX_POLICY_STEPS ? 'no further replica adds capacity (partitions/cores bound)' : `stopped after ${MAX_POLICY_STEPS} replicas added in one decision`;
        for (const id of criticalPath) {
          if (byId.has(id) && !fixed.has(id)) reasons.set(id, `SLO ${slo.latencyMs} ms unreachable: predicted ${ms(latencyS)} ms and ${why}`);
        }
        break;
      }
      replicas.set(best.id, replicas.get(best.id)! + 1);
      latency.set(best.id, best.after);
      oneMore.delete(best.id);
    }
    const { latencyS } = endToEndLatency(dag, latencyOf);
    return input.nodes.map((node) => {
      if (fixed.has(node.id)) return fixed.get(node.id)!;
      const n = replicas.get(node.id)!;
      const reason =
        reasons.get(node.id) ??
        `fewest replicas meeting p${slo.percentile} ≤ ${slo.latencyMs} ms: predicted end-to-end ${ms(latencyS)} ms at λ=${node.arrivalRate.toFixed(1)}/s, service ${(node.recordServiceS * 1000).toFixed(3)} ms/record`;
      return { node: node.id, replicas: n, reason, predictedMs: ms(latencyOf(node.id)) };
    });
  }
}

/** Baseline: always the maximum (what a static deployment provisions). */
export class StaticPolicy implements ScalingPolicy {
  readonly name = 'static-max';

  decide(input: ScalingInput): ScalingDecision[] {
    return input.nodes.map((n) => ({ node: n.id, replicas: n.max, reason: 'static: always replicas.max', predictedMs: null }));
  }
}

/**
 * Baseline: OpenFaaS-style threshold on requests per replica — replicas = ⌈rps / target⌉ within
 * [min, max], and to zero after the idle window like OpenFaaS's faas-idler.
 */
export class ThresholdPolicy implements ScalingPolicy {
  readonly name = 'threshold-rps';
  private readonly targetRpsPerReplica: number;

  constructor(targetRpsPerReplica: number) {
    this.targetRpsPerReplica = targetRpsPerReplica;
  }

  decide(input: ScalingInput): ScalingDecision[] {
    return input.nodes.map((node) => {
      const zero = idleToZero(node);
      if (zero) return zero;
      const wanted = Math.min(node.max, Math.max(node.min, 1, Math.ceil(node.arrivalRate / this.targetRpsPerReplica)));
      return { node: node.id, replicas: wanted, reason: `threshold: ${node.arrivalRate.toFixed(1)} rps / ${this.targetRpsPerReplica} per replica`, predictedMs: null };
    });
  }
}
