/**
 * The one exponential backoff of the platform's retry loops (partition workers, Kafka consumers,
 * topic preparation): `next()` doubles the wait from `minMs` up to `maxMs`, `reset()` after a
 * success starts over. Each loop holds its own instance; the policy lives here.
 */
export class Backoff {
  readonly minMs: number;
  readonly maxMs: number;
  private current = 0;
  /** Failures since the last reset. */
  attempts = 0;

  constructor(minMs: number, maxMs: number) {
    this.minMs = minMs;
    this.maxMs = maxMs;
  }

  /** The wait before the next try after a failure (ms). */
  next(): number {
    this.attempts++;
    this.current = Math.min(this.maxMs, Math.max(this.minMs, this.current * 2));
    return this.current;
  }

  /** The last wait `next()` returned; 0 after a reset. */
  get ms(): number {
    return this.current;
  }

  reset(): void {
    this.current = 0;
    this.attempts = 0;
  }

  /** Sleeps for `next()`; an aborted `signal` cuts the wait short. */
  sleep(signal?: AbortSignal): Promise<void> {
    const ms = this.next();
    return new Promise((resolve) => {
      if (signal?.aborted) return resolve();
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener('abort', done, { once: true });
    });
  }
}
