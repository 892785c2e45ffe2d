/**
 * `env.STATE` for stream handlers: an R2-like API over the state partition of the record being
 * processed. The partition's committed state lives in the isolate (shipped by the scheduler as a
 * snapshot, versioned by epoch), so reads cost no boundary crossing. Writes of one record are
 * kept apart until its `process` succeeds, then join the batch's write set, which the scheduler
 * commits with the batch — atomically with outputs and offsets on exactly-once edges.
 *
 * Stream timers (`ctx.timers`) are keys of the same partition under a reserved prefix
 * (runtime/stream-timers.ts), written like any key, so they commit with their batch too. Each
 * partition keeps a min-heap of its timers' due times, with lazy deletion: an entry counts only
 * while the partition still holds that timer at that time.
 */
import {
  ArrayBufferIsView, ArrayBufferPrototypeGetByteLength, ArrayPrototypePush, DataViewPrototypeGetBuffer, DataViewPrototypeGetByteLength,
  DataViewPrototypeGetByteOffset, JSONParse, MapPrototypeDelete, MapPrototypeForEach, MapPrototypeGet, MapPrototypeHas, MapPrototypeSet,
  newList, NumberParseFloat, ObjectFreeze, PromiseResolve, SafeMap, SafeRangeError, SafeTypeError, StringPrototypeCharCodeAt, StringPrototypeSlice,
  StringPrototypeStartsWith, SafeUint8Array, TypedArrayPrototypeGetBuffer, TypedArrayPrototypeGetByteLength,
  TypedArrayPrototypeGetByteOffset, TypedArrayPrototypeGetSymbolToStringTag, TypedArrayPrototypeSet,
} from './primordials.ts';
import type { WireStateScope, WireTimer } from './wire.ts';
import { MAX_TIMERS_PER_PARTITION, TIMER_KEY_PREFIX } from '../stream-timers.ts';
import { webGlobals } from './web-globals.ts';

/** Per-value ceiling; larger values belong in object storage. */
export const MAX_STATE_VALUE_BYTES = 1024 * 1024;
const MAX_KEY_CHARS = 1024;

/** Strings stay strings (no UTF-8 round trip per access); binary values are bytes. */
export type StateValue = string | Uint8Array;

/** Pending writes of the record being processed: null = deleted. */
type RecordWrites = Map<string, StateValue | null>;

interface Heap {
  at: number[];
  key: string[];
}

interface Partition {
  epoch: number;
  data: Map<string, StateValue>;
  /** Timer keys in `data`. */
  timerCount: number;
  /** Min-heaps of (due time, state key) per kind, possibly holding entries of timers since deleted or moved. */
  processing: Heap;
  event: Heap;
}

const PREFIX_CHARS = TIMER_KEY_PREFIX.length;
const PROCESSING = 112; // 'p'
const EVENT = 101; // 'e'
/** A reserved key (timers, watermarks): starts with U+0000. */
const reserved = (key: string): boolean => StringPrototypeCharCodeAt(key, 0) === 0;
const isTimerKey = (key: string): boolean => StringPrototypeStartsWith(key, TIMER_KEY_PREFIX);
/** Kind of a stored timer (`p:<at>` or `e:<at>`) as a char code, NaN for anything else. */
const kindOf = (value: StateValue | undefined | null): number => (typeof value === 'string' && StringPrototypeCharCodeAt(value, 1) === 58 ? StringPrototypeCharCodeAt(value, 0) : NaN);
const dueAtOf = (value: StateValue | undefined | null): number => (kindOf(value) === kindOf(value) ? NumberParseFloat(StringPrototypeSlice(value as string, 2)) : NaN);
const newHeap = (): Heap => ({ at: newList(), key: newList() });
const heapOf = (p: Partition, kind: number): Heap | null => (kind === PROCESSING ? p.processing : kind === EVENT ? p.event : null);

function heapPush(h: Heap, at: number, key: string): void {
  let i = h.at.length;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if (h.at[parent] <= at) break;
    h.at[i] = h.at[parent];
    h.key[i] = h.key[parent];
    i = parent;
  }
  h.at[i] = at;
  h.key[i] = key;
}

function heapPop(h: Heap): void {
  const last = h.at.length - 1;
  const at = h.at[last];
  const key = h.key[last];
  h.at.length = last;
  h.key.length = last;
  if (last === 0) return;
  let i = 0;
  for (;;) {
    let child = 2 * i + 1;
    if (child >= last) break;
    if (child + 1 < last && h.at[child + 1] < h.at[child]) child++;
    if (h.at[child] >= at) break;
    h.at[i] = h.at[child];
    h.key[i] = h.key[child];
    i = child;
  }
  h.at[i] = at;
  h.key[i] = key;
}

