/**
 * The per-isolate budget for memory V8 allocates outside what isolated-vm's `memoryLimit` sees.
 *
 * isolated-vm counts the V8 heap and every ArrayBuffer its allocator hands out (plain and fixed
 * SharedArrayBuffers, typed arrays). It does not see memory V8 reserves itself: WebAssembly
 * memories, resizable ArrayBuffers, compiled WebAssembly code. Those are charged here, when they
 * are created, at the most they can ever take (a memory at its maximum, a buffer at its
 * maxByteLength), since they grow later without asking (`memory.grow` runs inside WebAssembly).
 *
 * Two pools of `memoryLimitMb` each, so a memory that takes all it may does not starve the code
 * that will use it:
 *   memory: WebAssembly memories (maximum × 64 KiB) and resizable ArrayBuffers (maxByteLength,
 *           rounded up to 4 KiB); at most MAX_WASM_MEMORIES memories and MAX_RESIZABLE_BUFFERS
 *           buffers alive at once (each reserves address space: 8 GiB for a memory).
 *   native: modules compiled from JS (WASM_CODE_BYTES_PER_BYTE × their bytes + WASM_MODULE_BYTES,
 *           once per distinct byte sequence, never released), tables (TABLE_ELEMENT_BYTES ×
 *           maximum elements) and Intl.DateTimeFormat objects (INTL_DATE_TIME_FORMAT_BYTES each:
 *           ICU's formatters live in the C++ heap). An instance itself lives in the V8 heap.
 *
 * A charge is released once every object that can still reach its memory has been collected
 * (WeakRefs checked after a full GC, forced when a reservation does not fit): an instance and the
 * memories and tables it exports, a memory and the buffers it handed out, a resizable buffer and
 * what it was transferred to. Objects created in the current job (one invocation's synchronous
 * run) stay alive until it ends (WeakRef semantics), so the release helps the next invocation.
 */
import {
  ArrayBufferPrototypeGetDetached, MathFloor, newList, SafeArrayBuffer, SafeRangeError, SafeSet, SafeWeakRef, SetPrototypeAdd, SetPrototypeDelete,
  SetPrototypeForEach, WeakRefPrototypeDeref,
} from './primordials.ts';

const MiB = 1024 * 1024;
/** Live WebAssembly memories per isolate: each reserves 8 GiB of address space (guard regions). */
export const MAX_WASM_MEMORIES = 8;
/** Live resizable ArrayBuffers per isolate: each is a mapping of its own. */
export const MAX_RESIZABLE_BUFFERS = 64;
/** Compiled code and metadata per byte of a module: about 12-18× measured on V8 13.6 (Liftoff plus tier-up). */
export const WASM_CODE_BYTES_PER_BYTE = 16;
/** Fixed cost of a compiled module (measured about 17 KiB for an empty one with its instance). */
export const WASM_MODULE_BYTES = 32 * 1024;
/**
 * An Intl.DateTimeFormat holds ICU formatters outside the V8 heap: 25-45 KB each measured on V8
 * 13.6 (a time zone or a calendar other than the default), against 200 bytes of heap.
 */
export const INTL_DATE_TIME_FORMAT_BYTES = 64 * 1024;
/** Resizable buffers reserve whole pages. */
export const BUFFER_PAGE_BYTES = 4096;

/** What one object may take from the budget. */
export interface Need {
  memoryBytes: number;
  nativeBytes: number;
  memories: number;
  buffers: number;
}

const PENDING = 0;
const HELD = 1;
const PINNED = 2;
const RELEASED = 3;

interface Holder {
  ref: WeakRef<object>;
  /** A detached buffer no longer holds memory, so it does not keep a charge either. */
  isBuffer: boolean;
}

export interface Charge {
  readonly need: Need;
  state: number;
  holders: Holder[];
}

export interface MemoryBudget {
  readonly memoryLimitMb: number;
  readonly limitBytes: number;
  /** What is left in each pool right now (before any reclaim). */
  available(): Need;
  /** Takes `need` or throws a RangeError naming `what`; forces a reclaim first when short. */
  reserve(need: Need, what: string): Charge;
  /** Gives back a reservation whose object was never created. */
  release(charge: Charge): void;
  /** `object` can reach the charged memory: the charge lives at least as long as it does. */
  hold(charge: Charge, object: object, isBuffer: boolean): void;
  /** The charged memory may be reachable from objects we cannot see: never release it. */
  pin(charge: Charge): void;
  /** Forces a full GC and releases every charge whose holders are all gone. */
  reclaim(): void;
  /** The RangeError `reserve` would throw for `need`. */
  refusal(need: Need, what: string): RangeError;
}

export const need = (memoryBytes: number, nativeBytes: number, memories: number, buffers: number): Need => ({ memoryBytes, nativeBytes, memories, buffers });

const mib = (bytes: number) => (bytes < MiB ? `${MathFloor((bytes + 1023) / 1024)} KiB` : `${MathFloor((bytes * 10) / MiB) / 10} MiB`);

