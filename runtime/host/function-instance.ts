/**
 * One version of one function, loaded into its own isolate slot. It runs one call at a time; its
 * FunctionLane queues the others and decides which instance runs what.
 */
import type ivm from 'isolated-vm';
import { TributaryError } from '../errors.ts';
import type { FunctionSpec } from '../function-spec.ts';
import { readFileSync } from 'node:fs';
import { readBindingsText } from '../function-bindings.ts';
import { MAX_LOG_LINES_PER_INVOCATION } from '../limits.ts';
import type { GuestResult, ModuleShape, WireBatch, WireBatchResult, WireRequest, WireResponse } from '../guest/wire.ts';
import type { Budget } from './budget.ts';
import { BUILTIN_MODULES, builtinModule, isBuiltinModule } from './builtin-modules.ts';
import { compileError } from './compile-error.ts';
import type { LogLevel } from './host-bindings.ts';
import type { IsolateSlot, ResponseSink } from './isolate-slot.ts';
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

export type EntryOp = 'fetch' | 'process';
export type EntryPayload<Op extends EntryOp> = Op extends 'fetch' ? WireRequest : WireBatch;
export type EntryResult<Op extends EntryOp> = Op extends 'fetch' ? WireResponse : WireBatchResult;

/** Sources above this are compiled off the event loop: compilation cannot be interrupted by a timeout. */
const COMPILE_ASYNC_ABOVE_CHARS = 256 * 1024;

export class FunctionInstance {
  readonly spec: FunctionSpec;
  readonly slot: IsolateSlot;
  readonly shape: ModuleShape;
  private running = false;
  private used = false;
  /**
   * Once a call ran asynchronously here, every later one does: an asynchronous entry may still
   * be finishing in the isolate (a timer callback after the call settled with an error), and a
   * synchronous entry would block the event loop until it ends.
   */
  private async = false;
  /** Console output of the module's top level, handed to the first call. */
  private loadLogs: LogLine[];

  private constructor(spec: FunctionSpec, slot: IsolateSlot, shape: ModuleShape, loadLogs: LogLine[]) {
    this.spec = spec;
    this.slot = slot;
    this.shape = shape;
    this.loadLogs = loadLogs;
  }

  /** Compiles, links and evaluates the module in `slot` within `budget` (throws SliceExpired if a synchronous slice was not enough). */
  static async load(spec: FunctionSpec, slot: IsolateSlot, source: LoadSource, budget: Budget): Promise<{ instance: FunctionInstance } & LoadResult> {
    const logs: LogLine[] = [];
    slot.onLog = collect(logs);
    const result = await loadInto(spec, slot, source, budget);
    return { instance: new FunctionInstance(spec, slot, result.shape, logs), ...result };
  }

  get isBusy(): boolean {
    return this.running;
  }

  get isUsable(): boolean {
    return !this.slot.isDisposed;
  }

  /** Whether no call has run here yet: the first one paid the cold start. */
  get isFresh(): boolean {
    return !this.used;
  }

  /** Loaded by a deploy's validation: the deploy paid the cold start, not the first call. */
  markWarm(): void {
    this.used = true;
  }

