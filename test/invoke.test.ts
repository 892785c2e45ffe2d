import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, withPlatform, json } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;
beforeAll(async () => {
  platform = await withPlatform();
});
afterAll(() => platform.cleanup());

describe('HTTP invoke', () => {
  it('passes method, remaining path, query, headers and body to fetch', async () => {
    await deploy(
      platform,
      'echo',
      `export default { async fetch(request) {
        const url = new URL(request.url);
        return Response.json({ method: request.method, path: url.pathname, q: url.searchParams.get('q'),
          header: request.headers.get('x-test'), body: await request.text() });
      } };`,
    );
    const res = await platform.app.request('/v1/invoke/echo/a/b?q=1', { method: 'POST', headers: { 'x-test': 'yes' }, body: 'payload' });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual({ method: 'POST', path: '/a/b', q: '1', header: 'yes', body: 'payload' });
    const root = await platform.app.request('/v1/invoke/echo');
    expect((await json(root)).path).toBe('/');
  });

  it('returns the function Response as is: status, headers, binary body', async () => {
    await deploy(
      platform,
      'teapot',
      `export default { fetch() { return new Response(new Uint8Array([0, 1, 2, 255]), { status: 418, statusText: 'Teapot', headers: { 'x-kind': 'tea', 'content-type': 'application/octet-stream' } }); } };`,
    );
    const res = await platform.app.request('/v1/invoke/teapot');
    expect(res.status).toBe(418);
    expect(res.headers.get('x-kind')).toBe('tea');
    expect([...new Uint8Array(await res.arrayBuffer())]).toEqual([0, 1, 2, 255]);
  });

  it('bodies come back byte for byte whatever their size and bytes; headers the function never reads still reach it', async () => {
    // Small bodies cross the isolate boundary inside the result string, larger ones as bytes: both ways keep every byte.
    await deploy(
      platform,
      'bytes',
      `export default { fetch(request) {
        const n = Number(new URL(request.url).searchParams.get('n'));
        if (n < 0) return new Response(n === -1 ? null : '', { headers: { 'x-n': String(n) } });
        const bytes = new Uint8Array(n);
        for (let i = 0; i < n; i++) bytes[i] = (i * 37 + 10) & 255;
        return new Response(bytes, { status: 203, statusText: 'Bytes\tok', headers: [['x-a', 'one'], ['x-b', ' two ']] });
      } };`,
    );
    for (const n of [1, 10, 1023, 1024, 1025, 70_000]) {
      const res = await platform.app.request(`/v1/invoke/bytes?n=${n}`);
      expect(res.status).toBe(203);
      expect(res.headers.get('x-a')).toBe('one');
      expect(res.headers.get('x-b')).toBe('two');
      const got = new Uint8Array(await res.arrayBuffer());
      expect(got.length).toBe(n);
      expect(got.every((byte, i) => byte === ((i * 37 + 10) & 255))).toBe(true);
    }
    for (const n of [-1, -2]) {
      const res = await platform.app.request(`/v1/invoke/bytes?n=${n}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('x-n')).toBe(String(n));
      expect(await res.text()).toBe('');
    }
    await deploy(platform, 'late-reader', `export default { async fetch(request) { await null; return Response.json([...request.headers].filter(([k]) => k.startsWith('x-'))); } };`);
    const res = await platform.app.request('/v1/invoke/late-reader', { headers: { 'x-one': '1', 'x-two': 'a, b' } });
    expect(await json(res)).toEqual([['x-one', '1'], ['x-two', 'a, b']]);
  });

  it('a function that throws gets 500 ERR_FN_THREW with its message', async () => {
    await deploy(platform, 'thrower', `export default { fetch() { throw new TypeError('bad input here'); } };`);
    const res = await platform.app.request('/v1/invoke/thrower');
    expect(res.status).toBe(500);
    expect((await json(res)).error).toMatchObject({ code: 'ERR_FN_THREW', message: 'TypeError: bad input here' });
  });

  it('unknown functions get 404 ERR_NOT_FOUND', async () => {
    const res = await platform.app.request('/v1/invoke/nobody-home');
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe('ERR_NOT_FOUND');
  });

  it('captures console output per function, readable via the API', async () => {
    await deploy(platform, 'chatty', `export default { fetch(r) { console.log('hello', { n: 1 }); console.error('oops %d', 7); return new Response('ok'); } };`);
    await platform.app.request('/v1/invoke/chatty');
    const { logs } = await json(platform.app.request('/v1/functions/chatty/logs'));
    expect(logs.map((l: { level: string; line: string }) => [l.level, l.line])).toEqual([
      ['log', "hello { n: 1 }"],
      ['error', 'oops 7'],
    ]);
    expect(logs[0].version).toBe(1);
  });

  it('supports timers within the invocation and ctx.waitUntil', async () => {
    await deploy(
      platform,
      'timers',
      `export default { async fetch(r, env, ctx) {
        const order = [];
        await new Promise((resolve) => setTimeout(() => { order.push('t1'); resolve(); }, 20));
        const id = setTimeout(() => order.push('never'), 5);
        clearTimeout(id);
        let ticks = 0;
        await new Promise((resolve) => { const iv = setInterval(() => { if (++ticks === 3) { clearInterval(iv); resolve(); } }, 1); });
        ctx.waitUntil(new Promise((resolve) => setTimeout(resolve, 10)));
        return Response.json({ order, ticks });
      } };`,
    );
    const res = await platform.app.request('/v1/invoke/timers');
    expect(await json(res)).toEqual({ order: ['t1'], ticks: 3 });
  });

  it('calls in flight finish on the old version when a new one is uploaded', async () => {
    await deploy(platform, 'upgrade', `export default { async fetch() { await new Promise((r) => setTimeout(r, 300)); return new Response('v1'); } };`);
    const inFlight = platform.app.request('/v1/invoke/upgrade');
    await new Promise((r) => setTimeout(r, 50));
    await deploy(platform, 'upgrade', `export default { fetch() { return new Response('v2'); } };`);
    expect(await (await inFlight).text()).toBe('v1');
    expect(await (await platform.app.request('/v1/invoke/upgrade')).text()).toBe('v2');
  });

  it('exposes Prometheus metrics for invocations, durations, cold starts and isolates', async () => {
    await deploy(platform, 'counted', `export default { fetch() { return new Response('x'); } };`);
    await platform.app.request('/v1/invoke/counted');
    await platform.app.request('/v1/invoke/counted');
    const text = await (await platform.app.request('/metrics')).text();
    expect(text).toMatch(/tributary_invocations_total\{function="counted",trigger="http",outcome="ok"\} 2/);
    expect(text).toMatch(/tributary_cold_starts_total\{function="counted"\} 1/);
    expect(text).toMatch(/tributary_invocation_duration_seconds_count\{function="counted",trigger="http"\} 2/);
    expect(text).toMatch(/tributary_isolates\{host="\d",state="loaded"\} [1-9]/);
  });

  it('answers /healthz with the host pids', async () => {
    const body = await json(platform.app.request('/healthz'));
    expect(body.status).toBe('ok');
    expect(body.hosts).toHaveLength(2);
  });
});
