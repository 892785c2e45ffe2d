/**
 * memoryLimitMb must hold for memory V8 allocates outside the heap. Every case runs a function
 * with memoryLimitMb=16 that tries to reach 256 MiB through one path: it must fail inside the
 * function with a clear error (caught and reported here) having reached at most 16 MiB, and the
 * host processes must be the same ones afterwards. Legitimate uses under the limit still work.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { deploy, json, withPlatform } from './fixtures/platform.ts';
import { bytesLiteral, compileWat, limits, memoryImportModule, memoryOnlyModule, multiMemoryModule } from './fixtures/wasm-bytes.ts';

const MiB = 1024 * 1024;
const LIMIT = 16 * MiB;
let platform: Awaited<ReturnType<typeof withPlatform>>;
let hostPids: unknown;
let counter = 0;

const pids = async () => (await json(platform.app.request('/healthz'))).hosts;

beforeAll(async () => {
  platform = await withPlatform();
  hostPids = await pids();
});
afterAll(() => platform.cleanup());
afterEach(async () => {
  expect(await pids()).toEqual(hostPids);
});

interface Outcome {
  threw: boolean;
  /** Bytes the attack got hold of (what it measured itself). */
  reached: number;
  error?: string;
  notes: Record<string, unknown>;
}

/** Deploys `body` as a fetch handler under memoryLimitMb=16 and invokes it once; `reached` and `notes` are in scope. */
async function attack(body: string, topLevel = ''): Promise<Outcome> {
  const name = `memory-${++counter}`;
  const source = `${topLevel}
const MiB = 1048576;
export default { async fetch() {
  let reached = 0;
  const notes = {};
  try {
${body}
  } catch (e) {
    return Response.json({ threw: true, reached, notes, error: e.name + ': ' + e.message });
  }
  return Response.json({ threw: false, reached, notes });
} };`;
  const put = await deploy(platform, name, source, '?memoryLimitMb=16&timeoutMs=20000');
  expect(put.status, JSON.stringify(put.body)).toBe(201);
  return invokeOutcome(name);
}

async function invokeOutcome(name: string): Promise<Outcome> {
  const res = await platform.app.request(`/v1/invoke/${name}`);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text);
}

function expectRefused(outcome: Outcome, error: RegExp): void {
  expect(outcome.threw, JSON.stringify(outcome)).toBe(true);
  expect(outcome.error).toMatch(error);
  expect(outcome.reached).toBeLessThanOrEqual(LIMIT);
}

const BUDGET = /memory budget|native budget|at most \d+/;

describe('WebAssembly.Memory created from JS', () => {
  it('a declared maximum of 256 MiB is capped: grow stops at the budget', async () => {
    const outcome = await attack(`
      const m = new WebAssembly.Memory({ initial: 1, maximum: 4096 });
      for (let i = 0; i < 4095; i++) { m.grow(1); reached = m.buffer.byteLength; }`);
    expectRefused(outcome, /Maximum memory size exceeded/);
    expect(outcome.reached).toBe(LIMIT);
  });

  it('a memory without a maximum gets one: grow stops at the budget', async () => {
    const outcome = await attack(`
      const m = new WebAssembly.Memory({ initial: 1 });
      while (m.buffer.byteLength < 256 * MiB) { m.grow(16); reached = m.buffer.byteLength; }`);
    expectRefused(outcome, /Maximum memory size exceeded/);
  });

  it('an initial size over the budget is refused', async () => {
    expectRefused(await attack(`new WebAssembly.Memory({ initial: 4096 });`), BUDGET);
  });

  it('many small memories add up to the budget, not past it', async () => {
    const outcome = await attack(`
      const keep = [];
      for (let i = 0; i < 64; i++) {
        const m = new WebAssembly.Memory({ initial: 64, maximum: 64 });
        new Uint8Array(m.buffer).fill(1);
        keep.push(m);
        reached += m.buffer.byteLength;
      }`);
    expectRefused(outcome, /memory budget/);
    expect(outcome.reached).toBe(LIMIT);
  });

  it('memories are counted too: empty ones cannot pile up address-space reservations', async () => {
    const outcome = await attack(`
      const keep = [];
      for (let i = 0; i < 1000; i++) keep.push(new WebAssembly.Memory({ initial: 0, maximum: 0 }));`);
    expectRefused(outcome, /at most 8 WebAssembly memories/);
  });

  it('shared memories are refused', async () => {
    expectRefused(await attack(`new WebAssembly.Memory({ initial: 1, maximum: 4096, shared: true });`), /shared memories are not available/);
  });

  it('64-bit memories are refused', async () => {
    expectRefused(await attack(`new WebAssembly.Memory({ initial: 1n, maximum: 4096n, address: 'i64' });`), /64-bit memories are not available/);
  });
});

