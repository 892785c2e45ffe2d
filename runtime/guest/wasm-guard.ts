/**
 * The WebAssembly JS API as functions see it: every way to make a memory, a table, a module or
 * an instance goes through the isolate's MemoryBudget (memory-budget.ts).
 *
 *   new WebAssembly.Memory       maximum capped to what the budget has left (a missing one too);
 *                                shared and 64-bit memories refused.
 *   new WebAssembly.Table        maximum capped likewise, and at TABLE_MAX_ELEMENTS.
 *   WebAssembly.Module/compile/  bytes copied (no change after the check), parsed (wasm-binary.ts),
 *   instantiate(bytes)/validate  maximums of the memories and tables the module defines rewritten
 *                                to what the budget has left; shared, 64-bit and custom-page-size
 *                                memories refused (CompileError); compiled code charged.
 *   new WebAssembly.Instance,    instantiate only modules compiled here (a structuredClone'd
 *   instantiate(module)          module is refused), charging its memories and tables.
 *   WebAssembly.Suspending,      removed: each suspended call keeps a stack of its own (≈1 MB of
 *   WebAssembly.promising        address space, committed as it is used) outside the heap.
 *
 * The originals live only in this closure (primordials.ts): user code reaches the wrappers through
 * every path it has — the global, `prototype.constructor` of every instance, `Reflect.construct`,
 * subclassing — and each wrapper passes V8 a descriptor of its own making, never the caller's.
 */
import { need, MAX_WASM_MEMORIES, WASM_CODE_BYTES_PER_BYTE, WASM_MODULE_BYTES, type Charge, type MemoryBudget } from './memory-budget.ts';
import {
  ArrayBufferIsView, ArrayBufferPrototypeGetByteLength, ArrayIsArray, DataViewPrototypeGetBuffer, DataViewPrototypeGetByteLength,
  DataViewPrototypeGetByteOffset, MapPrototypeGet, MapPrototypeSet, MathImul, MathTrunc, newList, ObjectDefineProperty, ObjectGetOwnPropertyDescriptor,
  ObjectKeys, PromiseReject, PromiseResolve, ReflectConstruct, SafeFloat64Array, SafeMap, SafeRangeError, SafeTypeError, SafeUint8Array,
  SafeWeakMap, TypedArrayPrototypeGetBuffer, TypedArrayPrototypeGetByteLength, TypedArrayPrototypeGetByteOffset, TypedArrayPrototypeGetLength,
  TypedArrayPrototypeGetSymbolToStringTag, TypedArrayPrototypeSet, Wasm, WeakMapPrototypeGet, WeakMapPrototypeHas, WeakMapPrototypeSet,
} from './primordials.ts';
import { readModuleLimits, WasmBinaryError, writeModuleLimits, type LimitsList, type ModuleLimits } from './wasm-binary.ts';
import {
  capsBytes, planCaps, TABLE_ELEMENT_BYTES, TABLE_MAX_ELEMENTS, WASM_MAX_PAGES, WASM_MAX_TABLE_ELEMENTS, WASM_PAGE_BYTES, wantedBytes,
} from './wasm-caps.ts';

/** What instantiating a module compiled here takes from the budget. */
interface ModuleInfo {
  memoryBytes: number;
  /** Its tables plus the instance's own overhead (code pool). */
  nativeBytes: number;
  memories: number;
  mayLeakOnFailure: boolean;
}

interface Prepared {
  bytes: Uint8Array;
  info: ModuleInfo;
}

interface CompileOptions {
  /** A fresh options object for V8, or undefined when none was given. */
  value: object | undefined;
  /** Identifies the options in the compiled-code dedupe (same bytes + same options = same code). */
  key: string;
}

interface CompiledEntry {
  bytes: Uint8Array;
  key: string;
}

