/**
 * Metrics and console lines of the invokes a host served itself (its HTTP plane), aggregated in
 * the host and sent to the control plane as deltas every FLUSH_INTERVAL_MS, so that /metrics and
 * `GET /v1/functions/{name}/logs` stay the control plane's and survive host restarts. A call
 * costs the host a few additions; the control plane pays per function and flush, not per call
 * (except the duration histogram, replayed per call: see `replayDurations`).
 *
 * Bounded: one tally per function served since the last flush (≤ the routing table, MAX_FUNCTIONS)
 * and at most MAX_PENDING_LOG_LINES / MAX_PENDING_LOG_BYTES console lines; beyond, lines are
 * dropped and counted (`droppedLogLines`, logged by the control plane).
 */
import type { LogLine } from './host/function-instance.ts';

/** Buckets of tributary_invocation_duration_seconds, shared by hosts and the control plane's histogram. */
export const INVOCATION_DURATION_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
export const FLUSH_INTERVAL_MS = 100;
const MAX_PENDING_LOG_LINES = 10_000;
const MAX_PENDING_LOG_BYTES = 4 * 1024 * 1024;

export interface CallTally {
  function: string;
  /** Calls by outcome: `ok` or the error code. */
  outcomes: Record<string, number>;
  coldStarts: number;
  /** Per bucket (the last one is +Inf): how many calls fell in it and the sum of their durations in seconds. */
  bucketCounts: number[];
  bucketSums: number[];
}

export interface InvokeTelemetry {
  telemetry: true;
  calls: CallTally[];
  logs: Array<{ function: string; version: number; lines: LogLine[] }>;
  droppedLogLines: number;
}

/** The host's side: tallies calls and holds console lines until the next flush. */
export class TelemetryTally {
  private calls = new Map<string, CallTally>();
  private logs: InvokeTelemetry['logs'] = [];
  private logLines = 0;
  private logBytes = 0;
  private dropped = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly send: (telemetry: InvokeTelemetry) => void;

  constructor(send: (telemetry: InvokeTelemetry) => void) {
    this.send = send;
  }

  record(name: string, version: number, outcome: string, seconds: number, coldStart: boolean, logs: LogLine[]): void {
    let tally = this.calls.get(name);
    if (tally === undefined) {
      const buckets = INVOCATION_DURATION_BUCKETS_S.length + 1;
      tally = { function: name, outcomes: Object.create(null), coldStarts: 0, bucketCounts: new Array(buckets).fill(0), bucketSums: new Array(buckets).fill(0) };
      this.calls.set(name, tally);
    }
    tally.outcomes[outcome] = (tally.outcomes[outcome] ?? 0) + 1;
    if (coldStart) tally.coldStarts++;
    let bucket = 0;
    while (bucket < INVOCATION_DURATION_BUCKETS_S.length && seconds > INVOCATION_DURATION_BUCKETS_S[bucket]) bucket++;
    tally.bucketCounts[bucket]++;
    tally.bucketSums[bucket] += seconds;
    if (logs.length > 0) this.keepLogs(name, version, logs);
    this.timer ??= setTimeout(() => this.flush(), FLUSH_INTERVAL_MS);
  }

  private keepLogs(name: string, version: number, lines: LogLine[]): void {
    const kept: LogLine[] = [];
    for (const line of lines) {
      if (this.logLines >= MAX_PENDING_LOG_LINES || this.logBytes + line.line.length > MAX_PENDING_LOG_BYTES) {
        this.dropped++;
        continue;
      }
      this.logLines++;
      this.logBytes += line.line.length;
      kept.push(line);
    }
    if (kept.length > 0) this.logs.push({ function: name, version, lines: kept });
  }

  /** Sends what accumulated (the control plane applies it); nothing when nothing happened. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.calls.size === 0 && this.logs.length === 0 && this.dropped === 0) return;
    const telemetry: InvokeTelemetry = { telemetry: true, calls: [...this.calls.values()], logs: this.logs, droppedLogLines: this.dropped };
    this.calls = new Map();
    this.logs = [];
    this.logLines = 0;
    this.logBytes = 0;
    this.dropped = 0;
    this.send(telemetry);
  }
}

/**
 * Replays a bucketed tally into a histogram through its public `observe`: each bucket's calls at
 * their mean duration, which lies inside the bucket, so bucket counts and the sum come out exact.
 */
export function replayDurations(tally: CallTally, observe: (seconds: number) => void): void {
  for (let bucket = 0; bucket < tally.bucketCounts.length; bucket++) {
    const count = tally.bucketCounts[bucket];
    if (!Number.isSafeInteger(count) || count <= 0) continue;
    const mean = tally.bucketSums[bucket] / count;
    if (!Number.isFinite(mean)) continue;
    for (let i = 0; i < count; i++) observe(mean);
  }
}