  /** Runs one call: its result directly when it finished within its synchronous entry, else a promise. */
  run<Op extends EntryOp>(op: Op, payload: EntryPayload<Op>, logs: LogLine[], budget: Budget, sink?: ResponseSink): EntryResult<Op> | Promise<EntryResult<Op>> {
    if (this.running) throw new TributaryError('ERR_INTERNAL', 'function instance is busy');
    this.running = true;
    this.used = true;
    if (this.async) budget.async = true;
    else if (budget.async) this.async = true;
    if (this.loadLogs.length > 0) {
      for (const line of this.loadLogs) logs.push(line);
      this.loadLogs = [];
    }
    this.slot.onLog = collect(logs);
    // env.STATE in fetch is the function's own namespace (process gets its partition's state instead).
    this.slot.stateFunction = op === 'fetch' ? this.spec.name : null;
    this.slot.bucketBindingsId = this.spec.bindingsId ?? null;
    this.slot.responseSink = op === 'fetch' ? (sink ?? null) : null;
    let result: GuestResult<unknown> | Promise<GuestResult<unknown>>;
    try {
      result = this.slot.runEntry(op, payload, budget);
    } catch (error) {
      this.running = false;
      throw error;
    }
    if (!(result instanceof Promise)) {
      this.running = false;
      return this.unwrap(result) as EntryResult<Op>;
    }
    // A streamed response turns its call asynchronous midway (IsolateSlot.commitResponse): later calls stay so.
    return result.then(
      (settled) => {
        this.running = false;
        if (budget.async) this.async = true;
        return this.unwrap(settled) as EntryResult<Op>;
      },
      (error: unknown) => {
        this.running = false;
        if (budget.async) this.async = true;
        throw error;
      },
    );
  }

  private unwrap(result: GuestResult<unknown>): unknown {
    if (!result.ok) throw fromGuestError(result.error, this.spec);
    return result.value;
  }

  dispose(): void {
    this.slot.dispose();
  }
}

function collect(logs: LogLine[]): (level: LogLevel, line: string) => void {
  return (level, line) => {
    if (logs.length < MAX_LOG_LINES_PER_INVOCATION) logs.push({ level, line, time: Date.now() });
  };
}

async function loadInto(spec: FunctionSpec, slot: IsolateSlot, source: LoadSource, budget: Budget): Promise<LoadResult> {
  if (source.kind === 'wasm') {
    const result = (await slot.invoke(budget, (call) => call.loadWasm(source.code as Uint8Array))) as GuestResult<ModuleShape>;
    if (!result.ok) throw fromGuestError(result.error);
    return { shape: result.value };
  }
  const filename = `fn:///${spec.name}@v${spec.version}.js`;
  const code = source.code as string;
  const options = source.cachedData ? { filename, cachedData: source.cachedData } : { filename, produceCachedData: true };
  // Synchronous isolated-vm calls where they are short: each asynchronous one costs a thread hop (~60 µs to ~1 ms).
  let module: ivm.Module;
  try {
    module = code.length > COMPILE_ASYNC_ABOVE_CHARS ? await slot.isolate.compileModule(code, options) : slot.isolate.compileModuleSync(code, options);
  } catch (error) {
    throw compileError(error);
  }
  const produced = module as ivm.Module & { cachedData?: ivm.ExternalCopy<ArrayBuffer>; cachedDataRejected?: boolean };
  const foreign = module.dependencySpecifiers.find((specifier) => !isBuiltinModule(specifier));
  if (foreign !== undefined) {
    throw new TributaryError('ERR_COMPILE', `imports are not supported in functions (found '${foreign}'); bundle your code into one module (built in: ${BUILTIN_MODULES.join(', ')})`);
  }
  const builtins = new Map<string, ivm.Module>();
  module.instantiateSync(slot.context, (specifier) => builtinModule(slot.isolate, slot.context, specifier, builtins));
  const bound = spec.bindingsPath ? envOf(spec.bindingsPath) : undefined;
  const result = (await slot.invoke(budget, async (call) => {
    await call.evaluate(module);
    return call.loadNamespace(module, bound?.env, bound?.buckets);
  })) as GuestResult<ModuleShape>;
  if (!result.ok) throw fromGuestError(result.error);
  return { shape: result.value, producedCache: produced.cachedData };
}

/** The `env` a version's bindings file gives (vars and secrets as one record of strings) and its bucket binding names. */
function envOf(path: string): { env: Record<string, string>; buckets: string[] } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new TributaryError('ERR_INTERNAL', 'the bindings of this function version are missing');
  }
  const { vars, secrets, buckets } = readBindingsText(text);
  // Only the names cross into the isolate: buckets and prefixes stay on this side.
  return { env: { ...vars, ...secrets }, buckets: Object.keys(buckets ?? {}) };
}
