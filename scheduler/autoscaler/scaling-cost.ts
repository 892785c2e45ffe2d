/**
 * What a replica change costs, measured, and whether a change pays for itself.
 *
 * Adding a replica costs the extra time of its first batch over the node's usual batch: the cold
 * start of its isolate, the state partitions shipped to it, the partitions moved onto it (their
 * state epoch bumps, so the isolate reloads). Removing one costs the same on the replicas that
 * take its partitions over: the extra time of their first batch after the change. Both are kept
 * as exponentially weighted means per node (GraphRuntime measures them; unmeasured until a change
 * has happened).
 *
 * The decision is the ski-rental rule (Karlin et al., "Competitive randomized algorithms for
 * non-uniform problems", SODA 1990): buy (scale) once renting (riding the burst out) has cost as
 * much as buying would. A scale-up waits until the load that asks for it has lasted as long as
 * adding and later removing the replica cost; a burst shorter than that is over before the new
 * replica pays back its cold start — worse, the partitions moved onto it wait that cold start
 * out, so scaling into a short burst raises its latency. This rule is 2-competitive: it never
 * costs more than twice what an oracle knowing the burst's length would pay.
 *
 * Renting is only allowed while it is safe for the SLO: the node must be able to stay at its
 * current count until the next decision without its backlog alone outlasting the SLO
 * (`canWaitMs`, from the policy: unbounded when the current replicas keep up, else the time until
 * the growing backlog takes longer than the SLO to serve). A node that cannot wait scales at once.
 * A scale-down likewise waits at least the round-trip cost, on top of the stable window.
  */
export interface ScalingCostSnapshot {
  /** Measured extra time of a new replica's first batch (ms), null until measured. */
  addMs: number | null;
  /** Measured extra time on the replicas taking over a removed one's partitions (ms), null until measured. */
  removeMs: number | null;
  adds: number;
  removes: number;
}

const ALPHA = 0.3;

export class ScalingCost {
  private addMs: number | null = null;
  private removeMs: number | null = null;
  private adds = 0;
  private removes = 0;

  observeAdd(extraMs: number): void {
    if (!Number.isFinite(extraMs)) return;
    const ms = Math.max(0, extraMs);
    this.addMs = this.addMs === null ? ms : this.addMs * (1 - ALPHA) + ms * ALPHA;
    this.adds++;
  }

  observeRemove(extraMs: number): void {
    if (!Number.isFinite(extraMs)) return;
    const ms = Math.max(0, extraMs);
    this.removeMs = this.removeMs === null ? ms : this.removeMs * (1 - ALPHA) + ms * ALPHA;
    this.removes++;
  }

  snapshot(): ScalingCostSnapshot {
    return { addMs: round(this.addMs), removeMs: round(this.removeMs), adds: this.adds, removes: this.removes };
  }
}

export interface ScaleUpQuestion {
  cost: ScalingCostSnapshot;
  /** How long the policy has wanted more replicas than the node has, without a break (ms). */
  wantedForMs: number;
  /**
   * How long the node can stay at its current count before its backlog alone would break the SLO
   * (ms): Infinity when the current replicas keep up (ScalingDecision.canWaitMs).
   */
  canWaitMs: number;
  /** Until the next decision (ms): renting must be safe at least this long. */
  intervalMs: number;
}

/** Why a scale-up should wait (ski rental), or null when it should happen now. */
export function holdScaleUp(question: ScaleUpQuestion): string | null {
  const { cost, wantedForMs, canWaitMs, intervalMs } = question;
  if (cost.addMs === null || !(canWaitMs >= intervalMs)) return null;
  const roundTripMs = cost.addMs + (cost.removeMs ?? 0);
  if (wantedForMs >= roundTripMs) return null;
  const safe = Number.isFinite(canWaitMs) ? `the backlog stays within the SLO for ~${Math.round(canWaitMs)} ms more` : 'the current replicas keep up';
  return `a replica costs ~${Math.round(cost.addMs)} ms to add and ~${Math.round(cost.removeMs ?? 0)} ms to remove; the load asking for it has lasted ${Math.round(wantedForMs)} ms and ${safe} — a burst this short ends before the change pays (ski rental)`;
}

/** How long a scale-down waits at least (ms): the stable window, or the round-trip cost of a replica if longer. */
export function scaleDownWaitMs(cost: ScalingCostSnapshot, stableWindowMs: number): number {
  return Math.max(stableWindowMs, (cost.addMs ?? 0) + (cost.removeMs ?? 0));
}

function round(ms: number | null): number | null {
  return ms === null ? null : Math.round(ms * 10) / 10;
}
