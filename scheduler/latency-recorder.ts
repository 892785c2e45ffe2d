/**
 * End-to-end latency of records reaching sinks (sink commit time minus source ingest time), kept
 * as a ring of recent samples for percentiles, plus an optional observer (Prometheus histogram).
 */
export class LatencyRecorder {
  private readonly samples: Float64Array;
  private size = 0;
  private next = 0;
  observer: ((ms: number) => void) | null = null;

  constructor(capacity = 20_000) {
    this.samples = new Float64Array(capacity);
  }

  record(ms: number): void {
    this.samples[this.next] = ms;
    this.next = (this.next + 1) % this.samples.length;
    this.size = Math.min(this.size + 1, this.samples.length);
    this.observer?.(ms);
  }

  /** The p-th percentile (0-100) of the retained samples, or null with none. */
  percentile(p: number): number | null {
    if (this.size === 0) return null;
    const sorted = Array.from(this.samples.subarray(0, this.size)).sort((a, b) => a - b);
    return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
  }

  reset(): void {
    this.size = 0;
    this.next = 0;
  }
}
