/**
 * env.STATE in fetch handlers (issue 12): one namespace per function on the control plane, the
 * same from every host, with the stream handlers' R2-like API and limits; hostile keys and values
 * fail the call with a stable code; a deleted function's namespace goes with it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, json, withPlatform } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;

const COUNTER = `export default { async fetch(request, env) {
  const url = new URL(request.url);
  if (url.pathname === '/bump') {
    const current = await env.STATE.get('count');
    const next = (current === null ? 0 : Number(await current.text())) + 1;
    await env.STATE.put('count', String(next));
    return Response.json({ count: next });
  }
  if (url.pathname === '/bytes') {
    await env.STATE.put('bin', new Uint8Array([1, 2, 255]));
    const got = await env.STATE.get('bin');
    return Response.json({ size: got.size, bytes: [...new Uint8Array(await got.arrayBuffer())] });
  }
  if (url.pathname === '/list') {
    for (const k of ['a/1', 'a/2', 'a/3', 'b/1']) await env.STATE.put(k, 'v');
    const first = await env.STATE.list({ prefix: 'a/', limit: 2 });
    const rest = await env.STATE.list({ prefix: 'a/', cursor: first.cursor });
    await env.STATE.delete(['a/1', 'b/1']);
    const after = await env.STATE.list();
    return Response.json({ first: first.objects.map((o) => o.key), truncated: first.truncated, rest: rest.objects.map((o) => o.key), after: after.objects.map((o) => o.key) });
  }
  return new Response('?', { status: 404 });
} };`;

beforeAll(async () => {
  platform = await withPlatform({ hosts: 2, warmSlots: 1 });
  expect((await deploy(platform, 'counter', COUNTER)).status).toBe(201);
}, 60_000);
afterAll(() => platform?.cleanup());

describe('env.STATE in fetch', () => {
  it('keeps values between calls, the same on every host', async () => {
    expect(await json(platform.app.request('/v1/invoke/counter/bump'))).toEqual({ count: 1 });
    expect(await json(platform.app.request('/v1/invoke/counter/bump'))).toEqual({ count: 2 });
    const { supervisor, functions } = platform;
    const spec = functions.registry.specOf(functions.registry.require('counter'));
    const other = (supervisor.homeOf('counter') + 1) % supervisor.size;
    const reply = await supervisor.callHost(other, { op: 'fetch', spec, request: { method: 'GET', url: 'http://x/bump', headers: [], body: null } });
    expect(JSON.parse(Buffer.from(reply.value.body!).toString())).toEqual({ count: 3 });
    expect(await json(platform.app.request('/v1/invoke/counter/bump'))).toEqual({ count: 4 });
  });

  it('stores bytes, lists by prefix with a cursor, deletes several keys', async () => {
    expect(await json(platform.app.request('/v1/invoke/counter/bytes'))).toEqual({ size: 3, bytes: [1, 2, 255] });
    expect(await json(platform.app.request('/v1/invoke/counter/list'))).toEqual({
      first: ['a/1', 'a/2'], truncated: true, rest: ['a/3'], after: ['a/2', 'a/3', 'bin', 'count'],
    });
  });

  it('namespaces are per function, and a deleted function takes its namespace along', async () => {
    const peek = `export default { async fetch(request, env) { const v = await env.STATE.get('count'); return Response.json(v === null ? null : await v.text()); } };`;
    expect((await deploy(platform, 'peeker', peek)).status).toBe(201);
    expect(await json(platform.app.request('/v1/invoke/peeker'))).toBeNull();
    expect((await platform.app.request('/v1/functions/counter', { method: 'DELETE' })).status).toBe(204);
    expect((await deploy(platform, 'counter', COUNTER)).status).toBe(201);
    expect(await json(platform.app.request('/v1/invoke/counter/bump'))).toEqual({ count: 1 });
  });

  it('a namespace is bounded in bytes: ERR_QUOTA_EXCEEDED as a RangeError, overwrites still fit', async () => {
    const source = `export default { async fetch(request, env) {
      const mib = 'x'.repeat(1024 * 1024 - 16);
      let stored = 0, error = null;
      for (let i = 0; i < 70; i++) {
        try { await env.STATE.put('big' + i, mib); stored++; } catch (e) { error = e.constructor.name + ' ' + e.message.split(':')[0]; break; }
      }
      await env.STATE.put('big0', 'small now');
      return Response.json({ stored, error });
    } };`;
    expect((await deploy(platform, 'state-quota', source, '?memoryLimitMb=256&timeoutMs=30000&cpuLimitMs=30000')).status).toBe(201);
    expect(await json(platform.app.request('/v1/invoke/state-quota'))).toEqual({ stored: 64, error: 'RangeError ERR_QUOTA_EXCEEDED' });
  }, 60_000);

  it('hostile keys and values fail the call with stable codes; the platform carries on', async () => {
    const source = `export default { async fetch(request, env) {
      const out = [];
      const attempt = async (f) => { try { await f(); out.push('ok'); } catch (e) { out.push(e.constructor.name + ' ' + e.message.split(':')[0]); } };
      await attempt(() => env.STATE.put('', 'x'));
      await attempt(() => env.STATE.put('k'.repeat(2000), 'x'));
      await attempt(() => env.STATE.put('k', { an: 'object' }));
      await attempt(() => env.STATE.put('k', 'x'.repeat(1024 * 1024 + 1)));
      await attempt(() => env.STATE.get(42));
      await attempt(() => env.STATE.list({ limit: 1e9 }));
      await attempt(() => env.STATE.list({ prefix: { toString() { throw new Error('boom'); } } }));
      await attempt(() => env.STATE.put('__proto__', 'fine'));
      return Response.json(out);
    } };`;
    expect((await deploy(platform, 'hostile-state', source, '?memoryLimitMb=256')).status).toBe(201);
    expect(await json(platform.app.request('/v1/invoke/hostile-state'))).toEqual([
      'TypeError ERR_BAD_REQUEST', 'TypeError ERR_BAD_REQUEST', 'TypeError ERR_BAD_REQUEST', 'RangeError ERR_TOO_LARGE',
      'TypeError ERR_BAD_REQUEST', 'TypeError ERR_BAD_REQUEST', 'TypeError ERR_BAD_REQUEST', 'ok',
    ]);
  });
});