describe('resizable and growable buffers', () => {
  it('a resizable ArrayBuffer whose maxByteLength exceeds the budget is refused', async () => {
    const outcome = await attack(`
      const b = new ArrayBuffer(1, { maxByteLength: 256 * MiB });
      b.resize(256 * MiB);
      reached = b.byteLength;`);
    expectRefused(outcome, /memory budget/);
  });

  it('many resizable ArrayBuffers add up to the budget, not past it', async () => {
    const outcome = await attack(`
      const keep = [];
      for (let i = 0; i < 64; i++) {
        const b = new ArrayBuffer(0, { maxByteLength: 4 * MiB });
        b.resize(4 * MiB);
        keep.push(b);
        reached += b.byteLength;
      }`);
    expectRefused(outcome, /memory budget/);
    expect(outcome.reached).toBe(LIMIT);
  });

  it('resizable ArrayBuffers are counted too', async () => {
    const outcome = await attack(`const keep = []; for (let i = 0; i < 1000; i++) keep.push(new ArrayBuffer(0, { maxByteLength: 1 }));`);
    expectRefused(outcome, /at most 64 resizable ArrayBuffers/);
  });

  it('resize cannot pass the charged maxByteLength', async () => {
    const outcome = await attack(`
      const b = new ArrayBuffer(0, { maxByteLength: 8 * MiB });
      b.resize(8 * MiB);
      reached = b.byteLength;
      ArrayBuffer.prototype.resize.call(b, 256 * MiB);`);
    expectRefused(outcome, /RangeError/);
    expect(outcome.reached).toBe(8 * MiB);
  });

  it('a growable SharedArrayBuffer is refused; a fixed one counts against the heap limit', async () => {
    const outcome = await attack(`
      try { new SharedArrayBuffer(1, { maxByteLength: 256 * MiB }); } catch (e) { notes.growable = e.message; }
      const big = new SharedArrayBuffer(256 * MiB);
      reached = big.byteLength;`);
    expect(outcome.notes.growable).toMatch(/growable SharedArrayBuffers .* are not available/);
    expectRefused(outcome, /Array buffer allocation failed/);
  });

  it('typed-array views over a resizable buffer see no more than its charged maximum', async () => {
    const outcome = await attack(`
      const b = new ArrayBuffer(0, { maxByteLength: 4 * MiB });
      const tracking = new Uint8Array(b);
      const view = new DataView(b);
      b.resize(4 * MiB);
      tracking.fill(7);
      reached = tracking.byteLength;
      notes.dataView = view.byteLength;
      new Uint8Array(b, 0, 256 * MiB);`);
    expectRefused(outcome, /RangeError/);
    expect(outcome.reached).toBe(4 * MiB);
    expect(outcome.notes.dataView).toBe(4 * MiB);
  });
});

