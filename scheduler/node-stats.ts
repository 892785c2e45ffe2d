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
  /**
   * What a batch costs whatever its size, ms: the intercept of batch time over records (decayed
   * least squares over the same batches), i.e. dispatch, the isolate round trip and the commit.
   * The latency model's floor: a batch's own size is not one, since batches grow with the backlog
   * (a worker reads what piled up while its last batch ran) and shrink again with more replicas.
   * When batch sizes have not varied enough to tell intercept from slope, the mean batch time less
   * one record's share (exact for batches of one record).
   */
  batchOverheadMs = 0;
  /**
   * What one more record adds to a batch, ms: the slope of the same fit (recordMs when the fit
   * cannot tell). Below recordMs when a fixed per-batch cost (a host round trip, waiting for the
   * host's other isolates) is amortised over the batch: what a replica spends per record as
   * batches grow with load, the latency model's service time. DS2's useful time stays recordMs.
   */
  recordMarginalMs = 0;
  /**
   * The isolate's CPU time per record, ms, weighted by records like recordMs; null until a host
   * reported one. Unlike the batch's wall time it does not stretch when the machine is busy (a
   * host waiting for a core, the control plane's round trip): what the node's records cost the
   * cores, the latency model's and DS2's service time.
   */
  recordCpuMs: number | null = null;
  lastError: string | null = null;
  lastErrorAt: number | null = null;
  private timedBatches = 0;
  private cpuMs = 0;
  private cpuRecords = 0;
  private weightedMs = 0;
  private weightedRecords = 0;
  private fit = { w: 0, n: 0, t: 0, nn: 0, nt: 0 };

  /**
   * One committed batch. A batch that paid its isolate's cold start (`coldStart`) counts as
   * processed but not in the service times: a 1.5 s module load is the cost of a replica change
   * (scaling-cost.ts), and as service it would make the node look saturated right after it woke.
   */
  recordBatch(records: number, elapsedMs: number, coldStart = false): void {
    const alpha = 0.2;
    this.batches++;
    this.processed += records;
    if (coldStart) return;
    this.batchMs = this.timedBatches++ === 0 ? elapsedMs : this.batchMs * (1 - alpha) + elapsedMs * alpha;
    this.weightedMs = this.weightedMs * (1 - alpha) + elapsedMs;
    this.weightedRecords = this.weightedRecords * (1 - alpha) + Math.max(1, records);
    this.recordMs = this.weightedMs / this.weightedRecords;
    const n = Math.max(1, records);
    const f = this.fit;
    f.w = f.w * (1 - alpha) + 1;
    f.n = f.n * (1 - alpha) + n;
    f.t = f.t * (1 - alpha) + elapsedMs;
    f.nn = f.nn * (1 - alpha) + n * n;
    f.nt = f.nt * (1 - alpha) + n * elapsedMs;
    const spread = f.w * f.nn - f.n * f.n;
    const fallback = Math.max(0, this.batchMs - this.recordMs);
    // Batch sizes must differ by about a record (relative variance ≥ 1) for the slope to mean anything.
    const slope = spread < f.w * f.w ? NaN : (f.w * f.nt - f.n * f.t) / spread;
    const intercept = (f.t - slope * f.n) / f.w;
    const fits = slope > 0 && slope <= this.recordMs && intercept >= 0;
    this.batchOverheadMs = fits ? Math.min(intercept, this.batchMs) : fallback;
    this.recordMarginalMs = fits ? slope : this.recordMs;
  }

  /** One batch's isolate CPU time, as its host reported it. */
  recordCpu(records: number, cpuMs: number): void {
    if (!Number.isFinite(cpuMs) || cpuMs < 0) return;
    const alpha = 0.2;
    this.cpuMs = this.cpuMs * (1 - alpha) + cpuMs;
    this.cpuRecords = this.cpuRecords * (1 - alpha) + Math.max(1, records);
    this.recordCpuMs = this.cpuMs / this.cpuRecords;
  }

  recordError(message: string): void {
    this.lastError = message;
    this.lastErrorAt = Date.now();
  }
}
