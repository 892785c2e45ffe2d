/**
 * One V8 isolate with one context and the guest bootstrap installed: the unit the pool pre-warms
 * and a function instance runs in.
 *
 * Every entry into the isolate is a synchronous isolated-vm call (≈5 µs, against ≈65 µs for an
 * asynchronous one) carrying the invocation's remaining budget as its `timeout`. Asynchronous
 * handlers report back through the `settle` host binding; a host timer enforces the wall clock
 * across awaits and guest timers. The price of synchronous entry: while user code runs, this host
 * process's event loop waits (at most `timeoutMs`) — hosts are one per core, so the CPU is the
 * isolate's anyway. A slot whose invocation timed out or ran out of memory is disposed.
 */
import ivm from 'isolated-vm';
import { TributaryError } from '../errors.ts';
import { MAX_BATCH_OUTPUT_BYTES, MAX_EMITS_PER_RECORD, MAX_JSON_DEPTH, MAX_RESPONSE_HEADER_BYTES } from '../limits.ts';
import type { GuestResult } from '../guest/wire.ts';
import * as bindings from './host-bindings.ts';
import type { BindingSink, LogLevel } from './host-bindings.ts';
import { guestBootstrapSource } from './guest-bundle.ts';
import { timeoutError, translateIvmError } from './translate-error.ts';

export interface SlotOptions {
  memoryLimitMb: number;
  maxBodyBytes: number;
}

interface Invocation {
  deadline: number;
  timeoutMs: number;
  fail(error: TributaryError): void;
}

type SyncEntry = 'load' | 'loadWasm' | 'fireTimer' | 'warmup';
type AsyncEntry = 'fetch' | 'process';

/** Entry points an invocation body may call (the hot path, fetch and process, is runEntry). */
export interface GuestCall {
  sync(fn: 'loadWasm', args: unknown[]): unknown;
}

/** The ceilings the guest enforces itself (runtime/limits.ts), handed over at boot. */
function guestLimits(options: SlotOptions) {
  return {
    maxBodyBytes: options.maxBodyBytes,
    maxResponseHeaderBytes: MAX_RESPONSE_HEADER_BYTES,
    maxEmitsPerRecord: MAX_EMITS_PER_RECORD,
    maxBatchOutputBytes: MAX_BATCH_OUTPUT_BYTES,
    maxJsonDepth: MAX_JSON_DEPTH,
  };
}

/** V8 code cache for the bootstrap bundle: produced once per host process, by us. */
let bootstrapCache: ivm.ExternalCopy<ArrayBuffer> | undefined;

export class IsolateSlot implements BindingSink {
  readonly isolate: ivm.Isolate;
  readonly context: ivm.Context;
  readonly memoryLimitMb: number;
  private readonly guest: Record<SyncEntry | 'start', ivm.Reference>;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  private readonly calls = new Map<number, (result: GuestResult<unknown>) => void>();
  private nextCallId = 1;
  private invocation: Invocation | null = null;
  private disposed = false;
  /** Receives console output; the owner points it at the current invocation. */
  onLog: (level: LogLevel, line: string) => void = () => {};

  private constructor(isolate: ivm.Isolate, context: ivm.Context, guest: Record<SyncEntry | 'start', ivm.Reference>, memoryLimitMb: number) {
    this.isolate = isolate;
    this.context = context;
    this.guest = guest;
    this.memoryLimitMb = memoryLimitMb;
  }

