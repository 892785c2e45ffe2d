/**
 * Calls into the user's module: `fetch(request, env, ctx)` for HTTP invokes and
 * `process(record, env, ctx)` looped over a whole batch (one boundary crossing per batch), and
 * `onTimer(timer, env, ctx)` over a partition's due timers the same way.
 */
import { describeThrown, guestError, type GuestError, type GuestErrorCode } from './errors.ts';
import { copyOutput, OutputRefused } from './output-copy.ts';
import {
  DatePrototypeGetTime, listToArray, MapPrototypeForEach, MathFloor, newList, NumberIsFinite, ObjectDefineProperty, ObjectFreeze, ObjectKeys, SafeDate, SafeMap,
  SafePromise, SafeRangeError, SafeTypeError, StringPrototypeSlice,
} from './primordials.ts';
import { MAX_TIMER_KEY_CHARS } from '../stream-timers.ts';
import { isResponse, readResponse, responseHeadBytes, type ResponseParts } from './web/index.ts';
import { requestFromHost } from './web/request.ts';
import { byteLengthOf } from './web/bytes.ts';
import { BodyDrainError, drainStream, pumpStream } from './web/streams.ts';
import type { OpOutcome } from './host-ops.ts';
import { webGlobals } from './web-globals.ts';
import type { GuestResult, ModuleShape, WireBatch, WireBatchResult, WireEmit, WireRequest, WireResponse } from './wire.ts';
import { createStateBinding, type StateValue } from './state-binding.ts';

export interface Handlers {
  fetch?: (request: unknown, env: unknown, ctx: unknown) => unknown;
  process?: (record: unknown, env: unknown, ctx: unknown) => unknown;
  onTimer?: (timer: unknown, env: unknown, ctx: unknown) => unknown;
}

export interface DispatchOptions {
  maxBodyBytes: number;
  /** Status text and header bytes of a response (ERR_TOO_LARGE beyond). */
  maxResponseHeaderBytes: number;
  /** Outputs one input record may emit (ERR_QUOTA_EXCEEDED fails the record beyond). */
  maxEmitsPerRecord: number;
  /** Bytes one batch may emit and write to state (ERR_TOO_LARGE fails the record that crosses it). */
  maxBatchOutputBytes: number;
  /** Nesting depth of an emitted value (ERR_TOO_DEEP fails the record). */
  maxJsonDepth: number;
  env: object;
  /** fetch handlers' env.STATE (fetch-state.ts); absent in warmup. */
  fetchState?: object;
  /** Makes the bucket binding `name` (bucket-binding.ts); absent in warmup. */
  bucketBinding?: (name: string) => object;
  /** Streams a response to the host (WireRequest.stream): its head, then each chunk. */
  respond?: { head(head: Omit<WireResponse, 'body'>): Promise<OpOutcome>; write(bytes: Uint8Array): Promise<OpOutcome> };
}

/** Results have no prototype: resolving a promise with them never consults Object.prototype.then. */
function success<T>(value: T): GuestResult<T> {
  return { __proto__: null, ok: true, value } as unknown as GuestResult<T>;
}

function failure<T>(error: GuestError): GuestResult<T> {
  return { __proto__: null, ok: false, error } as unknown as GuestResult<T>;
}

/** Latest time a Date can hold (ms since the epoch). */
const MAX_TIME_MS = 8.64e15;

/** Thrown in place of `onTimer` for a timer being dropped (WireTimerFire.drop). */
class DroppedTimer extends SafeRangeError {}

function timerKey(key: unknown): string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_TIMER_KEY_CHARS) {
    throw new SafeTypeError(`timer keys are non-empty strings of at most ${MAX_TIMER_KEY_CHARS} characters`);
  }
  return key;
}