/** Drops entries of timers deleted or moved since; true while a valid one is on top. */
function heapSettle(p: Partition, h: Heap, kind: number): boolean {
  while (h.at.length > 0) {
    const value = MapPrototypeGet(p.data, h.key[0]);
    if (kindOf(value) === kind && dueAtOf(value) === h.at[0]) return true;
    heapPop(h);
  }
  return false;
}

function pushTimer(p: Partition, key: string, value: StateValue): void {
  const heap = heapOf(p, kindOf(value));
  const at = dueAtOf(value);
  if (heap !== null && at === at) heapPush(heap, at, key);
}

function newPartition(epoch: number, data: Map<string, StateValue>): Partition {
  const p: Partition = { epoch, data, timerCount: 0, processing: newHeap(), event: newHeap() };
  MapPrototypeForEach(data, (value: StateValue, key: string) => {
    if (!isTimerKey(key)) return;
    p.timerCount++;
    pushTimer(p, key, value);
  });
  return p;
}

/** Rebuilds a partition's heaps from its timers alone. */
function compact(p: Partition): void {
  p.processing = newHeap();
  p.event = newHeap();
  MapPrototypeForEach(p.data, (value: StateValue, key: string) => {
    if (isTimerKey(key)) pushTimer(p, key, value);
  });
}

