/**
 * The isolates of one host process: pre-warmed slots (bootstrap already installed) so a newly
 * uploaded function does not pay for isolate creation, loaded function instances kept in an LRU,
 * and the V8 code cache for function modules. The cache holds only data V8 produced here from
 * code we compiled ourselves; nothing cached is ever accepted from users.
 */
import ivm from 'isolated-vm';
import { readFileSync } from 'node:fs';
import { LRUCache } from 'lru-cache';
import { TributaryError } from '../errors.ts';
import { DEFAULT_MEMORY_LIMIT_MB, MAX_BODY_BYTES } from '../limits.ts';
import { specKey, type FunctionSpec } from '../function-spec.ts';
import type { ModuleShape } from '../guest/wire.ts';
import { FunctionInstance, type LogLine, type LoadSource } from './function-instance.ts';
import { IsolateSlot } from './isolate-slot.ts';
import { capWasmMemory } from './wasm-limits.ts';

/** Refill waits until the host has been idle this long, so slot building stays off callers' latency. */
const REFILL_IDLE_MS = 5;

export interface IsolatePoolOptions {
  /** Slots kept ready with the default memory limit (default 4). */
  warmSlots?: number;
  /** Loaded function instances kept per host before the least recently used idle one is disposed. */
  maxInstances?: number;
  /** Bytes of V8 code cache kept (default 64 MiB). */
  codeCacheBytes?: number;
}

interface CachedCode {
  data: ivm.ExternalCopy<ArrayBuffer>;
  bytes: number;
}

export interface Acquired {
  instance: FunctionInstance;
  coldStart: boolean;
}

export class IsolatePool {
  private readonly warm: IsolateSlot[] = [];
  private readonly warmTarget: number;
  private refilling = false;
  private active = 0;
  private lastActive = 0;
  private readonly instances: LRUCache<string, FunctionInstance[]>;
  private readonly loading = new Map<string, Promise<FunctionInstance>>();
  private readonly codeCache: LRUCache<string, CachedCode>;
  private closed = false;

  constructor(options: IsolatePoolOptions = {}) {
    this.warmTarget = options.warmSlots ?? 4;
    this.instances = new LRUCache({
      max: options.maxInstances ?? 256,
      noDisposeOnSet: true,
      dispose: (list) => list.forEach((instance) => this.retire(instance)),
    });
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
    let loaded = 0;
    for (const list of this.instances.values()) loaded += list.length;
    return { warm: this.warm.length, instances: loaded, isolates: loaded + this.warm.length };
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
    return instance.shape;
  }

  /** An idle instance of `spec` (loading one if needed) and whether this call paid a cold start. */
  async acquire(spec: FunctionSpec, logs: LogLine[]): Promise<Acquired> {
    const key = specKey(spec);
    const list = (this.instances.get(key) ?? []).filter((instance) => instance.isUsable);
    const idle = list.find((instance) => !instance.isBusy);
    if (idle) return { instance: idle, coldStart: false };
    // One instance per function version per host for now; a busy one queues the call.
    if (list.length > 0) return { instance: list[0], coldStart: false };
    let loading = this.loading.get(key);
    if (!loading) {
      loading = this.load(spec, logs).finally(() => this.loading.delete(key));
      this.loading.set(key, loading);
    }
    return { instance: await loading, coldStart: true };
  }

  private async load(spec: FunctionSpec, logs: LogLine[]): Promise<FunctionInstance> {
    // Synchronous read: a small local file, and the thread-pool hop of readFile costs more than the read.
    const code = spec.kind === 'js' ? readFileSync(spec.codePath, 'utf8') : new Uint8Array(readFileSync(spec.codePath));
    return this.loadFrom(spec, code, logs);
  }

  private async loadFrom(spec: FunctionSpec, code: string | Uint8Array, logs: LogLine[] = []): Promise<FunctionInstance> {
    const slot = await this.takeSlot(spec.memoryLimitMb);
    try {
      const { instance, producedCache } = await FunctionInstance.load(spec, slot, this.sourceFor(spec, code), logs);
      if (producedCache && !this.codeCache.has(spec.sha256)) this.remember(spec.sha256, producedCache);
      const key = specKey(spec);
      this.instances.set(key, [...(this.instances.get(key) ?? []).filter((i) => i.isUsable), instance]);
      return instance;
    } catch (error) {
      slot.dispose();
      throw error;
    }
  }

  private sourceFor(spec: FunctionSpec, code: string | Uint8Array): LoadSource {
    if (spec.kind === 'wasm') return { kind: 'wasm', code: capWasmMemory(code as Uint8Array, spec.memoryLimitMb) };
    return { kind: 'js', code: code as string, cachedData: this.codeCache.get(spec.sha256)?.data };
  }

  private remember(sha256: string, data: ivm.ExternalCopy<ArrayBuffer>): void {
    this.codeCache.set(sha256, { data, bytes: data.copy().byteLength });
  }

  /** Drops the instances of a function's versions (all, or all but `exceptKey`) once idle. */
  unload(name: string, exceptKey?: string): void {
    for (const key of [...this.instances.keys()]) {
      if (key.startsWith(`${name}@`) && key !== exceptKey) {
        this.instances.delete(key); // the LRU's dispose hook retires them
      }
    }
  }

  /** Drops the instances of one graph replica (`graph/node#r`), e.g. after scale-down. */
  unloadTag(tag: string): void {
    for (const key of [...this.instances.keys()]) {
      if (key.endsWith(`#${tag}`)) this.instances.delete(key); // the LRU's dispose hook retires them
    }
  }

  /**
   * Disposes an instance once its queued calls have finished. Never synchronously: a call that
   * acquired it in this turn of the event loop has not started yet, and must find it alive.
   */
  private retire(instance: FunctionInstance): void {
    const attempt = () => (instance.isBusy ? setTimeout(attempt, 50) : instance.dispose());
    setImmediate(attempt);
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
    this.active++;
    return work.finally(() => {
      this.active--;
      this.lastActive = performance.now();
    });
  }

  close(): void {
    this.closed = true;
    for (const slot of this.warm.splice(0)) slot.dispose();
    this.instances.clear();
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
