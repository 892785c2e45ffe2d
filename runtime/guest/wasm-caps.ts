/**
 * How far each memory and table of a WebAssembly module may grow within a byte budget. Memory
 * and tables are reserved at their maximum, since a module grows them with `memory.grow` and
 * `table.grow` without calling back into JS: the only bound that holds is the one written into
 * the module before V8 compiles it. Pure; shared by the host (uploaded modules) and the guest.
 */
import type { LimitsList } from './wasm-binary.ts';
import { MathFloor, MathMin, SafeFloat64Array } from './primordials.ts';

export const WASM_PAGE_BYTES = 65536;
/** V8's ceiling for a 32-bit memory (4 GiB). */
export const WASM_MAX_PAGES = 65536;
/**
 * Charged per table element of a table's maximum. A funcref entry costs V8 13.6 about 31 bytes
 * (its slot plus a dispatch-table entry), an externref 8; tables live in the V8 heap, so this
 * mostly keeps one table from being a single allocation larger than the heap limit.
 */
export const TABLE_ELEMENT_BYTES = 32;
/**
 * A table may grow to this many elements (or stays at its minimum, if larger), whatever maximum
 * it declares or omits: one table cannot take a whole budget (64K entries cost 2 MiB).
 */
export const TABLE_MAX_ELEMENTS = 65536;
/** V8's ceiling for a table's size. */
export const WASM_MAX_TABLE_ELEMENTS = 10_000_000;

/**
 * A maximum for every entry of `list` so that the sum of maximums × `unitBytes` is at most
 * `availBytes`; null when the minimums alone do not fit. Declared maximums are kept when they
 * fit and lowered otherwise, in order; entries declared without one (when `unboundedDefault` is
 * null) share what is left equally. No maximum exceeds `ceiling` or falls below its minimum.
 */
export function planCaps(list: LimitsList, unitBytes: number, availBytes: number, ceiling: number, unboundedDefault: number | null): Float64Array | null {
  const n = list.count;
  const caps = new SafeFloat64Array(n);
  let left = availBytes;
  for (let i = 0; i < n; i++) left -= list.mins[i] * unitBytes;
  if (left < 0) return null;
  let unbounded = 0;
  for (let i = 0; i < n; i++) {
    const min = list.mins[i];
    let max = list.maxs[i];
    if (max < 0 && unboundedDefault !== null) max = min > unboundedDefault ? min : unboundedDefault;
    if (max < 0) {
      caps[i] = -1;
      unbounded++;
      continue;
    }
    const extra = clampExtra(MathMin(max, ceiling) - min, left, unitBytes);
    caps[i] = min + extra;
    left -= extra * unitBytes;
  }
  for (let i = 0; i < n && unbounded > 0; i++) {
    if (caps[i] !== -1) continue;
    const min = list.mins[i];
    const extra = clampExtra(ceiling - min, MathFloor(left / unbounded), unitBytes);
    caps[i] = min + extra;
    left -= extra * unitBytes;
    unbounded--;
  }
  return caps;
}

function clampExtra(wanted: number, leftBytes: number, unitBytes: number): number {
  const affordable = MathFloor(leftBytes / unitBytes);
  const extra = MathMin(wanted, affordable);
  return extra > 0 ? extra : 0;
}

/** Σ caps[i] × unitBytes. */
export function capsBytes(caps: Float64Array, count: number, unitBytes: number): number {
  let total = 0;
  for (let i = 0; i < count; i++) total += caps[i] * unitBytes;
  return total;
}

/** Σ (maximum, or `fallback` when none) × unitBytes: what a module would like, before capping. */
export function wantedBytes(list: LimitsList, unitBytes: number, fallback: number, ceiling: number): number {
  let total = 0;
  for (let i = 0; i < list.count; i++) {
    const max = list.maxs[i] < 0 ? fallback : list.maxs[i];
    total += MathMin(max < list.mins[i] ? list.mins[i] : max, ceiling) * unitBytes;
  }
  return total;
}
