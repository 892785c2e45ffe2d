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
 * A policy that keeps its own windows (`selfDamped`: Knative's KPA in baselines.ts) is applied
 * as it answers.
 *
 * With a policy that weighs scaling cost (`costAware` decisions: ours), a scale-up the current
 * replicas can live without waits until it pays for itself, and a scale-down waits at least the
 * round-trip cost of a replica (scaling-cost.ts); `reason` says so when it holds back.
 *
 * Resources: the policy gets the cores of ready hosts (a restarting host runs nothing) and the
 * memory the hosts give isolates, against each replica's memoryLimitMb; `slo()` says whether the
 * SLO is met, predicted, or unreachable on this machine, for the status, metrics and console.
 */
import { withDefaults } from '../../runtime/options.ts';
import type { GraphRuntime } from '../graph-runtime.ts';
import type { NodeInput, ResourceBudget, ScalingDecision, ScalingPolicy } from './policy.ts';
import { holdScaleUp, scaleDownWaitMs } from './scaling-cost.ts';
import type { SloStatus } from './slo-status.ts';

export interface AutoscalerOptions {
  policy: ScalingPolicy;
  /** Host cores available to isolates. */
  cores: number;
  /** Decision interval (default 1000 ms). */
  intervalMs?: number;
  /** How long the policy must want fewer replicas before a scale-down (default 10000 ms). */
  stableWindowMs?: number;
  /** What the machine offers now: ready hosts, isolate memory (default: `cores` hosts, memory unbounded). */
  resources?(): ResourceBudget;
  /** Memory one replica of the node may use (its function's memoryLimitMb), when known. */
  memoryMbOf?(node: string): number | undefined;
  onDecision?(node: string, decision: AppliedDecision): void;
  /** After each decision round of a graph with an SLO: what it saw of the SLO and the machine. */
  onSlo?(slo: SloStatus): void;
}

export const DEFAULT_AUTOSCALE_INTERVAL_MS = 1000;
export const DEFAULT_STABLE_WINDOW_MS = 10_000;

export type { SloStatus } from './slo-status.ts';

export interface AppliedDecision extends ScalingDecision {
  at: number;
  from: number;
  action: 'up' | 'down' | 'zero' | 'hold';
  measuredMs: number | null;
  /** Measured arrival rate (records/s) the decision was based on. */
  arrivalRate: number;
  /** Records waiting on the node's inputs when it was made. */
  queueDepth: number;
}

interface NodeMemory {
  lastHeads: number;
  lastAt: number;
  arrivalRate: number;
  lastActivityAt: number;
  lastProcessed: number;
  processedRate: number;
  /** Desired counts below the current one, with their times, during the stable window. */
  lowerWanted: Array<{ at: number; replicas: number }>;
  /** Since when the policy has wanted more replicas than the node has (null: it does not). */
  upWantedSince: number | null;
}

/** Replica changes kept in `history` (for the status and the console's timeline). */
export const DECISION_HISTORY = 50;

export class Autoscaler {
  readonly decisions = new Map<string, AppliedDecision>();
  /** The last DECISION_HISTORY decisions that changed a replica count, oldest first. */
  readonly history: AppliedDecision[] = [];
  private readonly runtime: GraphRuntime;
  private readonly options: Required<Omit<AutoscalerOptions, 'onDecision' | 'onSlo' | 'resources' | 'memoryMbOf'>> & Pick<AutoscalerOptions, 'onDecision' | 'onSlo' | 'resources' | 'memoryMbOf'>;
  private lastSlo: SloStatus | null = null;
  private readonly memory = new Map<string, NodeMemory>();
  private timer: NodeJS.Timeout | null = null;

  constructor(runtime: GraphRuntime, options: AutoscalerOptions) {
    this.runtime = runtime;
    // `undefined` (a CLI flag left unset) keeps the default; so does a value that is no duration.
    const merged = withDefaults({ intervalMs: DEFAULT_AUTOSCALE_INTERVAL_MS, stableWindowMs: DEFAULT_STABLE_WINDOW_MS }, options);
    this.options = {
      ...merged,
      intervalMs: isDuration(merged.intervalMs) && merged.intervalMs > 0 ? merged.intervalMs : DEFAULT_AUTOSCALE_INTERVAL_MS,
      stableWindowMs: isDuration(merged.stableWindowMs) ? merged.stableWindowMs : DEFAULT_STABLE_WINDOW_MS,
    };
  }

  get intervalMs(): number {
    return this.options.intervalMs;
  }

  get stableWindowMs(): number {
    return this.options.stableWindowMs;
  }

  /** Ticks every interval; a tick that throws is reported in the graph's status and the next one runs. */
  start(): void {
    if (this.timer) return;
    this.timer = setInterval(this.runtime.faults.wrap('autoscaler.tick', {}, () => this.tick()), this.options.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** The SLO as the last decision saw it; null for a graph without an SLO or before the first decision. */
  slo(): SloStatus | null {
    return this.lastSlo;
  }

  /** One decision round; public so tests and benches can drive it. */
  tick(now = Date.now()): AppliedDecision[] {
    const runtime = this.runtime;
    const budget = this.resources();
    const cores = Math.max(0, Math.min(this.options.cores, budget.readyHosts));
    const nodes = runtime.spec.nodes.map((node): NodeInput => {
      const signals = runtime.nodeSignals(node.id);
      const memoryMb = this.options.memoryMbOf?.(node.id);
      let memory = this.memory.get(node.id);
      if (!memory) {
        memory = { lastHeads: signals.inputHeads, lastAt: now, arrivalRate: 0, lastActivityAt: now, lastProcessed: signals.processed, processedRate: 0, lowerWanted: [], upWantedSince: null };
        this.memory.set(node.id, memory);
      }
      const dt = Math.max(0.001, (now - memory.lastAt) / 1000);
      const instant = Math.max(0, signals.inputHeads - memory.lastHeads) / dt;
      // Rises are taken whole, falls smoothed: a step shows at its full rate on the first full
      // interval after it, so the policy sizes for it in one decision instead of chasing an
      // average that climbs halfway per tick; a dip of one interval does not look like a trough
      // (scale-downs wait out the stable window anyway).
      memory.arrivalRate = memory.lastAt === now || instant >= memory.arrivalRate ? instant : 0.5 * memory.arrivalRate + 0.5 * instant;
      const processedNow = Math.max(0, signals.processed - memory.lastProcessed) / dt;
      memory.processedRate = memory.lastAt === now ? processedNow : 0.5 * memory.processedRate + 0.5 * processedNow;
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
        batchOverheadS: signals.batchOverheadMs / 1000,
        marginalServiceS: signals.recordMarginalMs / 1000,
        ...(signals.recordCpuMs !== null ? { recordCpuS: signals.recordCpuMs / 1000 } : {}),
        commitDelayS: signals.commitDelayMs / 1000,
        partitions: signals.partitions,
        replicas: runtime.replicaCount(node.id),
        min: node.replicas.min,
        max: node.replicas.max,
        queueDepth: signals.queueDepth,
        idleMs: now - memory.lastActivityAt,
        scaleToZeroAfterMs: runtime.scaleToZeroAfterMs(node.id),
        processedRate: memory.processedRate,
        ...(memoryMb !== undefined ? { memoryMb } : {}),
      };
    });
    const slo = runtime.spec.slo;
    // Sink commits are stamped with the wall clock; a test driving tick(now) with its own clock gets null here.
    const measuredMs = slo ? runtime.latency.recentPercentile(slo.percentile, 2 * this.options.intervalMs) : null;
    const wanted = this.options.policy.decide({ nodes, dag: runtime.topology.nodeDag, slo, cores, memoryBudgetMb: budget.memoryMb, measuredMs });
    const byId = new Map(nodes.map((n) => [n.id, n]));
    const applied: AppliedDecision[] = [];
    for (const decision of wanted) {
      const node = byId.get(decision.node);
      const memory = this.memory.get(decision.node);
      if (!node || !memory) continue; // a policy naming a node the graph does not have
      const from = node.replicas;
      let target = decision.replicas;
      let action: AppliedDecision['action'] = 'hold';
      let held: string | null = null;
      const cost = runtime.scalingCost(decision.node);
      if (target > from) memory.upWantedSince ??= now;
      else memory.upWantedSince = null;
      if (target > from) {
        // The load asking for more was measured over the interval before this tick.
        const wantedForMs = now - memory.upWantedSince! + this.options.intervalMs;
        const canWaitMs = decision.canWaitMs ?? (decision.currentMs === null || decision.currentMs === undefined ? 0 : Infinity);
        held = decision.costAware && from > 0 ? holdScaleUp({ cost, wantedForMs, canWaitMs, intervalMs: this.options.intervalMs }) : null;
        if (held) target = from;
        else action = 'up';
      } else if (target === 0 && from > 0) action = 'zero';
      else if (target < from && this.options.policy.selfDamped) action = 'down';
      else if (target < from) {
        const windowMs = decision.costAware ? scaleDownWaitMs(cost, this.options.stableWindowMs) : this.options.stableWindowMs;
        const lower = this.lowerForWindow(memory, now, target, windowMs);
        if (lower !== null) {
          target = lower;
          action = 'down';
        } else {
          target = from;
        }
      }
      if (target >= from) memory.lowerWanted = target === from && decision.replicas < from ? memory.lowerWanted : [];
      if (action !== 'hold') {
        runtime.setReplicas(decision.node, target);
        memory.lowerWanted = [];
        if (action === 'up') memory.upWantedSince = null;
      }
      const measured = runtime.measuredLatencyMs(decision.node, node.arrivalRate);
      const result: AppliedDecision = {
        ...decision,
        replicas: target,
        reason: held
          ? `holding ${from}: wants ${decision.replicas}, but ${held} (${decision.reason})`
          : action === 'hold' && decision.replicas < from
            ? `holding ${from}: wants ${decision.replicas}, waiting out the ${this.options.stableWindowMs / 1000} s stable window${decision.costAware && scaleDownWaitMs(cost, this.options.stableWindowMs) > this.options.stableWindowMs ? ` (stretched to ${Math.round(scaleDownWaitMs(cost, this.options.stableWindowMs))} ms: the round-trip cost of a replica)` : ''} (${decision.reason})`
            : decision.reason,
        at: now,
        from,
        action,
        measuredMs: measured,
        arrivalRate: node.arrivalRate,
        queueDepth: node.queueDepth,
      };
      this.decisions.set(decision.node, result);
      if (action !== 'hold') {
        this.history.push(result);
        if (this.history.length > DECISION_HISTORY) this.history.shift();
      }
      this.options.onDecision?.(decision.node, result);
      applied.push(result);
    }
    this.lastSlo = slo ? this.sloStatus(slo, applied, measuredMs, cores, budget, nodes) : null;
    if (this.lastSlo) this.options.onSlo?.(this.lastSlo);
    return applied;
  }

  private resources(): ResourceBudget {
    try {
      return this.options.resources?.() ?? { readyHosts: this.options.cores };
    } catch {
      return { readyHosts: this.options.cores };
    }
  }

  private sloStatus(slo: { latencyMs: number; percentile: number }, applied: AppliedDecision[], measuredMs: number | null, cores: number, budget: ResourceBudget, nodes: NodeInput[]): SloStatus {
    const predicted = new Map(applied.map((d) => [d.node, d.predictedMs]));
    const known = applied.every((d) => d.predictedMs !== null);
    const { weight } = this.runtime.topology.nodeDag.longestPath((id) => predicted.get(id) ?? 0);
    const unreachable = applied.find((d) => d.unreachable)?.unreachable ?? null;
    const memoryUsedMb = nodes.some((n) => n.memoryMb !== undefined) ? nodes.reduce((sum, n) => sum + this.runtime.replicaCount(n.id) * (n.memoryMb ?? 0), 0) : null;
    return {
      latencyMs: slo.latencyMs,
      percentile: slo.percentile,
      measuredMs: measuredMs === null ? null : Math.round(measuredMs * 100) / 100,
      predictedMs: known && Number.isFinite(weight) ? Math.round(weight * 100) / 100 : null,
      reachable: unreachable === null,
      reason: unreachable,
      resources: { cores, readyHosts: budget.readyHosts, memoryBudgetMb: budget.memoryMb ?? null, memoryUsedMb },
    };
  }

  /**
   * Notes that the policy wants `replicas` (fewer than now) at `now`; returns the count to scale
   * down to once it has wanted fewer on every tick of a whole stable window (the largest count it
   * wanted in that window), else null. Safe with any window: an empty one never scales down.
   */
  private lowerForWindow(memory: NodeMemory, now: number, replicas: number, stableWindowMs: number): number | null {
    const { intervalMs } = this.options;
    memory.lowerWanted.push({ at: now, replicas });
    memory.lowerWanted = memory.lowerWanted.filter((w) => now - w.at <= stableWindowMs);
    const oldest = memory.lowerWanted[0];
    if (oldest === undefined) return null;
    const windowFull = now - oldest.at >= stableWindowMs - intervalMs;
    const everyTickLower = memory.lowerWanted.length >= Math.floor(stableWindowMs / intervalMs);
    if (!windowFull || !everyTickLower) return null;
    let largest = 0;
    for (const w of memory.lowerWanted) largest = Math.max(largest, w.replicas);
    return largest;
  }
}

function isDuration(value: unknown): value is number {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0;
}
