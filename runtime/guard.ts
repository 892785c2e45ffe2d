/**
 * Guards for control-plane callbacks: timers, intervals and event handlers. Nothing a tenant
 * controls may throw out of one (an uncaught error there ends the process); a guarded callback
 * reports the error with its context and the loop goes on.
 *
 * @example
 *   const guard = new Guard({ onError: (where, error) => metrics.controlPlaneErrors.inc({ where }) });
 *   setInterval(guard.wrap('autoscaler.tick', { graph }, () => autoscaler.tick()), 1000);
 */
import { asTributaryError, type TributaryError } from './errors.ts';

export interface GuardReport {
  /** Which loop or handler failed, e.g. `autoscaler.tick`. */
  where: string;
  /** What it was working on, e.g. `{ graph: 'wc' }`. */
  context: Record<string, string>;
  error: TributaryError;
  /** The original error, for logs only (never sent to a caller). */
  cause: unknown;
}

export interface GuardOptions {
  onError?(report: GuardReport): void;
}

export class Guard {
  private readonly onError: ((report: GuardReport) => void) | undefined;

  constructor(options: GuardOptions = {}) {
    this.onError = options.onError;
  }

  /** `fn` as a callback that never throws nor rejects: failures are reported instead. */
  wrap<A extends unknown[]>(where: string, context: Record<string, string>, fn: (...args: A) => unknown): (...args: A) => void {
    return (...args: A) => {
      try {
        const result = fn(...args);
        if (result instanceof Promise) result.catch((error: unknown) => this.report(where, context, error));
      } catch (error) {
        this.report(where, context, error);
      }
    };
  }

  /** Reports a failure caught elsewhere (e.g. a `.catch` on a fire-and-forget promise). */
  report(where: string, context: Record<string, string>, cause: unknown): void {
    const error = asTributaryError(cause);
    const scope = Object.entries(context).map(([k, v]) => `${k}=${v}`).join(' ');
    const detail = cause instanceof Error ? (cause.stack ?? cause.message) : String(cause);
    console.error(`tributary: ${where}${scope ? ` (${scope})` : ''} failed: ${error.code}: ${detail}`);
    try {
      this.onError?.({ where, context, error, cause });
    } catch (hookError) {
      console.error(`tributary: error hook of ${where} failed too:`, hookError);
    }
  }
}

/** For code built without a platform (tests, benches): logs only. */
export const defaultGuard = new Guard();
