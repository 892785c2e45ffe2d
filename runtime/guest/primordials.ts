/**
 * Built-ins the platform relies on, captured before any user code runs (Deno's "primordials").
 * A function may monkey-patch `Array.prototype.push`, `JSON.stringify` or `Promise.prototype.then`
 * in its own isolate; platform code calls these captured copies instead, so it keeps working.
 */
const { apply } = Reflect;
const bind = Function.prototype.bind;
const call = Function.prototype.call;

/** `uncurryThis(Array.prototype.push)(arr, x)` calls the original method regardless of patches. */
export const uncurryThis = <T extends (...args: any[]) => any>(fn: T) =>
  apply(bind, call, [fn]) as (self: unknown, ...args: Parameters<T>) => ReturnType<T>;

export const ReflectApply = Reflect.apply;
export const ObjectFreeze = Object.freeze;
export const ObjectCreate = Object.create;
export const ObjectDefineProperty = Object.defineProperty;
export const ObjectKeys = Object.keys;
export const ObjectEntries = Object.entries;
export const ObjectHasOwn = Object.hasOwn;
export const ObjectGetPrototypeOf = Object.getPrototypeOf;
export const ArrayIsArray = Array.isArray;
export const ArrayPrototypePush = uncurryThis(Array.prototype.push);
export const ArrayPrototypeJoin = uncurryThis(Array.prototype.join);
export const ArrayPrototypeSlice = uncurryThis(Array.prototype.slice);
export const ArrayPrototypeMap = uncurryThis(Array.prototype.map);
export const StringPrototypeSlice = uncurryThis(String.prototype.slice);
export const StringPrototypeToLowerCase = uncurryThis(String.prototype.toLowerCase);
export const StringPrototypeCharCodeAt = uncurryThis(String.prototype.charCodeAt);
export const StringFromCharCode = String.fromCharCode;
export const JSONStringify = JSON.stringify;
export const JSONParse = JSON.parse;
export const NumberIsInteger = Number.isInteger;
export const MathMin = Math.min;
export const MathFloor = Math.floor;
export const SafeMap = Map;
export const MapPrototypeGet = uncurryThis(Map.prototype.get);
export const MapPrototypeSet = uncurryThis(Map.prototype.set);
export const MapPrototypeDelete = uncurryThis(Map.prototype.delete);
export const MapPrototypeHas = uncurryThis(Map.prototype.has);
export const PromiseResolve = Promise.resolve.bind(Promise);
export const PromisePrototypeThen = uncurryThis(Promise.prototype.then);
export const SafePromise = Promise;
export const SafeUint8Array = Uint8Array;
export const SafeArrayBuffer = ArrayBuffer;
export const TypedArrayPrototypeSubarray = uncurryThis(Uint8Array.prototype.subarray);
export const TypedArrayPrototypeSet = uncurryThis(Uint8Array.prototype.set);
export const ArrayBufferIsView = ArrayBuffer.isView;
export const SafeError = Error;
export const SafeTypeError = TypeError;
export const SafeRangeError = RangeError;
export const StringCtor = String;
// es2023's lib has no WebAssembly declarations; V8 has the object, so describe what we use.
interface WasmApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
  Memory: new (descriptor: { initial: number }) => { buffer: ArrayBuffer };
}
const wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;
export const WebAssemblyModule = wasm.Module;
export const WebAssemblyInstance = wasm.Instance;
export const WebAssemblyMemory = wasm.Memory;

/** Own-property read that ignores getters planted on prototypes (e.g. Object.prototype.then). */
export function ownValue(object: object, key: PropertyKey): unknown {
  const desc = Reflect.getOwnPropertyDescriptor(object, key);
  return desc && 'value' in desc ? desc.value : undefined;
}

/** Awaits `value` with the captured `then`, immune to a patched Promise.prototype.then. */
export function safeThen<T, R>(value: T | Promise<T>, onFulfilled: (v: T) => R, onRejected: (e: unknown) => R): Promise<R> {
  const promise = value instanceof SafePromise ? value : PromiseResolve(value);
  return PromisePrototypeThen(promise, onFulfilled, onRejected) as Promise<R>;
}

