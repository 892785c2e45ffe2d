/**
 * The calls of one function version (one specKey) on a host and the instances serving them.
 *
 * A call runs at once on an idle instance; otherwise it waits in the lane's FIFO queue, bounded
 * at MAX_QUEUED_CALLS_PER_INSTANCE per instance the lane may run (and MAX_QUEUED_BYTES_PER_HOST
 * over the host):
 * beyond, it fails at once with ERR_OVERLOADED and a `retryAfterS` estimated from recent call
 * durations. When calls overlap — every instance busy across event-loop turns, as with handlers
 * that await — an untagged lane loads more instances, up to MAX_INSTANCES_PER_FUNCTION; a tagged
 * lane (a graph replica, whose guest caches partition state) always has exactly one. A call cut
 * by its synchronous slice (SliceExpired) goes back to the head of the queue and runs again,
 * asynchronously, with what is left of its budget.
 */
import { TributaryError } from '../errors.ts';
import type { FunctionSpec } from '../function-spec.ts';
import { MAX_INSTANCES_PER_FUNCTION, MAX_QUEUED_CALLS_PER_INSTANCE } from '../limits.ts';
import { newBudget, SliceExpired, type Budget } from './budget.ts';
import type { EntryOp, EntryPayload, EntryResult, FunctionInstance, LogLine } from './function-instance.ts';
import type { ResponseSink } from './isolate-slot.ts';

export interface LaneCall<Op extends EntryOp = EntryOp> {
  op: Op;
  payload: EntryPayload<Op>;
  logs: LogLine[];
  /** Payload bytes, counted against the host's queued-bytes bound while the call waits. */
  bytes: number;
  /** Created when the call first starts; a re-run keeps it. */
  budget: Budget | null;
  coldStart: boolean;
  /** Where a streamed response goes (HTTP plane invokes only). */
  sink?: ResponseSink;
  resolve(outcome: { value: EntryResult<Op>; coldStart: boolean; cpuMs: number }): void;
  reject(error: unknown): void;
}

/** What a lane needs from its pool. */
export interface LaneHost {
  /** A newly loaded instance of `spec`. */
  load(spec: FunctionSpec): Promise<FunctionInstance>;
  /** Whether another instance beside a lane's first fits under the pool's instance cap. */
  mayGrow(): boolean;
  instanceAdded(): void;
  instanceRemoved(): void;
  /** Reserves queued payload bytes on the host; false when MAX_QUEUED_BYTES_PER_HOST would be passed. */
  reserveBytes(bytes: number, force: boolean): boolean;
  releaseBytes(bytes: number): void;
  /** Whether calls of this version start asynchronously (one of them outlived a slice). */
  entriesAsync(spec: FunctionSpec): boolean;
  sliceExpired(spec: FunctionSpec): void;
}

const MAX_RETRY_AFTER_S = 60;
/** Weight of the newest call in the mean call duration. */
const DURATION_WEIGHT = 0.2;

export class FunctionLane {
  /** The latest spec a call brought (its codePath loads new instances). */
  spec: FunctionSpec;
  readonly maxInstances: number;
  private readonly host: LaneHost;
  private readonly instances: FunctionInstance[] = [];
  private loading = 0;
  private waiting: LaneCall[] = [];
  private head = 0;
  private retired = false;
  private pumping = false;
  private repump = false;
  private meanCallMs = 0;

  constructor(spec: FunctionSpec, host: LaneHost) {
    this.spec = spec;
    this.maxInstances = spec.instanceTag ? 1 : MAX_INSTANCES_PER_FUNCTION;
    this.host = host;
  }

  get queued(): number {
    return this.waiting.length - this.head;
  }

  /** Nothing loaded, loading or waiting: the pool may forget this lane. */
  get isEmpty(): boolean {
    return this.instances.length === 0 && this.loading === 0 && this.queued === 0;
  }

  /** Runs `call` now, or queues it; throws ERR_OVERLOADED when the queue is full. */
  submit(call: LaneCall): void {
    if (this.queued === 0) {
      const idle = this.idleInstance();
      if (idle) return this.start(idle, call);
    }
    // Bounded by the instances the lane may run, loaded or not: a burst on a cold function is not refused for being early.
    if (this.queued >= MAX_QUEUED_CALLS_PER_INSTANCE * this.maxInstances) {
      throw this.overloaded(`${this.queued} calls of '${this.spec.name}' are already waiting on this host`);
    }
    if (!this.host.reserveBytes(call.bytes, false)) {
      throw this.overloaded(`the calls waiting on this host already hold their limit of payload bytes`);
    }
    this.waiting.push(call);
    this.pump();
  }

  /** Takes an instance loaded elsewhere (a deploy's validation) into the lane. */
  adopt(instance: FunctionInstance): void {
    if (this.retired || this.instances.length >= this.maxInstances) return void instance.dispose();
    instance.markWarm();
    this.instances.push(instance);
    this.host.instanceAdded();
    this.pump();
  }

  /** Releases the lane: idle instances now, busy ones once their call ends; waiting calls still run. */
  retire(): void {
    this.retired = true;
    for (const instance of [...this.instances]) if (!instance.isBusy && this.queued === 0) this.remove(instance, true);
  }

