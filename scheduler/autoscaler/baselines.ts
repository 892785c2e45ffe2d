/**
 * The field's own autoscaling algorithms, behind the same {@link ScalingPolicy} interface as ours,
 * so that `bench:autoscale` compares them on the same graphs, traces and machinery.
 *
 * KnativeKpaPolicy — Knative Serving's Pod Autoscaler (KPA), after
 *   knative/serving pkg/autoscaler/scaling/autoscaler.go (`Scale`) and the `config-autoscaler`
 *   defaults documented in docs/serving/autoscaling: the desired count is the observed concurrency
 *   averaged over a stable window (60 s) divided by the per-replica target (the container
 *   concurrency target × target utilization 70%); a panic window (10% of the stable one, 6 s)
 *   averages the same signal, and when its desired count reaches the panic threshold (200%) of
 *   the ready replicas the autoscaler panics: it scales on the panic window and never scales down
 *   until a whole stable window has passed without panic. Each decision moves at most by the max
 *   scale-up rate (1000x) and the max scale-down rate (2x); a revision whose stable-window
 *   concurrency is zero scales to zero after the scale-to-zero grace period (30 s). It carries its
 *   own windows, so the autoscaler applies its answers without damping (`selfDamped`).
 *   Concurrency of a stream node is what KPA's queue-proxy would count in flight: records waiting
 *   on its inputs plus those in service (arrival rate × service time, by Little's law).
 *
 * Ds2Policy — DS2 (Kalavri et al., "Three steps is all you need: fast, accurate, automatic
 *   scaling decisions for distributed streaming dataflows", OSDI 2018, §3): per operator, the true
 *   processing rate is records processed per unit of useful time (our `recordServiceS` is the
 *   useful time per record, measured on one replica), and the true output rate is that times the
 *   operator's selectivity (outputs per input). In topological order, the target input rate of an
 *   operator is the source rate for source-fed operators and, downstream, the sum of its upstream
 *   operators' target input rates times their selectivity; its parallelism is
 *   ⌈target input rate / true processing rate per instance⌉, in one step for the whole graph.
 */
import { Dag } from '../dag.ts';
import type { NodeInput, ScalingDecision, ScalingInput, ScalingPolicy } from './policy.ts';

export interface KpaOptions {
  /** Per-replica concurrency target, before utilization (Knative: container-concurrency-target-default 100). */
  target: number;
  /** container-concurrency-target-percentage (default 0.7). */
  utilization?: number;
  /** stable-window (default 60 s). */
  stableWindowMs?: number;
  /** panic-window-percentage of the stable window (default 10%). */
  panicWindowShare?: number;
  /** panic-threshold-percentage (default 200%). */
  panicThreshold?: number;
  /** max-scale-up-rate (default 1000) and max-scale-down-rate (default 2). */
  maxScaleUpRate?: number;
  maxScaleDownRate?: number;
  /** scale-to-zero-grace-period (default 30 s). */
  scaleToZeroGraceMs?: number;
}

interface KpaMemory {
  samples: Array<{ at: number; concurrency: number }>;
  panicSince: number | null;
  /** The largest count wanted while panicking: panic never scales below it. */
  panicPods: number;
  zeroSince: number | null;
}

/** Samples a KPA keeps per node at most (a stable window of 1 s ticks is 60). */
const MAX_KPA_SAMPLES = 4096;

export class KnativeKpaPolicy implements ScalingPolicy {
  readonly name = 'knative-kpa';
  readonly selfDamped = true;
  private readonly options: Required<KpaOptions>;
  private readonly memory = new Map<string, KpaMemory>();
  private readonly now: () => number;

  constructor(options: KpaOptions, now: () => number = Date.now) {
    this.options = {
      utilization: 0.7,
      stableWindowMs: 60_000,
      panicWindowShare: 0.1,
      panicThreshold: 2,
      maxScaleUpRate: 1000,
      maxScaleDownRate: 2,
      scaleToZeroGraceMs: 30_000,
      ...options,
    };
    this.now = now;
  }

  decide(input: ScalingInput): ScalingDecision[] {
    const now = this.now();
    return input.nodes.map((node) => this.decideNode(node, now));
  }