// Additions for the Web APIs (runtime/guest/web/). Getters are captured too: a function may
// redefine `Uint8Array.prototype.length` or `Map.prototype.size`, not only methods.
const getterOf = (proto: object, key: PropertyKey) => uncurryThis(Reflect.getOwnPropertyDescriptor(proto, key)!.get!);
const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype) as object;

export const ReflectOwnKeys = Reflect.ownKeys;
export const ObjectGetOwnPropertyDescriptor = Reflect.getOwnPropertyDescriptor;
export const ObjectSetPrototypeOf = Object.setPrototypeOf;
export const ObjectPrototypeToString = uncurryThis(Object.prototype.toString);
export const ObjectPrototypePropertyIsEnumerable = uncurryThis(Object.prototype.propertyIsEnumerable);
export const ArrayPrototypeSort = uncurryThis(Array.prototype.sort);
export const ArrayPrototypeSplice = uncurryThis(Array.prototype.splice);
export const StringPrototypeToUpperCase = uncurryThis(String.prototype.toUpperCase);
export const StringPrototypeIndexOf = uncurryThis(String.prototype.indexOf);
export const StringPrototypeStartsWith = uncurryThis(String.prototype.startsWith);
export const StringPrototypeRepeat = uncurryThis(String.prototype.repeat);
export const NumberCtor = Number;
export const NumberParseInt = Number.parseInt;
export const NumberParseFloat = Number.parseFloat;
export const NumberIsFinite = Number.isFinite;
export const NumberPrototypeToString = uncurryThis(Number.prototype.toString);
export const MathTrunc = Math.trunc;
export const ObjectIs = Object.is;
export const SymbolIterator: typeof Symbol.iterator = Symbol.iterator;
export const SymbolToStringTag: typeof Symbol.toStringTag = Symbol.toStringTag;
export const SymbolPrototypeToString = uncurryThis(Symbol.prototype.toString);
export const FunctionPrototypeToString = uncurryThis(Function.prototype.toString);
export const DatePrototypeGetTime = uncurryThis(Date.prototype.getTime);
export const DatePrototypeToISOString = uncurryThis(Date.prototype.toISOString);
export const RegExpPrototypeGetSource = getterOf(RegExp.prototype, 'source');
export const RegExpPrototypeGetFlags = getterOf(RegExp.prototype, 'flags');
export const MapPrototypeGetSize = getterOf(Map.prototype, 'size');
export const MapPrototypeForEach = uncurryThis(Map.prototype.forEach);
export const SetPrototypeGetSize = getterOf(Set.prototype, 'size');
export const SetPrototypeForEach = uncurryThis(Set.prototype.forEach);
export const SafeSet = Set;
export const SetPrototypeAdd = uncurryThis(Set.prototype.add);
export const SetPrototypeHas = uncurryThis(Set.prototype.has);
export const SetPrototypeDelete = uncurryThis(Set.prototype.delete);
/** `Error.isError` (V8 ≥ 13.4) is a brand check that `instanceof` cannot fake; fall back to it. */
export const ErrorIsError: (value: unknown) => value is Error =
  (Error as unknown as { isError?: (value: unknown) => value is Error }).isError ??
  ((value: unknown): value is Error => value instanceof Error);
