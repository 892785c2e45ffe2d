/**
 * The Workers-compatibility bindings (issue 12) under hostile input: crypto.subtle's host side
 * called directly with arguments no well-behaved guest would send, and functions that attack
 * the streams, crypto and forms paths from inside their isolate. Each case ends in a clean
 * error for that call (or a harmless success) with a stable code, and the platform keeps
 * serving other functions.
 */
import { gzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CRYPTO_BYTES, MAX_PBKDF2_ITERATIONS, subtleOutcome } from '../runtime/host/subtle-crypto.ts';
import { deploy, withPlatform } from './fixtures/platform.ts';

describe('the crypto.subtle host binding, called directly', () => {
  const key = async () => {
    const made = await subtleOutcome('importKey', ['raw', new Uint8Array(16), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']]);
    expect(made.ok).toBe(true);
    return (made as { value: Record<string, unknown> }).value;
  };

  it('refuses unknown methods and malformed argument lists with TypeError', async () => {
    for (const [method, args] of [
      ['constructor', []], [42, []], ['digest', 'not an array'], ['digest', new Array(100).fill(0)], [{ toString: () => 'digest' }, []],
    ] as const) {
      const out = await subtleOutcome(method, args);
      expect(out).toMatchObject({ ok: false, error: { name: 'TypeError' } });
    }
  });

  it('refuses wrong argument types without throwing out of the binding', async () => {
    const cases: [string, unknown[]][] = [
      ['digest', ['SHA-256', 'a string']],
      ['digest', [{ name: 123 }, new Uint8Array(1)]],
      ['digest', [null, new Uint8Array(1)]],
      ['sign', ['HMAC', { material: 'x' }, new Uint8Array(1)]],
      ['sign', ['HMAC', null, new Uint8Array(1)]],
      ['importKey', ['raw', new Uint8Array(16), 'HMAC', false, ['sign', 'fly']]],
      ['importKey', ['jwk', 'not an object', 'HMAC', false, ['sign']]],
      ['importKey', ['bogus', new Uint8Array(16), 'AES-GCM', false, ['encrypt']]],
    ];
    for (const [method, args] of cases) {
      const out = await subtleOutcome(method, args);
      expect(out.ok, `${method} ${JSON.stringify(args).slice(0, 80)}`).toBe(false);
    }
  });

  it('bounds every buffer, PBKDF2 iterations and RSA modulus sizes', async () => {
    const big = await subtleOutcome('digest', ['SHA-256', new Uint8Array(MAX_CRYPTO_BYTES + 1)]);
    expect(big).toMatchObject({ ok: false, error: { name: 'OperationError' } });
    const pbkdf2 = await subtleOutcome('importKey', ['raw', new Uint8Array(8), 'PBKDF2', false, ['deriveBits']]);
    const iterations = await subtleOutcome('deriveBits', [
      { name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(8), iterations: MAX_PBKDF2_ITERATIONS + 1 },
      (pbkdf2 as { value: unknown }).value,
      256,
    ]);
    expect(iterations).toMatchObject({ ok: false, error: { name: 'OperationError' } });
    const rsa = await subtleOutcome('generateKey', [{ name: 'RSA-PSS', modulusLength: 16384, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['sign']]);
    expect(rsa).toMatchObject({ ok: false, error: { name: 'OperationError' } });
    const jwk = await subtleOutcome('importKey', ['jwk', { kty: 'oct', k: 'A'.repeat(100_000) }, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']]);
    expect(jwk).toMatchObject({ ok: false, error: { name: 'DataError' } });
  });

  it('never exports a key whose guest says it is not extractable', async () => {
    const k = await key();
    expect(k.extractable).toBe(false);
    expect(await subtleOutcome('exportKey', ['jwk', k])).toMatchObject({ ok: false, error: { name: 'InvalidAccessError' } });
    expect(await subtleOutcome('exportKey', ['raw', { ...k, extractable: 'yes' }])).toMatchObject({ ok: false, error: { name: 'InvalidAccessError' } });
  });

  it('copies only the JWK members it knows: a __proto__ member pollutes nothing', async () => {
    const hostile = JSON.parse('{"kty":"oct","k":"AAAAAAAAAAAAAAAAAAAAAA","__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}}');
    const out = await subtleOutcome('importKey', ['jwk', hostile, { name: 'HMAC', hash: 'SHA-256' }, true, ['sign']]);
    expect(out.ok).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    const material = (out as { value: { material: { jwk: Record<string, unknown> } } }).value.material.jwk;
    expect(Object.keys(material).sort()).toEqual(['alg', 'ext', 'k', 'key_ops', 'kty']);
  });
});

describe('functions attacking the new APIs', () => {
  let platform: Awaited<ReturnType<typeof withPlatform>>;
  let counter = 0;

  beforeAll(async () => {
    platform = await withPlatform({ hosts: 1, warmSlots: 2 });
    const canary = await deploy(platform, 'canary', `export default { fetch() { return new Response('alive'); } };`);
    expect(canary.status).toBe(201);
  }, 60_000);
  afterAll(() => platform?.cleanup());
  afterEach(async () => {
    const res = await platform.app.request('/v1/invoke/canary');
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('alive');
  });

  async function run(fetchBody: string, options: { query?: string; topLevel?: string } = {}) {
    const name = `hostile-web-${++counter}`;
    const source = `${options.topLevel ?? ''}\nexport default { async fetch(request, env, ctx) {\n${fetchBody}\n} };`;
    const put = await deploy(platform, name, source, options.query ?? '');
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    const res = await platform.app.request(`/v1/invoke/${name}`);
    const text = await res.text();
    let json: any = null;
    try {
      json = JSON.parse(text);
    } catch {}
    return { status: res.status, text, json, headers: res.headers };
  }

  it('a response stream that never ends times out with ERR_FN_TIMEOUT', async () => {
    const out = await run(`return new Response(new ReadableStream({ pull() { return new Promise(() => {}); } }));`, { query: '?timeoutMs=300' });
    expect(out.status).toBe(504);
    expect(out.json.error.code).toBe('ERR_FN_TIMEOUT');
  });

  it('a response stream past the body limit fails with ERR_FN_BAD_RESPONSE', async () => {
    const out = await run(`
      const chunk = new Uint8Array(1024 * 1024);
      return new Response(new ReadableStream({ pull(c) { c.enqueue(chunk); } }));
    `, { query: '?timeoutMs=10000&cpuLimitMs=10000' });
    expect(out.status).toBe(500);
    expect(out.json.error.code).toBe('ERR_FN_BAD_RESPONSE');
    expect(out.json.error.message).toMatch(/exceeds/);
  });

  it('a response stream chunk that is not bytes fails with ERR_FN_BAD_RESPONSE; a throwing pull with ERR_FN_THREW', async () => {
    const text = await run(`return new Response(new ReadableStream({ start(c) { c.enqueue('a string'); c.close(); } }));`);
    expect(text.status).toBe(500);
    expect(text.json.error.code).toBe('ERR_FN_BAD_RESPONSE');
    const thrown = await run(`return new Response(new ReadableStream({ pull() { throw new Error('pull exploded'); } }));`);
    expect(thrown.status).toBe(500);
    expect(thrown.json.error.code).toBe('ERR_FN_THREW');
  });

  it('patched stream, reader and Promise methods do not change what the platform drains', async () => {
    const name = `hostile-web-${++counter}`;
    // A synchronous fetch: an async one would itself resolve through the planted `then`.
    const source = `export default { fetch() {
      const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('re')); c.enqueue(new TextEncoder().encode('al')); c.close(); } });
      ReadableStream.prototype.getReader = () => { throw new Error('patched getReader'); };
      ReadableStream.prototype.pipeTo = () => { throw new Error('patched pipeTo'); };
      ReadableStreamDefaultReader.prototype.read = async () => ({ done: false, value: new Uint8Array(1e6) });
      WritableStreamDefaultWriter.prototype.write = () => { throw new Error('patched write'); };
      Object.defineProperty(Object.prototype, 'then', { get() { throw new Error('then was read'); }, configurable: true });
      Uint8Array.prototype.subarray = () => { throw new Error('patched subarray'); };
      return new Response(body);
    } };`;
    expect((await deploy(platform, name, source)).status).toBe(201);
    const res = await platform.app.request(`/v1/invoke/${name}`);
    expect(await res.text()).toBe('real');
    expect(res.status).toBe(200);
  });

  it('framing headers a function sets never reach the client', async () => {
    const out = await run(`return new Response('four', { headers: { 'transfer-encoding': 'chunked', 'content-length': '9999', connection: 'close', 'x-ok': '1' } });`);
    expect(out.status).toBe(200);
    expect(out.text).toBe('four');
    expect(out.headers.get('transfer-encoding')).toBeNull();
    expect(out.headers.get('connection')).toBeNull();
    expect(out.headers.get('content-length')).not.toBe('9999');
    expect(out.headers.get('x-ok')).toBe('1');
  });

  it('algorithm getters that throw, proxies and forged keys reject only the caller', async () => {
    const out = await run(`
      const results = [];
      const attempt = async (f) => { try { await f(); results.push('resolved'); } catch (e) { results.push(e.name + ': ' + e.message.slice(0, 40)); } };
      await attempt(() => crypto.subtle.digest({ get name() { throw new Error('getter threw'); } }, new Uint8Array(1)));
      await attempt(() => crypto.subtle.digest(new Proxy({}, { get(_, k) { if (k === 'name') return 'SHA-256'; throw new Error('proxy trap ' + String(k)); } }), new Uint8Array(1)));
      await attempt(() => crypto.subtle.sign('HMAC', Object.create(CryptoKey.prototype), new Uint8Array(1)));
      await attempt(() => crypto.subtle.sign('HMAC', { type: 'secret', algorithm: { name: 'HMAC' }, usages: ['sign'] }, new Uint8Array(1)));
      await attempt(() => crypto.subtle.digest('SHA-256', new Uint8Array(11 * 1024 * 1024)));
      return Response.json(results);
    `, { query: '?memoryLimitMb=256' });
    expect(out.status).toBe(200);
    expect(out.json).toEqual([
      'Error: getter threw',
      'Error: proxy trap hash',
      'TypeError: key must be a CryptoKey',
      'TypeError: key must be a CryptoKey',
      expect.stringMatching(/^OperationError: data is over/),
    ]);
  });

  it('a CryptoKey holds nothing reachable: no own properties, not cloneable, not constructible', async () => {
    const out = await run(`
      const key = await crypto.subtle.generateKey({ name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
      let clone, construct;
      try { structuredClone(key); } catch (e) { clone = e.name; }
      try { new CryptoKey(1, {}); } catch (e) { construct = e.name; }
      return Response.json([Reflect.ownKeys(key).length, Object.getOwnPropertyNames(Object.getPrototypeOf(key)).sort(), clone, construct, JSON.stringify(key)]);
    `);
    expect(out.json).toEqual([0, ['algorithm', 'constructor', 'extractable', 'type', 'usages'], 'DataCloneError', 'TypeError', '{}']);
  });

  it('too many crypto operations pending at once: they reject with RangeError, the host is untouched', async () => {
    // PBKDF2 at the iteration ceiling is slow enough that the calls pile up faster than they end.
    const out = await run(`
      const k = await crypto.subtle.importKey('raw', new Uint8Array(8), 'PBKDF2', false, ['deriveBits']);
      const pending = [];
      for (let i = 0; i < 300; i++) pending.push(crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-256', salt: new Uint8Array(8), iterations: 100000 }, k, 256));
      const settled = await Promise.allSettled(pending);
      const rejected = settled.filter((s) => s.status === 'rejected');
      return Response.json({ fulfilled: settled.length - rejected.length, rejected: rejected.length > 0, allRangeErrors: rejected.every((r) => r.reason instanceof RangeError) });
    `, { query: '?timeoutMs=60000&cpuLimitMs=30000' });
    expect(out.json.rejected).toBe(true);
    expect(out.json.allRangeErrors).toBe(true);
    expect(out.json.fulfilled).toBeGreaterThanOrEqual(64);
  }, 90_000);

  it('crypto at the top level (no invocation) rejects; operations of a finished call never reach the next one', async () => {
    const name = `hostile-web-${++counter}`;
    const source = `
      let topLevel = 'pending';
      crypto.subtle.digest('SHA-256', new Uint8Array(1)).then(() => { topLevel = 'resolved'; }, (e) => { topLevel = e.name; });
      let calls = 0;
      export default { async fetch() {
        calls++;
        if (calls === 1) {
          // Starts slow operations and answers without waiting for them.
          const k = await crypto.subtle.importKey('raw', new Uint8Array(8), 'PBKDF2', false, ['deriveBits']);
          for (let i = 0; i < 20; i++) crypto.subtle.deriveBits({ name: 'PBKDF2', hash: 'SHA-512', salt: new Uint8Array(8), iterations: 20000 }, k, 512).then(() => { calls += 1000; });
          return new Response('first');
        }
        const d = new Uint8Array(await crypto.subtle.digest('SHA-256', new TextEncoder().encode('abc')));
        return Response.json({ topLevel, calls, first: d[0] });
      } };`;
    // A generous timeout: the second call's digest may queue behind the first call's work on a loaded machine.
    expect((await deploy(platform, name, source, '?timeoutMs=10000&cpuLimitMs=1000')).status).toBe(201);
    expect(await (await platform.app.request(`/v1/invoke/${name}`)).text()).toBe('first');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const second = await (await platform.app.request(`/v1/invoke/${name}`)).json();
    expect(second).toEqual({ topLevel: 'TypeError', calls: 2, first: 0xba });
  });

  it('malformed multipart bodies fail formData() with TypeError; huge part counts stay within the body limit', async () => {
    const out = await run(`
      const attempt = async (body, type) => { try { await new Response(body, { headers: { 'content-type': type } }).formData(); return 'parsed'; } catch (e) { return e.constructor.name; } };
      const many = '--b\\r\\nContent-Disposition: form-data; name="x"\\r\\n\\r\\n1\\r\\n'.repeat(20000) + '--b--';
      const parsed = await new Response(many, { headers: { 'content-type': 'multipart/form-data; boundary=b' } }).formData();
      return Response.json([
        await attempt('--b\\r\\nno headers end', 'multipart/form-data; boundary=b'),
        await attempt('x', 'multipart/form-data'),
        await attempt('x', 'multipart/form-data; boundary=' + 'b'.repeat(100)),
        await attempt('--b\\r\\nContent-Disposition: form-data\\r\\n\\r\\nv\\r\\n--b--', 'multipart/form-data; boundary=b'),
        parsed.getAll('x').length,
      ]);
    `, { query: '?timeoutMs=10000&cpuLimitMs=10000' });
    expect(out.json).toEqual(['TypeError', 'TypeError', 'TypeError', 'TypeError', 20000]);
  });

  it('a decompression bomb stops at the body limit with RangeError ERR_TOO_LARGE', async () => {
    const bomb = gzipSync(Buffer.alloc(64 * 1024 * 1024)).toString('base64');
    const out = await run(`
      const bytes = Uint8Array.from(atob(${JSON.stringify(bomb)}), (c) => c.charCodeAt(0));
      try {
        await new Response(new Response(bytes).body.pipeThrough(new DecompressionStream('gzip'))).arrayBuffer();
        return new Response('inflated');
      } catch (e) { return Response.json([e.constructor.name, e.message.slice(0, 13)]); }
    `, { query: '?timeoutMs=10000&cpuLimitMs=10000' });
    expect(out.json).toEqual(['RangeError', 'ERR_TOO_LARGE']);
  });

  it('an invocation opens at most 16 compression streams; a finished one frees its place', async () => {
    const out = await run(`
      const gzip = async (text) => new Uint8Array(await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream('gzip'))).arrayBuffer()).length;
      const finished = [];
      for (let i = 0; i < 20; i++) finished.push(await gzip('x'.repeat(100)) > 0);
      const open = [];
      let failure = null;
      for (let i = 0; i < 17 && failure === null; i++) {
        const stream = new CompressionStream('deflate');
        void stream.writable.getWriter().write(new Uint8Array([i])).catch(() => {});
        try { await stream.readable.getReader().read(); open.push(stream); } catch (e) { failure = [open.length, e.constructor.name, e.message.slice(0, 18)]; }
      }
      return Response.json([finished.every(Boolean), failure]);
    `);
    expect(out.json).toEqual([true, [16, 'RangeError', 'ERR_QUOTA_EXCEEDED']]);
  });

  it('EventTarget listeners that throw, re-enter dispatch or remove others do not break the platform', async () => {
    const out = await run(`
      const t = new EventTarget();
      let depth = 0;
      const log = [];
      t.addEventListener('x', () => { throw new Error('listener threw'); });
      t.addEventListener('x', () => { log.push('second'); if (depth++ < 50) t.dispatchEvent(new Event('x')); });
      const c = new AbortController();
      c.signal.addEventListener('abort', () => c.abort('again'));
      c.abort('first');
      t.dispatchEvent(new Event('x'));
      return Response.json([log.length, c.signal.reason]);
    `);
    expect(out.json).toEqual([51, 'first']);
  });
});
