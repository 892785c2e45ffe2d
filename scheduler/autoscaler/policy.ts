/**
 * Scaling policies: given each node's measured signals, how many replicas it should run. The
 * autoscaler applies a policy's answer through its damping rules (autoscaler.ts); the policy
 * itself is a pure function, so baselines run through the very same machinery.
 */
import { Dag } from '../dag.ts';
import { effectiveServers, endToEndLatency, nodeFloor, nodeLatency, type ModelOptions, type NodeSignals } from './latency-model.ts';

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
  /** Memory one replica's isolate may use (its function's memoryLimitMb), when known. */
  memoryMb?: number;
}

/** What the machine offers the graph's replicas. */
export interface ResourceBudget {
  /** Host processes ready to run isolates (a restarting host runs none). */
  readyHosts: number;
  /** Memory the hosts give isolates (MB), when known: Σ replicas × memoryMb stays within it. */
  memoryMb?: number;
}

export type ScalingInput = {
  nodes: NodeInput[];
  slo?: { latencyMs: number; percentile: number };
  cores: number;
  /** Memory for the graph's isolates (MB); unbounded when absent. */
  memoryBudgetMb?: number;
  /** Measured end-to-end p-latency over the last decision intervals (ms), null without samples. */
  measuredMs?: number | null;
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
  /** Predicted at the node's current count (ms; null: it cannot keep up, or not modelled). */
  currentMs?: number | null;
  /** Why the SLO cannot be met, when the policy knows it cannot (status.slo shows it). */
  unreachable?: string;
  /** The policy weighs the cost of scaling (scaling-cost.ts): the autoscaler may hold a change that would not pay. */
  costAware?: boolean;
  /**
   * How long the node can stay at its current count before its backlog alone would take longer
   * than the SLO to serve (ms): Infinity when the current replicas keep up, 0 when it is too late
   * already. With `costAware`, a scale-up is held only while this outlasts the next decision.
   */
  canWaitMs?: number;
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
 * or when no replica adds capacity (partitions, cores or memory exhausted) — it never scales up for
 * nothing. Without an SLO it targets 70% utilisation.
 *
 * Two refinements keep it from over-provisioning:
 * - When the floors on the critical path (batch time plus the exactly-once commit delay, which no
 *   replica removes) already exceed the SLO, it says so ("SLO unreachable") and sizes each node
 *   for utilisation ≤ 70% instead of adding replicas that cannot help.
 * - While the measured p-latency is under half the SLO, a node that keeps up at its current count
 *   does not scale up: the prediction (Poisson arrivals) is pessimistic for smooth load, and the
 *   measurement says there is room. A node that cannot keep up scales at once.
 *
 * One decision reaches the count a step needs: the model sizes on the demand, which is the
 * arrival rate or, when a backlog has built up, the rate that drains it within one SLO
 * ({@link demandRate}) — not on a count that creeps up a replica per decision. And it stops as
 * soon as a node on the critical path cannot keep up at any count the machine allows: replicas
 * elsewhere would not make the SLO reachable.
 */
export interface ModelPolicyOptions {
  /**
   * Mark decisions cost-aware (default true): the autoscaler then holds a scale-up the current
   * replicas can live without until it pays for its measured cost (scaling-cost.ts). false runs
   * the same model without that rule (the ablation in bench:autoscale).
   */
  weighScalingCost?: boolean;
}

export class ModelPolicy implements ScalingPolicy {
  readonly name: string;
  private readonly costAware: boolean;

  constructor(options: ModelPolicyOptions = {}) {
    this.costAware = options.weighScalingCost ?? true;
    this.name = this.costAware ? 'latency-model' : 'latency-model-no-cost';
  }

  decide(input: ScalingInput): ScalingDecision[] {
    const costAware = this.costAware;
    const options: ModelOptions = { cores: input.cores, percentile: input.slo?.percentile ?? 99 };
    // The model's view of a node: its demand, served at its CPU time per record (else the marginal wall time) when measured.
    const demand = (node: NodeInput): NodeInput => ({ ...node, arrivalRate: demandRate(node, input.slo ? input.slo.latencyMs / 1000 : null), recordServiceS: node.recordCpuS ?? node.marginalServiceS ?? node.recordServiceS });
    const byId = new Map(input.nodes.map((n) => [n.id, demand(n)]));
    const replicas = new Map<string, number>();
    const fixed = new Map<string, ScalingDecision>();
    for (const node of input.nodes) {
      const zero = idleToZero(node);
      if (zero) fixed.set(node.id, zero);
      const hasWork = node.arrivalRate > 0 || node.queueDepth > 0;
      replicas.set(node.id, zero ? 0 : Math.max(node.min, hasWork || node.replicas > 0 ? 1 : 0));
    }
    const memory = new MemoryBudget(input, replicas);
    const current = (node: NodeInput) => ms(nodeLatency(node.replicas, byId.get(node.id)!, options));

    const slo = input.slo;
    const dag = input.dag ?? Dag.fromPaths(input.paths);
    const floor = slo ? endToEndLatency(dag, (id) => (byId.has(id) && !fixed.has(id) ? unqueuedLatency(byId.get(id)!) : 0)) : null;
    if (!slo || (floor && floor.latencyS > slo.latencyMs / 1000)) {
      const unreachable =
        slo && floor ? `SLO ${slo.latencyMs} ms unreachable: batch time and exactly-once commit delay on the critical path (${floor.criticalPath.join(' → ')}) already take ${ms(floor.latencyS)} ms before any queueing` : undefined;
      return input.nodes.map((given) => {
        if (fixed.has(given.id)) return fixed.get(given.id)!;
        const node = byId.get(given.id)!;
        const busy = node.arrivalRate * node.recordServiceS;
        // Replicas past the input partitions or the cores add no capacity (effectiveServers).
        const useful = Math.max(replicas.get(node.id)!, Math.min(node.partitions, input.cores));
        let wanted = Math.min(node.max, useful, Math.max(replicas.get(node.id)!, Math.ceil(busy / 0.7)));
        wanted = memory.cap(node, replicas.get(node.id)!, wanted);
        const sized = `${wanted} replica(s) keep utilisation ≤ 70% (load ${busy.toFixed(2)})`;
        return {
          node: node.id,
          replicas: wanted,
          reason: unreachable ? `${unreachable}; ${sized}` : `no SLO: ${sized}`,
          predictedMs: ms(nodeLatency(wanted, node, options)),
          currentMs: current(node),
          ...(unreachable ? { unreachable } : {}),
          costAware,
        };
      });
    }

    // Predicted latency of each node at its current count, and at one more (computed when asked).
    const latency = new Map<string, number>();
    const oneMore = new Map<string, number>();
    for (const node of input.nodes) latency.set(node.id, fixed.has(node.id) ? 0 : nodeLatency(replicas.get(node.id)!, node, options));
    const latencyOf = (id: string) => latency.get(id) ?? 0;

    const targetS = slo.latencyMs / 1000;
    const reasons = new Map<string, string>();
    let unreachable: string | undefined;
    for (let step = 0; ; step++) {
      const { latencyS, criticalPath } = endToEndLatency(dag, latencyOf);
      if (latencyS <= targetS) break;
      let best: { id: string; gain: number; after: number } | null = null;
      const bounds = new Set<string>();
      let saturated = false;
      // With a node that cannot keep up, every such node is a candidate: the longest path through
      // infinite weights names one of them, not necessarily the one a replica would fix.
      const candidates = latencyS === Infinity ? input.nodes.map((n) => n.id).filter((id) => latency.get(id) === Infinity) : criticalPath;
      if (step < MAX_POLICY_STEPS) {
        for (const id of candidates) {
          const node = byId.get(id);
          if (!node || fixed.has(id)) continue;
          const count = replicas.get(id)!;
          const bound = boundOf(count, node, options, memory);
          if (bound !== null) {
            bounds.add(bound);
            // It cannot keep up at any count allowed: replicas elsewhere leave the path infinite.
            if (latency.get(id) === Infinity) {
              saturated = true;
              break;
            }
            continue;
          }
          const before = latency.get(id)!;
          let after = oneMore.get(id);
          if (after === undefined) oneMore.set(id, (after = nodeLatency(count + 1, node, options)));
          const gain = before === Infinity ? (after === Infinity ? 1e-9 : Infinity) : before - after;
          if (gain > 0 && (best === null || gain > best.gain)) best = { id, gain, after };
        }
      }
      if (saturated) best = null;
      if (best === null) {
        const machine = bounds.has('cores') || bounds.has('memory');
        const why = step < MAX_POLICY_STEPS ? `no further replica adds capacity (bound by ${[...bounds].join(', ') || 'the model'})` : `stopped after ${MAX_POLICY_STEPS} replicas added in one decision`;
        unreachable = `SLO ${slo.latencyMs} ms unreachable${machine ? ' on this machine' : ''}: predicted ${ms(latencyS)} ms and ${why}`;
        for (const id of new Set([...criticalPath, ...candidates])) if (byId.has(id) && !fixed.has(id)) reasons.set(id, unreachable);
        break;
      }
      replicas.set(best.id, replicas.get(best.id)! + 1);
      memory.add(byId.get(best.id)!);
      latency.set(best.id, best.after);
      oneMore.delete(best.id);
    }
    const { latencyS } = endToEndLatency(dag, latencyOf);
    const roomy = input.measuredMs !== undefined && input.measuredMs !== null && input.measuredMs < slo.latencyMs / 2;
    return input.nodes.map((given) => {
      if (fixed.has(given.id)) return fixed.get(given.id)!;
      const node = byId.get(given.id)!;
      // A backlog past λ·SLO has not reached the sink yet: the measured latency does not see it.
      const draining = node.arrivalRate > given.arrivalRate;
      let n = replicas.get(node.id)!;
      const rate = draining ? `demand ${node.arrivalRate.toFixed(1)}/s (a backlog of ${given.queueDepth} served within the SLO; arrivals ${given.arrivalRate.toFixed(1)}/s)` : `λ=${node.arrivalRate.toFixed(1)}/s`;
      let reason =
        reasons.get(node.id) ??
        `fewest replicas meeting p${slo.percentile} ≤ ${slo.latencyMs} ms: predicted end-to-end ${ms(latencyS)} ms at ${rate}, service ${(node.recordServiceS * 1000).toFixed(3)} ms/record (${given.recordCpuS !== undefined ? 'isolate CPU' : 'wall'})`;
      const now = current(node);
      if (roomy && !draining && n > node.replicas && node.replicas > 0 && now !== null) {
        reason = `holding ${node.replicas}: measured p${slo.percentile} ${ms(input.measuredMs! / 1000)} ms < SLO/2 and ${node.replicas} keep up (model wants ${n}: ${reason})`;
        n = node.replicas;
      }
      const canWaitMs = canWaitAt({ ...given, recordServiceS: node.recordServiceS }, effectiveServers(given.replicas, given, options), targetS) * 1000;
      return { node: node.id, replicas: n, reason, predictedMs: ms(latencyOf(node.id)), currentMs: now, ...(unreachable ? { unreachable } : {}), costAware, canWaitMs };
    });
  }
}

/**
 * The rate a node must serve (records/s): its arrival rate, or — when more records wait than
 * Little's law allows a node meeting the SLO to hold (L = λ·W with W ≤ the SLO) — the rate that
 * serves the backlog within one SLO: max(λ, queue / SLO). A step is then sized in one decision
 * even while the backlog it left is still there; at steady state the queue is far below λ·SLO and
 * the demand is the arrival rate. Without an SLO, the arrival rate.
 */
export function demandRate(node: NodeInput, sloS: number | null): number {
  if (sloS === null || sloS <= 0) return node.arrivalRate;
  return Math.max(node.arrivalRate, node.queueDepth / sloS);
}

/** A record's latency through `node` without any queue (s): the floor, with its own service in it. */
function unqueuedLatency(node: NodeInput): number {
  // nodeFloor counts the record's service when it has the batch overhead; the mean batch time may not.
  return nodeFloor(node) + (node.batchOverheadS === undefined ? node.recordServiceS : 0);
}

/**
 * How long (s) `node` can run on `servers` before its backlog takes longer than `sloS` to serve:
 * Infinity when they serve faster than records arrive (the backlog shrinks), else the time until
 * the backlog, growing at λ − capacity, reaches capacity × SLO.
 */
function canWaitAt(node: NodeInput, servers: number, sloS: number): number {
  if (servers <= 0) return 0;
  if (node.recordServiceS <= 0) return Infinity;
  const capacity = servers / node.recordServiceS;
  const budget = capacity * sloS - node.queueDepth;
  if (budget <= 0) return 0;
  if (node.arrivalRate <= capacity) return Infinity;
  return budget / (node.arrivalRate - capacity);
}

/** Why one more replica of `node` adds nothing, or null when it adds capacity. */
function boundOf(count: number, node: NodeInput, options: ModelOptions, memory: MemoryBudget): string | null {
  if (count >= node.max) return 'replicas.max';
  if (count + 1 > node.partitions) return 'input partitions';
  if (count + 1 > options.cores) return 'cores';
  if (!memory.fits(node)) return 'memory';
  return null;
}

/** Memory the chosen replicas take, against the budget: Σ replicas × the node's memoryMb. */
class MemoryBudget {
  private used = 0;
  private readonly budgetMb: number;

  constructor(input: ScalingInput, replicas: Map<string, number>) {
    this.budgetMb = input.memoryBudgetMb ?? Infinity;
    for (const node of input.nodes) this.used += (replicas.get(node.id) ?? 0) * (node.memoryMb ?? 0);
  }

  fits(node: NodeInput): boolean {
    return this.used + (node.memoryMb ?? 0) <= this.budgetMb;
  }

  add(node: NodeInput): void {
    this.used += node.memoryMb ?? 0;
  }

  /** From `from` (already counted) up to `wanted` replicas of `node`, as far as memory allows. */
  cap(node: NodeInput, from: number, wanted: number): number {
    let n = from;
    while (n < wanted && this.fits(node)) {
      this.add(node);
      n++;
    }
    return n;
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
