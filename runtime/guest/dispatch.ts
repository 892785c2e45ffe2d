/**
 * Calls into the user's module: `fetch(request, env, ctx)` for HTTP invokes and
 * `process(record, env, ctx)` looped over a whole batch (one boundary crossing per batch).
 */
import { describeThrown, guestError, type GuestError } from './errors.ts';
import { ArrayPrototypePush, ObjectFreeze, SafeMap, SafePromise } from './primordials.ts';
import { isResponse, readResponse } from './web/index.ts';
import { webGlobals } from './web-globals.ts';
import type { GuestResult, ModuleShape, WireBatch, WireBatchResult, WireEmit, WireRequest, WireResponse } from './wire.ts';
import { createStateBinding, type StateValue } from './state-binding.ts';

export interface Handlers {
  fetch?: (request: unknown, env: unknown, ctx: unknown) => unknown;
  process?: (record: unknown, env: unknown, ctx: unknown) => unknown;
}

export interface DispatchOptions {
  maxBodyBytes: number;
  env: object;
}

/** Results have no prototype: resolving a promise with them never consults Object.prototype.then. */
function success<T>(value: T): GuestResult<T> {
  return { __proto__: null, ok: true, value } as unknown as GuestResult<T>;
}

function failure<T>(error: GuestError): GuestResult<T> {
  return { __proto__: null, ok: false, error } as unknown as GuestResult<T>;
}

export function createDispatcher(global: typeof globalThis, options: DispatchOptions) {
  // Captured before user code runs: a module replacing globalThis.Request cannot fool us.
  const { Request: RequestCtor } = webGlobals(global);
  const env = options.env;
  const state = createStateBinding(global);
  const processEnv = ObjectFreeze({ ...env, STATE: state.STATE });
  let handlers: Handlers | null = null;

  function load(namespace: { default?: unknown }): GuestResult<ModuleShape> {
    const exported = namespace.default;
    if (typeof exported !== 'object' || exported === null) {
      return failure(guestError('ERR_COMPILE', 'module must `export default { fetch, process }`'));
    }
    const { fetch, process } = exported as Handlers;
    if (typeof fetch !== 'function' && typeof process !== 'function') {
      return failure(guestError('ERR_COMPILE', 'default export has neither a fetch nor a process function'));
    }
    handlers = ObjectFreeze({
      fetch: typeof fetch === 'function' ? fetch.bind(exported) : undefined,
      process: typeof process === 'function' ? process.bind(exported) : undefined,
    });
    return success({ fetch: handlers.fetch !== undefined, process: handlers.process !== undefined });
  }

  function install(custom: Handlers): void {
    handlers = ObjectFreeze(custom);
  }

  async function dispatchFetch(wire: WireRequest): Promise<GuestResult<WireResponse>> {
    if (handlers?.fetch === undefined) {
      return failure(guestError('ERR_FN_BAD_RESPONSE', 'function has no fetch handler'));
    }
    const waitUntil: unknown[] = [];
    const ctx = ObjectFreeze({
      waitUntil: (promise: unknown) => void ArrayPrototypePush(waitUntil, promise),
      passThroughOnException: () => {},
    });
    let response: unknown;
    try {
      const request = new RequestCtor(wire.url, { method: wire.method, headers: wire.headers, body: wire.body });
      response = handlers.fetch(request, env, ctx);
      // Await only real promises: awaiting a Response would look up `then` on it, which user code
      // may have planted on Object.prototype.
      if (response instanceof SafePromise) response = await response;
    } catch (thrown) {
      return failure(describeThrown(thrown));
    }
    if (!isResponse(response)) {
      return failure(guestError('ERR_FN_BAD_RESPONSE', 'fetch handler must return a Response'));
    }
    try {
      const parts = readResponse(response);
      if (parts.body !== null && parts.body.byteLength > options.maxBodyBytes) {
        return failure(guestError('ERR_FN_BAD_RESPONSE', `response body exceeds ${options.maxBodyBytes} bytes`));
      }
      for (let i = 0; i < waitUntil.length; i++) if (waitUntil[i] instanceof SafePromise) await waitUntil[i];
      return success(parts);
    } catch (thrown) {
      return failure(describeThrown(thrown));
    }
  }

  /**
   * Loops `process` over a batch (one boundary crossing per batch). A record that throws is
   * retried in place up to `maxAttempts` times, so per-key order holds; if every attempt throws it
   * is reported as a failure and its emits and state writes are dropped. Synchronous handlers are
   * never awaited, so a batch of them costs no microtask per record.
   */
  async function dispatchBatch(batch: WireBatch): Promise<GuestResult<WireBatchResult>> {
    const process = handlers?.process;
    if (process === undefined) {
      return failure(guestError('ERR_FN_BAD_RESPONSE', 'function has no process handler'));
    }
    if (!state.begin(batch.state)) return success({ needState: true, emits: [], failures: [], writes: [] });
    const emits: WireEmit[] = [];
    const failures: WireBatchResult['failures'] = [];
    const batchWrites = new SafeMap<string, StateValue | null>();
    const records = batch.records;
    let index = 0;
    let pending: WireEmit[] = [];
    const emit = (value: unknown, opts?: { key?: unknown }) => {
      const key = opts?.key;
      ArrayPrototypePush(pending, { index, key: key === undefined || key === null ? null : `${key}`, value });
    };
    const ctx = ObjectFreeze({ emit });
    try {
      for (; index < records.length; index++) {
        for (let attempt = 1; ; attempt++) {
          pending = [];
          state.beginRecord();
          try {
            let returned = process(records[index], processEnv, ctx);
            if (returned instanceof SafePromise) returned = await returned;
            if (returned !== undefined) emit(returned);
            for (let i = 0; i < pending.length; i++) ArrayPrototypePush(emits, pending[i]);
            state.keepRecord(batchWrites);
            break;
          } catch (thrown) {
            state.dropRecord();
            if (attempt >= batch.maxAttempts) {
              ArrayPrototypePush(failures, { index, error: describeThrown(thrown) });
              break;
            }
          }
        }
      }
    } finally {
      state.end();
    }
    const writes: [string, StateValue | null][] = [];
    for (const [key, value] of batchWrites) ArrayPrototypePush(writes, [key, value]);
    return success({ emits, failures, writes });
  }

  return { load, install, dispatchFetch, dispatchBatch };
}