export function createMemoryBudget(memoryLimitMb: number): MemoryBudget {
  const limitBytes = memoryLimitMb * MiB;
  const used = need(0, 0, 0, 0);
  const releasable = new SafeSet<Charge>();
  // Any ArrayBuffer over isolated-vm's limit makes its allocator run a full GC
  // (LowMemoryNotification) before refusing: the one way to collect garbage from inside.
  const gcTriggerBytes = 2 * limitBytes + 64 * MiB;

  const fits = (n: Need) =>
    used.memoryBytes + n.memoryBytes <= limitBytes &&
    used.nativeBytes + n.nativeBytes <= limitBytes &&
    used.memories + n.memories <= MAX_WASM_MEMORIES &&
    used.buffers + n.buffers <= MAX_RESIZABLE_BUFFERS;
  const add = (n: Need, sign: number) => {
    used.memoryBytes += sign * n.memoryBytes;
    used.nativeBytes += sign * n.nativeBytes;
    used.memories += sign * n.memories;
    used.buffers += sign * n.buffers;
  };

  const holds = (holder: Holder): boolean => {
    const target = WeakRefPrototypeDeref(holder.ref);
    return target !== undefined && !(holder.isBuffer && ArrayBufferPrototypeGetDetached(target));
  };
  const isHeld = (charge: Charge): boolean => {
    const holders = charge.holders;
    for (let i = 0; i < holders.length; i++) if (holds(holders[i])) return true;
    return false;
  };

  function reclaim(): void {
    try {
      new SafeArrayBuffer(gcTriggerBytes);
    } catch {
      // Refused, as intended: the GC has run.
    }
    SetPrototypeForEach(releasable, (charge: Charge) => {
      if (isHeld(charge)) return;
      SetPrototypeDelete(releasable, charge);
      charge.state = RELEASED;
      add(charge.need, -1);
    });
  }

  function refusal(n: Need, what: string): RangeError {
    const budget = `memoryLimitMb=${memoryLimitMb} allows`;
    if (n.memories > 0 && used.memories + n.memories > MAX_WASM_MEMORIES) {
      return new SafeRangeError(`${what}: at most ${MAX_WASM_MEMORIES} WebAssembly memories may be alive in a function (${used.memories} are)`);
    }
    if (n.buffers > 0 && used.buffers + n.buffers > MAX_RESIZABLE_BUFFERS) {
      return new SafeRangeError(`${what}: at most ${MAX_RESIZABLE_BUFFERS} resizable ArrayBuffers may be alive in a function (${used.buffers} are)`);
    }
    if (used.memoryBytes + n.memoryBytes > limitBytes) {
      return new SafeRangeError(
        `${what}: ${mib(n.memoryBytes)} would exceed the function's memory budget (${budget} ${memoryLimitMb} MiB of WebAssembly memory and resizable ArrayBuffers, ${mib(used.memoryBytes)} in use)`,
      );
    }
    return new SafeRangeError(
      `${what}: ${mib(n.nativeBytes)} would exceed the function's native budget (${budget} ${memoryLimitMb} MiB of compiled WebAssembly, tables and Intl.DateTimeFormat objects, ${mib(used.nativeBytes)} in use)`,
    );
  }

  return {
    memoryLimitMb,
    limitBytes,
    available: () => need(limitBytes - used.memoryBytes, limitBytes - used.nativeBytes, MAX_WASM_MEMORIES - used.memories, MAX_RESIZABLE_BUFFERS - used.buffers),
    reserve(n, what) {
      if (!fits(n)) {
        // Reclaiming costs a full GC: only worth it when the need fits an empty budget.
        if (n.memoryBytes <= limitBytes && n.nativeBytes <= limitBytes) reclaim();
        if (!fits(n)) throw refusal(n, what);
      }
      add(n, 1);
      return { need: n, state: PENDING, holders: newList<Holder>() };
    },
    release(charge) {
      if (charge.state === PINNED || charge.state === RELEASED) return;
      if (charge.state === HELD) SetPrototypeDelete(releasable, charge);
      charge.state = RELEASED;
      add(charge.need, -1);
    },
    hold(charge, object, isBuffer) {
      if (charge.state === PINNED || charge.state === RELEASED) return;
      const live = newList<Holder>();
      const holders = charge.holders;
      for (let i = 0; i < holders.length; i++) if (holds(holders[i])) live[live.length] = holders[i];
      live[live.length] = { ref: new SafeWeakRef(object), isBuffer };
      charge.holders = live;
      if (charge.state === PENDING) {
        charge.state = HELD;
        SetPrototypeAdd(releasable, charge);
      }
    },
    pin(charge) {
      if (charge.state === RELEASED) return;
      if (charge.state === HELD) SetPrototypeDelete(releasable, charge);
      charge.state = PINNED;
    },
    reclaim,
    refusal,
  };
}
