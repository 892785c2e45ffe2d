/**
 * The isolates of one host process: pre-warmed slots (bootstrap already installed) so a newly
 * uploaded function does not pay for isolate creation, one FunctionLane per loaded function
 * version (its instances and its bounded queue), and the V8 code cache for function modules.
 * The cache holds only data V8 produced here from code we compiled ourselves; nothing cached is
 * ever accepted from users.
 */
import ivm from 'isolated-vm';
import { readFileSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { TributaryError } from '../errors.ts';
import { DEFAULT_MEMORY_LIMIT_MB, MAX_BODY_BYTES, MAX_QUEUED_BYTES_PER_HOST } from '../limits.ts';
import { specKey, type FunctionSpec } from '../function-spec.ts';
import type { ModuleShape } from '../guest/wire.ts';
import { newBudget, SliceExpired } from './budget.ts';
import { EntryModes } from './entry-modes.ts';
import { FunctionInstance, type EntryOp, type EntryPayload, type EntryResult, type LoadSource, type LogLine } from './function-instance.ts';
import { FunctionLane, type LaneHost } from './function-lane.ts';
import { IsolateSlot, type ResponseSink } from './isolate-slot.ts';
import { capWasmMemory } from './wasm-limits.ts';

/** Refill waits until the host has been idle this long, so slot building stays off callers' latency. */
const REFILL_IDLE_MS = 5;

export interface IsolatePoolOptions {
  /** Slots kept ready with the default memory limit (default 4). */
  warmSlots?: number;
  /**
   * Loaded function instances kept per host (default 256): beyond, idle instances of the least
   * recently used functions are disposed, and no lane grows past its first instance.
   */
  maxInstances?: number;
  /** Bytes of V8 code cache kept (default 64 MiB). */
  codeCacheBytes?: number;
}

interface CachedCode {
  data: ivm.ExternalCopy<ArrayBuffer>;
  bytes: number;
}

export interface Ran<Op extends EntryOp> {
  value: EntryResult<Op>;
  /** Whether the call ran on an instance loaded for it (it paid a cold start). */
  coldStart: boolean;
  /** CPU time the call spent in its isolate (ms), every attempt of it (isolated-vm's cpuTime): unlike its wall time, not stretched when the host waits for a core. */
  cpuMs: number;
}

export class IsolatePool implements LaneHost {
  private readonly warm: IsolateSlot[] = [];
  private readonly warmTarget: number;
  private readonly maxInstances: number;
  private refilling = false;
  private active = 0;
  private lastActive = 0;
  /** Lanes by specKey, least recently used first. */
  private readonly lanes = new Map<string, FunctionLane>();
  private lastKey = '';
  private instanceCount = 0;
  private queuedBytes = 0;
  private readonly modes = new EntryModes();
  private readonly codeCache: LRUCache<string, CachedCode>;
  private closed = false;

  constructor(options: IsolatePoolOptions = {}) {
    this.warmTarget = options.warmSlots ?? 4;
    this.maxInstances = options.maxInstances ?? 256;
    this.codeCache = new LRUCache({
      maxSize: options.codeCacheBytes ?? 64 * 1024 * 1024,
      sizeCalculation: (entry) => Math.max(1, entry.bytes),
      dispose: (entry) => entry.data.release(),
    });
  }

  /** Fills the warm set; resolves once it is full. */
  async start(): Promise<void> {
    while (!this.closed && this.warm.length < this.warmTarget) this.warm.push(await this.newSlot(DEFAULT_MEMORY_LIMIT_MB));
  }

  get stats() {
    return { warm: this.warm.length, instances: this.instanceCount, isolates: this.instanceCount + this.warm.length };
  }

  /**
   * Validates an upload by loading it: JS is compiled, linked and its top level evaluated (so a
   * module without handlers is rejected now, not at first invoke); WASM is capped, compiled and
   * checked for the byte ABI. The loaded instance is kept: the deploy's work serves the first call.
   */
  async validate(spec: FunctionSpec, code: string | Uint8Array): Promise<ModuleShape> {
    const instance = await this.loadFrom(spec, code).catch((error: unknown) => {
      throw asValidationError(error, spec.kind);
    });
    const key = specKey(spec);
    let lane = this.lanes.get(key);
    if (!lane) {
      lane = new FunctionLane(spec, this);
      this.lanes.set(key, lane);
    }
    lane.adopt(instance);
    // A deploy's first call follows at once: the refill waits for it (see refill).
    this.lastActive = performance.now();
    return instance.shape;
  }

  /**
   * Runs one call of `spec` on one of its instances (loading one if needed). Rejects at once
   * with ERR_OVERLOADED when the function's queue on this host is full.
   */
  run<Op extends EntryOp>(spec: FunctionSpec, op: Op, payload: EntryPayload<Op>, logs: LogLine[], bytes: number, sink?: ResponseSink): Promise<Ran<Op>> {
    const lane = this.laneFor(spec);
    this.lastActive = performance.now();
    return new Promise<Ran<Op>>((resolve, reject) => {
      lane.submit({ op, payload, logs, bytes, budget: null, coldStart: false, sink, resolve: resolve as (outcome: Ran<EntryOp>) => void, reject });
    });
  }

  /**
   * `run` without a promise when the call finishes at once (an idle instance, a synchronous
   * handler: the common invoke); otherwise a promise of the same. Throws ERR_OVERLOADED at once
   * when the function's queue on this host is full.
   */
  runNow<Op extends EntryOp>(spec: FunctionSpec, op: Op, payload: EntryPayload<Op>, logs: LogLine[], bytes: number, sink?: ResponseSink): Ran<Op> | Promise<Ran<Op>> {
    const lane = this.laneFor(spec);
    this.lastActive = performance.now();
    let later: { resolve(outcome: Ran<Op>): void; reject(error: unknown): void } | null = null;
    const early: { settled: { ok: true; outcome: Ran<Op> } | { ok: false; error: unknown } | null } = { settled: null };
    lane.submit({
      op,
      payload,
      logs,
      bytes,
      budget: null,
      coldStart: false,
      sink,
      resolve: (outcome) => (later === null ? (early.settled = { ok: true, outcome: outcome as Ran<Op> }) : later.resolve(outcome as Ran<Op>)),
      reject: (error) => (later === null ? (early.settled = { ok: false, error }) : later.reject(error)),
    });
    const now = early.settled;
    if (now !== null) {
      if (!now.ok) throw now.error;
      return now.outcome;
    }
    return new Promise<Ran<Op>>((resolve, reject) => (later = { resolve, reject }));
  }

  private laneFor(spec: FunctionSpec): FunctionLane {
    const key = specKey(spec);
    let lane = this.lanes.get(key);
    if (lane && key !== this.lastKey) {
      this.lanes.delete(key); // re-inserted below: most recently used last
      this.lanes.set(key, lane);
    }
    if (!lane) {
      lane = new FunctionLane(spec, this);
      this.lanes.set(key, lane);
      if (this.lanes.size > this.maxInstances) this.forgetEmptyLanes();
    }
    this.lastKey = key;
    lane.spec = spec;
    return lane;
  }

  /** LaneHost: loads a new instance from the code file. */
  load(spec: FunctionSpec): Promise<FunctionInstance> {
    // Synchronous read: a small local file, and the thread-pool hop of readFile costs more than the read.
    let code: string | Uint8Array;
    try {
      code = spec.kind === 'js' ? readFileSync(spec.codePath, 'utf8') : new Uint8Array(readFileSync(spec.codePath));
    } catch (error) {
      return Promise.reject(new TributaryError('ERR_INTERNAL', `cannot read the code of '${spec.name}'`, { cause: error }));
    }
    return this.loadFrom(spec, code);
  }

  /**
   * Loads `code` into a slot. A top level that outlives its synchronous slice is evaluated again
   * in a fresh slot, asynchronously, with the rest of its budget (and, when it was busy on the CPU
   * rather than kept off it, this version's later loads start asynchronously).
   */
  private async loadFrom(spec: FunctionSpec, code: string | Uint8Array): Promise<FunctionInstance> {
    const budget = newBudget(spec, this.modes.isAsync(spec, 'load'));
    let first = true;
    for (;;) {
      const slot = await this.takeSlot(spec.memoryLimitMb);
      if (first) budget.startedAt = performance.now();
      first = false;
      try {
        const { instance, producedCache } = await FunctionInstance.load(spec, slot, this.sourceFor(spec, code), budget);
        if (producedCache && !this.codeCache.has(spec.sha256)) this.remember(spec.sha256, producedCache);
        return instance;
      } catch (error) {
        slot.dispose();
        if (!(error instanceof SliceExpired) || budget.async) throw error;
        if (error.busy) this.modes.markAsync(spec, 'load');
        budget.async = true;
      }
    }
  }

  private sourceFor(spec: FunctionSpec, code: string | Uint8Array): LoadSource {
    if (spec.kind === 'wasm') return { kind: 'wasm', code: capWasmMemory(code as Uint8Array, spec.memoryLimitMb) };
    return { kind: 'js', code: code as string, cachedData: this.codeCache.get(spec.sha256)?.data };
  }

  private remember(sha256: string, data: ivm.ExternalCopy<ArrayBuffer>): void {
    this.codeCache.set(sha256, { data, bytes: data.copy().byteLength });
  }

  mayGrow(): boolean {
    return this.instanceCount < this.maxInstances;
  }

  instanceAdded(): void {
    this.instanceCount++;
    if (this.instanceCount > this.maxInstances) this.evictIdle();
  }

  instanceRemoved(): void {
    this.instanceCount--;
  }

  reserveBytes(bytes: number, force: boolean): boolean {
    if (!force && this.queuedBytes + bytes > MAX_QUEUED_BYTES_PER_HOST) return false;
    this.queuedBytes += bytes;
    return true;
  }

  releaseBytes(bytes: number): void {
    this.queuedBytes -= bytes;
  }

  /** The refusal of a call that would pass MAX_QUEUED_BYTES_PER_HOST. */
  overloaded(): TributaryError {
    return new TributaryError('ERR_OVERLOADED', 'the calls waiting on this host already hold their limit of payload bytes; retry after 1 s', { details: { retryAfterS: 1 } });
  }

  entriesAsync(spec: FunctionSpec): boolean {
    return this.modes.isAsync(spec, 'entry');
  }

  sliceExpired(spec: FunctionSpec): void {
    this.modes.markAsync(spec, 'entry');
  }

  /** Disposes idle instances of the least recently used lanes until the pool is back under its cap. */
  private evictIdle(): void {
    for (const [key, lane] of this.lanes) {
      if (this.instanceCount <= this.maxInstances) return;
      while (this.instanceCount > this.maxInstances && lane.evictIdle());
      if (lane.isEmpty) this.lanes.delete(key);
    }
  }

  private forgetEmptyLanes(): void {
    for (const [key, lane] of this.lanes) if (lane.isEmpty) this.lanes.delete(key);
  }

  /** Drops the instances of a function's versions (all, or all but `exceptKey`) once idle. */
  unload(name: string, exceptKey?: string): void {
    for (const [key, lane] of [...this.lanes]) {
      if (key.startsWith(`${name}@`) && key !== exceptKey) {
        this.lanes.delete(key);
        lane.retire();
      }
    }
  }

  /** Drops the instances of one graph replica (`graph/node#r`), e.g. after scale-down. */
  unloadTag(tag: string): void {
    for (const [key, lane] of [...this.lanes]) {
      if (key.endsWith(`#${tag}`)) {
        this.lanes.delete(key);
        lane.retire();
      }
    }
  }

  private async takeSlot(memoryLimitMb: number): Promise<IsolateSlot> {
    const slot = memoryLimitMb === DEFAULT_MEMORY_LIMIT_MB ? this.warm.pop() : undefined;
    this.refill();
    return slot ?? this.newSlot(memoryLimitMb);
  }

  private newSlot(memoryLimitMb: number): Promise<IsolateSlot> {
    return IsolateSlot.create({ memoryLimitMb, maxBodyBytes: MAX_BODY_BYTES });
  }

  /**
   * Tops the warm set up one slot at a time, only while no call is running on this host: building
   * a slot costs a few ms of CPU that would otherwise land on a caller's latency.
   */
  private refill(): void {
    if (this.refilling || this.closed || this.warm.length >= this.warmTarget) return;
    this.refilling = true;
    const step = () => {
      if (this.closed || this.warm.length >= this.warmTarget) return void (this.refilling = false);
      if (this.active > 0 || performance.now() - this.lastActive < REFILL_IDLE_MS) return void setTimeout(step, REFILL_IDLE_MS);
      this.newSlot(DEFAULT_MEMORY_LIMIT_MB).then(
        (slot) => {
          if (this.closed) slot.dispose();
          else this.warm.push(slot);
          setImmediate(step);
        },
        () => (this.refilling = false),
      );
    };
    setTimeout(step, 1);
  }

  /** Marks a call running on this host (refill waits for none). */
  track<T>(work: Promise<T>): Promise<T> {
    this.callStarted();
    return work.finally(() => this.callEnded());
  }

  /** `track` for a caller that knows when its call ends (no promise per call): one callEnded per callStarted. */
  callStarted(): void {
    this.active++;
  }

  callEnded(): void {
    this.active--;
    this.lastActive = performance.now();
  }

  close(): void {
    this.closed = true;
    for (const slot of this.warm.splice(0)) slot.dispose();
    for (const lane of this.lanes.values()) lane.close();
    this.lanes.clear();
  }
}

function asValidationError(error: unknown, kind: FunctionSpec['kind']): TributaryError {
  if (!(error instanceof TributaryError)) return new TributaryError('ERR_INTERNAL', 'validation failed', { cause: error });
  if (kind === 'wasm' && (error.code === 'ERR_FN_THREW' || error.code === 'ERR_COMPILE')) {
    return new TributaryError('ERR_WASM_INVALID', error.message);
  }
  if (error.code === 'ERR_FN_THREW') return new TributaryError('ERR_COMPILE', `module threw while evaluating its top level: ${error.message}`);
  return error;
}