  /** Creates an isolate, installs the bootstrap and warms its hot paths (asynchronously: off the host's event loop). */
  static async create(options: SlotOptions): Promise<IsolateSlot> {
    const isolate = new ivm.Isolate({ memoryLimit: options.memoryLimitMb });
    try {
      const context = await isolate.createContext();
      const sinkRef: { slot?: IsolateSlot } = {};
      const sink: BindingSink & { settle(id: number, result: unknown): void } = {
        log: (level, line) => sinkRef.slot?.log(level, line),
        setTimer: (id, delayMs) => sinkRef.slot?.setTimer(id, delayMs),
        clearTimer: (id) => sinkRef.slot?.clearTimer(id),
        settle: (id, result) => sinkRef.slot?.settle(id, result),
      };
      const filename = 'tributary:bootstrap';
      const script: ivm.Script & ivm.CachedDataResult = await isolate.compileScript(
        guestBootstrapSource(),
        bootstrapCache ? { cachedData: bootstrapCache, filename } : { produceCachedData: true, filename },
      );
      if (script.cachedData && !bootstrapCache) bootstrapCache = script.cachedData;
      await script.run(context);
      script.release();
      const api = (await context.evalClosure(
        `const g = globalThis.__tributaryBoot; delete globalThis.__tributaryBoot;
         return g({ log: $0, randomBytes: $1, urlParse: $2, urlSet: $3, structuredClone: $4, setTimer: $5, clearTimer: $6, settle: $7 }, { ...$8, memoryLimitMb: $9 });`,
        [
          new ivm.Reference((level: unknown, line: unknown) => bindings.log(sink, level, line)),
          new ivm.Reference(bindings.randomBytes),
          new ivm.Reference(bindings.urlParse),
          new ivm.Reference(bindings.urlSet),
          new ivm.Reference((value: unknown) => value),
          new ivm.Reference((id: unknown, delayMs: unknown) => bindings.setTimer(sink, id, delayMs)),
          new ivm.Reference((id: unknown) => bindings.clearTimer(sink, id)),
          new ivm.Reference((id: unknown, result: unknown) => sink.settle(id as number, result)),
          new ivm.ExternalCopy(guestLimits(options)).copyInto(),
          options.memoryLimitMb,
        ],
        { result: { reference: true } },
      )) as ivm.Reference;
      const guest = {} as Record<SyncEntry | 'start', ivm.Reference>;
      for (const name of ['load', 'loadWasm', 'start', 'fireTimer', 'warmup'] as const) {
        guest[name] = api.getSync(name, { reference: true }) as ivm.Reference;
      }
      api.release();
      await guest.warmup.apply(undefined, [], { timeout: 1000 });
      const slot = new IsolateSlot(isolate, context, guest, options.memoryLimitMb);
      sinkRef.slot = slot;
      return slot;
    } catch (error) {
      if (!isolate.isDisposed) isolate.dispose();
      throw error;
    }
  }

  get isDisposed(): boolean {
    return this.disposed || this.isolate.isDisposed;
  }

  /**
   * Runs `body` as one invocation with a wall-clock budget of `timeoutMs`. Timeouts and OOM
   * dispose the slot; every failure leaves here as a TributaryError.
   */
  async invoke<T>(timeoutMs: number, body: (call: GuestCall) => T | Promise<T>): Promise<T> {
    if (this.isDisposed) throw new TributaryError('ERR_INTERNAL', 'isolate slot is disposed');
    if (this.invocation) throw new TributaryError('ERR_INTERNAL', 'isolate slot is busy');
    const deadline = performance.now() + timeoutMs;
    let fail!: (error: TributaryError) => void;
    const failed = new Promise<never>((_, reject) => (fail = reject));
    failed.catch(() => {});
    const timer = setTimeout(() => fail(timeoutError(timeoutMs)), timeoutMs);
    this.invocation = { deadline, timeoutMs, fail };
    const call: GuestCall = {
      sync: (fn, args) => this.enterSync(fn, args),
    };
    try {
      return await Promise.race([body(call), failed]);
    } catch (error) {
      const translated = this.translate(error, timeoutMs);
      if (translated.code === 'ERR_FN_TIMEOUT' || translated.code === 'ERR_FN_OOM') this.dispose();
      throw translated;
    } finally {
      clearTimeout(timer);
      this.invocation = null;
      this.clearAllTimers();
      this.calls.clear();
    }
  }