describe('modules compiled from JS', () => {
  it('a module memory grown from inside WebAssembly stops at the budget', async () => {
    const bytes = await compileWat(`(module (memory (export "memory") 1)
      (func (export "grow") (result i32)
        (block $done (loop $l (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $l)))
        (memory.size)))`);
    const outcome = await attack(`
      const { exports } = new WebAssembly.Instance(new WebAssembly.Module(${bytesLiteral(bytes)}));
      reached = exports.grow() * 65536;
      notes.buffer = exports.memory.buffer.byteLength;`);
    expect(outcome.threw).toBe(false);
    expect(outcome.reached).toBeGreaterThan(8 * MiB);
    expect(outcome.reached).toBeLessThanOrEqual(LIMIT);
  });

  it('multi-memory: the memories of one module share the budget', async () => {
    const bytes = multiMemoryModule([limits(1), limits(1), limits(1), limits(1, 4096)]);
    const outcome = await attack(`
      const { exports } = new WebAssembly.Instance(new WebAssembly.Module(${bytesLiteral(bytes)}));
      for (let k = 0; k < 4; k++) reached += exports['grow' + k]() * 65536;`);
    expect(outcome.threw, JSON.stringify(outcome)).toBe(false);
    expect(outcome.reached).toBeGreaterThan(8 * MiB);
    expect(outcome.reached).toBeLessThanOrEqual(LIMIT);
  });

  it('multi-memory: more memories than a function may have is a CompileError', async () => {
    const bytes = multiMemoryModule(Array.from({ length: 9 }, () => limits(0, 0)));
    expectRefused(await attack(`new WebAssembly.Module(${bytesLiteral(bytes)});`), /CompileError: .*at most 8/);
  });

  it('a module declaring a shared memory is a CompileError, and does not validate', async () => {
    const bytes = memoryOnlyModule(limits(1, 4096, 0x03));
    const outcome = await attack(`
      notes.valid = WebAssembly.validate(${bytesLiteral(bytes)});
      try { await WebAssembly.compile(${bytesLiteral(bytes)}); } catch (e) { notes.compile = e.name; }
      new WebAssembly.Module(${bytesLiteral(bytes)});`);
    expectRefused(outcome, /CompileError: .*shared/);
    expect(outcome.notes).toEqual({ valid: false, compile: 'CompileError' });
  });

  it('a module importing a shared memory is a CompileError', async () => {
    expectRefused(await attack(`new WebAssembly.Module(${bytesLiteral(memoryImportModule(limits(1, 4096, 0x03)))});`), /CompileError: .*shared/);
  });

  it('a module declaring a 64-bit memory is a CompileError', async () => {
    expectRefused(await attack(`new WebAssembly.Module(${bytesLiteral(memoryOnlyModule([0x04, 0x01]))});`), /CompileError: .*64-bit/);
  });

  it('a module whose initial memory exceeds the budget is refused', async () => {
    expectRefused(await attack(`new WebAssembly.Module(${bytesLiteral(memoryOnlyModule(limits(4096)))});`), /memory budget/);
  });

  it('many instances of one module add up to the budget, not past it', async () => {
    const bytes = await compileWat('(module (memory (export "memory") 64 64))');
    const outcome = await attack(`
      const module = new WebAssembly.Module(${bytesLiteral(bytes)});
      const keep = [];
      for (let i = 0; i < 64; i++) {
        const instance = new WebAssembly.Instance(module);
        keep.push(instance);
        reached += instance.exports.memory.buffer.byteLength;
      }`);
    expectRefused(outcome, /memory budget/);
    expect(outcome.reached).toBe(LIMIT);
  });

  it('WebAssembly.instantiate(bytes) and compile() are capped like the constructors', async () => {
    const bytes = await compileWat(`(module (memory (export "memory") 1)
      (func (export "grow") (result i32)
        (block $done (loop $l (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $l)))
        (memory.size)))`);
    const outcome = await attack(`
      const { instance } = await WebAssembly.instantiate(${bytesLiteral(bytes)});
      reached = instance.exports.grow() * 65536;
      const again = await WebAssembly.instantiate(await WebAssembly.compile(${bytesLiteral(bytes)}));
      reached += again.exports.grow() * 65536;`);
    expectRefused(outcome, /memory budget/);
  });

  it('compiled code is charged: distinct modules run out of budget', async () => {
    const outcome = await attack(`
      const keep = [];
      for (let i = 0; i < 5000; i++) {
        // A custom section makes each module distinct (V8 shares the code of identical bytes).
        const name = String(i);
        const bytes = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 0, name.length + 1, name.length, ...[...name].map((c) => c.charCodeAt(0))]);
        keep.push(new WebAssembly.Module(bytes));
        notes.modules = keep.length;
      }`);
    expectRefused(outcome, /native budget/);
    expect(outcome.notes.modules).toBeLessThan(1000);
  });

  it('compiling the same bytes again costs nothing more', async () => {
    const bytes = await compileWat('(module (func (export "f") (result i32) (i32.const 7)))');
    const outcome = await attack(`for (let i = 0; i < 5000; i++) reached = new WebAssembly.Instance(new WebAssembly.Module(${bytesLiteral(bytes)})).exports.f();`);
    expect(outcome).toMatchObject({ threw: false, reached: 7 });
  });

  it('JSPI (Suspending, promising) and streaming compilation are not there', async () => {
    const outcome = await attack(`
      notes.names = ['Suspending', 'promising', 'compileStreaming', 'instantiateStreaming'].filter((n) => n in WebAssembly);`);
    expect(outcome.notes.names).toEqual([]);
  });
});

