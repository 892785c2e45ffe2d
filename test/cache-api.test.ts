/**
 * The Workers Cache API in fetch handlers: caches.default and named caches, kept per host process
 * like a data center's cache — a hit on the host that stored it, a miss on another; put's refusals
 * and its Cache-Control rules; expiry; If-None-Match; per-function isolation; the host's bound in
 * bytes holds against a tenant storing more than it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_CACHE_BYTES } from '../runtime/host/response-cache.ts';
import { deploy, json, withPlatform } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;

const CACHER = `export default { async fetch(request) {
  const url = new URL(request.url);
  const cache = caches.default;
  const key = 'https://example.com' + url.pathname;
  if (url.pathname === '/hit' || url.pathname === '/short') {
    const res = await cache.match(key);
    if (res) return new Response('cached ' + (await res.text()));
    const maxAge = url.pathname === '/short' ? 1 : 60;
    await cache.put(key, new Response('fresh', { headers: { etag: '"v1"', 'cache-control': 'max-age=' + maxAge } }));
    return new Response('miss');
  }
  if (url.pathname === '/rules') {
    const out = {};
    const put = async (name, res) => { try { await cache.put('https://example.com/' + name, res); return String(!!(await cache.match('https://example.com/' + name))); } catch (e) { return e.constructor.name; } };
    out.plain = await put('plain', new Response('x'));
    out.noStore = await put('a', new Response('x', { headers: { 'cache-control': 'no-store' } }));
    out.private = await put('a2', new Response('x', { headers: { 'cache-control': 'public, private' } }));
    out.cookie = await put('b', new Response('x', { headers: { 'set-cookie': 'a=1' } }));
    out.partial = await put('c', new Response('x', { status: 206 }));
    out.varyStar = await put('d', new Response('x', { headers: { vary: ' * ' } }));
    try { await cache.put(new Request('https://example.com/e', { method: 'POST' }), new Response('x')); } catch (e) { out.post = e.constructor.name; }
    try { await cache.put('https://example.com/g', 'not a response'); } catch (e) { out.notResponse = e.constructor.name; }
    out.stream = await put('f', new Response(new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('streamed')); c.close(); } })));
    const f = await cache.match('https://example.com/f');
    out.streamText = await f.text();
    out.deleted = [await cache.delete('https://example.com/f'), await cache.delete('https://example.com/f')];
    const named = await caches.open('mine');
    out.namedSeparate = String(!!(await named.match('https://example.com/hit')));
    await named.put('https://example.com/n', new Response('named'));
    out.namedOwn = await (await named.match('https://example.com/n')).text();
    out.notModified = (await cache.match(new Request('https://example.com/hit', { headers: { 'if-none-match': 'W/"v0", W/"v1"' } }))).status;
    out.modified = (await cache.match(new Request('https://example.com/hit', { headers: { 'if-none-match': '"v2"' } }))).status;
    out.postMatch = String(await cache.match(new Request('https://example.com/hit', { method: 'POST' })));
    out.ignoreMethod = (await cache.match(new Request('https://example.com/hit', { method: 'POST' }), { ignoreMethod: true })).status;
    out.fragment = (await cache.match('https://example.com/hit#frag')).status;
    return Response.json(out);
  }
  return new Response('?', { status: 404 });
} };`;

const invoke = async (path: string) => (await platform.app.request(`/v1/invoke/${path}`)).text();

beforeAll(async () => {
  platform = await withPlatform({ hosts: 2, warmSlots: 1 });
  expect((await deploy(platform, 'cacher', CACHER, '?timeoutMs=10000')).status).toBe(201);
}, 60_000);
afterAll(() => platform?.cleanup());

describe('the Cache API', () => {
  it('a response put on a host answers the next match there; another host misses, as another data center would', async () => {
    expect(await invoke('cacher/hit')).toBe('miss');
    expect(await invoke('cacher/hit')).toBe('cached fresh');
    const { supervisor, functions } = platform;
    const spec = functions.registry.specOf(functions.registry.require('cacher'));
    const other = (supervisor.homeOf('cacher') + 1) % supervisor.size;
    const reply = await supervisor.callHost(other, { op: 'fetch', spec, request: { method: 'GET', url: 'http://x/hit', headers: [], body: null } });
    expect(Buffer.from(reply.value.body!).toString()).toBe('miss');
  });

  it('put refuses what Workers refuses and skips what must not be stored; match and delete follow the method and ETag rules', async () => {
    await invoke('cacher/hit');
    expect(JSON.parse(await invoke('cacher/rules'))).toEqual({
      plain: 'true', noStore: 'false', private: 'false', cookie: 'false', partial: 'TypeError', varyStar: 'TypeError', post: 'TypeError', notResponse: 'TypeError',
      stream: 'true', streamText: 'streamed', deleted: [true, false], namedSeparate: 'false', namedOwn: 'named',
      notModified: 304, modified: 200, postMatch: 'undefined', ignoreMethod: 200, fragment: 200,
    });
  });

  it('entries expire with their max-age', async () => {
    expect(await invoke('cacher/short')).toBe('miss');
    expect(await invoke('cacher/short')).toBe('cached fresh');
    await new Promise((resolve) => setTimeout(resolve, 1200));
    expect(await invoke('cacher/short')).toBe('miss');
  });

  it('entries are per function: another function never sees them', async () => {
    const peek = `export default { async fetch() { return new Response(String(await caches.default.match('https://example.com/hit'))); } };`;
    expect((await deploy(platform, 'cache-peeker', peek)).status).toBe(201);
    expect(await invoke('cacher/hit')).toBe('cached fresh');
    expect(await invoke('cache-peeker')).toBe('undefined');
    // A function deleted and deployed again under its name starts with an empty cache.
    expect((await platform.app.request('/v1/functions/cacher', { method: 'DELETE' })).status).toBe(204);
    expect((await deploy(platform, 'cacher', CACHER, '?timeoutMs=10000')).status).toBe(201);
    expect(await invoke('cacher/hit')).toBe('miss');
  });

  it('is refused outside a request (top level, process handlers) with a TypeError', async () => {
    const source = `let topLevel = 'pending';
      caches.default.match('https://example.com/').then(() => { topLevel = 'resolved'; }, (e) => { topLevel = e.constructor.name; });
      export default { async fetch() { return new Response(topLevel); } };`;
    expect((await deploy(platform, 'cache-top', source)).status).toBe(201);
    expect(await invoke('cache-top')).toBe('TypeError');
  });

  it('a tenant storing more than the host keeps only evicts (the cache stays bounded in bytes); oversized heads and entries fail', async () => {
    const hog = `export default { async fetch() {
      const body = new Uint8Array(4 * 1024 * 1024);
      for (let i = 0; i < ${Math.ceil((MAX_CACHE_BYTES * 2) / (4 * 1024 * 1024))}; i++) await caches.default.put('https://hog.example/' + i, new Response(body));
      let kept = 0;
      for (let i = 0; i < ${Math.ceil((MAX_CACHE_BYTES * 2) / (4 * 1024 * 1024))}; i++) if (await caches.default.match('https://hog.example/' + i)) kept++;
      const attempt = async (res) => { try { await caches.default.put('https://hog.example/x', res); return 'stored'; } catch (e) { return e.constructor.name + ' ' + e.message.slice(0, 20); } };
      const headers = {};
      for (let i = 0; i < 300; i++) headers['x-h' + i] = 'v';
      return Response.json({ kept, tooBig: await attempt(new Response(new Uint8Array(9 * 1024 * 1024))), manyHeaders: await attempt(new Response('x', { headers })) });
    } };`;
    expect((await deploy(platform, 'cache-hog', hog, '?timeoutMs=30000&cpuLimitMs=10000&memoryLimitMb=256')).status).toBe(201);
    const out = JSON.parse(await invoke('cache-hog'));
    expect(out.kept).toBeGreaterThan(0);
    expect(out.kept * 4 * 1024 * 1024).toBeLessThanOrEqual(MAX_CACHE_BYTES);
    expect(out.tooBig).toBe('RangeError ERR_TOO_LARGE: a cac');
    expect(out.manyHeaders).toMatch(/^TypeError/);
    // The cache kept working for others.
    expect(await invoke('cacher/hit')).toMatch(/^(cached fresh|miss)$/);
  }, 60_000);
});
