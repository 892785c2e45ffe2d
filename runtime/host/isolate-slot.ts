/**
 * One V8 isolate with one context and the guest bootstrap installed: the unit the pool pre-warms
 * and a function instance runs in.
 *
 * An invocation enters its isolate in one of two modes (see budget.ts):
 * - synchronous (the fast path): each entry is an `applySync` (≈5 µs, against ≈60 µs for an
 *   asynchronous one) bounded by SYNC_SLICE_MS. A handler that settles within the entry comes
 *   back without a timer or a promise allocated. An entry outliving its slice is cut, the slot
 *   disposed and SliceExpired thrown: the owner re-runs the call asynchronously.
 * - asynchronous: entries run on isolated-vm's threads with the remaining wall-clock budget as
 *   their `timeout`, so the host's event loop (and every other function on it) keeps running; a
 *   monitor disposes the isolate once the invocation's CPU time passes its budget.
 * Across awaits and guest timers a host timer enforces the wall clock. A slot whose invocation
 * timed out, ran out of memory or CPU, or was cut is disposed. Never enter an isolate
 * synchronously while an asynchronous entry runs in it: that blocks the event loop until it ends.
 */
import ivm from 'isolated-vm';
import { TributaryError } from '../errors.ts';
import { MAX_BUCKET_BYTES_PER_INVOCATION, MAX_BUCKET_CALLS_PER_INVOCATION, MAX_BATCH_OUTPUT_BYTES, MAX_EMITS_PER_RECORD, MAX_JSON_DEPTH, MAX_HOST_OP_BYTES_PER_INVOCATION, MAX_PENDING_HOST_OPS, MAX_RESPONSE_HEADER_BYTES, MAX_SUBREQUEST_BYTES_PER_INVOCATION, MAX_SUBREQUESTS_PER_INVOCATION, MAX_TIMERS_PER_INVOCATION } from '../limits.ts';
import { subtleOutcome } from './subtle-crypto.ts';
import { ZlibStreams } from './compression.ts';
import { cacheOutcome } from './response-cache.ts';
import { chargeHostOpBytes, payloadBytes, releaseHostOpBytes } from './op-bytes.ts';
import { checkFetchRequest, currentEgressPolicy, egressFetch, EgressError } from './egress.ts';
import type { GuestResult, WireRequest, WireResponse } from '../guest/wire.ts';
import { newBudget, SliceExpired, SYNC_SLICE_MS, type Budget } from './budget.ts';
import * as bindings from './host-bindings.ts';
import type { BindingSink, LogLevel } from './host-bindings.ts';
import { guestBootstrapSource } from './guest-bundle.ts';
import { cpuLimitError, discardsIsolate, timeoutError, translateIvmError } from './translate-error.ts';

export interface SlotOptions {
  memoryLimitMb: number;
  maxBodyBytes: number;
}

type Failure = TributaryError | SliceExpired;

interface Invocation {
  /** Handed to the guest's timers: timers of an earlier invocation are dropped there too. */
  readonly id: number;
  readonly budget: Budget;
  readonly deadline: number;
  /** Whether the guest may start host operations (crypto.subtle): calls yes, module loading no (as Workers' global scope). */
  readonly hostOps: boolean;
  readonly cpuBase: bigint;
  readonly carriedCpuMs: number;
  /** Asynchronous entries still running in the isolate. */
  running: number;
  ended: boolean;
  /** What the guest settled the call with; delivered once no entry runs any more. */
  result: GuestResult<unknown> | undefined;
  failure: Failure | undefined;
  resolve: ((result: GuestResult<unknown>) => void) | null;
  reject: ((failure: Failure) => void) | null;
  wallTimer: NodeJS.Timeout | undefined;
  cpuTimer: NodeJS.Timeout | undefined;
}

type GuestEntry = 'load' | 'loadWasm' | 'start' | 'fetch' | 'take' | 'fireTimer' | 'completeOp' | 'warmup';
type AsyncEntry = 'fetch' | 'process';