describe('tables', () => {
  it('a JS-created table grows only to its capped maximum', async () => {
    const outcome = await attack(`
      const t = new WebAssembly.Table({ initial: 1, maximum: 10000000, element: 'anyfunc' });
      try { t.grow(9999999); } catch (e) { notes.grow = e.name; }
      const u = new WebAssembly.Table({ initial: 1, element: 'externref' });
      try { u.grow(9999999); } catch (e) { notes.unbounded = e.name; }
      reached = (t.length + u.length) * 32;
      const keep = [];
      for (let i = 0; i < 1000; i++) keep.push(new WebAssembly.Table({ initial: 65536, element: 'externref' }));`);
    expect(outcome.notes).toEqual({ grow: 'RangeError', unbounded: 'RangeError' });
    expectRefused(outcome, /native budget/);
  });

  it('a table declared in a module grows only to its capped maximum', async () => {
    const bytes = await compileWat(`(module (table $t (export "t") 1 funcref)
      (func (export "grow") (result i32)
        (block $done (loop $l (br_if $done (i32.eq (table.grow $t (ref.null func) (i32.const 100000)) (i32.const -1))) (br $l)))
        (table.size $t)))`);
    const outcome = await attack(`reached = new WebAssembly.Instance(new WebAssembly.Module(${bytesLiteral(bytes)})).exports.grow() * 32;`);
    expect(outcome.threw).toBe(false);
    expect(outcome.reached).toBeGreaterThan(0);
    expect(outcome.reached).toBeLessThanOrEqual(LIMIT);
  });
});

describe('Intl', () => {
  it('Intl.DateTimeFormat objects (ICU formatters outside the heap) are charged: keeping thousands is refused', async () => {
    const outcome = await attack(`
      notes.works = [new Intl.DateTimeFormat('en', { timeZone: 'UTC' }).format(0), Intl.DateTimeFormat('en').format(0)];
      notes.constructor = new Intl.DateTimeFormat().constructor === Intl.DateTimeFormat;
      const keep = [];
      for (let i = 0; i < 200000; i++) keep.push(new Intl.DateTimeFormat('ja-JP-u-ca-japanese', { era: 'long', timeZone: 'Asia/Tokyo' }));`);
    expect(outcome.notes).toEqual({ works: ['1/1/1970', '1/1/1970'], constructor: true });
    expectRefused(outcome, /native budget/);
  });
});

