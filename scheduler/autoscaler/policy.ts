/**
 * Scaling policies: given each node's measured signals, how many replicas it should run. The
 * autoscaler applies a policy's answer through its damping rules (autoscaler.ts); the policy
 * itself is a pure function, so baselines run through the very same machinery.
 */
import { effectiveServers, endToEndLatency, nodeLatency, type ModelOptions, type NodeSignals } from './latency-model.ts';

export interface NodeInput extends NodeSignals {
  replicas: number;
  min: number;
  max: number;
  queueDepth: number;
  /** ms since the node last had input or work. */
  idleMs: number;
  scaleToZeroAfterMs: number;
}

export interface ScalingInput {
  nodes: NodeInput[];
  /** Every source-to-sink path, as node ids. */
  paths: string[][];
  slo?: { latencyMs: number; percentile: number };
  cores: number;
}

export interface ScalingDecision {
  node: string;
  replicas: number;
  reason: string;
  /** Predicted p-th percentile latency of the node at `replicas` (ms), when the policy models it. */
  predictedMs: number | null;
}

export interface ScalingPolicy {
  readonly name: string;
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
    const latencyOf = (id: string) => (fixed.has(id) ? 0 : nodeLatency(replicas.get(id)!, byId.get(id)!, options));

    if (!input.slo) {
      return input.nodes.map((node) => {
        if (fixed.has(node.id)) return fixed.get(node.id)!;
        const busy = node.arrivalRate * node.recordServiceS;
        const wanted = Math.min(node.max, Math.max(replicas.get(node.id)!, Math.ceil(busy / 0.7)));
        return { node: node.id, replicas: wanted, reason: `no SLO: ${wanted} replica(s) keep utilisation ≤ 70% (load ${busy.toFixed(2)})`, predictedMs: ms(nodeLatency(wanted, node, options)) };
      });
    }

    const targetS = input.slo.latencyMs / 1000;
    const reasons = new Map<string, string>();
    for (let guard = 0; guard < 1000; guard++) {
      const { latencyS, criticalPath } = endToEndLatency(input.paths, latencyOf);
      if (latencyS <= targetS) break;
      let best: { id: string; gain: number } | null = null;
      for (const id of criticalPath) {
        const node = byId.get(id);
        if (!node || fixed.has(id)) continue;
        const current = replicas.get(id)!;
        if (current >= node.max || effectiveServers(current + 1, node, options) <= effectiveServers(current, node, options)) continue;
        const before = nodeLatency(current, node, options);
        const after = nodeLatency(current + 1, node, options);
        const gain = before === Infinity ? (after === Infinity ? 1e-9 : Infinity) : before - after;
        if (gain > 0 && (best === null || gain > best.gain)) best = { id, gain };
      }
      if (best === null) {
        for (const id of criticalPath) {
          if (!fixed.has(id)) reasons.set(id, `SLO ${input.slo.latencyMs} ms unreachable: predicted ${ms(latencyS)} ms and no further replica adds capacity (partitions/cores bound)`);
        }
        break;
      }
      replicas.set(best.id, replicas.get(best.id)! + 1);
    }
    const { latencyS } = endToEndLatency(input.paths, latencyOf);
    return input.nodes.map((node) => {
      if (fixed.has(node.id)) return fixed.get(node.id)!;
      const n = replicas.get(node.id)!;
      const reason =
        reasons.get(node.id) ??
        `fewest replicas meeting p${input.slo!.percentile} ≤ ${input.slo!.latencyMs} ms: predicted end-to-end ${ms(latencyS)} ms at λ=${node.arrivalRate.toFixed(1)}/s, service ${(node.recordServiceS * 1000).toFixed(3)} ms/record`;
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
