/**
 * Untrusted code is hostile. Each case must end in a clean error for that call (or a harmless
 * success), after which the platform serves other functions normally.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compileWat } from '../scripts/build-wasm.ts';
import { deploy, withPlatform, json } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;
let counter = 0;

beforeAll(async () => {
  platform = await withPlatform();
  const canary = await deploy(platform, 'canary', `export default { fetch() { return new Response('alive'); } };`);
  expect(canary.status).toBe(201);
});
afterAll(() => platform.cleanup());

// After every hostile call the platform must still serve a healthy function.
afterEach(async () => {
  const res = await platform.app.request('/v1/invoke/canary');
  expect(res.status).toBe(200);
  expect(await res.text()).toBe('alive');
});

async function run(fetchBody: string, options: { query?: string; topLevel?: string; sync?: boolean } = {}) {
  const name = `hostile-${++counter}`;
  const source = `${options.topLevel ?? ''}\nexport default { ${options.sync ? '' : 'async '}fetch(request, env, ctx) {\n${fetchBody}\n} };`;
  const put = await deploy(platform, name, source, options.query ?? '');
  expect(put.status, JSON.stringify(put.body)).toBe(201);
  const res = await platform.app.request(`/v1/invoke/${name}`);
  const text = await res.text();
  let json: any = null;
  try {
    json = JSON.parse(text);
  } catch {}
  return { status: res.status, text, json };
}

describe('escaping the sandbox', () => {
  it('Function constructor reaches only the isolate global, which has nothing of Node', async () => {
    const { status, json } = await run(`
      const g = Function('return this')();
      return Response.json({ process: typeof g.process, require: typeof g.require, buffer: typeof g.Buffer, module: typeof g.module });`);
    expect(status).toBe(200);
    expect(json).toEqual({ process: 'undefined', require: 'undefined', buffer: 'undefined', module: 'undefined' });
  });

  it('constructor.constructor chains through platform objects cannot reach process', async () => {
    const { status, json } = await run(`
      const attempts = [request, env, ctx, ctx.waitUntil, new Response(''), console.log, setTimeout, crypto.getRandomValues];
      const found = [];
      for (const o of attempts) {
        try { found.push(typeof o.constructor.constructor('return process')()); } catch (e) { found.push(e.name); }
      }
      return Response.json(found);`);
    expect(status).toBe(200);
    expect(new Set(json)).toEqual(new Set(['ReferenceError']));
  });

  it('exposes no host references, installers or Node globals on the global object', async () => {
    const { json } = await run(`
      const names = Object.getOwnPropertyNames(globalThis);
      const node = ['process', 'require', 'module', 'exports', 'Buffer', 'global', '__dirname', '__filename', 'setImmediate'];
      const suspicious = names.filter((n) => /ivm|tributary|^_/i.test(n) || node.includes(n));
      return Response.json({ suspicious, hasSetTimeout: typeof setTimeout });`);
    expect(json).toEqual({ suspicious: [], hasSetTimeout: 'function' });
  });

  it('errors thrown by host bindings arrive as copies whose constructors are the isolate own', async () => {
    const { json } = await run(`
      try { structuredClone(() => 1); } catch (e) {
        try { return Response.json({ escaped: typeof e.constructor.constructor('return process')() }); }
        catch (inner) { return Response.json({ escaped: false, name: inner.name }); }
      }
      return Response.json({ escaped: 'no error' });`);
    expect(json).toEqual({ escaped: false, name: 'ReferenceError' });
  });

  it('stack-trace API (prepareStackTrace) exposes no host frames or functions', async () => {
    const { json } = await run(`
      Error.prepareStackTrace = (_, frames) => frames.map((f) => ({ file: f.getFileName(), fn: typeof f.getFunction?.() }));
      let frames;
      try { new URL('not a url'); } catch (e) { frames = e.stack; }
      const files = frames.map((f) => f.file).filter((f) => f && !String(f).startsWith('fn:///') && !String(f).startsWith('tributary:'));
      return Response.json({ files });`);
    expect(json).toEqual({ files: [] });
  });

  it('dynamic import of a Node module fails', async () => {
    const { status, json } = await run(`const fs = await import('node:fs'); return new Response(typeof fs);`);
    expect(status).toBe(500);
    expect(json.error.code).toBe('ERR_FN_THREW');
  });
});

describe('polluting built-ins the platform uses', () => {
  it('patched Array/JSON/Uint8Array/Promise/Object prototypes do not break the response path', async () => {
    const { status, text } = await run(`
      const RealResponse = Response;
      Array.prototype.push = () => { throw new Error('push hijacked'); };
      JSON.stringify = () => { throw new Error('stringify hijacked'); };
      Uint8Array.prototype.set = () => { throw new Error('set hijacked'); };
      Promise.prototype.then = function () { throw new Error('then hijacked'); };
      Object.defineProperty(Object.prototype, 'then', { get() { throw new Error('thenable hijacked'); }, configurable: true });
      globalThis.Response = class Fake {};
      return new RealResponse('still fine', { headers: { 'x-a': '1' } });`, { sync: true });
    expect(status).toBe(200);
    expect(text).toBe('still fine');
  });

  it('properties planted on Object.prototype and Array.prototype do not change what crosses back to the host', async () => {
    // The result is encoded inside the isolate (a string or a flat array): only own properties may count.
    for (const body of ['small', 'x'.repeat(5000)]) {
      const { status, text } = await run(`
        Object.prototype.streamed = true;
        Object.prototype.stream = true;
        Object.defineProperty(Array.prototype, '5', { set() { throw new Error('index setter hijacked'); }, get() { return 'planted'; }, configurable: true });
        String.prototype.indexOf = () => -1;
        String.fromCharCode = () => 'hijacked';
        return new Response(${JSON.stringify(body)}, { headers: { 'x-a': '1', 'x-b': '2', 'x-c': '3' } });`, { sync: true });
      expect(status).toBe(200);
      expect(text).toBe(body);
    }
  });

  it('a function that replaces Response and returns the fake gets ERR_FN_BAD_RESPONSE', async () => {
    const { status, json } = await run(`globalThis.Response = class { constructor() { this.status = 200; } }; return new Response('x');`);
    expect(status).toBe(500);
    expect(json.error.code).toBe('ERR_FN_BAD_RESPONSE');
  });

  it('pollution stays inside the polluting function: other functions see pristine built-ins', async () => {
    await run(`Array.prototype.map = () => 'hijacked'; String.prototype.toUpperCase = () => 'pwned'; return new Response('ok');`);
    const { json } = await run(`return Response.json({ map: [1, 2].map((x) => x * 2), upper: 'a'.toUpperCase() });`);
    expect(json).toEqual({ map: [2, 4], upper: 'A' });
  });
});

describe('runaway CPU', () => {
  it('a synchronous infinite loop ends in 504 ERR_FN_TIMEOUT', async () => {
    const { status, json } = await run(`while (true) {}`, { query: '?timeoutMs=200' });
    expect(status).toBe(504);
    expect(json.error.code).toBe('ERR_FN_TIMEOUT');
  });

  it('an infinite loop after an await (microtask) ends in ERR_FN_TIMEOUT', async () => {
    const { status, json } = await run(`await null; for (;;) {}`, { query: '?timeoutMs=200' });
    expect(status).toBe(504);
    expect(json.error.code).toBe('ERR_FN_TIMEOUT');
  });

  it('an infinite loop inside a timer callback ends in ERR_FN_TIMEOUT', async () => {
    const { status, json } = await run(`setTimeout(() => { for (;;) {} }, 1); await new Promise(() => {});`, { query: '?timeoutMs=200' });
    expect(status).toBe(504);
    expect(json.error.code).toBe('ERR_FN_TIMEOUT');
  });

  it('a promise that never settles ends in ERR_FN_TIMEOUT', async () => {
    const { status, json } = await run(`await new Promise(() => {});`, { query: '?timeoutMs=200' });
    expect(status).toBe(504);
    expect(json.error.code).toBe('ERR_FN_TIMEOUT');
  });

  it('an infinite loop at module top level is rejected at upload', async () => {
    const put = await deploy(platform, 'toplevel-loop', `for (;;) {}\nexport default { fetch() {} };`, '?timeoutMs=200');
    expect(put.status).toBe(504);
    expect(put.body.error.code).toBe('ERR_FN_TIMEOUT');
  });

  it('Atomics.wait, which could block the host thread, is refused with ERR_FN_THREW', async () => {
    const { status, json } = await run(`Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); return new Response('woke');`, {
      query: '?timeoutMs=200',
    });
    expect(status).toBe(500);
    expect(json.error).toMatchObject({ code: 'ERR_FN_THREW', message: expect.stringContaining('Atomics.wait is not allowed') });
  });
});

describe('memory bombs', () => {
  // A V8 heap OOM may be caught by isolated-vm (ERR_FN_OOM) or abort the whole host process
  // (isolated-vm #107, #527): then the call fails with ERR_HOST_CRASHED and the host restarts.
  const OOM_CODES = ['ERR_FN_OOM', 'ERR_HOST_CRASHED'];

  it('growing an array of objects without bound', async () => {
    const { status, json } = await run(`const a = []; for (;;) a.push({ x: Math.random(), y: [1, 2, 3] });`, { query: '?memoryLimitMb=32&timeoutMs=20000' });
    expect(status).toBe(503);
    expect(OOM_CODES).toContain(json.error.code);
  });

  it('doubling a string until it cannot', async () => {
    const { status, json } = await run(`let s = 'x'; const keep = []; for (;;) { s += s; keep.push(s + '!'); }`, { query: '?memoryLimitMb=32&timeoutMs=20000' });
    expect([500, 503]).toContain(status);
    expect([...OOM_CODES, 'ERR_FN_THREW']).toContain(json.error.code);
  });

  it('isolated-vm #527: a 100 MB ArrayBuffer copied into a plain Array', async () => {
    const { status, json } = await run(`
      const buffer = new ArrayBuffer(100 * 1024 * 1024);
      const view = new Array(buffer.byteLength);
      const bytes = new Uint8Array(buffer);
      let i = view.length;
      while (i--) view[i] = bytes[i];
      return new Response('survived');`, { query: '?memoryLimitMb=64&timeoutMs=20000' });
    expect(status).toBe(503);
    expect(OOM_CODES).toContain(json.error.code);
  });

  it('isolated-vm #107: spreading a huge string into an array', async () => {
    // 2^28 chars stays under V8's maximum string length, so this is a heap OOM, not a RangeError.
    const { status, json } = await run(`const a = [...'.'.repeat(2 ** 28)]; return new Response(String(a.length));`, { query: '?memoryLimitMb=32&timeoutMs=20000' });
    expect(status).toBe(503);
    expect(OOM_CODES).toContain(json.error.code);
  });

  it('a single allocation far over the limit', async () => {
    const { status, json } = await run(`const b = new Uint8Array(2 ** 31); b.fill(1); return new Response(String(b.length));`, { query: '?memoryLimitMb=32' });
    expect(status).toBe(503);
    expect(OOM_CODES).toContain(json.error.code);
  });
});

describe('other hostile patterns', () => {
  it('deep recursion ends in ERR_FN_THREW (stack overflow)', async () => {
    const { status, json } = await run(`function f(n) { return f(n + 1) + 1; } return new Response(String(f(0)));`);
    expect(status).toBe(500);
    expect(json.error.code).toBe('ERR_FN_THREW');
    expect(json.error.message).toMatch(/call stack/i);
  });

  it('a response over the body limit ends in ERR_FN_BAD_RESPONSE', async () => {
    const { status, json } = await run(`return new Response(new Uint8Array(11 * 1024 * 1024));`);
    expect(status).toBe(500);
    expect(json.error.code).toBe('ERR_FN_BAD_RESPONSE');
  });

  it('an unhandled rejection left floating fails that call with ERR_FN_THREW', async () => {
    // isolated-vm surfaces rejections nobody handled during the call as the call's error.
    const { status, json } = await run(`Promise.reject(new Error('floating')); return new Response('fine');`);
    expect(status).toBe(500);
    expect(json.error).toMatchObject({ code: 'ERR_FN_THREW', message: expect.stringContaining('floating') });
  });

  it('a rejection handled later in the same call does not fail it', async () => {
    const { status, text } = await run(`const p = Promise.reject(new Error('later')); await null; try { await p; } catch {} return new Response('fine');`);
    expect(status).toBe(200);
    expect(text).toBe('fine');
  });

  it('a rejected handler promise with a non-Error value ends in ERR_FN_THREW', async () => {
    const { status, json } = await run(`await Promise.resolve(); throw 42;`);
    expect(status).toBe(500);
    expect(json.error).toMatchObject({ code: 'ERR_FN_THREW', message: expect.stringContaining('42') });
  });

  it('a thrown object with a hostile toString and getters still ends in ERR_FN_THREW', async () => {
    const { status, json } = await run(`
      const evil = new Proxy({}, { get() { throw new Error('gotcha'); }, getPrototypeOf() { throw new Error('proto'); } });
      throw evil;`);
    expect(status).toBe(500);
    expect(json.error.code).toBe('ERR_FN_THREW');
  });

  it('the error message never leaks a host path or stack', async () => {
    const { json } = await run(`throw new Error('plain');`);
    expect(json.error.message).toContain('plain');
    expect(JSON.stringify(json)).not.toMatch(/\/work\/|node_modules|at .*\.ts:/);
  });
});

describe('hostile WebAssembly', () => {
  async function deployWasm(name: string, wat: string, query = '') {
    const res = await platform.app.request(`/v1/functions/${name}${query}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/wasm' },
      body: await compileWat(wat),
    });
    expect(res.status, await res.clone().text()).toBe(201);
  }

  const ABI = `(memory (export "memory") 1)
    (func (export "alloc") (param i32) (result i32) (i32.const 1024))`;

  it('a trap (unreachable) ends in ERR_FN_THREW', async () => {
    await deployWasm('wasm-trap', `(module ${ABI} (func (export "handle") (param i32 i32) (result i64) unreachable))`);
    const res = await platform.app.request('/v1/invoke/wasm-trap', { method: 'POST', body: 'x' });
    expect(res.status).toBe(500);
    const { error } = await json(res);
    expect(error.code).toBe('ERR_FN_THREW');
    expect(error.message).toMatch(/unreachable/);
  });

  it('unbounded memory.grow stops at memoryLimitMb: grow answers -1, nothing else breaks', async () => {
    // Grows one page at a time until refused, then reports the number of pages it reached.
    await deployWasm(
      'wasm-grow',
      `(module ${ABI}
        (func (export "handle") (param i32 i32) (result i64)
          (block $done (loop $l (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1))) (br $l)))
          (i32.store (i32.const 0) (memory.size))
          (i64.const 4)))`,
      // The loop runs GC-bound at the heap limit (hundreds of ms on a loaded 2-core machine): give it
      // a wall-clock budget well above that, so the test asserts the memory cap, not the speed.
      '?memoryLimitMb=16&timeoutMs=5000',
    );
    const res = await platform.app.request('/v1/invoke/wasm-grow', { method: 'POST', body: 'x' });
    expect(res.status).toBe(200);
    const pages = new DataView(await res.arrayBuffer()).getInt32(0, true);
    expect(pages).toBe((16 * 1024 * 1024) / 65536);
  });

  it('an infinite loop in WASM ends in ERR_FN_TIMEOUT', async () => {
    await deployWasm('wasm-loop', `(module ${ABI} (func (export "handle") (param i32 i32) (result i64) (loop $l (br $l)) (i64.const 0)))`, '?timeoutMs=200');
    const res = await platform.app.request('/v1/invoke/wasm-loop', { method: 'POST', body: 'x' });
    expect(res.status).toBe(504);
    expect((await json(res)).error.code).toBe('ERR_FN_TIMEOUT');
  });

  it('handle returning bytes outside linear memory ends in a clean error', async () => {
    await deployWasm('wasm-oob', `(module ${ABI} (func (export "handle") (param i32 i32) (result i64) (i64.const 0x7fffffff00000010)))`);
    const res = await platform.app.request('/v1/invoke/wasm-oob', { method: 'POST', body: 'x' });
    expect(res.status).toBe(500);
    expect((await json(res)).error.code).toBe('ERR_FN_THREW');
  });
});
