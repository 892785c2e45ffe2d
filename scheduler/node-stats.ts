/** Counters a node's partition tasks keep, for the graph status endpoint and metrics. */
export class NodeStats {
  processed = 0;
  failed = 0;
  batches = 0;
  /** Timers whose onTimer ran (or that were dead-lettered). */
  timersFired = 0;
  /** Exponentially weighted mean of batch wall time (dispatch to commit), ms. */
  batchMs = 0;
  /** Exponentially weighted mean service time per record, ms. */
  recordMs = 0;
  lastError: string | null = null;
  lastErrorAt: number | null = null;

  recordBatch(records: number, elapsedMs: number): void {
    const alpha = 0.2;
    this.batches++;
    this.processed += records;
    this.batchMs = this.batches === 1 ? elapsedMs : this.batchMs * (1 - alpha) + elapsedMs * alpha;
    const perRecord = elapsedMs / Math.max(1, records);
    this.recordMs = this.batches === 1 ? perRecord : this.recordMs * (1 - alpha) + perRecord * alpha;
  }

  recordError(message: string): void {
    this.lastError = message;
    this.lastErrorAt = Date.now();
  }
}
