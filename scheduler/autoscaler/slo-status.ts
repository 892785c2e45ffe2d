/**
 * The graph's SLO as the autoscaler's last decision saw it, as the status shows it (GET
 * /v1/graphs/:name → status.slo). Free of imports: the console's browser code types it too.
 */
export interface SloStatus {
  latencyMs: number;
  percentile: number;
  /** Measured end-to-end p-latency over the last two intervals (ms), null without samples. */
  measuredMs: number | null;
  /** Predicted end-to-end p-latency along the critical path at the chosen counts (ms). */
  predictedMs: number | null;
  reachable: boolean;
  /** Why not, when unreachable ("… on this machine" when cores or memory bind). */
  reason: string | null;
  resources: { cores: number; readyHosts: number; memoryBudgetMb: number | null; memoryUsedMb: number | null };
}
