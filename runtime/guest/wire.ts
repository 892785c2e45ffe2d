/**
 * Data crossing the isolate boundary (copied with V8's structured serializer). Types only, so
 * host code can `import type` them too.
 */
import type { GuestError } from './errors.ts';

export interface WireRequest {
  method: string;
  url: string;
  headers: [string, string][];
  body: Uint8Array | null;
  /**
   * The host can take a streamed response chunk by chunk (its HTTP plane writes to the client's
   * socket): a stream body goes out through the `respond` and `write` host operations instead of
   * being drained. Absent: the guest drains it (bounded) and returns the bytes.
   */
  stream?: boolean;
}

export interface WireResponse {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
  /** The body already went out through the `write` host operations (WireRequest.stream). */
  streamed?: boolean;
}

/** A stream record as `process(record, env, ctx)` sees it. */
export interface WireRecord {
  key: string | null;
  value: unknown;
  headers: Record<string, string>;
  offset: number;
  timestamp: number;
}

/** One emitted output: `index` is the input record (within the batch) that produced it. */
export interface WireEmit {
  index: number;
  key: string | null;
  value: unknown;
}

/** The state partition a batch reads and writes (`env.STATE`), versioned by `epoch`. */
export interface WireStateScope {
  namespace: string;
  partition: number;
  /** Changes whenever the committed state may differ from what the guest holds. */
  epoch: number;
  /** The partition's committed state; sent when the guest reported `needState`. */
  snapshot?: [key: string, value: string | Uint8Array][];
}

/** A timer as `onTimer(timer, env, ctx)` sees it (runtime/stream-timers.ts). */
export interface WireTimer {
  key: string;
  at: number;
  kind: 'processing' | 'event';
}

/**
 * Instead of records: fire the partition's due timers, earliest first, at most `limit` —
 * processing timers due at `now`, event timers at or below the batch's `watermark`.
 */
export interface WireTimerFire {
  now: number;
  limit: number;
  /** Delete them without running onTimer, each reported as a failure (a timer that fails every batch it is in). */
  drop?: boolean;
}

export interface WireBatch {
  records: WireRecord[];
  /** A timer batch: `records` is empty and the due timers are its inputs. */
  fire?: WireTimerFire;
  /** The state partition's event-time watermark (ms; absent when the graph has no event time): `ctx.watermark`. */
  watermark?: number;
  state: WireStateScope;
  /** Attempts per record before it is reported as failed (dead-lettered). */
  maxAttempts: number;
}

export interface WireBatchResult {
  /** The guest does not hold this state partition at this epoch: resend with a snapshot. */
  needState?: boolean;
  emits: WireEmit[];
  /** Records whose every attempt threw; their emits and state writes are discarded. */
  failures: { index: number; error: GuestError }[];
  /** Final value per key written by the batch's successful records; null deletes. */
  writes: [key: string, value: string | Uint8Array | null][];
  /** A timer batch's inputs, in the order fired: emits' and failures' `index` points here. */
  fired?: WireTimer[];
  /** The partition's earliest due timers of each kind after the batch (null: none); absent for modules without onTimer. */
  nextTimers?: { processing: number | null; event: number | null };
  /**
   * CPU time the batch spent in its isolate (ms), stamped by the host after the call (never by
   * the guest: the host overwrites it). Straggler detection compares replicas on it.
   */
  cpuMs?: number;
  /** The batch ran on an isolate loaded for it (stamped by the host, like cpuMs): its time is a cold start, not service. */
  coldStart?: true;
}

export type GuestResult<T> = { ok: true; value: T } | { ok: false; error: GuestError };

/** What the loaded module offers; reported to the host after load. */
export interface ModuleShape {
  fetch: boolean;
  process: boolean;
  onTimer?: boolean;
}
