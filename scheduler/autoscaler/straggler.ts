/**
 * Straggler detection: a replica whose per-record service time is an outlier among its node's
 * replicas (more than `factor` times the median of the others, over at least `minSamples`
 * batches). The runtime steers batches away from it and recycles its isolate (GraphRuntime).
 *
 * Steering keeps per-key order and delivery: a partition has one batch in flight at a time and
 * commits it before the next is read, so moving its next batch to another replica only changes
 * which isolate runs it; the state partition's epoch is bumped on the move, so the new replica
 * reloads the committed state (the same path as a rescale).
 */
export interface StragglerOptions {
  factor?: number;
  minSamples?: number;
}

interface ReplicaStats {
  ewmaMs: number;
  samples: number;
  inFlight: number;
  /** The replica's first batch (its isolate's cold start) is behind it. */
  warm: boolean;
}

export class StragglerDetector {
  private readonly replicas = new Map<number, ReplicaStats>();
  private readonly factor: number;
  private readonly minSamples: number;

  constructor(options: StragglerOptions = {}) {
    this.factor = options.factor ?? 3;
    this.minSamples = options.minSamples ?? 5;
  }

  private stats(replica: number): ReplicaStats {
    let stats = this.replicas.get(replica);
    if (!stats) this.replicas.set(replica, (stats = { ewmaMs: 0, samples: 0, inFlight: 0, warm: false }));
    return stats;
  }

  begin(replica: number): void {
    this.stats(replica).inFlight++;
  }

  /**
   * Records one batch's per-record service time on `replica`. The first batch of a fresh replica
   * (new, or recycled) is not counted: its isolate's cold start is the cost of the change
   * (scaling-cost.ts), not slowness, and would make every new replica look like a straggler.
   */
  end(replica: number, perRecordMs: number): void {
    const stats = this.stats(replica);
    stats.inFlight = Math.max(0, stats.inFlight - 1);
    if (!stats.warm) {
      stats.warm = true;
      return;
    }
    stats.ewmaMs = stats.samples === 0 ? perRecordMs : stats.ewmaMs * 0.7 + perRecordMs * 0.3;
    stats.samples++;
  }

  inFlight(replica: number): number {
    return this.replicas.get(replica)?.inFlight ?? 0;
  }

  isStraggler(replica: number, replicaCount: number): boolean {
    const stats = this.replicas.get(replica);
    if (replicaCount < 2 || !stats || stats.samples < this.minSamples) return false;
    const median = this.peersMs(replica, replicaCount);
    if (median === null) return false;
    return stats.ewmaMs > this.factor * Math.max(median, 0.001);
  }

  /** Batches measured on `replica` since it was last reset. */
  samples(replica: number): number {
    return this.replicas.get(replica)?.samples ?? 0;
  }

  /** Weighted mean service time per record on `replica` (ms), null before any batch. */
  perRecordMs(replica: number): number | null {
    const stats = this.replicas.get(replica);
    return stats && stats.samples > 0 ? stats.ewmaMs : null;
  }

  /** Median per-record service time of the replicas other than `replica` with enough samples (ms), null with none. */
  peersMs(replica: number, replicaCount: number): number | null {
    const others: number[] = [];
    for (const [id, s] of this.replicas) if (id !== replica && id < replicaCount && s.samples >= this.minSamples) others.push(s.ewmaMs);
    if (others.length === 0) return null;
    others.sort((a, b) => a - b);
    return others[Math.floor(others.length / 2)];
  }

  get minimumSamples(): number {
    return this.minSamples;
  }

  /** Forget a recycled replica: its fresh isolate starts with a clean record. */
  reset(replica: number): void {
    this.replicas.delete(replica);
  }

  /** Power of two choices: of two random healthy replicas other than `avoid`, the less loaded. */
  alternative(avoid: number, replicaCount: number, random: () => number = Math.random): number {
    const candidates = Array.from({ length: replicaCount }, (_, i) => i).filter((i) => i !== avoid && !this.isStraggler(i, replicaCount));
    if (candidates.length === 0) return avoid;
    const a = candidates[Math.floor(random() * candidates.length)];
    const b = candidates[Math.floor(random() * candidates.length)];
    return this.inFlight(a) <= this.inFlight(b) ? a : b;
  }
}

/**
 * One recycled straggler: what the decision expected to gain, per record, and what it got — the
 * slow replica's per-record time less its peers' when recycled, against its own less the fresh
 * isolate's once that has `minSamples` batches (null until then).
 */
export interface StragglerEvent {
  replica: number;
  at: string;
  /** The instance tag the recycled replica runs under now. */
  instanceTag: string;
  slowMsPerRecord: number;
  peersMsPerRecord: number;
  expectedGainMsPerRecord: number;
  gotGainMsPerRecord: number | null;
}

/** Straggler recycling events kept per node (the last ones, for the status). */
export const STRAGGLER_EVENTS = 20;
/** A replica recycled as a straggler is not recycled again for this long: its fresh isolate gets to show its speed. */
export const RECYCLE_COOLDOWN_MS = 5000;