describe('the wrappers cannot be bypassed', () => {
  it('every constructor reachable from an instance is the wrapper', async () => {
    const bytes = await compileWat('(module (memory (export "memory") 1 1) (table (export "table") 1 funcref))');
    const outcome = await attack(`
      const module = new WebAssembly.Module(${bytesLiteral(bytes)});
      const instance = new WebAssembly.Instance(module);
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 1 });
      notes.same = [
        Object.getPrototypeOf(memory).constructor === WebAssembly.Memory,
        WebAssembly.Memory.prototype.constructor === WebAssembly.Memory,
        instance.exports.memory.constructor === WebAssembly.Memory,
        instance.exports.table.constructor === WebAssembly.Table,
        module.constructor === WebAssembly.Module,
        instance.constructor === WebAssembly.Instance,
        new ArrayBuffer(1).constructor === ArrayBuffer,
        memory.buffer.constructor === ArrayBuffer,
        new SharedArrayBuffer(1).constructor === SharedArrayBuffer,
        ArrayBuffer[Symbol.species] === ArrayBuffer,
      ];
      const Ctor = instance.exports.memory.constructor;
      const m = new Ctor({ initial: 1, maximum: 4096 });
      m.grow(4095);`);
    expect(outcome.notes.same).toEqual(Array(10).fill(true));
    expectRefused(outcome, /Maximum memory size exceeded/);
  });

  it('a subclass of WebAssembly.Memory goes through the budget', async () => {
    const outcome = await attack(`
      class Big extends WebAssembly.Memory {}
      const sub = new Big({ initial: 1, maximum: 4096 });
      notes.isBig = sub instanceof Big;
      sub.grow(4095);`);
    expect(outcome.notes.isBig).toBe(true);
    expectRefused(outcome, /Maximum memory size exceeded/);
  });

  it('Reflect.construct with another newTarget goes through the budget', async () => {
    const outcome = await attack(`
      const viaReflect = Reflect.construct(WebAssembly.Memory, [{ initial: 1, maximum: 4096 }], function Other() {});
      WebAssembly.Memory.prototype.grow.call(viaReflect, 4095);`);
    expectRefused(outcome, /Maximum memory size exceeded/);
  });

  it('subclasses of ArrayBuffer and Reflect.construct go through the budget', async () => {
    const outcome = await attack(`
      class BigBuffer extends ArrayBuffer {}
      try { new BigBuffer(0, { maxByteLength: 256 * MiB }); } catch (e) { notes.subclass = e.message; }
      Reflect.construct(ArrayBuffer, [0, { maxByteLength: 256 * MiB }], Object);`);
    expect(outcome.notes.subclass).toMatch(/memory budget/);
    expectRefused(outcome, /memory budget/);
  });

  it('descriptors are read once: a getter cannot answer small to the check and big to V8', async () => {
    const outcome = await attack(`
      let reads = 0;
      const sneaky = { initial: 1, get maximum() { return reads++ === 0 ? 2 : 65536; } };
      const m = new WebAssembly.Memory(sneaky);
      try { m.grow(4095); } catch (e) { notes.grow = e.name; }
      notes.reads = reads;
      let bufferReads = 0;
      const b = new ArrayBuffer(0, { get maxByteLength() { return bufferReads++ === 0 ? 1 : 256 * MiB; } });
      notes.max = b.maxByteLength;
      reached = m.buffer.byteLength + b.maxByteLength;`);
    expect(outcome.threw).toBe(false);
    expect(outcome.notes).toEqual({ grow: 'RangeError', reads: 1, max: 1 });
  });

  it('module bytes are copied before the check: changing them afterwards changes nothing', async () => {
    const bytes = memoryOnlyModule(limits(1, 2));
    const outcome = await attack(`
      const bytes = ${bytesLiteral(bytes)};
      const view = new Proxy(bytes, {});
      const module = await WebAssembly.compile(bytes);
      bytes[bytes.length - 1] = 0x7f; // would be a maximum of 127 pages, after the check
      notes.same = WebAssembly.Module.exports(module).length;
      const instance = new WebAssembly.Instance(module);
      reached = 1;`);
    expect(outcome.threw, JSON.stringify(outcome)).toBe(false);
  });

  it('patched built-ins do not weaken the guard', async () => {
    const bytes = await compileWat(`(module (memory (export "memory") 1)
      (func (export "grow") (result i32)
        (block $done (loop $l (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $l)))
        (memory.size)))`);
    const outcome = await attack(`
      const bytes = ${bytesLiteral(bytes)};
      const iterator = Array.prototype[Symbol.iterator];
      Uint8Array.prototype.subarray = function () { return new Uint8Array(0); };
      Uint8Array.prototype.set = function () {};
      Array.prototype.push = function () { return 0; };
      Map.prototype.get = function () { return undefined; };
      WeakMap.prototype.get = function () { return undefined; };
      WeakRef.prototype.deref = function () { return undefined; };
      Set.prototype.forEach = function () {};
      Array.prototype[Symbol.iterator] = function* () {};
      Object.defineProperty(Array.prototype, '0', { set() {}, get() { return undefined; }, configurable: true });
      Object.defineProperty(Object.prototype, 'holders', { set() {}, configurable: true });
      const { exports } = new WebAssembly.Instance(new WebAssembly.Module(bytes));
      reached = exports.grow() * 65536;
      try {
        const keep = [];
        for (let i = 0; i < 64; i++) { keep[i] = new WebAssembly.Memory({ initial: 64, maximum: 64 }); reached += 64 * 65536; }
      } finally {
        // Put back what the response path itself needs (the function broke its own arrays).
        delete Array.prototype[0];
        Array.prototype[Symbol.iterator] = iterator;
      }`);
    expectRefused(outcome, /memory budget/);
  });

  it('stack traces and callers do not expose the original constructors', async () => {
    const outcome = await attack(`
      const seen = [];
      Error.prepareStackTrace = (e, frames) => frames.map((f) => f.getFunction());
      const sloppyCaller = Function('return arguments.callee.caller');
      const probe = { get initial() { seen.push(...new Error().stack, sloppyCaller()); return 1; }, maximum: 1 };
      new WebAssembly.Memory(probe);
      new ArrayBuffer(0, { get maxByteLength() { seen.push(...new Error().stack, sloppyCaller()); return 1; } });
      const leaked = seen.filter((f) => typeof f === 'function' && f !== probe.__lookupGetter__('initial'));
      notes.leaked = leaked.map((f) => f.name || '(anonymous)').filter((n) => n !== 'get maxByteLength' && n !== 'fetch');
      for (const f of leaked) { try { new f({ initial: 1, maximum: 4096 }).grow(4095); } catch (e) { notes.grow = e.name; } }`);
    expect(outcome.notes.leaked).toEqual([]);
  });

  it('structuredClone: a resizable buffer comes back fixed, a module cannot be instantiated', async () => {
    const bytes = await compileWat('(module (memory (export "memory") 1))');
    const outcome = await attack(`
      const copy = structuredClone(new ArrayBuffer(1, { maxByteLength: 8 * MiB }));
      notes.resizable = copy.resizable;
      const module = structuredClone(new WebAssembly.Module(${bytesLiteral(bytes)}));
      new WebAssembly.Instance(module);`);
    expect(outcome.notes.resizable).toBe(false);
    expectRefused(outcome, /compiled in this function/);
  });

  it('transfer: a huge fixed length is refused by the allocator, a resizable buffer keeps its charge', async () => {
    const outcome = await attack(`
      try { new ArrayBuffer(8).transfer(256 * MiB); } catch (e) { notes.fixed = e.message; }
      const b = new ArrayBuffer(0, { maxByteLength: 16 * MiB });
      try { b.transfer(32 * MiB); } catch (e) { notes.beyond = e.name; }
      const moved = b.transfer(16 * MiB);
      reached = moved.byteLength;
      notes.resizable = moved.resizable;
      new ArrayBuffer(0, { maxByteLength: 1 * MiB });`);
    expect(outcome.notes).toMatchObject({ fixed: expect.stringMatching(/allocation failed/), beyond: 'RangeError', resizable: true });
    expectRefused(outcome, /memory budget/);
  });
});

