import { describe, expect, it } from 'vitest';
import { capWasmMemory } from '../runtime/host/wasm-limits.ts';
import { compileWat } from '../scripts/build-wasm.ts';

// @types/node declares the WebAssembly namespace without its constructors; Node has them.
const WA = (globalThis as any).WebAssembly;

async function memoryOf(bytes: Uint8Array): Promise<{ grow(pages: number): number }> {
  const module = new WA.Module(bytes);
  const { exports } = new WA.Instance(module, {});
  return exports.memory;
}

describe('capWasmMemory', () => {
  it('adds a maximum to a memory declared without one', async () => {
    const bytes = await compileWat('(module (memory (export "memory") 1))');
    const memory = await memoryOf(capWasmMemory(bytes, 1)); // 1 MiB = 16 pages
    expect(memory.grow(15)).toBe(1);
    expect(() => memory.grow(1)).toThrow(RangeError);
  });

  it('lowers a declared maximum above the limit and keeps a lower one', async () => {
    const high = await memoryOf(capWasmMemory(await compileWat('(module (memory (export "memory") 1 1000))'), 2));
    expect(() => high.grow(32)).toThrow(RangeError);
    const low = await memoryOf(capWasmMemory(await compileWat('(module (memory (export "memory") 1 4))'), 2));
    expect(() => low.grow(4)).toThrow(RangeError);
    expect(low.grow(3)).toBe(1);
  });

  it('rejects a module whose initial memory exceeds the limit', async () => {
    const bytes = await compileWat('(module (memory (export "memory") 100))');
    expect(() => capWasmMemory(bytes, 1)).toThrow(/ERR_WASM_INVALID|over memoryLimitMb/);
  });

  it('rejects bytes that are not WebAssembly', () => {
    expect(() => capWasmMemory(new TextEncoder().encode('not wasm at all'), 1)).toThrow(/bad magic/);
  });

  it('leaves modules without memory untouched in meaning', async () => {
    const bytes = await compileWat('(module (func (export "f") (result i32) (i32.const 7)))');
    const capped = capWasmMemory(bytes, 8);
    const { exports } = new WA.Instance(new WA.Module(capped), {});
    expect((exports.f as () => number)()).toBe(7);
  });
});
