/**
 * End-to-end latency of records reaching sinks (sink commit time minus source ingest time), kept
 * as a ring of recent samples (bounded: `capacity`) with the time each was recorded, for
 * percentiles over all retained samples or over a recent window, plus an optional observer
 * (Prometheus histogram).
 */
export class LatencyRecorder {
  private readonly samples: Float64Array;
  private readonly at: Float64Array;
  private size = 0;
  private next = 0;
  observer: ((ms: number) => void) | null = null;

  constructor(capacity = 20_000) {
    this.samples = new Float64Array(capacity);
    this.at = new Float64Array(capacity);
  }

  record(ms: number, now = Date.now()): void {
    this.samples[this.next] = ms;
    this.at[this.next] = now;
    this.next = (this.next + 1) % this.samples.length;
    this.size = Math.min(this.size + 1, this.samples.length);
    this.observer?.(ms);
  }

  /** The p-th percentile (0-100) of the retained samples, or null with none. */
  percentile(p: number): number | null {
    return nearestRank(Array.from(this.samples.subarray(0, this.size)), p);
  }

  /** The p-th percentile of the samples recorded in the last `windowMs` before `now`, or null with none. */
  recentPercentile(p: number, windowMs: number, now = Date.now()): number | null {
    const recent: number[] = [];
    for (let i = 0; i < this.size; i++) if (now - this.at[i] <= windowMs) recent.push(this.samples[i]);
    return nearestRank(recent, p);
  }

  reset(): void {
    this.size = 0;
    this.next = 0;
  }
}

function nearestRank(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  values.sort((a, b) => a - b);
  return values[Math.min(values.length - 1, Math.max(0, Math.ceil((p / 100) * values.length) - 1))];
}
