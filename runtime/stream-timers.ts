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

export type TimerKind = 'processing';

export interface StreamTimer {
  key: string;
  /** When it is due: ms since the epoch. */
  at: number;
  kind: TimerKind;
}

/** The stored value of a timer: `p:<at>`. */
export function encodeTimer(at: number): string {
  return `p:${at}`;
}

/** The due time of a stored timer value, or NaN when it is not one. */
export function timerDueAt(value: string | Uint8Array): number {
  if (typeof value !== 'string' || value.length < 3 || value[0] !== 'p' || value[1] !== ':') return NaN;
  return Number(value.slice(2));
}

/** The earliest due time among a partition's state entries, or null when it keeps no timer. */
export function earliestTimer(entries: Iterable<{ key: string; value: string | Uint8Array | null }>): number | null {
  let earliest: number | null = null;
  for (const { key, value } of entries) {
    if (value === null || !key.startsWith(TIMER_KEY_PREFIX)) continue;
    const at = timerDueAt(value);
    if (at === at && (earliest === null || at < earliest)) earliest = at;
  }
  return earliest;
}