describe('legitimate use under the limit', () => {
  it('a module with its own memory, grown to 8 MiB, works; plain buffers and resizable ones too', async () => {
    const bytes = await compileWat(`(module (memory (export "memory") 1 128)
      (func (export "sum") (param $n i32) (result i32) (local $i i32) (local $s i32)
        (block $done (loop $l (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
          (local.set $s (i32.add (local.get $s) (i32.load8_u (local.get $i))))
          (local.set $i (i32.add (local.get $i) (i32.const 1))) (br $l)))
        (local.get $s)))`);
    const outcome = await attack(`
      notes.valid = WebAssembly.validate(${bytesLiteral(bytes)});
      const { instance } = await WebAssembly.instantiate(${bytesLiteral(bytes)});
      const memory = instance.exports.memory;
      memory.grow(127);
      new Uint8Array(memory.buffer).fill(1, 0, 1000);
      notes.sum = instance.exports.sum(1000);
      notes.pages = memory.buffer.byteLength / 65536;
      const plain = new Uint8Array(4 * MiB).fill(2);
      const growing = new ArrayBuffer(0, { maxByteLength: 2 * MiB });
      growing.resize(2 * MiB);
      notes.buffers = plain.length + growing.byteLength;`);
    expect(outcome).toMatchObject({ threw: false, notes: { valid: true, sum: 1000, pages: 128, buffers: 6 * MiB } });
  });

  it('a JS memory imported by a module (the Emscripten shape) works within the budget', async () => {
    const bytes = await compileWat(`(module (import "env" "memory" (memory 16 32768)) (table (export "table") 4 4 funcref)
      (func (export "grow") (result i32)
        (block $done (loop $l (br_if $done (i32.eq (memory.grow (i32.const 16)) (i32.const -1))) (br $l)))
        (memory.size)))`);
    const outcome = await attack(`
      const memory = new WebAssembly.Memory({ initial: 16, maximum: 32768 });
      const { instance } = await WebAssembly.instantiate(${bytesLiteral(bytes)}, { env: { memory } });
      reached = instance.exports.grow() * 65536;`);
    expect(outcome.threw, JSON.stringify(outcome)).toBe(false);
    expect(outcome.reached).toBeGreaterThan(8 * MiB);
    expect(outcome.reached).toBeLessThanOrEqual(LIMIT);
  });

  it('instantiating per invocation keeps working: what an invocation dropped is reclaimed', async () => {
    const bytes = await compileWat(`(module (memory (export "memory") 1)
      (func (export "grow") (result i32) (drop (memory.grow (i32.const 127))) (memory.size)))`);
    const name = `memory-${++counter}`;
    const source = `const bytes = ${bytesLiteral(bytes)};
      export default { async fetch() {
        const { instance } = await WebAssembly.instantiate(bytes);
        return new Response(String(instance.exports.grow()));
      } };`;
    expect((await deploy(platform, name, source, '?memoryLimitMb=16')).status).toBe(201);
    for (let i = 0; i < 12; i++) {
      const res = await platform.app.request(`/v1/invoke/${name}`);
      expect(await res.text(), `invocation ${i}`).toBe('128');
    }
  });
});
