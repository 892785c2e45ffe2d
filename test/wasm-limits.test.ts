import { describe, expect, it } from 'vitest';
import { capWasmMemory } from '../runtime/host/wasm-limits.ts';
import { compileWat } from '../scripts/build-wasm.ts';
import { limits, memoryOnlyModule, multiMemoryModule } from './fixtures/wasm-bytes.ts';

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

describe('capWasmMemory: every memory and table of a module together', () => {
  it('several memories share the limit instead of each getting all of it', async () => {
    const capped = capWasmMemory(multiMemoryModule([limits(1), limits(1), limits(1, 1000)]), 4); // 4 MiB = 64 pages
    const { exports } = new WA.Instance(new WA.Module(capped), {});
    const pages = [0, 1, 2].map((k) => (exports[`grow${k}`] as () => number)());
    expect(pages.reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(64);
    expect(pages.every((p) => p >= 1)).toBe(true);
  });

  it('refuses shared and 64-bit memories, and more memories than a function may have', () => {
    expect(() => capWasmMemory(memoryOnlyModule(limits(1, 2, 0x03)), 4)).toThrow(/shared/);
    expect(() => capWasmMemory(memoryOnlyModule([0x04, 0x01]), 4)).toThrow(/64-bit/);
    expect(() => capWasmMemory(multiMemoryModule(Array.from({ length: 9 }, () => limits(0, 0))), 4)).toThrow(/at most 8/);
  });

  it('caps a table declared with a huge maximum, or none', async () => {
    const bytes = await compileWat('(module (table (export "a") 1 10000000 funcref) (table (export "b") 1 externref))');
    const { exports } = new WA.Instance(new WA.Module(capWasmMemory(bytes, 64)), {});
    for (const name of ['a', 'b']) expect(() => (exports[name] as { grow(n: number): number }).grow(65536)).toThrow(RangeError);
    expect((exports.a as { grow(n: number): number }).grow(65535)).toBe(1);
  });

  it('leaves every other section byte for byte', async () => {
    const bytes = await compileWat('(module (memory (export "m") 1 2) (data (i32.const 0) "hello") (func (export "f") (result i32) (i32.load8_u (i32.const 1))))');
    const capped = capWasmMemory(bytes, 64);
    expect(Buffer.from(capped)).toEqual(Buffer.from(bytes)); // the declared maximum fits: nothing to lower
    expect((new WA.Instance(new WA.Module(capped), {}).exports.f as () => number)()).toBe('e'.charCodeAt(0));
  });
});
