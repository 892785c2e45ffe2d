/**
 * Copies a value a function emits (`ctx.emit`, or `process`'s return value) into data of our own,
 * checking on the way what crossing the boundary and every later consumer (the log, the sink API
 * and Kafka as JSON, the next node) needs:
 *
 *   depth    containers nested deeper than `maxDepth`            → ERR_TOO_DEEP
 *   size     bytes (as JSON would spell it) beyond `maxBytes`    → ERR_TOO_LARGE
 *   kind     functions, symbols, BigInts, cycles, Maps and Sets  → ERR_FN_BAD_OUTPUT
 *
 * Objects cross as JSON sees them: their own enumerable string-keyed properties, whatever their
 * prototype. Typed arrays, DataViews, ArrayBuffers and Dates are kept (copied). The copy is what
 * crosses, so a getter or a Proxy trap that answers differently the second time changes nothing.
 * Shared substructure stays shared in the copy but counts once per reference, as JSON would
 * expand it. The walk is iterative (no recursion over user data) and costs O(distinct objects).
 */
import {
  ArrayBufferIsView, ArrayOf, ArrayBufferPrototypeGetByteLength, ArrayIsArray, DataViewPrototypeGetBuffer, DataViewPrototypeGetByteLength,
  DataViewPrototypeGetByteOffset, DatePrototype, DatePrototypeGetTime, MapPrototypeGet, MapPrototypeGetSize, MapPrototypeSet, MathTrunc,
  newList, ObjectGetPrototypeOf, ObjectKeys, ObjectPrototype, ReflectApply, SafeArray, SafeDataView, SafeDate, SafeError, SafeMap, SafeUint8Array,
  SetPrototypeGetSize, SharedArrayBufferPrototypeGetByteLength, TypedArrayConstructors, TypedArrayPrototypeGetBuffer,
  TypedArrayPrototypeGetByteLength, TypedArrayPrototypeGetByteOffset, TypedArrayPrototypeGetLength, TypedArrayPrototypeGetSymbolToStringTag,
  TypedArrayPrototypeSet,
} from './primordials.ts';

export type OutputErrorCode = 'ERR_TOO_DEEP' | 'ERR_TOO_LARGE' | 'ERR_FN_BAD_OUTPUT';

