/**
 * Straggler detection: a replica whose per-record service time is an outlier among its node's
 * replicas (more than `factor` times the median of the others, over at least `minSamples`
 * batches). The runtime steers batches away from it and recycles its isolate (GraphRuntime).
 *
 * Service time here is the isolate's CPU time per record (isolated-vm's cpuTime, reported by the
 * host with each batch), not the batch's wall time: on a loaded machine every replica's batches
 * wait for a core now and then, and by the clock whichever waited most looks slow — mitigation
 * then steered and recycled healthy replicas and made the p99 worse. CPU time is what the
 * isolate itself spent: a replica slow on it is slow wherever it runs, and a fresh isolate (what
 * recycling gives) is the cure on offer. A replica slow only because its host is starved is
 * not one: steering would send its partitions to hosts as starved, and recycling keeps the host.
 *
 * Steering keeps per-key order and delivery: a partition has one batch in flight at a time and
 * commits it before the next is read, so moving its next batch to another replica only changes
 * which isolate runs it; the state partition's epoch is bumped on the move, so the new replica
 * reloads the committed state (the same path as a rescale).
 */
export interface StragglerOptions {
  /** How many times its siblings' median a replica's per-record time must exceed (default 3). */
  factor?: number;
  /** Batches measured before a replica is judged (default 5). */
  minSamples?: number;
  /**
   * Batches of a fresh isolate (new, or recycled) not measured at all (default 10): its first pays
   * the cold start, and the next ones run in V8's interpreter and baseline tiers until the
   * optimising compiler has seen the code hot — several times the CPU per record of a warm
   * sibling. Measured, every recycled replica looked like a straggler again.
   */
  warmupBatches?: number;
  /**
   * And not before it has run this long (default 5000 ms): on a loaded machine V8's optimising
   * compiler (background threads) falls behind, and fresh isolates were seen at 3x their warm
   * siblings' CPU per record for seconds after their first ten batches.
   */
  warmupMs?: number;
  /** The clock (tests). */
  now?: () => number;
}

/** Batches a replica's typical per-record time is taken over. */
const RECENT_BATCHES = 9;

interface ReplicaStats {
  /** The records-weighted median per-record time of its last RECENT_BATCHES batches (ms). */
  typicalMs: number;
  recent: Array<{ ms: number; records: number }>;
  samples: number;
  inFlight: number;
  /** Batches of its warm-up still to ignore. */
  warmup: number;
  /** When its isolate was first seen (its warm-up ends warmupMs later). */
  startedAt: number;
}

export class StragglerDetector {
  private readonly replicas = new Map<number, ReplicaStats>();
  private readonly factor: number;
  private readonly minSamples: number;
  private readonly warmupBatches: number;
  private readonly warmupMs: number;
  private readonly now: () => number;

  constructor(options: StragglerOptions = {}) {
    this.factor = options.factor ?? 3;
    this.minSamples = options.minSamples ?? 5;
    this.warmupBatches = options.warmupBatches ?? 10;
    this.warmupMs = options.warmupMs ?? 5000;
    this.now = options.now ?? Date.now;
  }

  private stats(replica: number): ReplicaStats {
    let stats = this.replicas.get(replica);
    if (!stats) this.replicas.set(replica, (stats = { typicalMs: 0, recent: [], samples: 0, inFlight: 0, warmup: this.warmupBatches, startedAt: this.now() }));
    return stats;
  }

  begin(replica: number): void {
    this.stats(replica).inFlight++;
  }

  /**
   * Records one batch's per-record service time on `replica` (its isolate CPU time; wall time
   * when the host did not report CPU). The first `warmupBatches` batches of a fresh replica
   * (new, or recycled) are not counted: its isolate's cold start is the cost of the change
   * (scaling-cost.ts) and its JIT warm-up is not slowness; either would make every new replica
   * look like a straggler.
   */
  end(replica: number, perRecordMs: number, records = 1): void {
    const stats = this.stats(replica);
    stats.inFlight = Math.max(0, stats.inFlight - 1);
    if (stats.warmup > 0 || this.now() - stats.startedAt < this.warmupMs) {
      stats.warmup = Math.max(0, stats.warmup - 1);
      return;
    }
    // A median, not a mean: one batch's CPU time can spike several-fold (a GC, a core shared with a
    // hyperthread sibling) and a mean would flag a healthy replica after a few such batches; a
    // straggler is slow batch after batch. Weighted by records: a 1-record batch is mostly the
    // batch's fixed cost, and a replica that got many of them (a quiet partition) is not slow.
    stats.recent.push({ ms: perRecordMs, records: Math.max(1, records) });
    if (stats.recent.length > RECENT_BATCHES) stats.recent.shift();
    stats.typicalMs = weightedMedian(stats.recent);
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
    return stats.typicalMs > this.factor * Math.max(median, 0.001);
  }

  /** Batches measured on `replica` since it was last reset. */
  samples(replica: number): number {
    return this.replicas.get(replica)?.samples ?? 0;
  }

  /** Typical service time per record on `replica` (ms: the median of its recent batches), null before any batch. */
  perRecordMs(replica: number): number | null {
    const stats = this.replicas.get(replica);
    return stats && stats.samples > 0 ? stats.typicalMs : null;
  }

  /** Median per-record service time of the replicas other than `replica` with enough samples (ms), null with none. */
  peersMs(replica: number, replicaCount: number): number | null {
    const others: number[] = [];
    for (const [id, s] of this.replicas) if (id !== replica && id < replicaCount && s.samples >= this.minSamples) others.push(s.typicalMs);
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

function weightedMedian(samples: Array<{ ms: number; records: number }>): number {
  const sorted = [...samples].sort((a, b) => a.ms - b.ms);
  const half = sorted.reduce((sum, s) => sum + s.records, 0) / 2;
  let seen = 0;
  for (const s of sorted) {
    seen += s.records;
    if (seen >= half) return s.ms;
  }
  return sorted[sorted.length - 1]?.ms ?? 0;
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