  /**
   * The hot path: one asynchronous entry point (`fetch`, `process`) as a whole invocation. When
   * the handler settles within the synchronous entry — no awaits on timers — the result comes back
   * without a timer or a promise allocated; otherwise a wall-clock timer guards the rest.
   */
  runEntry(fn: AsyncEntry, payload: unknown, timeoutMs: number): GuestResult<unknown> | Promise<GuestResult<unknown>> {
    if (this.isDisposed) throw new TributaryError('ERR_INTERNAL', 'isolate slot is disposed');
    if (this.invocation) throw new TributaryError('ERR_INTERNAL', 'isolate slot is busy');
    const invocation: Invocation = { deadline: performance.now() + timeoutMs, timeoutMs, fail: () => {} };
    this.invocation = invocation;
    const callId = this.nextCallId++;
    let early: GuestResult<unknown> | undefined;
    this.calls.set(callId, (result) => (early = result));
    try {
      this.guest.start.applySync(undefined, [callId, fn, payload], { arguments: { copy: true }, timeout: this.remainingMs() });
    } catch (error) {
      this.endInvocation();
      throw this.failWith(error, timeoutMs);
    }
    if (early !== undefined) {
      this.endInvocation();
      return early;
    }
    return new Promise<GuestResult<unknown>>((resolve, reject) => {
      const timer = setTimeout(() => invocation.fail(timeoutError(timeoutMs)), Math.max(0, invocation.deadline - performance.now()));
      this.calls.set(callId, (result) => {
        clearTimeout(timer);
        this.endInvocation();
        resolve(result);
      });
      invocation.fail = (error) => {
        clearTimeout(timer);
        this.endInvocation();
        reject(this.failWith(error, timeoutMs));
      };
    });
  }

  private endInvocation(): void {
    this.invocation = null;
    this.clearAllTimers();
    this.calls.clear();
  }

  /** Translates a failure; a timeout or OOM also disposes the slot. */
  private failWith(error: unknown, timeoutMs: number): TributaryError {
    const translated = this.translate(error, timeoutMs);
    if (translated.code === 'ERR_FN_TIMEOUT' || translated.code === 'ERR_FN_OOM') this.dispose();
    return translated;
  }

  /** Remaining budget of the current invocation, for isolated-vm's `timeout` on each entry. */
  remainingMs(): number {
    const invocation = this.invocation;
    return invocation ? Math.max(1, Math.ceil(invocation.deadline - performance.now())) : 1000;
  }

  private enterSync(fn: SyncEntry, args: unknown[]): unknown {
    return this.guest[fn].applySync(undefined, args, { arguments: { copy: true }, result: { copy: true }, timeout: this.remainingMs() });
  }

  /** Hands a linked module's namespace to the guest dispatcher. */
  loadNamespace(module: ivm.Module): unknown {
    return this.guest.load.applySync(undefined, [module.namespace.derefInto()], { result: { copy: true }, timeout: this.remainingMs() });
  }

  private settle(callId: number, result: unknown): void {
    const resolve = this.calls.get(callId);
    if (!resolve) return;
    this.calls.delete(callId);
    resolve(result as GuestResult<unknown>);
  }

  private translate(error: unknown, timeoutMs: number): TributaryError {
    return translateIvmError(error, { isolateDisposed: this.isolate.isDisposed, memoryLimitMb: this.memoryLimitMb, timeoutMs });
  }

  log(level: LogLevel, line: string): void {
    this.onLog(level, line);
  }

  setTimer(id: number, delayMs: number): void {
    const invocation = this.invocation;
    // Timers armed outside an invocation (module top level) never fire: there is no budget to run them in.
    if (invocation === null || this.timers.size >= 1000) return;
    const delay = Math.min(delayMs, Math.max(0, invocation.deadline - performance.now()));
    this.clearTimer(id);
    this.timers.set(
      id,
      setTimeout(() => {
        this.timers.delete(id);
        if (this.invocation !== invocation || this.isDisposed) return;
        try {
          this.enterSync('fireTimer', [id]);
        } catch (error) {
          const translated = this.translate(error, invocation.timeoutMs);
          if (translated.code === 'ERR_FN_THREW') this.onLog('error', `Uncaught (in timer callback) ${translated.message}`);
          else invocation.fail(translated);
        }
      }, delay),
    );
  }

  clearTimer(id: number): void {
    const timer = this.timers.get(id);
    if (timer !== undefined) clearTimeout(timer);
    this.timers.delete(id);
  }

  private clearAllTimers(): void {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.clearAllTimers();
    if (!this.isolate.isDisposed) this.isolate.dispose();
  }
}