/** The prototype every built-in iterator inherits from (`next` aside). */
export const IteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]())) as object;
export const TypedArrayPrototypeGetBuffer = getterOf(TypedArrayPrototype, 'buffer') as (self: unknown) => ArrayBufferLike;
export const TypedArrayPrototypeGetByteOffset = getterOf(TypedArrayPrototype, 'byteOffset') as (self: unknown) => number;
export const TypedArrayPrototypeGetByteLength = getterOf(TypedArrayPrototype, 'byteLength') as (self: unknown) => number;
export const TypedArrayPrototypeGetLength = getterOf(TypedArrayPrototype, 'length') as (self: unknown) => number;
/** The typed array's constructor name ('Uint8Array', …), or undefined for anything else. */
export const TypedArrayPrototypeGetSymbolToStringTag = getterOf(TypedArrayPrototype, Symbol.toStringTag) as (
  self: unknown,
) => string | undefined;
export const DataViewPrototypeGetBuffer = getterOf(DataView.prototype, 'buffer') as (self: unknown) => ArrayBufferLike;
export const DataViewPrototypeGetByteOffset = getterOf(DataView.prototype, 'byteOffset') as (self: unknown) => number;
export const DataViewPrototypeGetByteLength = getterOf(DataView.prototype, 'byteLength') as (self: unknown) => number;
export const ArrayBufferPrototypeGetByteLength = getterOf(ArrayBuffer.prototype, 'byteLength') as (self: unknown) => number;
export const SharedArrayBufferPrototypeGetByteLength =
  typeof SharedArrayBuffer === 'function'
    ? (getterOf(SharedArrayBuffer.prototype, 'byteLength') as (self: unknown) => number)
    : undefined;

// Additions for the memory guards (buffer-guard.ts, wasm-guard.ts, memory-budget.ts) and the
// emit checks (output-copy.ts). The originals of every constructor the guards replace are kept
// only here, in the bundle's closure: user code can reach the wrappers, never these.
export const ReflectConstruct = Reflect.construct;
export const ReflectGetPrototypeOf = Reflect.getPrototypeOf;
export const ObjectPrototype = Object.prototype;
export const ArrayPrototype = Array.prototype;
export const SafeWeakMap = WeakMap;
export const WeakMapPrototypeGet = uncurryThis(WeakMap.prototype.get);
export const WeakMapPrototypeSet = uncurryThis(WeakMap.prototype.set);
export const WeakMapPrototypeHas = uncurryThis(WeakMap.prototype.has);
export const SafeWeakRef = WeakRef;
export const WeakRefPrototypeDeref = uncurryThis(WeakRef.prototype.deref);
export const PromiseReject = Promise.reject.bind(Promise);
export const SafeFloat64Array = Float64Array;
export const SafeDataView = DataView;
export const SafeDate = Date;
export const DatePrototype = Date.prototype;
export const ArrayBufferPrototype = ArrayBuffer.prototype;
export const ArrayBufferPrototypeTransfer = uncurryThis(
  (ArrayBuffer.prototype as unknown as { transfer: (length?: number) => ArrayBuffer }).transfer,
);
export const ArrayBufferPrototypeTransferToFixedLength = uncurryThis(
  (ArrayBuffer.prototype as unknown as { transferToFixedLength: (length?: number) => ArrayBuffer }).transferToFixedLength,
);
export const ArrayBufferPrototypeGetDetached = getterOf(ArrayBuffer.prototype, 'detached') as (self: unknown) => boolean;
export const SafeSharedArrayBuffer = typeof SharedArrayBuffer === 'function' ? SharedArrayBuffer : undefined;
/** Constructors of the typed-array kinds, by their Symbol.toStringTag, for copies of emitted views. */
export const TypedArrayConstructors: Readonly<Record<string, new (buffer: ArrayBuffer, offset: number, length: number) => ArrayBufferView>> =
  Object.freeze({
    __proto__: null,
    Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, Float32Array, Float64Array,
    BigInt64Array, BigUint64Array,
  } as unknown as Record<string, new (buffer: ArrayBuffer, offset: number, length: number) => ArrayBufferView>);

