/**
 * Sizes every node of a graph once per decision interval: measures signals, asks the policy for
 * replica counts, and applies them through damping.
 *
 * Damping, against flapping:
 * - Scale up at once (next interval) when the policy wants more — like Knative's panic mode,
 *   which acts on a short window when load jumps. Because the model computes the needed count
 *   directly from measured rates (as DS2 does), one step usually reaches it: DS2 reports
 *   convergence in at most 3 steps; we target 2.
 * - Scale down only after the policy has wanted fewer replicas for a whole stable window
 *   (default 10 s), and then only to the largest count it wanted during that window — Knative's
 *   stable window (60 s there) plays the same role.
 * - Scale to zero only for nodes with replicas.min 0, after `scaleToZeroAfterMs` without input;
 *   the first record wakes the node (GraphRuntime.wake), its cold start counted in latency.
 */
import type { GraphRuntime } from '../graph-runtime.ts';
import type { ScalingDecision, ScalingPolicy } from './policy.ts';

export interface AutoscalerOptions {
  policy: ScalingPolicy;
  /** Host cores available to isolates. */
  cores: number;
  intervalMs?: number;
  stableWindowMs?: number;
  onDecision?(node: string, decision: AppliedDecision): void;
}

export interface AppliedDecision extends ScalingDecision {
  at: number;
  from: number;
  action: 'up' | 'down' | 'zero' | 'hold';
  measuredMs: number | null;
  /** Measured arrival rate (records/s) the decision was based on. */
  arrivalRate: number;
}

interface NodeMemory {
  lastHeads: number;
  lastAt: number;
  arrivalRate: number;
  lastActivityAt: number;
  lastProcessed: number;
  /** Desired counts below the current one, with their times, during the stable window. */
  lowerWanted: Array<{ at: number; replicas: number }>;
}

export class Autoscaler {
  readonly decisions = new Map<string, AppliedDecision>();
  private readonly runtime: GraphRuntime;
  private readonly options: Required<Omit<AutoscalerOptions, 'onDecision'>> & Pick<AutoscalerOptions, 'onDecision'>;
  private readonly memory = new Map<string, NodeMemory>();
  private timer: NodeJS.Timeout | null = null;

  constructor(runtime: GraphRuntime, options: AutoscalerOptions) {
    this.runtime = runtime;
    this.options = { intervalMs: 1000, stableWindowMs: 10_000, ...options };
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One decision round; public so tests and benches can drive it. */
  tick(now = Date.now()): AppliedDecision[] {
    const runtime = this.runtime;
    const nodes = runtime.spec.nodes.map((node) => {
      const signals = runtime.nodeSignals(node.id);
      let memory = this.memory.get(node.id);
      if (!memory) {
        memory = { lastHeads: signals.inputHeads, lastAt: now, arrivalRate: 0, lastActivityAt: now, lastProcessed: signals.processed, lowerWanted: [] };
        this.memory.set(node.id, memory);
      }
      const dt = Math.max(0.001, (now - memory.lastAt) / 1000);
      const instant = Math.max(0, signals.inputHeads - memory.lastHeads) / dt;
      memory.arrivalRate = memory.lastAt === now ? instant : 0.5 * memory.arrivalRate + 0.5 * instant;
      if (instant > 0 || signals.processed > memory.lastProcessed || signals.queueDepth > 0) memory.lastActivityAt = now;
      memory.lastHeads = signals.inputHeads;
      memory.lastProcessed = signals.processed;
      memory.lastAt = now;
      if (instant === 0 && signals.queueDepth === 0 && memory.arrivalRate < 0.05) memory.arrivalRate = 0;
      return {
        id: node.id,
        arrivalRate: memory.arrivalRate,
        recordServiceS: signals.recordMs / 1000,
        batchServiceS: signals.batchMs / 1000,
        partitions: signals.partitions,
        replicas: runtime.replicaCount(node.id),
        min: node.replicas.min,
        max: node.replicas.max,
        queueDepth: signals.queueDepth,
        idleMs: now - memory.lastActivityAt,
        scaleToZeroAfterMs: runtime.scaleToZeroAfterMs(node.id),
      };
    });
    const wanted = this.options.policy.decide({ nodes, paths: runtime.topology.nodePaths(), slo: runtime.spec.slo, cores: this.options.cores });
    const applied: AppliedDecision[] = [];
    for (const decision of wanted) {
      const node = nodes.find((n) => n.id === decision.node)!;
      const memory = this.memory.get(decision.node)!;
      const from = node.replicas;
      let target = decision.replicas;
      let action: AppliedDecision['action'] = 'hold';
      if (target > from) action = 'up';
      else if (target === 0 && from > 0) action = 'zero';
      else if (target < from) {
        memory.lowerWanted.push({ at: now, replicas: target });
        memory.lowerWanted = memory.lowerWanted.filter((w) => now - w.at <= this.options.stableWindowMs);
        const windowFull = now - memory.lowerWanted[0].at >= this.options.stableWindowMs - this.options.intervalMs;
        const everyTickLower = memory.lowerWanted.length >= Math.floor(this.options.stableWindowMs / this.options.intervalMs);
        if (windowFull && everyTickLower) {
          target = Math.max(...memory.lowerWanted.map((w) => w.replicas));
          action = 'down';
        } else {
          target = from;
        }
      }
      if (target >= from) memory.lowerWanted = target === from && decision.replicas < from ? memory.lowerWanted : [];
      if (action !== 'hold') {
        runtime.setReplicas(decision.node, target);
        memory.lowerWanted = [];
      }
      const measured = runtime.measuredLatencyMs(decision.node, node.arrivalRate);
      const result: AppliedDecision = {
        ...decision,
        replicas: target,
        reason: action === 'hold' && decision.replicas < from ? `holding ${from}: wants ${decision.replicas}, waiting out the ${this.options.stableWindowMs / 1000} s stable window (${decision.reason})` : decision.reason,
        at: now,
        from,
        action,
        measuredMs: measured,
        arrivalRate: node.arrivalRate,
      };
      this.decisions.set(decision.node, result);
      this.options.onDecision?.(decision.node, result);
      applied.push(result);
    }
    return applied;
  }
}
