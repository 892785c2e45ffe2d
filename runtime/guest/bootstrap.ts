/**
 * Entry point of the guest bundle, evaluated once per isolate context before any user code.
 * `install(host, options)` puts the Web APIs on the global object, captures what the platform
 * needs, and returns the functions the host calls. Nothing it returns is reachable from user code:
 * the bundle is evaluated inside a closure, so `install` itself never touches the global object.
 */
import { installBufferGuard } from './buffer-guard.ts';
import { createDispatcher } from './dispatch.ts';
import { installIntlGuard } from './intl-guard.ts';
import { describeThrown } from './errors.ts';
import { listToArray, newList, ObjectHasOwn, PromisePrototypeThen, ReflectApply, SafePromise, StringFromCharCode, StringPrototypeIndexOf } from './primordials.ts';
import { byteLengthOf } from './web/bytes.ts';
import { warmup } from './warmup.ts';
import { webGlobals } from './web-globals.ts';
import type { HostRefs } from './host-refs.ts';
import { createMemoryBudget } from './memory-budget.ts';
import { installTimers } from './timers.ts';
import { createHostOps } from './host-ops.ts';
import { createBucketBinding } from './bucket-binding.ts';
import { createFetchState } from './fetch-state.ts';
import { installWasmGuard } from './wasm-guard.ts';
import { loadWasm as loadWasmModule } from './wasm-adapter.ts';
import { installWebApis } from './web/index.ts';
import type { GuestResult, ModuleShape, WireResponse } from './wire.ts';

export interface InstallOptions {
  maxBodyBytes: number;
  /** The isolate's heap limit: also the budget for memory V8 allocates outside the heap. */
  memoryLimitMb: number;
  /** Bytes of a response's header names and values together (runtime/limits.ts MAX_RESPONSE_HEADER_BYTES). */
  maxResponseHeaderBytes: number;
  /** Outputs one input record may emit (MAX_EMITS_PER_RECORD). */
  maxEmitsPerRecord: number;
  /** Bytes of everything one batch emits (MAX_BATCH_OUTPUT_BYTES). */
  maxBatchOutputBytes: number;
  /** Nesting depth of emitted values (MAX_JSON_DEPTH). */
  maxJsonDepth: number;
}

/** Fetch entries run while a slot is built (before user code): V8 allocates feedback vectors after about eight calls. */
const WARM_FETCHES = 12;