/** Why an emitted value was refused. */
export class OutputRefused extends SafeError {
  readonly code: OutputErrorCode;
  constructor(code: OutputErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

export interface CopiedOutput {
  value: unknown;
  /** What the value counts against the batch's output bytes. */
  bytes: number;
}

interface Frame {
  /** The container's copy: a snapshot of its own properties, whose children are replaced by theirs. */
  copy: Record<PropertyKey, unknown>;
  /** The user's object, for the memo (cycles, shared substructure). */
  src: object;
  /** Own enumerable keys of an object; null for an array (indices 0..n-1). */
  keys: string[] | null;
  n: number;
  i: number;
  depth: number;
  /** Bytes counted before this container, for its memo entry. */
  start: number;
  /** Levels of containers from this one down (1: only leaves below). */
  height: number;
  /** Where the copy goes in the parent. */
  parentKey: PropertyKey;
  /** The enclosing container: frames form a linked stack, no array a setter could reach. */
  parent: Frame | null;
}

interface Memo {
  copy: unknown;
  done: boolean;
  bytes: number;
  height: number;
}

interface Walk {
  used: number;
  maxBytes: number;
  maxDepth: number;
  top: Frame | null;
  /** Containers seen so far: the memo starts after MEMO_AFTER of them. */
  containers: number;
  /**
   * Every container seen once the value has more than MEMO_AFTER: shared substructure is then
   * counted from its memo entry instead of being walked again (a DAG of depth 30 would otherwise
   * expand to 2^30 nodes). Small values check cycles on the current path instead, for free.
   */
  memo: Map<object, Memo> | null;
  /** Height of the container a memo hit just reused (0 otherwise). */
  reused: number;
}

const PENDING = Symbol('pending');
const MEMO_AFTER = 64;
const MAX_LENGTH = 2 ** 53 - 1;

function charge(w: Walk, bytes: number): void {
  w.used += bytes;
  if (w.used > w.maxBytes) throw new OutputRefused('ERR_TOO_LARGE', `emitted values exceed the ${w.maxBytes} bytes this batch has left`);
}

function tooDeep(w: Walk): OutputRefused {
  return new OutputRefused('ERR_TOO_DEEP', `emitted value nests deeper than ${w.maxDepth} levels`);
}

function brandOf<T>(check: (value: unknown) => T, value: unknown): boolean {
  try {
    check(value);
    return true;
  } catch {
    return false;
  }
}

function copyBytes(buffer: ArrayBufferLike, offset: number, length: number): Uint8Array {
  const out = new SafeUint8Array(length);
  if (length > 0) TypedArrayPrototypeSet(out, new SafeUint8Array(buffer, offset, length));
  return out;
}

/** A copy of a typed array or DataView, of the same kind, over a buffer of its own. */
function copyView(view: ArrayBufferView): ArrayBufferView {
  const tag = TypedArrayPrototypeGetSymbolToStringTag(view);
  if (tag === undefined) {
    const bytes = copyBytes(DataViewPrototypeGetBuffer(view), DataViewPrototypeGetByteOffset(view), DataViewPrototypeGetByteLength(view));
    return new SafeDataView(TypedArrayPrototypeGetBuffer(bytes) as ArrayBuffer);
  }
  const bytes = copyBytes(TypedArrayPrototypeGetBuffer(view), TypedArrayPrototypeGetByteOffset(view), TypedArrayPrototypeGetByteLength(view));
  return new TypedArrayConstructors[tag](TypedArrayPrototypeGetBuffer(bytes) as ArrayBuffer, 0, TypedArrayPrototypeGetLength(view));
}

/** Binary values and Dates as copies; undefined for anything else. */
function copySpecial(w: Walk, value: object): unknown {
  if (ArrayBufferIsView(value)) {
    const tag = TypedArrayPrototypeGetSymbolToStringTag(value);
    if (tag === 'BigInt64Array' || tag === 'BigUint64Array') {
      throw new OutputRefused('ERR_FN_BAD_OUTPUT', `a ${tag} cannot be emitted (BigInts have no JSON form)`);
    }
    const copy = copyView(value);
    charge(w, byteLengthOf(copy));
    return copy;
  }
  if (brandOf(ArrayBufferPrototypeGetByteLength, value)) {
    const length = ArrayBufferPrototypeGetByteLength(value);
    charge(w, length);
    return TypedArrayPrototypeGetBuffer(copyBytes(value as ArrayBuffer, 0, length));
  }
  if (SharedArrayBufferPrototypeGetByteLength !== undefined && brandOf(SharedArrayBufferPrototypeGetByteLength, value)) {
    const length = SharedArrayBufferPrototypeGetByteLength(value);
    charge(w, length);
    return TypedArrayPrototypeGetBuffer(copyBytes(value as SharedArrayBuffer, 0, length));
  }
  if (ObjectGetPrototypeOf(value) === DatePrototype && brandOf(DatePrototypeGetTime, value)) {
    charge(w, 26);
    return new SafeDate(DatePrototypeGetTime(value));
  }
  if (brandOf(MapPrototypeGetSize, value) || brandOf(SetPrototypeGetSize, value)) {
    throw new OutputRefused('ERR_FN_BAD_OUTPUT', 'a Map or Set cannot be emitted (it would cross as {}): convert it, e.g. with Object.fromEntries or Array.from');
  }
  return undefined;
}

function byteLengthOf(view: ArrayBufferView): number {
  return TypedArrayPrototypeGetSymbolToStringTag(view) === undefined ? DataViewPrototypeGetByteLength(view) : TypedArrayPrototypeGetByteLength(view);
}

/** Arrays up to this length are snapshot with one Array.of call (its arguments list). */
const SPREAD_LIMIT = 4096;

/**
 * A snapshot of a container's own data: properties read once each (getters, Proxy traps) and
 * defined on a fresh object or array (CreateDataProperty: no setter planted on a prototype runs).
 */
function snapshot(value: Record<PropertyKey, unknown>, isArray: boolean): Record<PropertyKey, unknown> {
  if (!isArray) return { ...value };
  const length = +(value.length as number);
  const n = length !== length || length < 0 ? 0 : length > MAX_LENGTH ? MAX_LENGTH : MathTrunc(length);
  if (n <= SPREAD_LIMIT) return ReflectApply(ArrayOf, SafeArray, value as unknown as ArrayLike<unknown>) as unknown as Record<PropertyKey, unknown>;
  const copy = newList<unknown>() as unknown as Record<PropertyKey, unknown>;
  for (let i = 0; i < n; i++) copy[i] = value[i];
  return copy;
}

/** Starts a container's frame over its snapshot; its children are checked and copied as the walk goes. */
function push(w: Walk, value: Record<PropertyKey, unknown>, isArray: boolean, depth: number, parentKey: PropertyKey): void {
  if (depth > w.maxDepth) throw tooDeep(w);
  const copy = snapshot(value, isArray);
  const keys = isArray ? null : ObjectKeys(copy);
  const n = keys === null ? (copy.length as number) : keys.length;
  const frame: Frame = { copy, src: value, keys, n, i: 0, depth, start: w.used, height: 1, parentKey, parent: w.top };
  if (w.memo === null && ++w.containers > MEMO_AFTER) {
    // From here on remember every container; the ones on the current path are in progress.
    w.memo = new SafeMap<object, Memo>();
    for (let f = w.top; f !== null; f = f.parent) MapPrototypeSet(w.memo, f.src, { copy: f.copy, done: false, bytes: 0, height: 0 });
  }
  if (w.memo !== null) MapPrototypeSet(w.memo, value, { copy, done: false, bytes: 0, height: 0 });
  w.top = frame;
  charge(w, 2);
}

/** Copies a leaf, reuses a finished container, or pushes a new one (PENDING). */
function visit(w: Walk, value: unknown, depth: number, parentKey: PropertyKey): unknown {
  switch (typeof value) {
    case 'string':
      charge(w, value.length + 2);
      return value;
    case 'number':
      charge(w, 8);
      return value;
    case 'boolean':
    case 'undefined':
      charge(w, 4);
      return value;
    case 'bigint':
    case 'symbol':
    case 'function':
      throw new OutputRefused('ERR_FN_BAD_OUTPUT', `a ${typeof value} cannot be emitted (values cross as JSON data, bytes or Dates)`);
  }
  if (value === null) {
    charge(w, 4);
    return null;
  }
  const object = value as Record<PropertyKey, unknown>;
  if (w.memo !== null) {
    const seen = MapPrototypeGet(w.memo, object);
    if (seen !== undefined) {
      if (!seen.done) throw new OutputRefused('ERR_FN_BAD_OUTPUT', 'a cyclic value cannot be emitted');
      if (depth + seen.height - 1 > w.maxDepth) throw tooDeep(w);
      charge(w, seen.bytes);
      w.reused = seen.height;
      return seen.copy;
    }
  } else {
    for (let f = w.top; f !== null; f = f.parent) if (f.src === object) throw new OutputRefused('ERR_FN_BAD_OUTPUT', 'a cyclic value cannot be emitted');
  }
  if (ArrayIsArray(object)) {
    push(w, object, true, depth, parentKey);
    return PENDING;
  }
  const proto = ObjectGetPrototypeOf(object);
  if (proto !== ObjectPrototype && proto !== null) {
    const special = copySpecial(w, object);
    if (special !== undefined) return special;
  }
  push(w, object, false, depth, parentKey);
  return PENDING;
}

/** A checked copy of `value`; throws OutputRefused (or whatever a getter of the value throws). */
export function copyOutput(value: unknown, maxDepth: number, maxBytes: number): CopiedOutput {
  const w: Walk = { used: 0, maxBytes, maxDepth, top: null, containers: 0, memo: null, reused: 0 };
  const first = visit(w, value, 1, '');
  if (first !== PENDING) return { value: first, bytes: w.used };
  for (;;) {
    const f = w.top!;
    if (f.i === f.n) {
      w.top = f.parent;
      const memo = w.memo === null ? undefined : MapPrototypeGet(w.memo, f.src);
      if (memo !== undefined) {
        memo.done = true;
        memo.bytes = w.used - f.start;
        memo.height = f.height;
      }
      const parent = w.top;
      if (parent === null) return { value: f.copy, bytes: w.used };
      parent.copy[f.parentKey] = f.copy;
      if (f.height + 1 > parent.height) parent.height = f.height + 1;
      continue;
    }
    const key: PropertyKey = f.keys === null ? f.i : f.keys[f.i];
    f.i++;
    charge(w, f.keys === null ? 1 : (key as string).length + 3);
    // The snapshot's own data property: no getter, no trap, and assigning it back calls no setter.
    const child = f.copy[key];
    w.reused = 0;
    const copy = visit(w, child, f.depth + 1, key);
    if (copy === PENDING) continue;
    if (copy !== child) f.copy[key] = copy;
    if (w.reused > 0 && w.reused + 1 > f.height) f.height = w.reused + 1;
  }
}