export interface WasmGuard {
  /**
   * Compiles and instantiates an uploaded module (the WASM byte ABI, already capped by the host):
   * charges its memories and tables, not its code (compiled once per version, not by user code).
   */
  instantiateTrusted(bytes: Uint8Array): object;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  (typeof value === 'object' && value !== null) || typeof value === 'function';

/** WebIDL `[EnforceRange] unsigned long`, as V8 reads memory and table limits. */
function toLimit(value: unknown, what: string, name: string): number {
  const n = +(value as number);
  if (n !== n || n === Infinity || n === -Infinity) throw new SafeTypeError(`${what}: Property '${name}' must be convertible to a valid number`);
  const integer = MathTrunc(n);
  if (integer < 0 || integer > 0xffffffff) throw new SafeTypeError(`${what}: Property '${name}': value ${integer} is out of range`);
  return integer;
}

function singleLimits(min: number, max: number): LimitsList {
  const list = {
    count: 1,
    mins: new SafeFloat64Array(1),
    maxs: new SafeFloat64Array(1),
    starts: new SafeFloat64Array(1),
    ends: new SafeFloat64Array(1),
    sectionStart: -1,
    countEnd: -1,
    contentEnd: -1,
  };
  list.mins[0] = min;
  list.maxs[0] = max;
  return list;
}

function isArrayBuffer(value: unknown): boolean {
  try {
    ArrayBufferPrototypeGetByteLength(value);
    return true;
  } catch {
    return false;
  }
}

/** A private copy of a BufferSource: what is checked is exactly what V8 compiles. */
function copyBufferSource(source: unknown, what: string, orModule = false): Uint8Array {
  let buffer: ArrayBufferLike;
  let offset = 0;
  let length: number;
  if (ArrayBufferIsView(source)) {
    if (TypedArrayPrototypeGetSymbolToStringTag(source) === undefined) {
      buffer = DataViewPrototypeGetBuffer(source);
      offset = DataViewPrototypeGetByteOffset(source);
      length = DataViewPrototypeGetByteLength(source);
    } else {
      buffer = TypedArrayPrototypeGetBuffer(source);
      offset = TypedArrayPrototypeGetByteOffset(source);
      length = TypedArrayPrototypeGetByteLength(source);
    }
  } else if (isArrayBuffer(source)) {
    buffer = source as ArrayBuffer;
    length = ArrayBufferPrototypeGetByteLength(source);
  } else {
    throw new SafeTypeError(`${what}: Argument 0 must be a buffer source${orModule ? ' or a WebAssembly.Module compiled in this function' : ''}`);
  }
  const copy = new SafeUint8Array(length);
  if (length > 0) TypedArrayPrototypeSet(copy, new SafeUint8Array(buffer, offset, length));
  return copy;
}

/** `builtins` and `importedStringConstants` (JS string builtins), read once into an object of our own. */
function compileOptions(options: unknown, what: string): CompileOptions {
  if (options === undefined) return { value: undefined, key: '' };
  if (!isObject(options)) throw new SafeTypeError(`${what}: compile options must be an object`);
  const builtinsIn = options.builtins;
  const constantsIn = options.importedStringConstants;
  let key = '';
  let builtins: string[] | undefined;
  if (builtinsIn !== undefined) {
    if (!ArrayIsArray(builtinsIn)) throw new SafeTypeError(`${what}: compile option 'builtins' must be an array of strings`);
    builtins = newList<string>();
    const n = (builtinsIn as unknown[]).length;
    for (let i = 0; i < n; i++) {
      const name = `${(builtinsIn as unknown[])[i]}`;
      builtins[builtins.length] = name;
      key += `b${name.length}:${name}`;
    }
  }
  const constants = constantsIn === undefined ? undefined : `${constantsIn}`;
  if (constants !== undefined) key += `s${constants.length}:${constants}`;
  return { value: { builtins, importedStringConstants: constants }, key };
}

function hashBytes(bytes: Uint8Array, length: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < length; i++) h = MathImul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

function sameBytes(a: Uint8Array, b: Uint8Array, length: number): boolean {
  if (TypedArrayPrototypeGetLength(a) !== length) return false;
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function defineMethod(target: object, key: string, value: unknown): void {
  ObjectDefineProperty(target, key, { value, writable: true, enumerable: false, configurable: true });
}

/** Gives `wrapper` the original's shape: name, length, prototype (shared) and its statics. */
function dressConstructor(wrapper: Function, original: Function, name: string): void {
  ObjectDefineProperty(wrapper, 'name', { value: name, writable: false, enumerable: false, configurable: true });
  ObjectDefineProperty(wrapper, 'length', { value: 1, writable: false, enumerable: false, configurable: true });
  ObjectDefineProperty(wrapper, 'prototype', { value: original.prototype, writable: false, enumerable: false, configurable: false });
  defineMethod(original.prototype, 'constructor', wrapper);
}

export function installWasmGuard(global: typeof globalThis, budget: MemoryBudget): WasmGuard {
  const namespace = Wasm.namespace;
  const modules = new SafeWeakMap<object, ModuleInfo>();
  /** Memories and tables already charged (created in JS, or defined and exported by an instance). */
  const memoryCharges = new SafeWeakMap<object, Charge>();
  const tableCharges = new SafeWeakMap<object, Charge>();
  const lastBuffers = new SafeWeakMap<object, ArrayBuffer>();
  const compiled = new SafeMap<number, CompiledEntry[]>();
  const limitPages = budget.limitBytes / WASM_PAGE_BYTES;

  const compileError = (thrown: unknown, what: string): unknown =>
    thrown instanceof WasmBinaryError ? new Wasm.CompileError(`${what}: ${thrown.message}`) : thrown;

  /** Pays for a module's compiled code once per distinct (bytes, options): V8 shares the rest. */
  function chargeCode(bytes: Uint8Array, key: string, what: string): void {
    const length = TypedArrayPrototypeGetLength(bytes);
    const hash = hashBytes(bytes, length);
    let entries = MapPrototypeGet(compiled, hash);
    if (entries !== undefined) {
      for (let i = 0; i < entries.length; i++) if (entries[i].key === key && sameBytes(entries[i].bytes, bytes, length)) return;
    } else {
      entries = newList<CompiledEntry>();
      MapPrototypeSet(compiled, hash, entries);
    }
    budget.pin(budget.reserve(need(0, nativeBytesOf(length), 0, 0), what));
    entries[entries.length] = { bytes, key };
  }

  const nativeBytesOf = (length: number) => WASM_MODULE_BYTES + WASM_CODE_BYTES_PER_BYTE * length;

  /** Copies, checks and caps module bytes; charges their code when `chargeCompiled`. */
  function prepare(source: unknown, what: string, chargeCompiled: boolean, key: string, orModule = false): Prepared {
    const copy = copyBufferSource(source, what, orModule);
    let limits: ModuleLimits;
    try {
      limits = readModuleLimits(copy);
    } catch (thrown) {
      throw compileError(thrown, what);
    }
    if (limits.memories.count > MAX_WASM_MEMORIES) {
      throw new Wasm.CompileError(`${what}: the module defines ${limits.memories.count} memories; functions may have at most ${MAX_WASM_MEMORIES}`);
    }
    const nativeBytes = chargeCompiled ? nativeBytesOf(TypedArrayPrototypeGetLength(copy)) : 0;
    const wantedMemory = wantedBytes(limits.memories, WASM_PAGE_BYTES, limitPages, WASM_MAX_PAGES);
    const wantedCode = wantedBytes(limits.tables, TABLE_ELEMENT_BYTES, TABLE_MAX_ELEMENTS, TABLE_MAX_ELEMENTS) + nativeBytes;
    let available = budget.available();
    if (available.memoryBytes < wantedMemory || available.nativeBytes < wantedCode) {
      budget.reclaim();
      available = budget.available();
    }
    const memoryCaps = planCaps(limits.memories, WASM_PAGE_BYTES, available.memoryBytes, WASM_MAX_PAGES, null);
    if (memoryCaps === null) throw budget.refusal(need(minimumBytes(limits.memories, WASM_PAGE_BYTES), 0, 0, 0), `${what} (memories at their initial size)`);
    const tableCaps = planCaps(limits.tables, TABLE_ELEMENT_BYTES, available.nativeBytes - nativeBytes, TABLE_MAX_ELEMENTS, TABLE_MAX_ELEMENTS);
    if (tableCaps === null) {
      throw budget.refusal(need(0, minimumBytes(limits.tables, TABLE_ELEMENT_BYTES) + nativeBytes, 0, 0), `${what} (code, and tables at their initial size)`);
    }
    const bytes = writeModuleLimits(copy, limits, memoryCaps, tableCaps);
    if (chargeCompiled) chargeCode(bytes, key, what);
    const info: ModuleInfo = {
      memoryBytes: capsBytes(memoryCaps, limits.memories.count, WASM_PAGE_BYTES),
      nativeBytes: capsBytes(tableCaps, limits.tables.count, TABLE_ELEMENT_BYTES),
      memories: limits.memories.count,
      mayLeakOnFailure: limits.mayLeakOnFailure,
    };
    return { bytes, info };
  }

  const reserveInstance = (info: ModuleInfo, what: string): Charge => budget.reserve(need(info.memoryBytes, info.nativeBytes, info.memories, 0), what);

  /** A failed instantiation: give the charge back unless the new instance may already be reachable. */
  function instantiationFailed(charge: Charge, info: ModuleInfo): void {
    if (info.mayLeakOnFailure) budget.pin(charge);
    else budget.release(charge);
  }

  function isMemory(value: unknown): boolean {
    try {
      Wasm.memoryBuffer(value);
      return true;
    } catch {
      return false;
    }
  }

  function isTable(value: unknown): boolean {
    try {
      Wasm.tableLength(value);
      return true;
    } catch {
      return false;
    }
  }

  /** The instance, and every memory and table it defines and exports, keep its charge. */
  function track(charge: Charge, instance: object): void {
    budget.hold(charge, instance, false);
    const exports = Wasm.instanceExports(instance);
    const names = ObjectKeys(exports);
    for (let i = 0; i < names.length; i++) {
      const value = exports[names[i]];
      if (typeof value !== 'object' || value === null) continue;
      if (WeakMapPrototypeHas(memoryCharges, value) || WeakMapPrototypeHas(tableCharges, value)) continue; // imported: charged already
      if (isMemory(value)) {
        WeakMapPrototypeSet(memoryCharges, value, charge);
        budget.hold(charge, value, false);
      } else if (isTable(value)) {
        WeakMapPrototypeSet(tableCharges, value, charge);
        budget.hold(charge, value, false);
      }
    }
  }

  /** A maximum for one JS-created memory or table: declared, or lowered to what is left. */
  function capOne(min: number, max: number, unitBytes: number, pool: 'memory' | 'native', what: string): number {
    const ceiling = pool === 'memory' ? WASM_MAX_PAGES : TABLE_MAX_ELEMENTS;
    const unbounded = pool === 'memory' ? null : TABLE_MAX_ELEMENTS;
    const list = singleLimits(min, max);
    const wanted = wantedBytes(list, unitBytes, pool === 'memory' ? limitPages : TABLE_MAX_ELEMENTS, ceiling);
    const left = () => (pool === 'memory' ? budget.available().memoryBytes : budget.available().nativeBytes);
    if (left() < wanted) budget.reclaim();
    const caps = planCaps(list, unitBytes, left(), ceiling, unbounded);
    if (caps === null) throw budget.refusal(pool === 'memory' ? need(min * unitBytes, 0, 1, 0) : need(0, min * unitBytes, 0, 0), what);
    return caps[0];
  }

  function Memory(descriptor: unknown): object {
    const what = 'WebAssembly.Memory()';
    if (new.target === undefined) throw new SafeTypeError(`${what}: WebAssembly.Memory must be invoked with 'new'`);
    if (!isObject(descriptor)) throw new SafeTypeError(`${what}: Argument 0 must be a memory descriptor`);
    const address = descriptor.address;
    if (address !== undefined && `${address}` !== 'i32') throw new SafeTypeError(`${what}: 64-bit memories are not available in functions`);
    const initialIn = descriptor.initial;
    if (initialIn === undefined) throw new SafeTypeError(`${what}: Property 'initial' is required`);
    const initial = toLimit(initialIn, what, 'initial');
    const maximumIn = descriptor.maximum;
    const maximum = maximumIn === undefined ? -1 : toLimit(maximumIn, what, 'maximum');
    if (descriptor.shared) throw new SafeTypeError(`${what}: shared memories are not available in functions (a function has one thread)`);
    if (maximum >= 0 && maximum < initial) throw new SafeRangeError(`${what}: Property 'maximum': value ${maximum} is below the lower bound ${initial}`);
    if (initial > WASM_MAX_PAGES) throw new SafeRangeError(`${what}: Property 'initial': value ${initial} is above the upper bound ${WASM_MAX_PAGES}`);
    const cap = capOne(initial, maximum, WASM_PAGE_BYTES, 'memory', what);
    const charge = budget.reserve(need(cap * WASM_PAGE_BYTES, 0, 1, 0), what);
    let memory: object;
    try {
      memory = ReflectConstruct(Wasm.Memory, [{ initial, maximum: cap }], new.target);
    } catch (thrown) {
      budget.release(charge);
      throw thrown;
    }
    WeakMapPrototypeSet(memoryCharges, memory, charge);
    budget.hold(charge, memory, false);
    return memory;
  }

  function Table(descriptor: unknown, value?: unknown): object {
    const what = 'WebAssembly.Table()';
    if (new.target === undefined) throw new SafeTypeError(`${what}: WebAssembly.Table must be invoked with 'new'`);
    if (!isObject(descriptor)) throw new SafeTypeError(`${what}: Argument 0 must be a table descriptor`);
    const element = `${descriptor.element}`;
    const address = descriptor.address;
    if (address !== undefined && `${address}` !== 'i32') throw new SafeTypeError(`${what}: 64-bit tables are not available in functions`);
    const initialIn = descriptor.initial;
    if (initialIn === undefined) throw new SafeTypeError(`${what}: Property 'initial' is required`);
    const initial = toLimit(initialIn, what, 'initial');
    const maximumIn = descriptor.maximum;
    const maximum = maximumIn === undefined ? -1 : toLimit(maximumIn, what, 'maximum');
    if (maximum >= 0 && maximum < initial) throw new SafeRangeError(`${what}: Property 'maximum': value ${maximum} is below the lower bound ${initial}`);
    if (initial > WASM_MAX_TABLE_ELEMENTS) throw new SafeRangeError(`${what}: Property 'initial': value ${initial} is above the upper bound ${WASM_MAX_TABLE_ELEMENTS}`);
    const cap = capOne(initial, maximum, TABLE_ELEMENT_BYTES, 'native', what);
    const charge = budget.reserve(need(0, cap * TABLE_ELEMENT_BYTES, 0, 0), what);
    let table: object;
    try {
      const clean = { element, initial, maximum: cap };
      table = ReflectConstruct(Wasm.Table, arguments.length > 1 ? [clean, value] : [clean], new.target);
    } catch (thrown) {
      budget.release(charge);
      throw thrown;
    }
    WeakMapPrototypeSet(tableCharges, table, charge);
    budget.hold(charge, table, false);
    return table;
  }

  function Module(bytes: unknown, options?: unknown): object {
    const what = 'WebAssembly.Module()';
    if (new.target === undefined) throw new SafeTypeError(`${what}: WebAssembly.Module must be invoked with 'new'`);
    const opts = compileOptions(arguments.length > 1 ? options : undefined, what);
    const prepared = prepare(bytes, what, true, opts.key);
    const module = ReflectConstruct(Wasm.Module, opts.value === undefined ? [prepared.bytes] : [prepared.bytes, opts.value], new.target);
    WeakMapPrototypeSet(modules, module, prepared.info);
    return module;
  }

  function Instance(module: unknown, imports?: unknown): object {
    const what = 'WebAssembly.Instance()';
    if (new.target === undefined) throw new SafeTypeError(`${what}: WebAssembly.Instance must be invoked with 'new'`);
    const info = isObject(module) ? WeakMapPrototypeGet(modules, module) : undefined;
    if (info === undefined) throw new SafeTypeError(`${what}: Argument 0 must be a WebAssembly.Module compiled in this function`);
    const charge = reserveInstance(info, what);
    let instance: object;
    try {
      instance = ReflectConstruct(Wasm.Instance, arguments.length > 1 ? [module, imports] : [module], new.target);
    } catch (thrown) {
      instantiationFailed(charge, info);
      throw thrown;
    }
    track(charge, instance);
    return instance;
  }

  // The asynchronous API compiles and instantiates synchronously and returns a settled promise:
  // V8's background compilation reports back through a task isolated-vm never runs for an
  // isolate entered synchronously between calls (the host's entry model), so an awaited compile
  // would never settle. A function's invocation holds its host thread either way.
  function compile(bytes: unknown, options?: unknown): Promise<object> {
    try {
      return PromiseResolve(ReflectConstruct(Module, [bytes, options]) as object);
    } catch (thrown) {
      return PromiseReject(thrown);
    }
  }

  function instantiate(source: unknown, imports?: unknown, options?: unknown): Promise<unknown> {
    try {
      if (isObject(source) && WeakMapPrototypeHas(modules, source)) {
        return PromiseResolve(ReflectConstruct(Instance, [source, imports]) as object);
      }
      const module = ReflectConstruct(Module, [source, options]) as object;
      const instance = ReflectConstruct(Instance, [module, imports]) as object;
      return PromiseResolve({ module, instance });
    } catch (thrown) {
      return PromiseReject(thrown);
    }
  }

  function validate(bytes: unknown, options?: unknown): boolean {
    const what = 'WebAssembly.validate()';
    const copy = copyBufferSource(bytes, what);
    try {
      readModuleLimits(copy);
    } catch (thrown) {
      if (thrown instanceof WasmBinaryError) return false;
      throw thrown;
    }
    const opts = compileOptions(arguments.length > 1 ? options : undefined, what);
    return opts.value === undefined ? Wasm.validate(copy) : Wasm.validate(copy, opts.value);
  }

  // `memory.buffer` is how JS reaches a memory's bytes: each buffer handed out keeps the charge.
  const bufferGetter = ObjectGetOwnPropertyDescriptor(
    {
      get buffer() {
        const buffer = Wasm.memoryBuffer(this);
        if (WeakMapPrototypeGet(lastBuffers, this as object) !== buffer) {
          WeakMapPrototypeSet(lastBuffers, this as object, buffer);
          const charge = WeakMapPrototypeGet(memoryCharges, this as object);
          if (charge !== undefined) budget.hold(charge, buffer, true);
        }
        return buffer;
      },
    },
    'buffer',
  )!.get;
  ObjectDefineProperty(Wasm.Memory.prototype, 'buffer', { get: bufferGetter, set: undefined, enumerable: true, configurable: true });

  dressConstructor(Memory, Wasm.Memory, 'Memory');
  dressConstructor(Table, Wasm.Table, 'Table');
  dressConstructor(Module, Wasm.Module, 'Module');
  dressConstructor(Instance, Wasm.Instance, 'Instance');
  for (const name of ['imports', 'exports', 'customSections'] as const) {
    defineMethod(Module, name, (Wasm.Module as unknown as Record<string, unknown>)[name]);
  }
  defineMethod(namespace, 'Memory', Memory);
  defineMethod(namespace, 'Table', Table);
  defineMethod(namespace, 'Module', Module);
  defineMethod(namespace, 'Instance', Instance);
  defineMethod(namespace, 'compile', compile);
  defineMethod(namespace, 'instantiate', instantiate);
  defineMethod(namespace, 'validate', validate);
  delete namespace.Suspending;
  delete namespace.promising;
  delete namespace.compileStreaming;
  delete namespace.instantiateStreaming;
  void global;

  return {
    instantiateTrusted(bytes) {
      const prepared = prepare(bytes, 'WebAssembly module', false, '');
      const module = new Wasm.Module(prepared.bytes);
      const charge = reserveInstance(prepared.info, 'WebAssembly module');
      budget.pin(charge);
      return new Wasm.Instance(module, {});
    },
  };
}

function minimumBytes(list: LimitsList, unitBytes: number): number {
  let total = 0;
  for (let i = 0; i < list.count; i++) total += list.mins[i] * unitBytes;
  return total;
}
