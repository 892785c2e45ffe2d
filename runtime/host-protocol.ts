/**
 * Messages between the control plane and a host process over the framed channel
 * (runtime/framed-channel.ts: V8-serialized, so Uint8Array crosses without base64).
 */
import type { ErrorBody } from './errors.ts';
import type { FunctionSpec } from './function-spec.ts';
import type { LogLine } from './host/function-instance.ts';
import type { ModuleShape, WireBatch, WireBatchResult, WireRequest, WireResponse } from './guest/wire.ts';
import type { InvokeTelemetry } from './invoke-telemetry.ts';
import type { TokenFingerprint } from '../api/invoke-semantics.ts';

export type HostRequest =
  | { id: number; op: 'validate'; spec: FunctionSpec; code: string | Uint8Array }
  | { id: number; op: 'fetch'; spec: FunctionSpec; request: WireRequest }
  | { id: number; op: 'process'; spec: FunctionSpec; batch: WireBatch }
  | { id: number; op: 'unload'; name: string; exceptKey?: string }
  | { id: number; op: 'unloadTag'; tag: string }
  | { id: number; op: 'stats' }
  /** Configures the host's HTTP plane (runtime/host/http-plane.ts); sent before any connection is handed over. */
  | { id: number; op: 'plane'; config: HttpPlaneConfig }
  /**
   * The invoke routing table, function name → its latest version (null: deleted): the whole
   * table (`replace`) when a host starts, one entry on every deploy and delete. The reply is the
   * host's acknowledgement: a deploy returns once every live host has sent it.
   */
  | { id: number; op: 'routes'; replace: boolean; routes: InvokeRoute[] }
  /** The answer to a host's `stateCall` (same id); not replied to. */
  | { id: number; op: 'stateReply'; result: unknown }
  /** The answer to a host's `bucketCall` (same id); not replied to. */
  | { id: number; op: 'bucketReply'; result: unknown };

export interface HostStats {
  warm: number;
  instances: number;
  isolates: number;
}

export interface HostResults {
  validate: ModuleShape;
  fetch: WireResponse;
  process: WireBatchResult;
  unload: null;
  unloadTag: null;
  stats: HostStats;
  stateReply: null;
  bucketReply: null;
  plane: null;
  routes: null;
}

export type InvokeRoute = [name: string, spec: FunctionSpec | null];

/** What a host's HTTP plane needs from its control plane: where to proxy what it does not serve, and the limits. */
export interface HttpPlaneConfig {
  /** The control plane's internal HTTP listener (a unix socket path) for management routes on handed-over connections. */
  controlSocket: string;
  /** The management token's fingerprint (never the token): headers carrying it are not forwarded. */
  token?: TokenFingerprint;
  maxBodyBytes: number;
  bodyReadTimeoutMs: number;
  /** This host's share of MAX_INFLIGHT_BODY_BYTES. */
  maxInflightBodyBytes: number;
  maxResponseHeaderBytes: number;
}

export type HostOp = HostRequest['op'];

export type HostReply =
  | { id: number; ok: true; value: unknown; logs: LogLine[]; coldStart: boolean; stats: HostStats }
  | { id: number; ok: false; error: ErrorBody; logs: LogLine[]; coldStart: boolean; stats: HostStats };

/** Sent once the host's warm pool is ready. */
export interface HostReady {
  ready: true;
  pid: number;
}

/**
 * Sent by the host's event loop every HEARTBEAT_INTERVAL_MS. The supervisor's watchdog kills a
 * host it has not heard from for `wedgedAfterMs` (its event loop is blocked by something no
 * timeout interrupts); a host that is merely busy keeps beating, however long its queues.
 */
export interface HostBeat {
  beat: true;
  /** process.memoryUsage.rss() of the host: the memory guard's reading where /proc is unavailable. */
  rssBytes: number;
  /** Client connections the host's HTTP plane holds open (the control plane's routing policy). */
  connections: number;
}

export const HEARTBEAT_INTERVAL_MS = 250;

/**
 * A function's `env.STATE` operation in `fetch` (runtime/function-state.ts): the host asks, the
 * control plane answers with a `stateReply` request of the same id. `fn` is the name of the
 * function the host is running (from its spec, never from tenant code); `op` and `args` come
 * from tenant code and are checked by the control plane.
 */
export interface HostStateCall {
  stateCall: true;
  id: number;
  fn: string;
  op: unknown;
  args: unknown;
}

/**
 * A function's bucket binding call (runtime/bucket-calls.ts), made by the control plane with the
 * platform's S3 credentials; answered with a `bucketReply` of the same id. `bindingsId` comes
 * from the version's spec; `binding`, `op` and `args` from tenant code; `limits` is what the
 * invocation has left (`maxBytes`, `timeoutMs`).
 */
export interface HostBucketCall {
  bucketCall: true;
  id: number;
  bindingsId: string;
  binding: unknown;
  op: unknown;
  args: unknown;
  limits: { maxBytes: number; timeoutMs: number };
}

export type HostMessage = HostReply | HostReady | HostBeat | HostStateCall | HostBucketCall | InvokeTelemetry;
