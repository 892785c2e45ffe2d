/**
 * Stream timers (`ctx.timers` in `process` and `onTimer`) are state: each is a key of the node's
 * state partition under a reserved prefix, so a batch registers, fires and deletes timers in the
 * same commit as its outputs, offsets and `env.STATE` writes, and they survive what state
 * survives (kill -9, replica changes, redeploys). `env.STATE` never shows these keys, and user
 * keys cannot start with the prefix's first character.
 *
 * Shared by the guest (which keeps and fires them) and the scheduler (which reads a partition's
 * earliest due time when it opens the partition); no imports, so it bundles into the isolate.
 */

/** Reserved start of state keys: user keys may not begin with U+0000. */
export const RESERVED_STATE_KEY = '\u0000';
/** State key of timer `key`: `TIMER_KEY_PREFIX + key`. */
export const TIMER_KEY_PREFIX = '\u0000timer:';
/** Timers kept per state partition (ERR_QUOTA_EXCEEDED for the record that sets one more). */
export const MAX_TIMERS_PER_PARTITION = 100_000;
/** Characters of a timer's key. */
export const MAX_TIMER_KEY_CHARS = 256;
/** Timers one timer batch fires at most (then the partition's records get their turn). */
export const MAX_TIMERS_PER_FIRE = 1000;

/** State key of a partition's watermarks per origin (scheduler/watermarks.ts). */
export const WATERMARKS_KEY = '\u0000watermarks';

/** 'processing': due by the wall clock; 'event': due once the partition's watermark passes it. */
export type TimerKind = 'processing' | 'event';

export interface StreamTimer {
  key: string;
  /** When it is due: ms since the epoch. */
  at: number;
  kind: TimerKind;
}

/** A stored timer's value: `p:<at>` (processing time) or `e:<at>` (event time). */
export function parseTimer(value: string | Uint8Array): { kind: TimerKind; at: number } | null {
  if (typeof value !== 'string' || value.length < 3 || value[1] !== ':' || (value[0] !== 'p' && value[0] !== 'e')) return null;
  const at = Number(value.slice(2));
  return Number.isFinite(at) ? { kind: value[0] === 'p' ? 'processing' : 'event', at } : null;
}

/** The earliest due time of each kind among a partition's state entries (null: none of that kind). */
export function earliestTimers(entries: Iterable<{ key: string; value: string | Uint8Array | null }>): { processing: number | null; event: number | null } {
  const earliest: { processing: number | null; event: number | null } = { processing: null, event: null };
  for (const { key, value } of entries) {
    if (value === null || !key.startsWith(TIMER_KEY_PREFIX)) continue;
    const timer = parseTimer(value);
    if (timer !== null && (earliest[timer.kind] === null || timer.at < earliest[timer.kind]!)) earliest[timer.kind] = timer.at;
  }
  return earliest;
}