/** Entries an `invoke` body may make; each runs in the invocation's mode and returns its value or a promise of it. */
export interface GuestCall {
  loadWasm(bytes: Uint8Array): unknown;
  /** Evaluates a linked module's top level. */
  evaluate(module: ivm.Module): unknown;
  /** Hands a linked module's namespace (and the version's `env` bindings) to the guest dispatcher. */
  loadNamespace(module: ivm.Module, env?: Record<string, string>, buckets?: string[]): unknown;
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

/**
 * Where a streamed response goes (the hosts' HTTP plane, runtime/host/http-plane.ts): the guest's
 * `respond` operation hands over the head, `write` each chunk. Every argument comes from tenant code.
 */
export interface ResponseSink {
  /** Checks a head; null when it may be sent, else the message of the failure the call ends with. */
  check(head: unknown): string | null;
  /** Sends the checked head: from now on the response is the client's. */
  commit(): void;
  /** Sends one chunk; resolves with null once the client can take more, or with why it cannot (gone, over the limit). */
  write(bytes: unknown): Promise<string | null>;
}

type StateRpc = (fn: string, op: unknown, args: unknown) => Promise<unknown>;
let stateRpc: StateRpc | null = null;

/** How `env.STATE` in fetch reaches the control plane (host/main.ts sets it; absent in tests without one). */
export function setStateRpc(rpc: StateRpc): void {
  stateRpc = rpc;
}

type BucketRpc = (bindingsId: string, binding: unknown, op: unknown, args: unknown, limits: { maxBytes: number; timeoutMs: number }) => Promise<unknown>;
let bucketRpc: BucketRpc | null = null;

/** How bucket bindings reach the control plane, which holds the S3 credentials (host/main.ts sets it). */
export function setBucketRpc(rpc: BucketRpc): void {
  bucketRpc = rpc;
}

function sinkOutcome(failure: string | null): unknown {
  return failure === null ? { ok: true, value: null } : { ok: false, error: { name: 'TypeError', message: failure } };
}

/**
 * A WireRequest as the guest's `fetch` entry takes it: headers joined as `name\nvalue\n…`
 * (guest/web/headers.ts headersFromHost). The HTTP parsers that produced them never let a CR or
 * LF into a name or value; a pair that has one anyway is left out rather than split wrongly.
 */
function fetchArgs(callId: number, wire: WireRequest, poll: boolean): unknown[] {
  let joined = '';
  const headers = wire.headers;
  for (let i = 0; i < headers.length; i++) {
    const name = headers[i][0];
    const value = headers[i][1];
    if (name.includes('\n') || value.includes('\n')) continue;
    joined = joined === '' ? `${name}\n${value}` : `${joined}\n${name}\n${value}`;
  }
  // A view into a larger buffer (Node pools small Buffers) is copied out: the isolate gets its bytes and nothing beside them.
  const body = wire.body;
  const exact = body === null || (body.byteOffset === 0 && body.byteLength === body.buffer.byteLength) ? body : new Uint8Array(body);
  return [callId, wire.method, wire.url, joined, exact, wire.stream === true, poll];
}

/**
 * The guest's fetch result (guest/bootstrap.ts encodeFetchResult: one string or one flat array)
 * as a GuestResult; anything else (a failure, a batch result) as it came. Values are the
 * guest's: checkResponseHead checks them, and a string that does not parse is a bad response.
 */
function decodeFetchResult(result: unknown): GuestResult<unknown> {
  if (typeof result === 'string') return decodeFetchText(result);
  if (!Array.isArray(result)) return result as GuestResult<unknown>;
  const headers: [string, string][] = [];
  for (let i = 4; i + 1 < result.length; i += 2) headers.push([result[i], result[i + 1]]);
  const body = result[2] instanceof Uint8Array ? result[2] : null;
  const value: WireResponse = { status: result[0], statusText: result[1], headers, body };
  if (result[3] === true) value.streamed = true;
  return { ok: true, value };
}

const MALFORMED_RESULT: GuestResult<unknown> = { ok: false, error: { code: 'ERR_FN_BAD_RESPONSE', message: 'the function returned a malformed response' } };

function decodeFetchText(text: string): GuestResult<unknown> {
  let at = text.indexOf('\n');
  const statusEnd = at;
  const statusTextEnd = (at = text.indexOf('\n', at + 1));
  if (statusEnd < 0 || statusTextEnd < 0) return MALFORMED_RESULT;
  let countEnd = text.indexOf('\n', at + 1);
  if (countEnd < 0) countEnd = text.length;
  const count = Number(text.slice(statusTextEnd + 1, countEnd));
  if (!Number.isSafeInteger(count) || count < 0) return MALFORMED_RESULT;
  const headers: [string, string][] = [];
  at = countEnd;
  for (let i = 0; i < count; i++) {
    const nameEnd = text.indexOf('\n', at + 1);
    if (nameEnd < 0) return MALFORMED_RESULT;
    let valueEnd = text.indexOf('\n', nameEnd + 1);
    if (valueEnd < 0) valueEnd = text.length;
    headers.push([text.slice(at + 1, nameEnd), text.slice(nameEnd + 1, valueEnd)]);
    at = valueEnd;
  }
  let body: Uint8Array | null = null;
  if (text[0] === 'b') {
    // Its own buffer, not a slice of Node's pool: the bytes may be serialized onward (to the control plane).
    const latin1 = at < text.length ? text.slice(at + 1) : '';
    const bytes = Buffer.allocUnsafeSlow(latin1.length);
    bytes.write(latin1, 'latin1');
    body = bytes;
  }
  return { ok: true, value: { status: Number(text.slice(1, statusEnd)), statusText: text.slice(statusEnd + 1, statusTextEnd), headers, body } satisfies WireResponse };
}

/** V8 code cache for the bootstrap bundle: produced once per host process, by us. */
let bootstrapCache: ivm.ExternalCopy<ArrayBuffer> | undefined;

export class IsolateSlot implements BindingSink {
  readonly isolate: ivm.Isolate;
  readonly context: ivm.Context;
  readonly memoryLimitMb: number;
  private readonly guest: Record<GuestEntry, ivm.Reference>;
  private readonly timers = new Map<number, NodeJS.Timeout>();
  /** Host operations (crypto.subtle, fetch) the current invocation has pending. */
  private pendingOps = 0;
  /** Input bytes of the current invocation's pending host operations (MAX_HOST_OP_BYTES_PER_INVOCATION). */
  private pendingOpBytes = 0;
  /** Subrequests (fetch) of the current invocation: count, bytes left, and a signal aborted when it ends. */
  private subrequests = 0;
  private subrequestBytesLeft = MAX_SUBREQUEST_BYTES_PER_INVOCATION;
  private opsAbort: AbortController | null = null;
  /** The invocation's CompressionStreams (host/compression.ts), destroyed when it ends. */
  private zlibStreams: ZlibStreams | null = null;
  private readonly maxBodyBytes: number;
  private readonly calls = new Map<number, (result: GuestResult<unknown>) => void>();
  private nextCallId = 1;
  private invocations = 0;
  private invocation: Invocation | null = null;
  private disposed = false;
  private disposedForCpu = false;
  /** What the last setTimer told the guest: the invocation id, 0 (not armed), -1 (limit reached). */
  private armed = 0;
  /** The function whose fetch runs now: its `env.STATE` namespace (set by FunctionInstance; null otherwise). */
  stateFunction: string | null = null;
  /** The bindings file of the version running now, which its bucket bindings name (set by FunctionInstance). */
  bucketBindingsId: string | null = null;
  /** Bucket binding calls of the current invocation, and bytes it may still read and write through them. */
  private bucketCalls = 0;
  private bucketBytesLeft = MAX_BUCKET_BYTES_PER_INVOCATION;
  /** Where the current invocation's streamed response goes (set by FunctionInstance; null: none, the guest drains). */
  responseSink: ResponseSink | null = null;
  /** Receives console output; the owner points it at the current invocation. */
  onLog: (level: LogLevel, line: string) => void = () => {};

