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
}

export interface WireResponse {
  status: number;
  statusText: string;
  headers: [string, string][];
  body: Uint8Array | null;
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

export interface WireBatchResult {
  emits: WireEmit[];
  /** Records whose `process` threw; their emits are discarded. */
  failures: { index: number; error: GuestError }[];
}

export type GuestResult<T> = { ok: true; value: T } | { ok: false; error: GuestError };

/** What the loaded module offers; reported to the host after load. */
export interface ModuleShape {
  fetch: boolean;
  process: boolean;
}