  /** Disposes one idle instance if no call waits (the pool's instance cap); true if it did. */
  evictIdle(): boolean {
    if (this.queued > 0) return false;
    const idle = this.idleInstance();
    if (!idle) return false;
    this.remove(idle, true);
    return true;
  }

  /** Disposes every instance (host shutdown). */
  close(): void {
    this.retired = true;
    for (const instance of [...this.instances]) this.remove(instance, true);
  }

  private idleInstance(): FunctionInstance | undefined {
    for (const instance of this.instances) if (!instance.isBusy && instance.isUsable) return instance;
    return undefined;
  }

  private start(instance: FunctionInstance, call: LaneCall): void {
    const budget = (call.budget ??= newBudget(this.spec, false));
    if (!budget.async && this.host.entriesAsync(this.spec)) budget.async = true;
    const coldStart = call.coldStart || instance.isFresh;
    const startedAt = performance.now();
    let result: unknown;
    try {
      result = instance.run(call.op, call.payload as never, call.logs, budget, call.sink);
    } catch (error) {
      return this.finished(instance, call, startedAt, coldStart, error, false);
    }
    if (result instanceof Promise) {
      result.then(
        (value: unknown) => this.finished(instance, call, startedAt, coldStart, value, true),
        (error: unknown) => this.finished(instance, call, startedAt, coldStart, error, false),
      );
    } else {
      this.finished(instance, call, startedAt, coldStart, result, true);
    }
  }

  private finished(instance: FunctionInstance, call: LaneCall, startedAt: number, coldStart: boolean, outcome: unknown, ok: boolean): void {
    const tookMs = performance.now() - startedAt;
    this.meanCallMs = this.meanCallMs === 0 ? tookMs : this.meanCallMs + DURATION_WEIGHT * (tookMs - this.meanCallMs);
    if (!instance.isUsable || (this.retired && this.queued === 0)) this.remove(instance, true);
    if (ok) {
      call.resolve({ value: outcome as never, coldStart, cpuMs: call.budget!.cpuUsedMs });
    } else if (outcome instanceof SliceExpired) {
      // Its isolate is gone; the call runs again from scratch, asynchronously, before the calls
      // queued behind it. Later calls start asynchronously only if this one was busy on the CPU.
      if (outcome.busy) this.host.sliceExpired(this.spec);
      call.logs.length = 0;
      call.coldStart = coldStart;
      call.budget!.async = true;
      this.host.reserveBytes(call.bytes, true);
      this.waiting.splice(this.head, 0, call);
    } else {
      call.reject(outcome);
    }
    this.pump();
  }

  /** Starts waiting calls on idle instances, and loads instances the queue needs. */
  private pump(): void {
    if (this.pumping) return void (this.repump = true);
    this.pumping = true;
    try {
      do {
        this.repump = false;
        for (let idle = this.idleInstance(); idle !== undefined && this.queued > 0; idle = this.idleInstance()) {
          this.start(idle, this.shift());
        }
        this.grow();
      } while (this.repump);
    } finally {
      this.pumping = false;
    }
  }

  /**
   * Loads the first instance when there is none; more only when every loaded one is busy with a
   * call that spans event-loop turns (calls queue behind awaits) and the pool has room.
   */
  private grow(): void {
    while (this.queued > this.loading && this.instances.length + this.loading < this.maxInstances) {
      const first = this.instances.length === 0;
      if (first ? this.loading > 0 : !this.host.mayGrow()) return;
      this.loading++;
      this.host.load(this.spec).then(
        (instance) => {
          this.loading--;
          this.instances.push(instance);
          this.host.instanceAdded();
          if (this.retired && this.queued === 0) this.remove(instance, true);
          this.pump();
        },
        (error: unknown) => {
          this.loading--;
          // Without any instance, nothing can serve the queue: the load's failure is every waiting call's.
          if (this.instances.length === 0 && this.loading === 0) this.failWaiting(error);
          else this.pump();
        },
      );
    }
  }

  private shift(): LaneCall {
    const call = this.waiting[this.head++];
    if (this.head === this.waiting.length) {
      this.waiting = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
    this.host.releaseBytes(call.bytes);
    return call;
  }

  private failWaiting(error: unknown): void {
    while (this.queued > 0) this.shift().reject(error);
  }

  private remove(instance: FunctionInstance, dispose: boolean): void {
    const index = this.instances.indexOf(instance);
    if (index < 0) return;
    this.instances.splice(index, 1);
    this.host.instanceRemoved();
    if (dispose) instance.dispose();
  }

  private overloaded(reason: string): TributaryError {
    const capacity = Math.max(1, this.instances.length + this.loading);
    const drainS = (this.queued * Math.max(1, this.meanCallMs)) / capacity / 1000;
    const retryAfterS = Math.min(MAX_RETRY_AFTER_S, Math.max(1, Math.ceil(drainS)));
    return new TributaryError('ERR_OVERLOADED', `${reason}; retry after ${retryAfterS} s`, { details: { retryAfterS } });
  }
}