export function createDispatcher(global: typeof globalThis, options: DispatchOptions) {
  // Captured before user code runs: a module replacing globalThis.Request cannot fool us.
  const { Request: RequestCtor } = webGlobals(global);
  const state = createStateBinding(global);
  const withFetchState = (record: object) => (options.fetchState ? ObjectFreeze({ ...record, STATE: options.fetchState }) : ObjectFreeze({ ...record }));
  let env: object = withFetchState(options.env);
  let processEnv = ObjectFreeze({ ...env, STATE: state.STATE });
  let handlers: Handlers | null = null;

  /** `bindings`: the version's vars and secrets (plain strings, copied in by the host). */
  function load(namespace: { default?: unknown }, bindings?: Record<string, string>, buckets?: string[]): GuestResult<ModuleShape> {
    if (typeof bindings === 'object' && bindings !== null) {
      const record: Record<string, unknown> = {};
      const names = ObjectKeys(bindings);
      for (let i = 0; i < names.length; i++) {
        const value = bindings[names[i]];
        if (typeof value === 'string') ObjectDefineProperty(record, names[i], { value, enumerable: true, writable: false, configurable: false });
      }
      // Bucket bindings: the host sends names only; each object calls the control plane through host ops.
      const make = options.bucketBinding;
      if (make !== undefined && buckets !== undefined && buckets !== null) {
        for (let i = 0; i < buckets.length; i++) {
          if (typeof buckets[i] === 'string') ObjectDefineProperty(record, buckets[i], { value: make(buckets[i]), enumerable: true, writable: false, configurable: false });
        }
      }
      env = withFetchState(record);
      processEnv = ObjectFreeze({ ...record, STATE: state.STATE });
    }
    const exported = namespace.default;
    if (typeof exported !== 'object' || exported === null) {
      return failure(guestError('ERR_COMPILE', 'module must `export default { fetch, process }`'));
    }
    const { fetch, process, onTimer } = exported as Handlers;
    if (typeof fetch !== 'function' && typeof process !== 'function') {
      return failure(guestError('ERR_COMPILE', 'default export has neither a fetch nor a process function'));
    }
    handlers = ObjectFreeze({
      fetch: typeof fetch === 'function' ? fetch.bind(exported) : undefined,
      process: typeof process === 'function' ? process.bind(exported) : undefined,
      onTimer: typeof onTimer === 'function' ? onTimer.bind(exported) : undefined,
    });
    return success({ fetch: handlers.fetch !== undefined, process: handlers.process !== undefined, onTimer: handlers.onTimer !== undefined });
  }

  function install(custom: Handlers): void {
    handlers = ObjectFreeze(custom);
  }

  /**
   * Runs `calls` with a throwaway fetch handler in place, before any user module is loaded
   * (warmup.ts): this dispatcher's own closures get their feedback and inline caches, which V8
   * allocates only after a function has run a few times, instead of the first real calls paying.
   */
  function warm(fetch: NonNullable<Handlers['fetch']>, calls: () => void): void {
    const saved = handlers;
    handlers = ObjectFreeze({ fetch });
    try {
      calls();
    } finally {
      handlers = saved;
    }
  }

  /** A WireRequest as the handler's Request (warmup and tests; the host's invokes come through fetchFromHost). */
  function dispatchFetch(wire: WireRequest): GuestResult<WireResponse> | Promise<GuestResult<WireResponse>> {
    let request: unknown;
    try {
      request = new RequestCtor(wire.url, { method: wire.method, headers: wire.headers, body: wire.body });
    } catch (thrown) {
      return failure(describeThrown(thrown));
    }
    return runFetch(request, wire.stream === true);
  }

  /**
   * An invoke from the host (see requestFromHost for what it guarantees). A handler that returns
   * a Response, not a promise, with a buffered body and nothing for waitUntil, is answered
   * synchronously: the result goes back as the entry's return value, with no promise allocated.
   */
  function fetchFromHost(method: string, url: string, headers: string, body: Uint8Array | null, stream: boolean): GuestResult<WireResponse> | Promise<GuestResult<WireResponse>> {
    let request: unknown;
    try {
      request = requestFromHost(method, url, headers, body);
    } catch (thrown) {
      return failure(describeThrown(thrown));
    }
    return runFetch(request, stream);
  }

  function runFetch(request: unknown, stream: boolean): GuestResult<WireResponse> | Promise<GuestResult<WireResponse>> {
    if (handlers?.fetch === undefined) {
      return failure(guestError('ERR_FN_BAD_RESPONSE', 'function has no fetch handler'));
    }
    const waitUntil = newList<unknown>();
    const ctx = ObjectFreeze({
      waitUntil: (promise: unknown) => void (waitUntil[waitUntil.length] = promise),
      passThroughOnException: () => {},
    });
    let response: unknown;
    try {
      response = handlers.fetch(request, env, ctx);
    } catch (thrown) {
      return failure(describeThrown(thrown));
    }
    // Await only real promises: awaiting a Response would look up `then` on it, which user code
    // may have planted on Object.prototype.
    if (response instanceof SafePromise) return awaitResponse(response, waitUntil, stream);
    return finishFetch(response, waitUntil, stream);
  }

  async function awaitResponse(pending: Promise<unknown>, waitUntil: unknown[], stream: boolean): Promise<GuestResult<WireResponse>> {
    let response: unknown;
    try {
      response = await pending;
    } catch (thrown) {
      return failure(describeThrown(thrown));
    }
    return finishFetch(response, waitUntil, stream);
  }

  /** Takes the Response apart: synchronously when its body is buffered and waitUntil holds no promise. */
  function finishFetch(response: unknown, waitUntil: unknown[], stream: boolean): GuestResult<WireResponse> | Promise<GuestResult<WireResponse>> {
    if (!isResponse(response)) {
      return failure(guestError('ERR_FN_BAD_RESPONSE', 'fetch handler must return a Response'));
    }
    try {
      // Measured before anything is copied: a head of hundreds of MiB never leaves the isolate.
      const headBytes = responseHeadBytes(response);
      if (headBytes > options.maxResponseHeaderBytes) {
        return failure(guestError('ERR_TOO_LARGE', `response headers and status text take ${headBytes} bytes, over the limit of ${options.maxResponseHeaderBytes}`));
      }
      const parts = readResponse(response);
      if (parts.stream !== null) return finishStream(parts, waitUntil, stream);
      const body = parts.body;
      if (body !== null && byteLengthOf(body) > options.maxBodyBytes) {
        return failure(guestError('ERR_FN_BAD_RESPONSE', `response body exceeds ${options.maxBodyBytes} bytes`));
      }
      const result = success<WireResponse>({ status: parts.status, statusText: parts.statusText, headers: parts.headers, body });
      for (let i = 0; i < waitUntil.length; i++) if (waitUntil[i] instanceof SafePromise) return afterWaitUntil(waitUntil, i, result);
      return result;
    } catch (thrown) {
      return failure(describeThrown(thrown));
    }
  }

  async function afterWaitUntil<T>(waitUntil: unknown[], from: number, result: GuestResult<T>): Promise<GuestResult<T>> {
    try {
      for (let i = from; i < waitUntil.length; i++) if (waitUntil[i] instanceof SafePromise) await waitUntil[i];
    } catch (thrown) {
      return failure(describeThrown(thrown));
    }
    return result;
  }

  /** A stream body: sent chunk by chunk when the host can take it (WireRequest.stream), else drained here, bounded. */
  async function finishStream(parts: ResponseParts, waitUntil: unknown[], stream: boolean): Promise<GuestResult<WireResponse>> {
    try {
      const respond = options.respond;
      if (stream && respond !== undefined) {
        // Streamed to the client as it is produced: the host checks and writes the head, then each chunk.
        const opened = await respond.head({ status: parts.status, statusText: parts.statusText, headers: parts.headers });
        if (!opened.ok) return failure(guestError('ERR_FN_BAD_RESPONSE', opened.error.message));
        try {
          await pumpStream(parts.stream!, options.maxBodyBytes, async (bytes) => {
            const wrote = await respond.write(bytes);
            return wrote.ok ? null : wrote.error.message;
          });
        } catch (thrown) {
          if (thrown instanceof BodyDrainError) {
            return failure(guestError('ERR_FN_BAD_RESPONSE', thrown.tooLarge ? `response body exceeds ${options.maxBodyBytes} bytes` : thrown.message));
          }
          return failure(describeThrown(thrown));
        }
        for (let i = 0; i < waitUntil.length; i++) if (waitUntil[i] instanceof SafePromise) await waitUntil[i];
        return success({ status: parts.status, statusText: parts.statusText, headers: parts.headers, body: null, streamed: true });
      }
      let body: Uint8Array;
      try {
        body = (await drainStream(parts.stream!, options.maxBodyBytes)).bytes;
      } catch (thrown) {
        if (thrown instanceof BodyDrainError) {
          const message = thrown.tooLarge ? `response body exceeds ${options.maxBodyBytes} bytes` : thrown.message;
          return failure(guestError('ERR_FN_BAD_RESPONSE', message));
        }
        return failure(describeThrown(thrown));
      }
      if (byteLengthOf(body) > options.maxBodyBytes) {
        return failure(guestError('ERR_FN_BAD_RESPONSE', `response body exceeds ${options.maxBodyBytes} bytes`));
      }
      for (let i = 0; i < waitUntil.length; i++) if (waitUntil[i] instanceof SafePromise) await waitUntil[i];
      return success({ status: parts.status, statusText: parts.statusText, headers: parts.headers, body });
    } catch (thrown) {
      return failure(describeThrown(thrown));
    }
  }

  /**
   * Loops `process` over a batch (one boundary crossing per batch). A record that throws is
   * retried in place up to `maxAttempts` times, so per-key order holds; if every attempt throws it
   * is reported as a failure and its emits and state writes are dropped. A record that breaks an
   * output limit (emits, depth, bytes, kind) fails at once, without retries: the limit would break
   * again. Synchronous handlers are never awaited, so a batch of them costs no microtask per record.
   */
  async function dispatchBatch(batch: WireBatch): Promise<GuestResult<WireBatchResult>> {
    const fire = batch.fire;
    const onTimer = handlers?.onTimer;
    const handler = fire === undefined ? handlers?.process : onTimer;
    if (handler === undefined) {
      return failure(guestError('ERR_FN_BAD_RESPONSE', fire === undefined ? 'function has no process handler' : 'function has no onTimer handler'));
    }
    if (!state.begin(batch.state)) return success({ needState: true, emits: [], failures: [], writes: [] });
    const { maxEmitsPerRecord, maxBatchOutputBytes, maxJsonDepth } = options;
    // Lists without a prototype while user code runs (no planted setter can reach them), made
    // ordinary arrays once at the end.
    const emits = newList<WireEmit>();
    const failures = newList<WireBatchResult['failures'][number]>();
    const batchWrites = new SafeMap<string, StateValue | null>();
    const watermark = typeof batch.watermark === 'number' ? batch.watermark : null;
    const fired = fire === undefined ? null : state.dueTimers(fire.now, watermark, fire.limit);
    const records: unknown[] = fired ?? batch.records;
    let index = 0;
    let nextTimers: WireBatchResult['nextTimers'];
    /** Where the current record's emits start in `emits`: a failed attempt is cut off there. */
    let recordStart = 0;
    /**
     * Bytes the batch's kept records emitted; an upper bound on its write set (exact after a
     * recount, done only near the limit); what the current record emitted.
     */
    let emittedBytes = 0;
    let writtenBytes = 0;
    let recordBytes = 0;
    /** Set once the current record broke a limit: it fails whatever it does next. */
    let broken: GuestError | null = null;
    const breakLimit = (code: GuestErrorCode, message: string): never => {
      // Dead letters carry the message only: it starts with the code.
      if (broken === null) broken = guestError(code, `${code}: ${message}`);
      throw code === 'ERR_FN_BAD_OUTPUT' ? new SafeTypeError(broken.message) : new SafeRangeError(broken.message);
    };
    const emit = (value: unknown, opts?: { key?: unknown }) => {
      if (broken !== null) throw new SafeRangeError(broken.message);
      if (emits.length - recordStart >= maxEmitsPerRecord) breakLimit('ERR_QUOTA_EXCEEDED', `a record may emit at most ${maxEmitsPerRecord} outputs`);
      const key = opts?.key;
      const keyText = key === undefined || key === null ? null : `${key}`;
      let out = value;
      let bytes: number;
      // Strings and numbers (most emits) are counted without a walk.
      if (typeof value === 'string') bytes = value.length;
      else if (typeof value === 'number' || typeof value === 'boolean' || value === undefined || value === null) bytes = 8;
      else {
        try {
          const copied = copyOutput(value, maxJsonDepth, maxBatchOutputBytes - emittedBytes - writtenBytes - recordBytes);
          out = copied.value;
          bytes = copied.bytes;
        } catch (thrown) {
          if (thrown instanceof OutputRefused) breakLimit(thrown.code, thrown.message);
          throw thrown;
        }
      }
      recordBytes += keyText === null ? bytes : bytes + keyText.length;
      if (emittedBytes + writtenBytes + recordBytes > maxBatchOutputBytes) breakLimit('ERR_TOO_LARGE', `the batch's outputs exceed ${maxBatchOutputBytes} bytes`);
      emits[emits.length] = { index, key: keyText, value: out };
    };
    const timers = ObjectFreeze({
      /** Sets (or moves) timer `key` to fire at `at` (ms since the epoch, or a Date): `onTimer` runs then. */
      set(key: unknown, at: unknown, options?: { kind?: unknown }) {
        if (onTimer === undefined) throw new SafeTypeError('ctx.timers needs an onTimer(timer, env, ctx) handler in the default export');
        const k = timerKey(key);
        const due = typeof at === 'number' ? at : at instanceof SafeDate ? DatePrototypeGetTime(at) : NaN;
        if (!NumberIsFinite(due) || due < 0 || due > MAX_TIME_MS) throw new SafeTypeError('a timer is due at a time in ms since the epoch (a finite number or a Date)');
        const kind = options === undefined || options === null ? undefined : options.kind;
        if (kind !== undefined && kind !== 'processing' && kind !== 'event') {
          throw new SafeTypeError(`timer kind ${typeof kind === 'string' ? `'${StringPrototypeSlice(kind, 0, 40)}'` : typeof kind} is not supported (supported: 'processing', 'event')`);
        }
        state.timerSet(k, MathFloor(due), kind ?? 'processing');
      },
      delete(key: unknown) {
        state.timerDelete(timerKey(key));
      },
      /** Timer `key` as `{at, kind}`, or null when it is not set. */
      get(key: unknown) {
        return state.timerGet(timerKey(key));
      },
    });
    // The event-time watermark of the partition (null without event time), as of the batch's start.
    const ctx = ObjectFreeze({ emit, timers, watermark });
    const fail = (error: GuestError) => {
      emits.length = recordStart;
      state.dropRecord();
      failures[failures.length] = { index, error };
      if (fired !== null) {
        // A failed timer is dead-lettered, not fired again: its deletion stays.
        state.beginRecord();
        state.timerDelete(fired[index].key);
        state.keepRecord(batchWrites);
      }
    };
    try {
      for (; index < records.length; index++) {
        for (let attempt = 1; ; attempt++) {
          emits.length = recordStart = emits.length;
          recordBytes = 0;
          broken = null;
          state.beginRecord();
          try {
            // A timer is deleted as it fires (the handler may set it again); in drop mode, that is all.
            if (fired !== null) {
              state.timerDelete(fired[index].key);
              if (fire!.drop === true) throw new DroppedTimer();
            }
            let returned = handler(records[index], processEnv, ctx);
            if (returned instanceof SafePromise) returned = await returned;
            if (returned !== undefined) emit(returned);
            // O(1) upper bounds first; exact counts only near the limit.
            let written = state.recordBytes();
            if (broken === null && emittedBytes + writtenBytes + recordBytes + written > maxBatchOutputBytes) {
              writtenBytes = state.writeSetBytes(batchWrites);
              written = state.recordDelta(batchWrites);
              if (emittedBytes + writtenBytes + recordBytes + written > maxBatchOutputBytes) {
                broken = guestError('ERR_TOO_LARGE', `ERR_TOO_LARGE: the batch's outputs and state writes exceed ${maxBatchOutputBytes} bytes`);
              }
            }
            if (broken !== null) fail(broken);
            else {
              state.keepRecord(batchWrites);
              emittedBytes += recordBytes;
              writtenBytes += written;
            }
            break;
          } catch (thrown) {
            if (broken !== null || attempt >= batch.maxAttempts || thrown instanceof DroppedTimer) {
              fail(broken ?? describeThrown(thrown));
              break;
            }
            emits.length = recordStart;
            state.dropRecord();
          }
        }
        recordStart = emits.length;
      }
      if (onTimer !== undefined) nextTimers = state.nextTimers();
    } finally {
      state.end();
    }
    const writes = newList<[string, StateValue | null]>();
    MapPrototypeForEach(batchWrites, (value: StateValue | null, key: string) => {
      writes[writes.length] = [key, value];
    });
    const result: WireBatchResult = { emits: listToArray(emits), failures: listToArray(failures), writes: listToArray(writes) };
    if (fired !== null) result.fired = listToArray(fired);
    if (nextTimers !== undefined) result.nextTimers = nextTimers;
    return success(result);
  }

  return { load, install, warm, dispatchFetch, fetchFromHost, dispatchBatch };
}
