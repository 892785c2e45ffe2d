/**
 * Real Workers apps, unchanged: a Hono app (cors, basic-auth, bearer-auth, etag, prettyJSON,
 * bodyLimit, streaming helpers, body parsing) and an itty-router app (AutoRouter, corsify) are
 * bundled with `bundleFunction` (what `tributary deploy src/index.ts` does), deployed to a real
 * platform and called through the invoke route.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFunction } from '../runtime/function-bundle.ts';
import { deploy, invoke, withPlatform } from './fixtures/platform.ts';

const APPS = join(import.meta.dirname, 'fixtures', 'workers-apps');
let platform: Awaited<ReturnType<typeof withPlatform>>;

beforeAll(async () => {
  platform = await withPlatform({ hosts: 1, warmSlots: 2 });
  for (const [name, file] of [['hono-app', 'hono-app.ts'], ['itty-app', 'itty-app.ts']]) {
    const { code } = await bundleFunction({ entry: join(APPS, file) });
    const put = await deploy(platform, name, code);
    expect(put.status, JSON.stringify(put.body)).toBe(201);
  }
}, 120_000);
afterAll(() => platform?.cleanup());

const hono = (path: string, init?: RequestInit) => invoke(platform, `hono-app${path}`, init);
const itty = (path: string, init?: RequestInit) => invoke(platform, `itty-app${path}`, init);

describe('hono', () => {
  it('cors answers a preflight and decorates the response', async () => {
    const pre = await hono('/api/items', { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(pre.headers.get('access-control-allow-headers')).toBe('X-Custom');
    const res = await hono('/api/items', { headers: { origin: 'https://app.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(res.headers.get('access-control-expose-headers')).toBe('X-Total');
    expect(res.headers.get('x-total')).toBe('2');
    expect(await res.json()).toEqual([{ id: 1 }, { id: 2 }]);
  });

  it('basic-auth refuses without credentials and admits with them', async () => {
    const denied = await hono('/admin/panel');
    expect(denied.status).toBe(401);
    expect(denied.headers.get('www-authenticate')).toMatch(/^Basic/);
    const wrong = await hono('/admin/panel', { headers: { authorization: `Basic ${btoa('ada:nope')}` } });
    expect(wrong.status).toBe(401);
    const ok = await hono('/admin/panel', { headers: { authorization: `Basic ${btoa('ada:s3cret')}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('welcome, admin');
  });

  it('bearer-auth checks the token', async () => {
    expect((await hono('/bearer/me')).status).toBe(401);
    expect((await hono('/bearer/me', { headers: { authorization: 'Bearer wrong' } })).status).toBe(401);
    const ok = await hono('/bearer/me', { headers: { authorization: 'Bearer tok-123' } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ me: 'bearer' });
  });

  it('jwt signs (HMAC through crypto.subtle) and verifies tokens', async () => {
    const token = await (await hono('/token')).text();
    expect(token.split('.')).toHaveLength(3);
    expect((await hono('/jwt/me')).status).toBe(401);
    const tampered = `${token.slice(0, -2)}xx`;
    expect((await hono('/jwt/me', { headers: { authorization: `Bearer ${tampered}` } })).status).toBe(401);
    const ok = await hono('/jwt/me', { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ sub: 'ada' });
  });

  it('etag sets a strong digest ETag and answers If-None-Match with 304', async () => {
    const first = await hono('/etag/doc');
    expect(first.status).toBe(200);
    const tag = first.headers.get('etag');
    expect(tag).toMatch(/^"[0-9a-f]{40}"$/);
    expect(await first.text()).toBe('a document worth caching');
    const again = await hono('/etag/doc', { headers: { 'if-none-match': tag! } });
    expect(again.status).toBe(304);
  });

  it('prettyJSON indents on ?pretty', async () => {
    expect(await (await hono('/pretty/data')).text()).toBe('{"a":1,"b":[1,2]}');
    expect(await (await hono('/pretty/data?pretty')).text()).toBe('{\n  "a": 1,\n  "b": [\n    1,\n    2\n  ]\n}');
  });

  it('bodyLimit passes small bodies and refuses large ones', async () => {
    const small = await hono('/upload', { method: 'POST', body: 'tiny' });
    expect(await small.text()).toBe('got 4 bytes');
    const big = await hono('/upload', { method: 'POST', body: 'x'.repeat(100) });
    expect(big.status).toBe(413);
    expect(await big.text()).toBe('too big');
  });

  it('parses multipart and urlencoded forms and JSON bodies', async () => {
    const form = new FormData();
    form.append('name', 'Ada');
    form.append('file', new Blob(['file body'], { type: 'text/plain' }), 'notes.txt');
    const multipart = await hono('/form', { method: 'POST', body: form });
    expect(await multipart.json()).toEqual({ name: 'Ada', file: 'file body' });
    const urlencoded = await hono('/form', { method: 'POST', body: new URLSearchParams({ name: 'Grace' }) });
    expect(await urlencoded.json()).toEqual({ name: 'Grace', file: null });
    const json = await hono('/json', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"x":[1,2]}' });
    expect(await json.json()).toEqual({ echo: { x: [1, 2] } });
  });

  it('streamText, streamSSE and stream reach the client whole, framed by the platform only', async () => {
    const text = await hono('/stream/text');
    expect(text.status).toBe(200);
    expect(text.headers.get('content-type')).toMatch(/^text\/plain/);
    // hono sets Transfer-Encoding: chunked on streamText; the platform frames the reply itself.
    expect(text.headers.get('transfer-encoding')).toBeNull();
    expect(await text.text()).toBe('one\ntwo');
    const sse = await hono('/stream/sse');
    expect(sse.headers.get('content-type')).toBe('text/event-stream');
    expect(await sse.text()).toBe('event: tick\ndata: tick 0\nid: 0\n\nevent: tick\ndata: tick 1\nid: 1\n\nevent: tick\ndata: tick 2\nid: 2\n\n');
    expect(await (await hono('/stream/bytes')).text()).toBe('hi');
  });

  it('notFound handler', async () => {
    const res = await hono('/nope');
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ missing: '/nope' });
  });
});

describe('itty-router', () => {
  it('routes, parses JSON and formats errors', async () => {
    expect(await (await itty('/hello/ada')).json()).toEqual({ hello: 'ada' });
    const echo = await itty('/echo', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"a":1}' });
    expect(await echo.json()).toEqual({ got: { a: 1 } });
    const fail = await itty('/fail');
    expect(fail.status).toBe(418);
    expect(await fail.json()).toEqual({ status: 418, error: 'teapot' });
    expect((await itty('/missing')).status).toBe(404);
  });

  it('corsify re-wraps responses with CORS headers; preflight answers OPTIONS', async () => {
    const res = await itty('/text', { headers: { origin: 'https://app.example' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe('https://app.example');
    expect(await res.text()).toBe('plain text');
    const pre = await itty('/hello/x', { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'GET' } });
    expect(pre.status).toBe(204);
    expect(pre.headers.get('access-control-allow-methods')).toBe('GET,POST');
  });
});
