/** The shapes of the API answers the console reads (GET /v1/graphs/{name}, /v1/functions...). */
import type { SloStatus } from '../../scheduler/autoscaler/slo-status.ts';

export interface EdgeSpec {
  from: string;
  to: string;
  delivery: string;
  partitionBy?: string;
}

export interface GraphSpec {
  nodes: Array<{ id: string; function: string; replicas: { min: number; max: number } }>;
  sources: Array<{ id: string; type: string }>;
  sinks: Array<{ id: string; type: string }>;
  edges: EdgeSpec[];
  slo?: { latencyMs: number; percentile: number };
}

export interface Decision {
  at: string;
  action: string;
  from: number;
  to: number;
  reason: string;
}

export interface NodeStatus {
  function: string;
  replicas: number;
  replicasRange: { min: number; max: number };
  queueDepth: number;
  processed: number;
  failed: number;
  lastError: string | null;
  deadLetters: number;
  predictedLatencyMs: number | null;
  measuredLatencyMs: number | null;
  lastDecision: Decision | null;
}

export interface EdgeStatus extends EdgeSpec {
  lag?: number;
  state?: string;
  reason?: string;
  partitions?: Array<{ partition: number; head: number; committed: number; lag: number }>;
}

export interface GraphStatus {
  name: string;
  state: string;
  reason?: string;
  transitions?: Array<{ from: string; to: string; reason: string | null; at: string }>;
  nodes: Record<string, NodeStatus>;
  edges: EdgeStatus[];
  sinks: Record<string, { records?: number; offsets?: number; topic?: string }>;
  endToEndLatency: { p50Ms: number | null; p99Ms: number | null };
  errors: { count: number; last: { code: string; message: string; at?: string } | null };
  /** The autoscaler's last replica changes, newest first. */
  decisions?: Array<Decision & { node: string }>;
  /** The SLO as the autoscaler's last decision saw it: measured, predicted, reachable, and the machine's resources. */
  slo?: SloStatus | null;
}

export interface GraphInfo {
  name: string;
  version: number;
  updatedAt: string;
  spec: GraphSpec;
  status: GraphStatus;
}

export interface StoredRecord {
  offset: number;
  key: string | null;
  value: unknown;
  timestamp: number;
}

export interface FunctionVersion {
  name: string;
  version: number;
  kind: string;
  sha256: string;
  createdAt: string;
  memoryLimitMb: number;
  timeoutMs: number;
  cpuLimitMs: number;
}

export interface LogLine {
  time: number;
  level: string;
  line: string;
  version: number;
}
