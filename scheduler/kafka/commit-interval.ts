/**
 * How often a Kafka edge commits: `commitIntervalMs` on the edge, a number of ms or "auto".
 *
 * Exactly-once outputs become visible to read_committed readers only when their transaction
 * commits, so each exactly-once hop adds up to one interval to a record's latency, and a longer
 * interval buys throughput (fewer commits). "auto" predicts a hop's p99 latency as
 *
 *     predicted p99 ≈ measured p99 of (processing + commit) per batch + interval
 *
 * and picks the largest interval that keeps the prediction within the hop's share of the graph's
 * SLO (its `latencyMs` divided by the Kafka hops on the graph's longest path):
 *
 *     interval = clamp(floor(SLO / hops − measured p99), 1, 1000) ms
 *
 * re-evaluated on every batch over the last 256 measurements; before the first measurement it
 * starts at half the hop's budget. Default for a number-less edge: 100 ms (Kafka Streams' EOS
 * default). At-most-once commits before every batch and has no interval.
 */
export const DEFAULT_COMMIT_INTERVAL_MS = 100;
export const AUTO_MIN_INTERVAL_MS = 1;
export const AUTO_MAX_INTERVAL_MS = 1000;
const SAMPLES = 256;

export interface CommitIntervalOptions {
  setting: number | 'auto' | undefined;
  /** The graph's SLO latency (required for "auto"). */
  sloLatencyMs?: number;
  /** Kafka hops (nodes consuming Kafka edges) on the graph's longest path: they share the SLO. */
  hops: number;
}

export class CommitInterval {
  private readonly auto: boolean;
  private readonly budgetMs: number;
  private readonly samples = new Float64Array(SAMPLES);
  private count = 0;
  private current: number;

  constructor(options: CommitIntervalOptions) {
    this.auto = options.setting === 'auto';
    this.budgetMs = (options.sloLatencyMs ?? 100) / Math.max(1, options.hops);
    this.current = this.auto ? clamp(Math.floor(this.budgetMs / 2)) : typeof options.setting === 'number' ? options.setting : DEFAULT_COMMIT_INTERVAL_MS;
  }

  get ms(): number {
    return this.current;
  }

  get isAuto(): boolean {
    return this.auto;
  }

  /** A batch's processing plus commit time, ms. */
  observe(latencyMs: number): void {
    if (!this.auto) return;
    this.samples[this.count++ % SAMPLES] = latencyMs;
    this.current = clamp(Math.floor(this.budgetMs - this.p99()));
  }

  /** p99 of the retained measurements (0 with none). */
  p99(): number {
    const n = Math.min(this.count, SAMPLES);
    if (n === 0) return 0;
    const sorted = Array.from(this.samples.subarray(0, n)).sort((a, b) => a - b);
    return sorted[Math.min(n - 1, Math.ceil(0.99 * n) - 1)];
  }
}

function clamp(ms: number): number {
  return Math.min(AUTO_MAX_INTERVAL_MS, Math.max(AUTO_MIN_INTERVAL_MS, ms));
}