/** The WebAssembly JS API as V8 has it before any user code (es2023's lib does not declare it). */
export interface WasmOriginals {
  namespace: Record<string, unknown>;
  Module: new (bytes: Uint8Array, options?: unknown) => object;
  Instance: new (module: object, imports?: unknown) => object;
  Memory: new (descriptor: object) => object;
  Table: new (descriptor: object, value?: unknown) => object;
  CompileError: new (message: string) => Error;
  compile: (bytes: Uint8Array, options?: unknown) => Promise<object>;
  instantiate: (source: object, imports?: unknown) => Promise<unknown>;
  validate: (bytes: Uint8Array, options?: unknown) => boolean;
  /** `instance.exports`, `memory.buffer`, `table.length`: brand checks that throw on anything else. */
  instanceExports: (self: unknown) => Record<string, unknown>;
  memoryBuffer: (self: unknown) => ArrayBuffer;
  tableLength: (self: unknown) => number;
}
const wasmNamespace = (globalThis as unknown as { WebAssembly: Record<string, any> }).WebAssembly;
export const Wasm: WasmOriginals = Object.freeze({
  namespace: wasmNamespace,
  Module: wasmNamespace.Module,
  Instance: wasmNamespace.Instance,
  Memory: wasmNamespace.Memory,
  Table: wasmNamespace.Table,
  CompileError: wasmNamespace.CompileError,
  compile: wasmNamespace.compile,
  instantiate: wasmNamespace.instantiate,
  validate: wasmNamespace.validate,
  instanceExports: getterOf(wasmNamespace.Instance.prototype, 'exports') as (self: unknown) => Record<string, unknown>,
  memoryBuffer: getterOf(wasmNamespace.Memory.prototype, 'buffer') as (self: unknown) => ArrayBuffer,
  tableLength: getterOf(wasmNamespace.Table.prototype, 'length') as (self: unknown) => number,
});

/**
 * An array without a prototype: `list[list.length] = x` on it can never reach a setter a function
 * planted on Array.prototype or Object.prototype (which a plain `[]` would, for an index it lacks).
 */
export function newList<T>(): T[] {
  const list: T[] = [];
  Object.setPrototypeOf(list, null);
  return list;
}
export const MathImul = Math.imul;
export const MathMax = Math.max;
/** `ReflectApply(ArrayOf, SafeArray, list)`: a fresh Array from an array-like, by CreateDataProperty (no setters, no iterator). */
export const ArrayOf = Array.of;
export const SafeArray = Array;

const ARRAY_OF_CHUNK = 32768;
const ArrayPrototypePushApply = Array.prototype.push;
const isArrayIndexKey = (key: PropertyKey) => typeof key === 'string' && key !== '' && `${+key >>> 0}` === key;
/** Whether a plain `[]` can be filled by index without reaching a setter a function planted. */
function arrayStoresAreSafe(): boolean {
  if (ReflectGetPrototypeOf(ArrayPrototype) !== ObjectPrototype) return false;
  const keys = [ReflectOwnKeys(ArrayPrototype), ReflectOwnKeys(ObjectPrototype)];
  for (let k = 0; k < 2; k++) for (let i = 0; i < keys[k].length; i++) if (isArrayIndexKey(keys[k][i])) return false;
  return true;
}
/**
 * A `newList` as an ordinary Array, for data that crosses the boundary (V8's serializer takes a
 * slow path, microseconds per element, for arrays without Array.prototype). Array.of defines
 * each element (no setter runs); past what one call's arguments hold, elements are appended by
 * push only while no index property exists on Array.prototype or Object.prototype (checked right
 * before, with no user code in between), by defineProperty otherwise.
 */
export function listToArray<T>(list: T[]): T[] {
  const n = list.length;
  if (n <= ARRAY_OF_CHUNK) return ReflectApply(ArrayOf, SafeArray, list) as T[];
  const out = ReflectApply(ArrayOf, SafeArray, ArrayPrototypeSlice(list, 0, ARRAY_OF_CHUNK)) as T[];
  const safe = arrayStoresAreSafe();
  for (let start = ARRAY_OF_CHUNK; start < n; start += ARRAY_OF_CHUNK) {
    const end = MathMin(n, start + ARRAY_OF_CHUNK);
    if (safe) ReflectApply(ArrayPrototypePushApply, out, ArrayPrototypeSlice(list, start, end));
    else for (let i = start; i < end; i++) ObjectDefineProperty(out, i, { value: list[i], writable: true, enumerable: true, configurable: true });
  }
  return out;
}