  private constructor(isolate: ivm.Isolate, context: ivm.Context, guest: Record<GuestEntry, ivm.Reference>, memoryLimitMb: number, maxBodyBytes: number) {
    this.maxBodyBytes = maxBodyBytes;
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
      // The guest learns from setTimer's answer which invocation a timer belongs to (runtime/guest/timers.ts).
      const setTimer = (id: unknown, delayMs: unknown): number => {
        const slot = sinkRef.slot;
        if (!slot) return 0;
        slot.armed = 0;
        bindings.setTimer(sink, id, delayMs);
        return slot.armed;
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
         return g({ log: $0, randomBytes: $1, urlParse: $2, urlSet: $3, structuredClone: $4, setTimer: $5, clearTimer: $6, settle: $7, startOp: $10 }, { ...$8, memoryLimitMb: $9 });`,
        [
          new ivm.Reference((level: unknown, line: unknown) => bindings.log(sink, level, line)),
          new ivm.Reference(bindings.randomBytes),
          new ivm.Reference(bindings.urlParse),
          new ivm.Reference(bindings.urlSet),
          new ivm.Reference((value: unknown) => value),
          new ivm.Reference(setTimer),
          new ivm.Reference((id: unknown) => bindings.clearTimer(sink, id)),
          new ivm.Reference((id: unknown, result: unknown) => sink.settle(id as number, result)),
          new ivm.ExternalCopy(guestLimits(options)).copyInto(),
          options.memoryLimitMb,
          new ivm.Reference((id: unknown, kind: unknown, payload: unknown) => sinkRef.slot?.startOp(id, kind, payload) ?? 0),
        ],
        { result: { reference: true } },
      )) as ivm.Reference;
      const guest = {} as Record<GuestEntry, ivm.Reference>;
      for (const name of ['load', 'loadWasm', 'start', 'fetch', 'take', 'fireTimer', 'completeOp', 'warmup'] as const) {
        guest[name] = api.getSync(name, { reference: true }) as ivm.Reference;
      }
      api.release();
      await guest.warmup.apply(undefined, [], { timeout: 1000 });
      const slot = new IsolateSlot(isolate, context, guest, options.memoryLimitMb, options.maxBodyBytes);
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
   * Runs `body` as one invocation within `limits` (a Budget, or a wall-clock budget in ms run
   * synchronously). Timeouts, OOM, the CPU limit and a cut slice dispose the slot; every failure
   * leaves here as a TributaryError, or SliceExpired for the owner to re-run asynchronously.
   */
  async invoke<T>(limits: Budget | number, body: (call: GuestCall) => T | Promise<T>, options: { hostOps?: boolean } = {}): Promise<T> {
    const budget = typeof limits === 'number' ? newBudget({ timeoutMs: limits, memoryLimitMb: this.memoryLimitMb }, false) : limits;
    const invocation = this.begin(budget, options.hostOps ?? false);
    const failed = new Promise<never>((_, reject) => (invocation.reject = reject));
    failed.catch(() => {});
    invocation.wallTimer = setTimeout(() => this.fail(invocation, timeoutError(budget.timeoutMs)), Math.max(0, invocation.deadline - performance.now()));
    const call: GuestCall = {
      loadWasm: (bytes) =>
        this.enter(invocation, (timeout) => this.guest.loadWasm.applySync(undefined, [bytes], { arguments: { copy: true }, result: { copy: true }, timeout }),
          (timeout) => this.guest.loadWasm.apply(undefined, [bytes], { arguments: { copy: true }, result: { copy: true }, timeout })),
      evaluate: (module) =>
        this.enter(invocation, (timeout) => module.evaluateSync({ timeout }), (timeout) => module.evaluate({ timeout })),
      loadNamespace: (module, env, buckets) => {
        const args = [module.namespace.derefInto(), new ivm.ExternalCopy(env ?? {}).copyInto(), new ivm.ExternalCopy(buckets ?? []).copyInto()];
        return this.enter(invocation, (timeout) => this.guest.load.applySync(undefined, args, { result: { copy: true }, timeout }),
          (timeout) => this.guest.load.apply(undefined, args, { result: { copy: true }, timeout }));
      },
    };
    try {
      const value = await Promise.race([body(call), failed]);
      this.end(invocation);
      return value;
    } catch (error) {
      const failure = invocation.failure ?? this.asFailure(error, invocation);
      this.end(invocation, failure);
      throw failure;
    }
  }

  /**
   * The hot path: one asynchronous guest entry point (`fetch`, `process`) as a whole invocation.
   * Synchronously, a handler that settles within the entry's slice returns its result directly;
   * otherwise (or asynchronously) a promise of it.
   */
  runEntry(fn: AsyncEntry, payload: unknown, budget: Budget): GuestResult<unknown> | Promise<GuestResult<unknown>> {
    const invocation = this.begin(budget, true);
    const callId = this.nextCallId++;
    const settle = (result: GuestResult<unknown>) => this.settled(invocation, result);
    // A synchronous fetch settles through its return value or `take`; only one still pending afterwards needs a settle callback.
    if (budget.async || fn !== 'fetch') this.calls.set(callId, settle);
    if (budget.async) {
      const done = this.pending(invocation);
      const args = fn === 'fetch' ? fetchArgs(callId, payload as WireRequest, false) : [callId, fn, payload];
      const entry = fn === 'fetch' ? this.guest.fetch : this.guest.start;
      this.enterAsync(invocation, (timeout) => entry.apply(undefined, args, { arguments: { copy: true }, result: { copy: true }, timeout }))
        .then((returned) => returned !== undefined && this.settled(invocation, decodeFetchResult(returned)))
        .catch((failure: unknown) => this.fail(invocation, failure));
      return done;
    }
    const remainingMs = invocation.deadline - performance.now();
    const sliced = remainingMs > SYNC_SLICE_MS;
    const timeout = sliced ? SYNC_SLICE_MS : Math.max(1, Math.ceil(remainingMs));
    try {
      if (fn === 'fetch') {
        // Arguments are strings, a boolean or bytes: each copied as is, with no object graph to serialize.
        const args = fetchArgs(callId, payload as WireRequest, true);
        let returned: unknown =
          args[4] === null ? this.guest.fetch.applySync(undefined, args as ivm.Transferable[], { result: { copy: true }, timeout })
          : this.guest.fetch.applySync(undefined, args, { arguments: { copy: true }, result: { copy: true }, timeout });
        if (returned === undefined) returned = this.guest.take.applySync(undefined, [], { result: { copy: true }, timeout });
        if (returned !== undefined) this.settled(invocation, decodeFetchResult(returned));
        else this.calls.set(callId, settle);
      } else {
        this.guest.start.applySync(undefined, [callId, fn, payload], { arguments: { copy: true }, timeout });
      }
      this.checkCpu(invocation);
    } catch (error) {
      const failure = this.classify(error, invocation, sliced);
      this.end(invocation, failure);
      throw failure;
    }
    const early = invocation.result;
    if (early !== undefined) {
      this.end(invocation);
      return early;
    }
    return this.pending(invocation);
  }

  private begin(budget: Budget, hostOps: boolean): Invocation {
    if (this.isDisposed) throw new TributaryError('ERR_INTERNAL', 'isolate slot is disposed');
    if (this.invocation) throw new TributaryError('ERR_INTERNAL', 'isolate slot is busy');
    const deadline = budget.startedAt + budget.timeoutMs;
    if (deadline <= performance.now()) throw timeoutError(budget.timeoutMs);
    if (budget.cpuUsedMs >= budget.cpuLimitMs) throw cpuLimitError(budget.cpuLimitMs);
    const invocation: Invocation = {
      id: ++this.invocations,
      budget,
      deadline,
      hostOps,
      cpuBase: this.isolate.cpuTime,
      carriedCpuMs: budget.cpuUsedMs,
      running: 0,
      ended: false,
      result: undefined,
      failure: undefined,
      resolve: null,
      reject: null,
      wallTimer: undefined,
      cpuTimer: undefined,
    };
    this.invocation = invocation;
    if (budget.async) this.watchCpu(invocation);
    return invocation;
  }

  /** The invocation's outcome as a promise, with the wall clock guarded from now on. */
  private pending(invocation: Invocation): Promise<GuestResult<unknown>> {
    return new Promise<GuestResult<unknown>>((resolve, reject) => {
      invocation.resolve = resolve;
      invocation.reject = reject;
      invocation.wallTimer = setTimeout(
        () => this.fail(invocation, timeoutError(invocation.budget.timeoutMs)),
        Math.max(0, invocation.deadline - performance.now()),
      );
      this.finishIfDone(invocation);
    });
  }

  private settled(invocation: Invocation, result: GuestResult<unknown>): void {
    if (invocation.ended) return;
    invocation.result = result;
    this.finishIfDone(invocation);
  }

  /** Success needs the guest's result and no entry still running (whose failure would fail the call). */
  private finishIfDone(invocation: Invocation): void {
    const resolve = invocation.resolve;
    const result = invocation.result;
    if (invocation.ended || result === undefined || invocation.running > 0 || resolve === null) return;
    this.end(invocation);
    resolve(result);
  }

  private fail(invocation: Invocation, error: unknown): void {
    if (invocation.ended) return;
    const failure = this.asFailure(error, invocation);
    invocation.failure = failure;
    this.end(invocation, failure);
    invocation.reject?.(failure);
  }

  /** Ends an invocation (once): timers dropped, CPU time recorded, the slot disposed after a discarding failure. */
  private end(invocation: Invocation, failure?: Failure): void {
    if (invocation.ended) return;
    invocation.ended = true;
    clearTimeout(invocation.wallTimer);
    clearTimeout(invocation.cpuTimer);
    invocation.budget.cpuUsedMs = this.cpuUsedMs(invocation);
    if (this.invocation === invocation) this.invocation = null;
    this.clearAllTimers();
    this.pendingOps = 0;
    this.pendingOpBytes = 0;
    this.subrequests = 0;
    this.subrequestBytesLeft = MAX_SUBREQUEST_BYTES_PER_INVOCATION;
    this.bucketCalls = 0;
    this.bucketBytesLeft = MAX_BUCKET_BYTES_PER_INVOCATION;
    this.opsAbort?.abort();
    this.opsAbort = null;
    this.zlibStreams?.close();
    this.zlibStreams = null;
    this.calls.clear();
    if (failure && (failure instanceof SliceExpired || discardsIsolate(failure))) this.dispose();
  }

  /** One entry in the invocation's mode. */
  private enter<T>(invocation: Invocation, sync: (timeoutMs: number) => T, async: (timeoutMs: number) => Promise<T>): T | Promise<T> {
    return invocation.budget.async ? this.enterAsync(invocation, async) : this.enterSync(invocation, sync);
  }

  /** A synchronous entry, its `timeout` the slice (or the rest of the budget, if less); CPU checked after. */
  private enterSync<T>(invocation: Invocation, run: (timeoutMs: number) => T): T {
    const remainingMs = invocation.deadline - performance.now();
    if (remainingMs <= 0) throw timeoutError(invocation.budget.timeoutMs);
    const sliced = remainingMs > SYNC_SLICE_MS;
    try {
      const value = run(sliced ? SYNC_SLICE_MS : Math.max(1, Math.ceil(remainingMs)));
      this.checkCpu(invocation);
      return value;
    } catch (error) {
      throw this.classify(error, invocation, sliced);
    }
  }

  private enterAsync<T>(invocation: Invocation, run: (timeoutMs: number) => Promise<T>): Promise<T> {
    const remainingMs = invocation.deadline - performance.now();
    if (remainingMs <= 0) return Promise.reject(timeoutError(invocation.budget.timeoutMs));
    invocation.running++;
    return run(Math.max(1, Math.ceil(remainingMs))).then(
      (value) => {
        invocation.running--;
        this.finishIfDone(invocation);
        return value;
      },
      (error: unknown) => {
        invocation.running--;
        throw this.classify(error, invocation, false);
      },
    );
  }

  /** A failed entry as a Failure: a cut slice is SliceExpired unless the CPU budget is what ran out. */
  private classify(error: unknown, invocation: Invocation, sliced: boolean): Failure {
    const failure = this.asFailure(error, invocation);
    if (sliced && failure instanceof TributaryError && failure.code === 'ERR_FN_TIMEOUT' && !(error instanceof TributaryError)) {
      const usedMs = this.cpuUsedMs(invocation);
      return usedMs >= invocation.budget.cpuLimitMs ? cpuLimitError(invocation.budget.cpuLimitMs) : new SliceExpired(usedMs - invocation.carriedCpuMs >= SYNC_SLICE_MS / 2);
    }
    return failure;
  }

  private asFailure(error: unknown, invocation: Invocation): Failure {
    if (error instanceof SliceExpired || error instanceof TributaryError) return error;
    return translateIvmError(error, {
      isolateDisposed: this.isolate.isDisposed,
      disposedForCpu: this.disposedForCpu,
      memoryLimitMb: this.memoryLimitMb,
      timeoutMs: invocation.budget.timeoutMs,
      cpuLimitMs: invocation.budget.cpuLimitMs,
    });
  }

  private cpuUsedMs(invocation: Invocation): number {
    if (this.isolate.isDisposed) return invocation.budget.cpuUsedMs;
    return invocation.carriedCpuMs + Number(this.isolate.cpuTime - invocation.cpuBase) / 1e6;
  }

  /** After a synchronous entry (each at most a slice long): over budget ends the call. */
  private checkCpu(invocation: Invocation): void {
    if (invocation.ended) return;
    if (this.cpuUsedMs(invocation) > invocation.budget.cpuLimitMs) throw cpuLimitError(invocation.budget.cpuLimitMs);
  }

  /**
   * While entries run asynchronously, CPU time is read when it could first reach the budget (it
   * grows no faster than the wall clock) and again until it does or the invocation ends; over
   * budget, the isolate is disposed, which stops what runs in it.
   */
  private watchCpu(invocation: Invocation): void {
    const check = () => {
      if (invocation.ended) return;
      const usedMs = this.cpuUsedMs(invocation);
      if (usedMs >= invocation.budget.cpuLimitMs) {
        this.disposedForCpu = true;
        this.fail(invocation, cpuLimitError(invocation.budget.cpuLimitMs));
        return;
      }
      invocation.cpuTimer = setTimeout(check, Math.max(1, Math.ceil(invocation.budget.cpuLimitMs - usedMs)));
    };
    invocation.cpuTimer = setTimeout(check, Math.max(1, Math.ceil(invocation.budget.cpuLimitMs - invocation.carriedCpuMs)));
  }

  private settle(callId: number, result: unknown): void {
    const resolve = this.calls.get(callId);
    if (!resolve) return;
    this.calls.delete(callId);
    resolve(decodeFetchResult(result));
  }

  log(level: LogLevel, line: string): void {
    this.onLog(level, line);
  }

  /**
   * Arms a host timer for the guest. Timers live only as long as the invocation that armed them:
   * armed outside one (module top level) they never fire, and at most MAX_TIMERS_PER_INVOCATION
   * are pending at once.
   */
  setTimer(id: number, delayMs: number): void {
    const invocation = this.invocation;
    if (invocation === null || invocation.ended) return;
    if (!this.timers.has(id) && this.timers.size >= MAX_TIMERS_PER_INVOCATION) {
      this.armed = -1;
      return;
    }
    const delay = Math.min(delayMs, Math.max(0, invocation.deadline - performance.now()));
    this.clearTimer(id);
    this.timers.set(
      id,
      setTimeout(() => {
        this.timers.delete(id);
        if (this.invocation !== invocation || invocation.ended || this.isDisposed) return;
        this.fireTimer(invocation, id);
      }, delay),
    );
    this.armed = invocation.id;
  }

  private fireTimer(invocation: Invocation, id: number): void {
    if (invocation.budget.async) {
      this.enterAsync(invocation, (timeout) => this.guest.fireTimer.apply(undefined, [id], { arguments: { copy: true }, timeout })).catch((failure: unknown) =>
        this.timerFailed(invocation, failure),
      );
      return;
    }
    try {
      this.enterSync(invocation, (timeout) => this.guest.fireTimer.applySync(undefined, [id], { arguments: { copy: true }, timeout }));
    } catch (failure) {
      this.timerFailed(invocation, failure);
    }
  }

  /** A timer callback that throws is logged, as Node reports an uncaught exception; anything else ends the call. */
  private timerFailed(invocation: Invocation, failure: unknown): void {
    if (failure instanceof TributaryError && failure.code === 'ERR_FN_THREW') {
      this.onLog('error', `Uncaught (in timer callback) ${failure.message}`);
      this.finishIfDone(invocation);
    } else {
      this.fail(invocation, failure);
    }
  }

  /**
   * Starts an asynchronous host operation for the guest (crypto.subtle): only inside an
   * invocation, at most MAX_PENDING_HOST_OPS at once; the outcome enters the guest like a timer,
   * and is dropped when the invocation has ended by then.
   */
  startOp(id: unknown, kind: unknown, payload: unknown): number {
    const invocation = this.invocation;
    if (invocation === null || invocation.ended || !invocation.hostOps || !Number.isSafeInteger(id)) return 0;
    if ((kind !== 'subtle' && kind !== 'fetch' && kind !== 'zlib' && kind !== 'state' && kind !== 'cache' && kind !== 'bucket' && kind !== 'respond' && kind !== 'write') || !Array.isArray(payload) || payload.length !== 2) return 0;
    const stateFunction = this.stateFunction;
    if (kind === 'state' && (stateFunction === null || stateRpc === null)) return 0;
    if (kind === 'cache' && stateFunction === null) return 0;
    const sink = this.responseSink;
    if ((kind === 'respond' || kind === 'write') && sink === null) return 0;
    if (this.pendingOps >= MAX_PENDING_HOST_OPS) return -1;
    // Held by the host until the work completes: bounded per invocation and per host.
    const bytes = payloadBytes(payload);
    if (this.pendingOpBytes + bytes > MAX_HOST_OP_BYTES_PER_INVOCATION || !chargeHostOpBytes(bytes)) return -2;
    this.pendingOpBytes += bytes;
    this.pendingOps++;
    const work =
      kind === 'subtle' ? subtleOutcome(payload[0], payload[1])
      : kind === 'zlib' ? (this.zlibStreams ??= new ZlibStreams(this.maxBodyBytes)).run(payload[0], payload[1])
      : kind === 'state' ? stateRpc!(stateFunction!, payload[0], payload[1])
      : kind === 'cache' ? Promise.resolve(cacheOutcome(stateFunction!, payload[0], payload[1]))
      : kind === 'bucket' ? this.bucketOutcome(invocation, payload[0], payload[1])
      : kind === 'respond' ? Promise.resolve(sinkOutcome(sink!.check(payload[0])))
      : kind === 'write' ? sink!.write(payload[0]).then(sinkOutcome)
      : this.fetchOutcome(payload[0]);
    // Completed on a later turn of the event loop, never re-entrantly inside this call (an
    // operation that settles in microtasks would otherwise enter the isolate before startOp returns).
    const settled = work.catch(() => ({ ok: false, error: { name: 'TypeError', message: 'the host operation failed' } }));
    void settled.then((outcome) => new Promise((resolve) => setImmediate(resolve, outcome))).then((outcome) => {
      releaseHostOpBytes(bytes);
      if (this.invocation !== invocation || invocation.ended || this.isDisposed) return;
      this.pendingOpBytes -= bytes;
      this.pendingOps--;
      if (kind === 'respond' && (outcome as { ok: boolean }).ok) this.commitResponse(invocation, sink!);
      this.completeOp(invocation, id as number, outcome);
    });
    return invocation.id;
  }

  /**
   * One bucket binding call (runtime/bucket-calls.ts, on the control plane): counted against the
   * invocation's calls and bytes here, where both are known — bytes sent before the call, bytes
   * received after it — and bounded by the invocation's remaining time there.
   */
  private async bucketOutcome(invocation: Invocation, binding: unknown, call: unknown): Promise<unknown> {
    const fail = (name: string, code: string, message: string) => ({ ok: false, error: { name, message: `${code}: ${message}`, code } });
    const bindingsId = this.bucketBindingsId;
    if (bindingsId === null || bucketRpc === null) return fail('TypeError', 'ERR_BUCKET_NOT_CONFIGURED', 'this function has no bucket bindings');
    if (!Array.isArray(call) || call.length !== 2 || !Array.isArray(call[1])) return fail('TypeError', 'ERR_BAD_REQUEST', 'malformed bucket call');
    if (this.bucketCalls >= MAX_BUCKET_CALLS_PER_INVOCATION) {
      return fail('RangeError', 'ERR_BUCKET_CALL_LIMIT', `an invocation may make at most ${MAX_BUCKET_CALLS_PER_INVOCATION} bucket binding calls`);
    }
    this.bucketCalls++;
    let sent = 0;
    for (const arg of call[1] as unknown[]) if (arg instanceof Uint8Array) sent += arg.byteLength;
    if (sent > this.bucketBytesLeft) return fail('RangeError', 'ERR_TOO_LARGE', `an invocation may read and write at most ${MAX_BUCKET_BYTES_PER_INVOCATION} bytes through bucket bindings`);
    // What one call may move: a put's value was counted above; a get's body may take what is left.
    const maxBytes = Math.min(this.maxBodyBytes, sent > 0 ? sent : this.bucketBytesLeft);
    this.bucketBytesLeft -= sent;
    const timeoutMs = Math.max(1, invocation.deadline - performance.now());
    const outcome = (await bucketRpc(bindingsId, binding, call[0], call[1], { maxBytes, timeoutMs })) as {
      ok?: boolean;
      value?: { body?: unknown };
    };
    const body = outcome?.ok === true ? outcome.value?.body : undefined;
    if (body instanceof Uint8Array && this.invocation === invocation) this.bucketBytesLeft = Math.max(0, this.bucketBytesLeft - body.byteLength);
    return outcome;
  }

  /**
   * The head goes out here, between entries, never from inside one: a call whose synchronous
   * slice expires before it is re-run from scratch with nothing sent. From here on its entries
   * are asynchronous (no slice to cut, the CPU monitor watches instead), since a call whose
   * response has started cannot be run again.
   */
  private commitResponse(invocation: Invocation, sink: ResponseSink): void {
    sink.commit();
    if (!invocation.budget.async) {
      invocation.budget.async = true;
      this.watchCpu(invocation);
    }
  }

  /** One outbound fetch of the current invocation, as a settled outcome (failures: TypeError with a stable code). */
  private async fetchOutcome(request: unknown): Promise<unknown> {
    const fail = (code: string, message: string) => ({ ok: false, error: { name: 'TypeError', message: `${code}: ${message}`, code } });
    if (this.subrequests >= MAX_SUBREQUESTS_PER_INVOCATION) {
      return fail('ERR_SUBREQUEST_LIMIT', `an invocation may make at most ${MAX_SUBREQUESTS_PER_INVOCATION} subrequests`);
    }
    this.subrequests++;
    this.opsAbort ??= new AbortController();
    const budget = { maxBodyBytes: this.maxBodyBytes, signal: this.opsAbort.signal, bytesLeft: 0 };
    // The byte budget is shared by the invocation's subrequests: each takes from it as bytes arrive.
    const shared = this;
    Object.defineProperty(budget, 'bytesLeft', {
      get: () => shared.subrequestBytesLeft,
      set: (value: number) => (shared.subrequestBytesLeft = value),
    });
    try {
      const checked = checkFetchRequest(request, this.maxBodyBytes);
      return { ok: true, value: await egressFetch(checked, currentEgressPolicy(), budget) };
    } catch (error) {
      if (error instanceof EgressError) return fail(error.code, error.message);
      return fail('ERR_FETCH_FAILED', 'the subrequest failed');
    }
  }

  private completeOp(invocation: Invocation, id: number, outcome: unknown): void {
    const args = [id, outcome];
    if (invocation.budget.async) {
      this.enterAsync(invocation, (timeout) => this.guest.completeOp.apply(undefined, args, { arguments: { copy: true }, timeout })).catch((failure: unknown) =>
        this.timerFailed(invocation, failure),
      );
      return;
    }
    try {
      this.enterSync(invocation, (timeout) => this.guest.completeOp.applySync(undefined, args, { arguments: { copy: true }, timeout }));
    } catch (failure) {
      this.timerFailed(invocation, failure);
    }
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
    const running = this.invocation;
    if (running && !running.ended) this.fail(running, new TributaryError('ERR_UNAVAILABLE', 'the function instance was released while running this call'));
    this.disposed = true;
    this.clearAllTimers();
    if (!this.isolate.isDisposed) this.isolate.dispose();
  }
}
