/**
 * One version of one function, loaded into its own isolate slot. Invocations of an instance run
 * one at a time (FIFO); the pool runs more instances for more parallelism.
 */
import type ivm from 'isolated-vm';
import { TributaryError } from '../errors.ts';
import type { FunctionSpec } from '../function-spec.ts';
import type { GuestResult, ModuleShape, WireBatch, WireBatchResult, WireRequest, WireResponse } from '../guest/wire.ts';
import { compileError } from './compile-error.ts';
import type { LogLevel } from './host-bindings.ts';
import type { IsolateSlot } from './isolate-slot.ts';
import { fromGuestError } from './translate-error.ts';

export interface LogLine {
  level: LogLevel;
  line: string;
  /** ms since epoch */
  time: number;
}

export interface LoadSource {
  kind: FunctionSpec['kind'];
  /** JS source text, or WASM bytes already capped by capWasmMemory. */
  code: string | Uint8Array;
  cachedData?: ivm.ExternalCopy<ArrayBuffer>;
}

export interface LoadResult {
  shape: ModuleShape;
  /** V8 code cache produced while compiling (JS only, when none was supplied or it was rejected). */
  producedCache?: ivm.ExternalCopy<ArrayBuffer>;
}

export class FunctionInstance {
  readonly spec: FunctionSpec;
  readonly slot: IsolateSlot;
  readonly shape: ModuleShape;
  private queue: Promise<unknown> = Promise.resolve();
  private pending = 0;
  lastUsed = performance.now();

  private constructor(spec: FunctionSpec, slot: IsolateSlot, shape: ModuleShape) {
    this.spec = spec;
    this.slot = slot;
    this.shape = shape;
  }

  /** Compiles, links and evaluates the module in `slot` within the function's timeout. */
  static async load(spec: FunctionSpec, slot: IsolateSlot, source: LoadSource, logs: LogLine[]): Promise<{ instance: FunctionInstance } & LoadResult> {
    slot.onLog = collect(logs);
    const result = await loadInto(spec, slot, source);
    return { instance: new FunctionInstance(spec, slot, result.shape), ...result };
  }

  get isBusy(): boolean {
    return this.pending > 0;
  }

  get isUsable(): boolean {
    return !this.slot.isDisposed;
  }

  fetch(request: WireRequest, logs: LogLine[]): Promise<WireResponse> {
    return this.serialize(logs, 'fetch', request) as Promise<WireResponse>;
  }

  process(batch: WireBatch, logs: LogLine[]): Promise<WireBatchResult> {
    return this.serialize(logs, 'process', batch) as Promise<WireBatchResult>;
  }

  /** One call at a time per instance; an idle instance runs the call at once, without queueing. */
  private serialize(logs: LogLine[], op: 'fetch' | 'process', payload: unknown): Promise<unknown> {
    const run = async (): Promise<unknown> => {
      this.slot.onLog = collect(logs);
      const result = await this.slot.runEntry(op, payload, this.spec.timeoutMs);
      if (!result.ok) throw fromGuestError(result.error, this.spec);
      return result.value;
    };
    const started = this.pending++ === 0 ? run() : this.queue.then(run, run);
    this.queue = started.catch(() => {});
    return started.finally(() => {
      this.pending--;
      this.lastUsed = performance.now();
    });
  }

  dispose(): void {
    this.slot.dispose();
  }
}

function collect(logs: LogLine[]): (level: LogLevel, line: string) => void {
  return (level, line) => {
    if (logs.length < 200) logs.push({ level, line, time: Date.now() });
  };
}

async function loadInto(spec: FunctionSpec, slot: IsolateSlot, source: LoadSource): Promise<LoadResult> {
  if (source.kind === 'wasm') {
    const result = (await slot.invoke(spec.timeoutMs, (call) => call.sync('loadWasm', [source.code]))) as GuestResult<ModuleShape>;
    if (!result.ok) throw fromGuestError(result.error);
    return { shape: result.value };
  }
  const filename = `fn:///${spec.name}@v${spec.version}.js`;
  // Synchronous isolated-vm calls: each asynchronous one costs a thread hop (~65 µs to ~1 ms).
  let module: ivm.Module;
  try {
    module = slot.isolate.compileModuleSync(
      source.code as string,
      source.cachedData ? { filename, cachedData: source.cachedData } : { filename, produceCachedData: true },
    );
  } catch (error) {
    throw compileError(error);
  }
  const produced = module as ivm.Module & { cachedData?: ivm.ExternalCopy<ArrayBuffer>; cachedDataRejected?: boolean };
  if (module.dependencySpecifiers.length > 0) {
    throw new TributaryError('ERR_COMPILE', `imports are not supported in functions (found '${module.dependencySpecifiers[0]}'); bundle your code into one module`);
  }
  module.instantiateSync(slot.context, (specifier) => {
    throw new Error(`cannot import '${specifier}'`);
  });
  const result = await slot.invoke(spec.timeoutMs, () => {
    module.evaluateSync({ timeout: slot.remainingMs() });
    return slot.loadNamespace(module) as GuestResult<ModuleShape>;
  });
  if (!result.ok) throw fromGuestError(result.error);
  return { shape: result.value, producedCache: produced.cachedData };
}