  private decideNode(node: NodeInput, now: number): ScalingDecision {
    const o = this.options;
    let memory = this.memory.get(node.id);
    if (!memory) this.memory.set(node.id, (memory = { samples: [], panicSince: null, panicPods: 0, zeroSince: null }));
    const concurrency = node.queueDepth + node.arrivalRate * node.recordServiceS;
    memory.samples.push({ at: now, concurrency });
    while (memory.samples.length > MAX_KPA_SAMPLES || (memory.samples.length > 0 && now - memory.samples[0].at > o.stableWindowMs)) memory.samples.shift();
    const average = (windowMs: number) => {
      const inWindow = memory.samples.filter((s) => now - s.at < windowMs);
      return inWindow.reduce((sum, s) => sum + s.concurrency, 0) / Math.max(1, inWindow.length);
    };
    const stable = average(o.stableWindowMs);
    const panic = average(o.stableWindowMs * o.panicWindowShare);
    const perReplica = o.target * o.utilization;
    const ready = Math.max(1, node.replicas);
    const desiredStable = Math.ceil(stable / perReplica);
    const desiredPanic = Math.ceil(panic / perReplica);
    const rate = (wanted: number) => Math.max(Math.floor(ready / o.maxScaleDownRate), Math.min(Math.ceil(ready * o.maxScaleUpRate), wanted));
    const clamp = (n: number) => Math.max(node.min, Math.min(node.max, n));

    if (desiredPanic / ready >= o.panicThreshold) {
      if (memory.panicSince === null) memory.panicSince = now;
    } else if (memory.panicSince !== null && now - memory.panicSince >= o.stableWindowMs) {
      memory.panicSince = null;
      memory.panicPods = 0;
    }
    let wanted: number;
    let reason: string;
    if (memory.panicSince !== null) {
      wanted = Math.max(rate(desiredPanic), node.replicas, memory.panicPods);
      memory.panicPods = wanted;
      reason = `KPA panic: ${panic.toFixed(1)} in flight over ${(o.stableWindowMs * o.panicWindowShare) / 1000} s wants ${desiredPanic} (≥ ${o.panicThreshold * 100}% of ${ready}); never down while panicking`;
    } else {
      wanted = rate(desiredStable);
      reason = `KPA stable: ${stable.toFixed(1)} in flight over ${o.stableWindowMs / 1000} s / ${perReplica.toFixed(1)} per replica`;
    }
    if (stable === 0 && node.queueDepth === 0) {
      memory.zeroSince ??= now;
      if (node.min === 0 && now - memory.zeroSince >= o.scaleToZeroGraceMs) {
        return { node: node.id, replicas: 0, reason: `KPA: no concurrency for ${Math.round((now - memory.zeroSince) / 1000)} s ≥ the scale-to-zero grace period`, predictedMs: null };
      }
      wanted = Math.max(wanted, node.replicas > 0 ? 1 : 0);
    } else {
      memory.zeroSince = null;
      wanted = Math.max(wanted, 1);
    }
    return { node: node.id, replicas: clamp(wanted), reason, predictedMs: null };
  }
}

export class Ds2Policy implements ScalingPolicy {
  readonly name = 'ds2';

  decide(input: ScalingInput): ScalingDecision[] {
    const byId = new Map(input.nodes.map((n) => [n.id, n]));
    const dag = input.dag ?? Dag.fromPaths(input.paths);
    const targetIn = new Map<string, number>();
    const decisions = new Map<string, ScalingDecision>();
    for (const id of dag.order) {
      const node = byId.get(id);
      if (!node) continue;
      const upstream = dag.predecessorsOf(id).filter((u) => byId.has(u));
      // Source-fed: the rate the sources offer. Downstream: what its upstream operators emit at
      // their target rates — their inputs times the selectivity observed on the way here (what
      // this node receives over what they process; per edge counts are not measured).
      let target = node.arrivalRate;
      if (upstream.length > 0) {
        const processed = upstream.reduce((sum, u) => sum + (byId.get(u)!.processedRate ?? 0), 0);
        const selectivity = processed > 0 ? node.arrivalRate / processed : 1;
        target = upstream.reduce((sum, u) => sum + targetIn.get(u)!, 0) * selectivity;
      }
      targetIn.set(id, target);
      // Useful time: the isolate's CPU per record when hosts report it (DS2 instruments the operator's own time), else batch time over records.
      const useful = node.recordCpuS ?? node.recordServiceS;
      const trueRate = useful > 0 ? 1 / useful : Infinity;
      let wanted = target === 0 ? (node.queueDepth > 0 ? 1 : 0) : Math.ceil(target / trueRate);
      // DS2 says nothing of idling: to zero after the same idle window as the other policies.
      if (wanted === 0 && (node.min > 0 || node.idleMs < node.scaleToZeroAfterMs)) wanted = node.replicas > 0 ? 1 : 0;
      decisions.set(id, {
        node: id,
        replicas: Math.max(node.min, Math.min(node.max, wanted)),
        reason: `DS2: target input ${target.toFixed(1)}/s over a true rate of ${Number.isFinite(trueRate) ? trueRate.toFixed(1) : '∞'}/s per instance`,
        predictedMs: null,
      });
    }
    return input.nodes.map((n) => decisions.get(n.id) ?? { node: n.id, replicas: n.replicas, reason: 'DS2: not in the DAG', predictedMs: null });
  }
}
