/**
 * Caps an uploaded WebAssembly module's memories and tables at the function's `memoryLimitMb` by
 * rewriting their maximums (binary format §5.5.7-8), with the same reader and planner the guest
 * applies to modules compiled from JS (runtime/guest/wasm-binary.ts, wasm-caps.ts). WASM linear
 * memory lives outside the V8 heap, so isolated-vm's heap limit does not see it: without this cap
 * an unbounded `memory.grow` loop could take the whole host process down. With it, `memory.grow`
 * past the limit returns -1, as the spec allows.
 *
 * The memories of one module share the budget (multi-memory cannot multiply it): declared
 * maximums are kept when they fit, lowered otherwise, and memories without one share what is left.
 * Tables are capped against the same number of MiB at TABLE_ELEMENT_BYTES per element, and at
 * TABLE_MAX_ELEMENTS each. Shared, 64-bit and custom-page-size memories,
 * and more than MAX_WASM_MEMORIES memories, are refused.
 */
import { TributaryError } from '../errors.ts';
import { MAX_WASM_MEMORIES } from '../guest/memory-budget.ts';
import { readModuleLimits, WasmBinaryError, writeModuleLimits, type ModuleLimits } from '../guest/wasm-binary.ts';
import { planCaps, TABLE_ELEMENT_BYTES, TABLE_MAX_ELEMENTS, WASM_MAX_PAGES, WASM_PAGE_BYTES } from '../guest/wasm-caps.ts';

function invalid(message: string): TributaryError {
  return new TributaryError('ERR_WASM_INVALID', message);
}

export function capWasmMemory(bytes: Uint8Array, memoryLimitMb: number): Uint8Array {
  const limitBytes = memoryLimitMb * 1024 * 1024;
  let limits: ModuleLimits;
  try {
    limits = readModuleLimits(bytes);
  } catch (error) {
    if (error instanceof WasmBinaryError) throw invalid(error.message);
    throw error;
  }
  const { memories, tables } = limits;
  if (memories.count > MAX_WASM_MEMORIES) throw invalid(`module defines ${memories.count} memories; functions may have at most ${MAX_WASM_MEMORIES}`);
  const memoryCaps = planCaps(memories, WASM_PAGE_BYTES, limitBytes, WASM_MAX_PAGES, null);
  if (memoryCaps === null) {
    const pages = sum(memories.mins, memories.count);
    throw invalid(`module needs ${pages} pages of memory at start, over memoryLimitMb=${memoryLimitMb} (${limitBytes / WASM_PAGE_BYTES} pages)`);
  }
  const tableCaps = planCaps(tables, TABLE_ELEMENT_BYTES, limitBytes, TABLE_MAX_ELEMENTS, TABLE_MAX_ELEMENTS);
  if (tableCaps === null) {
    throw invalid(`module needs ${sum(tables.mins, tables.count)} table elements at start, over memoryLimitMb=${memoryLimitMb} (${TABLE_ELEMENT_BYTES} bytes each)`);
  }
  return writeModuleLimits(bytes, limits, memoryCaps, tableCaps);
}

function sum(values: Float64Array, count: number): number {
  let total = 0;
  for (let i = 0; i < count; i++) total += values[i];
  return total;
}
