/**
 * Errors caught in a graph's control-plane loops: autoscaler ticks, partition task loops, Kafka
 * timers and consumer events. Each goes to the platform's Guard (logged with the graph and node,
 * counted in tributary_control_plane_errors_total{where}) and is kept here for the graph's
 * status: `errors: { count, last }` in `GET /v1/graphs/{name}`. The loop that failed goes on.
 */
import { asTributaryError, type ErrorCode } from '../runtime/errors.ts';
import { defaultGuard, type Guard } from '../runtime/guard.ts';

export interface GraphError {
  /** The loop or handler that failed, e.g. `autoscaler.tick`. */
  where: string;
  code: ErrorCode;
  /** The platform's message (an unexpected error reads "internal error": no stack, no path). */
  message: string;
  /** ISO time. */
  at: string;
  node?: string;
}

export interface GraphErrors {
  count: number;
  last: GraphError | null;
}

export class GraphFaults {
  readonly graph: string;
  private readonly guard: Guard;
  private count = 0;
  private last: GraphError | null = null;

  constructor(graph: string, guard: Guard = defaultGuard) {
    this.graph = graph;
    this.guard = guard;
  }

  /**
   * `fn` as a callback (timer, interval, event handler) that never throws nor rejects.
   * `context` names what it works on, e.g. `{ node: 'count' }`.
   */
  wrap<A extends unknown[]>(where: string, context: Record<string, string>, fn: (...args: A) => unknown): (...args: A) => void {
    return this.guard.wrap(where, { graph: this.graph, ...context }, (...args: A) => {
      let result: unknown;
      try {
        result = fn(...args);
      } catch (error) {
        this.note(where, context, error);
        throw error;
      }
      if (result instanceof Promise) {
        return result.catch((error: unknown) => {
          this.note(where, context, error);
          throw error;
        });
      }
      return result;
    });
  }

  /** Runs `fn` now, detached (a fire-and-forget promise): a failure is reported, never thrown. */
  run(where: string, context: Record<string, string>, fn: () => unknown): void {
    this.wrap(where, context, fn)();
  }

  /** Reports a failure caught elsewhere. */
  report(where: string, context: Record<string, string>, cause: unknown): void {
    this.note(where, context, cause);
    this.guard.report(where, { graph: this.graph, ...context }, cause);
  }

  status(): GraphErrors {
    return { count: this.count, last: this.last };
  }

  private note(where: string, context: Record<string, string>, cause: unknown): void {
    const error = asTributaryError(cause);
    this.count++;
    this.last = { where, code: error.code, message: error.message, at: new Date().toISOString(), ...(context.node !== undefined ? { node: context.node } : {}) };
  }
}