export function createStateBinding(global: typeof globalThis) {
  const web = webGlobals(global);
  const encoder = new web.TextEncoder();
  const decoder = new web.TextDecoder();
  const partitions = new SafeMap<string, Partition>();
  let current: Partition | null = null;
  let pending: RecordWrites = new SafeMap();
  /** Keys and values of `pending`, in characters or bytes: an upper bound on what keeping it adds to the batch. */
  let pendingBytes = 0;

  const active = (): Partition => {
    if (current === null) throw new SafeTypeError('env.STATE is only available inside process()');
    return current;
  };
  const checkKey = (key: unknown): string => {
    if (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY_CHARS) {
      throw new SafeTypeError(`state keys are non-empty strings of at most ${MAX_KEY_CHARS} characters`);
    }
    if (reserved(key)) throw new SafeTypeError('state keys may not start with U+0000 (reserved for the platform)');
    return key;
  };
  const read = (key: string): StateValue | null => {
    if (MapPrototypeHas(pending, key)) return MapPrototypeGet(pending, key) ?? null;
    return MapPrototypeGet(active().data, key) ?? null;
  };
  const copyBytes = (buffer: ArrayBufferLike, offset: number, length: number): Uint8Array => {
    const copy = new SafeUint8Array(length);
    if (length > 0) TypedArrayPrototypeSet(copy, new SafeUint8Array(buffer, offset, length));
    return copy;
  };
  const isArrayBuffer = (value: unknown): boolean => {
    try {
      ArrayBufferPrototypeGetByteLength(value);
      return true;
    } catch {
      return false;
    }
  };
  /**
   * Objects are refused rather than stored as JSON, so no nesting depth reaches the store; bytes
   * are read through captured getters into a copy of our own.
   */
  const toValue = (value: unknown): StateValue => {
    let stored: StateValue;
    // A string's UTF-8 length is at most 3 bytes per UTF-16 unit: check cheaply, encode only near the limit.
    if (typeof value === 'string') stored = value;
    else if (isArrayBuffer(value)) stored = copyBytes(value as ArrayBuffer, 0, ArrayBufferPrototypeGetByteLength(value));
    else if (ArrayBufferIsView(value)) {
      stored =
        TypedArrayPrototypeGetSymbolToStringTag(value) === undefined
          ? copyBytes(DataViewPrototypeGetBuffer(value), DataViewPrototypeGetByteOffset(value), DataViewPrototypeGetByteLength(value))
          : copyBytes(TypedArrayPrototypeGetBuffer(value), TypedArrayPrototypeGetByteOffset(value), TypedArrayPrototypeGetByteLength(value));
    } else throw new SafeTypeError('state values are strings, ArrayBuffers or typed arrays (JSON.stringify objects first)');
    if (sizeOf(stored) > MAX_STATE_VALUE_BYTES) throw new SafeTypeError(`state values are limited to ${MAX_STATE_VALUE_BYTES} bytes`);
    return stored;
  };
  /** Characters of a string value, bytes of a binary one: what crossing the boundary costs. */
  const byteSize = (value: StateValue): number => (typeof value === 'string' ? value.length : TypedArrayPrototypeGetByteLength(value));
  const deltaOf = (batchWrites: Map<string, StateValue | null>, key: string, value: StateValue | null): number => {
    const before = MapPrototypeGet(batchWrites, key);
    const after = value === null ? 0 : byteSize(value);
    return before === undefined ? key.length + after : after - (before === null ? 0 : byteSize(before));
  };
  const sizeOf = (value: StateValue): number =>
    typeof value !== 'string' ? value.byteLength : value.length * 3 <= MAX_STATE_VALUE_BYTES ? value.length * 3 : encoder.encode(value).byteLength;
  // keepRecord's callback, made once: no closure allocated per record.
  let keepPartition: Partition | null = null;
  let keepData: Map<string, StateValue> = new SafeMap();
  let keepBatch: Map<string, StateValue | null> = new SafeMap();
  const keepTimer = (p: Partition, value: StateValue | null, key: string) => {
    const had = MapPrototypeHas(p.data, key);
    if (value === null) {
      if (had) p.timerCount--;
      return;
    }
    if (!had) p.timerCount++;
    pushTimer(p, key, value);
  };
  const keepEntry = (value: StateValue | null, key: string) => {
    const timer = reserved(key) && isTimerKey(key);
    if (timer) keepTimer(keepPartition!, value, key);
    if (value === null) MapPrototypeDelete(keepData, key);
    else MapPrototypeSet(keepData, key, value);
    MapPrototypeSet(keepBatch, key, value);
    // Entries of moved and deleted timers go lazily; a partition re-setting timers in a loop compacts here.
    if (timer && keepPartition!.processing.at.length + keepPartition!.event.at.length > 2 * keepPartition!.timerCount + 1024) compact(keepPartition!);
  };
  const setPending = (key: string, value: StateValue | null) => {
    if (MapPrototypeHas(pending, key)) {
      const before = MapPrototypeGet(pending, key);
      if (before !== null && before !== undefined) pendingBytes -= byteSize(before);
    } else pendingBytes += key.length;
    if (value !== null) pendingBytes += byteSize(value);
    MapPrototypeSet(pending, key, value);
  };
  const text = (value: StateValue): string => (typeof value === 'string' ? value : decoder.decode(value));
  const objectBody = (key: string, value: StateValue) =>
    ObjectFreeze({
      key,
      get size() {
        return typeof value === 'string' ? encoder.encode(value).byteLength : value.byteLength;
      },
      text: () => PromiseResolve(text(value)),
      json: () => PromiseResolve(JSONParse(text(value))),
      arrayBuffer: () => PromiseResolve((typeof value === 'string' ? encoder.encode(value) : new SafeUint8Array(value)).buffer),
    });

  const STATE = ObjectFreeze({
    get(key: unknown) {
      const k = checkKey(key);
      const value = read(k);
      return PromiseResolve(value === null ? null : objectBody(k, value));
    },
    put(key: unknown, value: unknown) {
      const k = checkKey(key);
      const stored = toValue(value);
      active();
      setPending(k, stored);
      return PromiseResolve(ObjectFreeze({ key: k }));
    },
    delete(keys: unknown) {
      active();
      const list = typeof keys === 'string' ? [keys] : (keys as unknown[]);
      for (let i = 0; i < list.length; i++) setPending(checkKey(list[i]), null);
      return PromiseResolve(undefined);
    },
    list(options?: { prefix?: string; limit?: number; cursor?: string }) {
      const prefix = options?.prefix ?? '';
      const limit = Math.min(Math.max(1, Number(options?.limit ?? 1000) | 0), 1000);
      const after = options?.cursor ?? '';
      const keys: string[] = [];
      // Reserved keys (timers) are never listed, whatever the prefix.
      for (const key of active().data.keys()) if (!MapPrototypeHas(pending, key) && !reserved(key)) ArrayPrototypePush(keys, key);
      for (const [key, value] of pending) if (value !== null && !reserved(key)) ArrayPrototypePush(keys, key);
      keys.sort();
      const objects: Array<{ key: string; size: number }> = [];
      let truncated = false;
      for (let i = 0; i < keys.length; i++) {
        const key = keys[i];
        if (!key.startsWith(prefix) || key <= after) continue;
        if (objects.length === limit) {
          truncated = true;
          break;
        }
        const value = read(key)!;
        ArrayPrototypePush(objects, { key, size: typeof value === 'string' ? encoder.encode(value).byteLength : value.byteLength });
      }
      const cursor = truncated ? objects[objects.length - 1].key : undefined;
      return PromiseResolve(ObjectFreeze({ objects, truncated, cursor, delimitedPrefixes: [] }));
    },
  });

  return {
    STATE,
    /** Selects the batch's partition; false when the guest must be sent a snapshot first. */
    begin(scope: WireStateScope): boolean {
      const id = `${scope.namespace}\u0000${scope.partition}`;
      if (scope.snapshot !== undefined) {
        const data = new SafeMap<string, StateValue>();
        for (let i = 0; i < scope.snapshot.length; i++) MapPrototypeSet(data, scope.snapshot[i][0], scope.snapshot[i][1]);
        MapPrototypeSet(partitions, id, newPartition(scope.epoch, data));
      }
      const partition = MapPrototypeGet(partitions, id);
      if (partition === undefined || partition.epoch !== scope.epoch) return false;
      current = partition;
      return true;
    },
    /** Starts a record: its writes stay pending until `keepRecord`. */
    beginRecord(): void {
      pending = new SafeMap();
      pendingBytes = 0;
    },
    /** At least what keeping the current record would add to the batch's write set: O(1). */
    recordBytes(): number {
      return pendingBytes;
    },
    /** Exactly what keeping the current record would add (a key the batch wrote already counts only the change). */
    recordDelta(batchWrites: Map<string, StateValue | null>): number {
      let total = 0;
      MapPrototypeForEach(pending, (value: StateValue | null, key: string) => {
        total += deltaOf(batchWrites, key, value);
      });
      return total;
    },
    /** Keys and values of a batch's write set, exactly. */
    writeSetBytes(batchWrites: Map<string, StateValue | null>): number {
      let total = 0;
      MapPrototypeForEach(batchWrites, (value: StateValue | null, key: string) => {
        total += key.length + (value === null ? 0 : byteSize(value));
      });
      return total;
    },
    /** The record succeeded: apply its writes to the partition and the batch write set. */
    keepRecord(batchWrites: Map<string, StateValue | null>): void {
      keepPartition = active();
      keepData = keepPartition.data;
      keepBatch = batchWrites;
      MapPrototypeForEach(pending, keepEntry);
      pending = new SafeMap();
      pendingBytes = 0;
    },
    dropRecord(): void {
      pending = new SafeMap();
      pendingBytes = 0;
    },
    /** Timer `key` as the current record sees it, or null. */
    timerGet(key: string): { at: number; kind: WireTimer['kind'] } | null {
      const value = read(TIMER_KEY_PREFIX + key);
      const kind = kindOf(value);
      if (kind !== PROCESSING && kind !== EVENT) return null;
      return ObjectFreeze({ __proto__: null, at: dueAtOf(value), kind: kind === PROCESSING ? 'processing' : 'event' }) as unknown as { at: number; kind: WireTimer['kind'] };
    },
    /** Sets timer `key` (a write of the current record); RangeError past the partition's ceiling. */
    timerSet(key: string, at: number, kind: WireTimer['kind']): void {
      const p = active();
      const stateKey = TIMER_KEY_PREFIX + key;
      if (p.timerCount >= MAX_TIMERS_PER_PARTITION && !MapPrototypeHas(p.data, stateKey)) {
        throw new SafeRangeError(`ERR_QUOTA_EXCEEDED: a state partition keeps at most ${MAX_TIMERS_PER_PARTITION} timers`);
      }
      setPending(stateKey, `${kind === 'processing' ? 'p' : 'e'}:${at}`);
    },
    timerDelete(key: string): void {
      active();
      setPending(TIMER_KEY_PREFIX + key, null);
    },
    /**
     * Takes the partition's due timers off its heaps, earliest first, at most `limit`: processing
     * timers due at `now`, event timers at or below `watermark` (none while it is null).
     */
    dueTimers(now: number, watermark: number | null, limit: number): WireTimer[] {
      const p = active();
      const due: WireTimer[] = newList();
      while (due.length < limit) {
        const processing = heapSettle(p, p.processing, PROCESSING) && p.processing.at[0] <= now;
        const event = watermark !== null && heapSettle(p, p.event, EVENT) && p.event.at[0] <= watermark;
        if (!processing && !event) break;
        const takeEvent = event && (!processing || p.event.at[0] < p.processing.at[0]);
        const heap = takeEvent ? p.event : p.processing;
        due[due.length] = ObjectFreeze({ __proto__: null, key: StringPrototypeSlice(heap.key[0], PREFIX_CHARS), at: heap.at[0], kind: takeEvent ? 'event' : 'processing' }) as unknown as WireTimer;
        heapPop(heap);
      }
      return due;
    },
    /** The partition's earliest due timer of each kind (null: none of that kind). */
    nextTimers(): { processing: number | null; event: number | null } {
      const p = active();
      return {
        processing: heapSettle(p, p.processing, PROCESSING) ? p.processing.at[0] : null,
        event: heapSettle(p, p.event, EVENT) ? p.event.at[0] : null,
      };
    },
    end(): void {
      current = null;
      pending = new SafeMap();
      pendingBytes = 0;
    },
  };
}