export function install(host: HostRefs, options: InstallOptions) {
  const global = globalThis;
  // Memory V8 allocates outside isolated-vm's heap limit is charged to one budget per isolate.
  const budget = createMemoryBudget(options.memoryLimitMb);
  installBufferGuard(global, budget);
  const wasm = installWasmGuard(global, budget);
  installIntlGuard(global, budget);
  const fireTimer = installTimers(global, host);
  const ops = createHostOps(host);
  installWebApis(global, host, { maxBodyBytes: options.maxBodyBytes, ops });
  // Atomics.wait would block the host's thread in a way V8's termination does not always
  // interrupt; browsers forbid it on the main thread too.
  Object.defineProperty(Atomics, 'wait', {
    value: function wait() {
      throw new TypeError('Atomics.wait is not allowed in functions (it would block the host); use Atomics.waitAsync');
    },
    writable: false,
    configurable: false,
  });
  const env = Object.freeze({});
  const dispatcher = createDispatcher(global, {
    maxBodyBytes: options.maxBodyBytes,
    maxResponseHeaderBytes: options.maxResponseHeaderBytes,
    maxEmitsPerRecord: options.maxEmitsPerRecord,
    maxBatchOutputBytes: options.maxBatchOutputBytes,
    maxJsonDepth: options.maxJsonDepth,
    env,
    fetchState: createFetchState(ops),
    bucketBinding: (name: string) => createBucketBinding(global, ops, name),
    respond: { head: (head) => ops.run('respond', [head, null]), write: (bytes) => ops.run('write', [bytes, null]) },
  });

  function loadWasm(bytes: Uint8Array): GuestResult<ModuleShape> {
    const loaded = loadWasmModule(global, bytes, wasm);
    if ('error' in loaded) return { ok: false, error: loaded.error };
    dispatcher.install(loaded.handlers);
    return { ok: true, value: { fetch: true, process: true } };
  }

  const entries = { fetch: dispatcher.dispatchFetch, process: dispatcher.dispatchBatch };

  /**
   * Starts an asynchronous entry point. The host enters with a synchronous call (microseconds,
   * against tens of microseconds for an asynchronous one); the result comes back through
   * `host.settle`, often before that call even returns, since microtasks run before it does.
   */
  function start(callId: number, op: 'fetch' | 'process', payload: never): void {
    const report = (result: GuestResult<unknown>) => host.settle.applySync(undefined, [callId, result], { arguments: { copy: true } });
    PromisePrototypeThen(entries[op](payload), report, (thrown: unknown) => report({ ok: false, error: describeThrown(thrown) }));
  }

  /** The call whose result goes to `outbox` (the host takes it after its entry) rather than through `host.settle`. */
  let pollingCall = 0;
  let outbox: unknown;

  /**
   * An HTTP invoke, its request as plain values (one cheap copy each; headers joined, see
   * headersFromHost). A result ready when the handler returns is the return value (encoded by
   * encodeFetchResult). With `poll`, a result that settles in this entry's microtasks waits in
   * `outbox` for the host's `take`: a call back into the host from inside an entry costs more
   * than the host's second, plain entry. Later results go through `host.settle`.
   */
  function fetch(callId: number, method: string, url: string, headers: string, body: Uint8Array | null, stream: boolean, poll: boolean): unknown {
    const result = dispatcher.fetchFromHost(method, url, headers, body, stream);
    if (!(result instanceof SafePromise)) return encodeFetchResult(result);
    pollingCall = poll ? callId : 0;
    const report = (settled: GuestResult<WireResponse>) => {
      const encoded = encodeFetchResult(settled);
      if (pollingCall === callId) {
        pollingCall = 0;
        outbox = encoded;
      } else host.settle.applySync(undefined, [callId, encoded], { arguments: { copy: true } });
    };
    PromisePrototypeThen(result, report, (thrown: unknown) => report({ ok: false, error: describeThrown(thrown) }));
    return undefined;
  }

  /** The generic warm-up, then the fetch entry itself, enough times for V8 to allocate its feedback (see dispatcher.warm). */
  function warmUp(): void {
    warmup(global);
    const web = webGlobals(global);
    const URLCtor = (global as unknown as { URL: new (href: string) => { pathname: string; searchParams: { get(name: string): string | null } } }).URL;
    // What handlers most often do first: read the URL, its query and a header.
    const handler = (request: unknown) => {
      const { url, headers } = request as { url: string; headers: { get(name: string): string | null } };
      const parsed = new URLCtor(url);
      return new web.Response(`${parsed.pathname}${parsed.searchParams.get('q')}${headers.get('accept')}`);
    };
    dispatcher.warm(handler, () => {
      for (let i = 0; i < WARM_FETCHES; i++) fetch(0, 'GET', 'http://warm.up/path?q=1', 'host\nwarm.up\naccept\n*/*', null, false, false);
    });
  }

  function take(): unknown {
    pollingCall = 0;
    const taken = outbox;
    outbox = undefined;
    return taken;
  }

  return { load: dispatcher.load, loadWasm, start, fetch, take, fireTimer, completeOp: ops.complete, warmup: () => warmUp() };
}

export type GuestApi = ReturnType<typeof install>;

/** Bodies up to this size cross as part of the result string (see encodeFetchResult). */
const INLINE_BODY_MAX_BYTES = 1024;

/**
 * A fetch result as it crosses to the host, in the cheapest form that holds it (isolated-vm
 * copies a string as is; an object or array goes through V8's serializer):
 * - a buffered success with a body of at most INLINE_BODY_MAX_BYTES: one string, lines
 *   `n|b{status}`, statusText, header count, then each name and value, then the body's bytes as
 *   latin1 (`n`: null body, nothing follows). Names, values and the status text never hold a
 *   line feed (Headers and the reason-phrase grammar refuse one);
 * - any other success: one flat array `[status, statusText, body, streamed, name, value, …]`;
 * - a failure as is.
 * The host's decodeFetchResult reads either back.
 */
function encodeFetchResult(result: GuestResult<WireResponse>): unknown {
  if (!result.ok) return result;
  const response = result.value;
  const headers = response.headers;
  const body = response.body;
  const bodyBytes = body === null ? 0 : byteLengthOf(body);
  // Own property only: a `streamed` planted on Object.prototype must not mark a buffered response.
  const streamed = ObjectHasOwn(response, 'streamed') && response.streamed === true;
  // The status text of a response from fetch() comes from elsewhere: one with a line feed takes the array form.
  if (!streamed && bodyBytes <= INLINE_BODY_MAX_BYTES && StringPrototypeIndexOf(response.statusText, '\n') < 0) {
    let text = `${body === null ? 'n' : 'b'}${response.status}\n${response.statusText}\n${headers.length}`;
    for (let i = 0; i < headers.length; i++) text = `${text}\n${headers[i][0]}\n${headers[i][1]}`;
    if (body === null) return text;
    const codes = newList<number>();
    for (let i = 0; i < bodyBytes; i++) codes[i] = body[i];
    return `${text}\n${ReflectApply(StringFromCharCode, null, codes) as string}`;
  }
  const flat = newList<unknown>();
  flat[0] = response.status;
  flat[1] = response.statusText;
  flat[2] = body;
  flat[3] = streamed;
  for (let i = 0; i < headers.length; i++) {
    flat[flat.length] = headers[i][0];
    flat[flat.length] = headers[i][1];
  }
  return listToArray(flat);
}
