/**
 * What one invocation may spend — wall clock (`timeoutMs`), CPU time (`cpuLimitOf(spec)`) — and
 * how long one synchronous entry may hold the host's event loop (SYNC_SLICE_MS).
 *
 * Fast calls enter their isolate synchronously (≈5 µs) and finish inside one slice. An entry
 * still running when its slice ends is cut (V8 termination), its isolate discarded, and the
 * invocation re-run from scratch on another instance with asynchronous entries (≈60 µs each,
 * run on isolated-vm's threads: the host's event loop stays free for other functions) and what
 * is left of its budget. Functions are isolates without external side effects, so the re-run is
 * invisible to the caller except for latency; its partial console output is discarded.
 */
import { cpuLimitOf, type FunctionLimits } from '../function-spec.ts';

/**
 * Longest synchronous entry into an isolate. Bounds how long one function can keep every other
 * function on its host waiting; the price is that a call needing more is run twice (the cut
 * slice is wasted once per function version and host: later calls start asynchronously).
 */
export const SYNC_SLICE_MS = 20;

export interface Budget {
  timeoutMs: number;
  cpuLimitMs: number;
  /** performance.now() when the invocation's first attempt started; a re-run keeps it. */
  startedAt: number;
  /** CPU time of the attempts so far (updated as each one ends). */
  cpuUsedMs: number;
  /** Entries run asynchronously on isolated-vm's threads instead of sliced synchronous calls. */
  async: boolean;
}

export function newBudget(limits: FunctionLimits, async: boolean): Budget {
  return { timeoutMs: limits.timeoutMs, cpuLimitMs: cpuLimitOf(limits), startedAt: performance.now(), cpuUsedMs: 0, async };
}

/**
 * A synchronous entry outlived its slice: not an error of the function. The isolate is already
 * discarded; whoever ran the invocation re-runs it asynchronously. Never leaves the host.
 */
export class SliceExpired extends Error {
  /**
   * Whether the attempt used at least half its slice in CPU time: the function itself is slow, and
   * its later calls start asynchronously. Otherwise the host thread was kept off the CPU (a
   * loaded machine, a GC pause) and only this call re-runs: one descheduling must not put a fast
   * function on asynchronous entries (≈60 µs each) for the life of the host.
   */
  readonly busy: boolean;

  constructor(busy: boolean) {
    super(`a synchronous entry ran longer than ${SYNC_SLICE_MS} ms`);
    this.name = 'SliceExpired';
    this.busy = busy;
  }
}
