/**
 * Straggler detection: a replica whose per-record service time is an outlier among its node's
 * replicas (more than `factor` times the median of the others, over at least `minSamples`
 * batches). The runtime steers batches away from it and recycles its isolate.
 */
export interface StragglerOptions {
  factor?: number;
  minSamples?: number;
}

interface ReplicaStats {
  ewmaMs: number;
  samples: number;
  inFlight: number;
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
    if (!stats) this.replicas.set(replica, (stats = { ewmaMs: 0, samples: 0, inFlight: 0 }));
    return stats;
  }

  begin(replica: number): void {
    this.stats(replica).inFlight++;
  }

  /** Records one batch's per-record service time on `replica`. */
  end(replica: number, perRecordMs: number): void {
    const stats = this.stats(replica);
    stats.inFlight = Math.max(0, stats.inFlight - 1);
    stats.ewmaMs = stats.samples === 0 ? perRecordMs : stats.ewmaMs * 0.7 + perRecordMs * 0.3;
    stats.samples++;
  }

  inFlight(replica: number): number {
    return this.replicas.get(replica)?.inFlight ?? 0;
  }

  isStraggler(replica: number, replicaCount: number): boolean {
    const stats = this.replicas.get(replica);
    if (replicaCount < 2 || !stats || stats.samples < this.minSamples) return false;
    const others: number[] = [];
    for (const [id, s] of this.replicas) if (id !== replica && id < replicaCount && s.samples >= this.minSamples) others.push(s.ewmaMs);
    if (others.length === 0) return false;
    others.sort((a, b) => a - b);
    const median = others[Math.floor(others.length / 2)];
    return stats.ewmaMs > this.factor * Math.max(median, 0.001);
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
