/** Counters a node's partition tasks keep, for the graph status endpoint and metrics. */
export class NodeStats {
  processed = 0;
  failed = 0;
  batches = 0;
  /** Timers whose onTimer ran (or that were dead-lettered). */
  timersFired = 0;
  /** Exponentially weighted mean of batch wall time (dispatch to commit), ms. */
  batchMs = 0;
  /**
   * Service time per record, ms, weighted by records: the decayed sum of batch wall times over
   * the decayed sum of their records — DS2's "useful time" per record (Kalavri et al., OSDI 2018,
   * §3.1). A mean of per-batch ratios would weight a 1-record batch (mostly fixed dispatch and
   * commit cost) like a 1000-record one and overstate the per-record cost under light load.
   */
  recordMs = 0;
  lastError: string | null = null;
  lastErrorAt: number | null = null;
  private weightedMs = 0;
  private weightedRecords = 0;

  recordBatch(records: number, elapsedMs: number): void {
    const alpha = 0.2;
    this.batches++;
    this.processed += records;
    this.batchMs = this.batches === 1 ? elapsedMs : this.batchMs * (1 - alpha) + elapsedMs * alpha;
    this.weightedMs = this.weightedMs * (1 - alpha) + elapsedMs;
    this.weightedRecords = this.weightedRecords * (1 - alpha) + Math.max(1, records);
    this.recordMs = this.weightedMs / this.weightedRecords;
  }

  recordError(message: string): void {
    this.lastError = message;
    this.lastErrorAt = Date.now();
  }
}
