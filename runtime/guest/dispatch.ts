/**
 * Calls into the user's module: `fetch(request, env, ctx)` for HTTP invokes and
 * `process(record, env, ctx)` looped over a whole batch (one boundary crossing per batch).
 */
import { describeThrown, guestError } from './errors.ts';
import { ArrayPrototypePush, ObjectFreeze, SafeUint8Array, uncurryThis } from './primordials.ts';
import { webGlobals } from './web-globals.ts';
import type { GuestResult, ModuleShape, WireBatchResult, WireEmit, WireRecord, WireRequest, WireResponse } from './wire.ts';

export interface Handlers {
  fetch?: (request: unknown, env: unknown, ctx: unknown) => unknown;
  process?: (record: unknown, env: unknown, ctx: unknown) => unknown;
}

export interface DispatchOptions {
  maxBodyBytes: number;
  env: object;
}

export function createDispatcher(global: typeof globalThis, options: DispatchOptions) {
  // Captured before user code runs: a module replacing globalThis.Response cannot fool us.
  const { Request: RequestCtor, Response: ResponseCtor, Headers: HeadersCtor } = webGlobals(global);
  const responseArrayBuffer = uncurryThis(ResponseCtor.prototype.arrayBuffer);
  const headersEntries = uncurryThis(HeadersCtor.prototype.entries);
  const env = options.env;
  let handlers: Handlers | null = null;

  function load(namespace: { default?: unknown }): GuestResult<ModuleShape> {
    const exported = namespace.default;
    if (typeof exported !== 'object' || exported === null) {
      return { ok: false, error: guestError('ERR_COMPILE', 'module must `export default { fetch, process }`') };
    }
    const { fetch, process } = exported as Handlers;
    if (typeof fetch !== 'function' && typeof process !== 'function') {
      return { ok: false, error: guestError('ERR_COMPILE', 'default export has neither a fetch nor a process function') };
    }
    handlers = ObjectFreeze({
      fetch: typeof fetch === 'function' ? fetch.bind(exported) : undefined,
      process: typeof process === 'function' ? process.bind(exported) : undefined,
    });
    return { ok: true, value: { fetch: handlers.fetch !== undefined, process: handlers.process !== undefined } };
  }

  function install(custom: Handlers): void {
    handlers = ObjectFreeze(custom);
  }

  async function dispatchFetch(wire: WireRequest): Promise<GuestResult<WireResponse>> {
    if (handlers?.fetch === undefined) {
      return { ok: false, error: guestError('ERR_FN_BAD_RESPONSE', 'function has no fetch handler') };
    }
    const waitUntil: Promise<unknown>[] = [];
    const ctx = ObjectFreeze({
      waitUntil: (promise: Promise<unknown>) => void ArrayPrototypePush(waitUntil, promise),
      passThroughOnException: () => {},
    });
    let response: unknown;
    try {
      const request = new RequestCtor(wire.url, { method: wire.method, headers: wire.headers, body: wire.body });
      response = await handlers.fetch(request, env, ctx);
    } catch (thrown) {
      return { ok: false, error: describeThrown(thrown) };
    }
    if (!(response instanceof ResponseCtor)) {
      return { ok: false, error: guestError('ERR_FN_BAD_RESPONSE', 'fetch handler must return a Response') };
    }
    try {
      const buffer = await responseArrayBuffer(response);
      if (buffer.byteLength > options.maxBodyBytes) {
        return { ok: false, error: guestError('ERR_FN_BAD_RESPONSE', `response body exceeds ${options.maxBodyBytes} bytes`) };
      }
      const headers: [string, string][] = [];
      for (const pair of headersEntries(response.headers)) ArrayPrototypePush(headers, [`${pair[0]}`, `${pair[1]}`]);
      for (const pending of waitUntil) await pending;
      const body = buffer.byteLength === 0 ? null : new SafeUint8Array(buffer);
      return { ok: true, value: { status: response.status, statusText: `${response.statusText}`, headers, body } };
    } catch (thrown) {
      return { ok: false, error: describeThrown(thrown) };
    }
  }

  async function dispatchBatch(records: WireRecord[]): Promise<GuestResult<WireBatchResult>> {
    const process = handlers?.process;
    if (process === undefined) {
      return { ok: false, error: guestError('ERR_FN_BAD_RESPONSE', 'function has no process handler') };
    }
    const emits: WireEmit[] = [];
    const failures: WireBatchResult['failures'] = [];
    for (let index = 0; index < records.length; index++) {
      const pending: WireEmit[] = [];
      const emit = (value: unknown, opts?: { key?: unknown }) => {
        const key = opts?.key;
        ArrayPrototypePush(pending, { index, key: key === undefined || key === null ? null : `${key}`, value });
      };
      try {
        const record = ObjectFreeze(records[index]);
        const returned = await process(record, env, ObjectFreeze({ emit }));
        if (returned !== undefined) emit(returned);
        for (const e of pending) ArrayPrototypePush(emits, e);
      } catch (thrown) {
        ArrayPrototypePush(failures, { index, error: describeThrown(thrown) });
      }
    }
    return { ok: true, value: { emits, failures } };
  }

  return { load, install, dispatchFetch, dispatchBatch };
}
