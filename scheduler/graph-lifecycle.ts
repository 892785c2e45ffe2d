/**
 * The lifecycle of a graph runtime, as one small state machine:
 *
 *   starting ──► running ◄──► rescaling
 *      │           ▲  │           │
 *      │           │  ▼           │
 *      └──────► degraded ◄────────┘
 *   (any of the above) ──► stopping ──► stopped
 *                              └──────► deleting ──► stopped
 *
 *   starting   workers are being started; Kafka topics are being prepared
 *   running    every input consumes
 *   rescaling  a replica count or a partition assignment is changing
 *   degraded   an input cannot consume (brokers unreachable, consumer crashed); it retries with
 *              backoff and the reason is in the status
 *   stopping   workers finish their in-flight batch (redeploy, restart, shutdown)
 *   deleting   stopped, and what the graph owned is being removed from every store
 *   stopped    nothing runs
 *
 * A transition the diagram does not have is a bug in the platform: `to` throws ERR_INTERNAL.
 */
import { TributaryError } from '../runtime/errors.ts';

export type GraphState = 'starting' | 'running' | 'rescaling' | 'degraded' | 'stopping' | 'deleting' | 'stopped';

const NEXT: Record<GraphState, readonly GraphState[]> = {
  starting: ['running', 'degraded', 'stopping'],
  running: ['rescaling', 'degraded', 'stopping'],
  rescaling: ['running', 'degraded', 'stopping'],
  degraded: ['running', 'rescaling', 'stopping'],
  stopping: ['stopped', 'deleting'],
  deleting: ['stopped'],
  stopped: [],
};

export interface Transition {
  from: GraphState;
  to: GraphState;
  reason: string | null;
  /** ISO time. */
  at: string;
}

/** Transitions kept for the status. */
const HISTORY = 8;

export class GraphLifecycle {
  private current: GraphState = 'starting';
  private why: string | null = null;
  private readonly history: Transition[] = [];

  get state(): GraphState {
    return this.current;
  }

  /** Why the graph is in its state (degraded: the error), or null. */
  get reason(): string | null {
    return this.why;
  }

  /** True while workers may run: starting, running, rescaling or degraded. */
  get live(): boolean {
    return this.current !== 'stopping' && this.current !== 'deleting' && this.current !== 'stopped';
  }

  can(next: GraphState): boolean {
    return NEXT[this.current].includes(next);
  }

  /** Moves to `next`; staying in the same state only updates the reason. */
  to(next: GraphState, reason: string | null = null): void {
    if (next === this.current) {
      this.why = reason;
      return;
    }
    if (!this.can(next)) throw new TributaryError('ERR_INTERNAL', `graph lifecycle: no transition from ${this.current} to ${next}`);
    this.history.push({ from: this.current, to: next, reason, at: new Date().toISOString() });
    if (this.history.length > HISTORY) this.history.shift();
    this.current = next;
    this.why = reason;
  }

  transitions(): Transition[] {
    return [...this.history];
  }
}
