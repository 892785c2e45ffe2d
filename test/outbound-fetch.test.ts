/**
 * fetch() from functions (issue 12) against local servers: requests and responses cross whole,
 * redirects are followed (credentials dropped across origins) or returned, and the egress policy
 * holds — private, loopback, link-local and mapped addresses are denied unless the operator's
 * allow-list names them, on every hop — with subrequest count, byte and time limits per invocation.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { egressPolicy } from '../runtime/host/egress.ts';
import { deploy, withPlatform } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;
let origin: string;
let otherOrigin: string;
const servers: Server[] = [];
const seen: Array<{ url: string; method: string; headers: IncomingMessage['headers']; body: string }> = [];
let hangingClosed = 0;

function listen(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<string> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ url: req.url!, method: req.method!, headers: req.headers, body });
      handler(req, res, body);
    });
  });
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

beforeAll(async () => {
  otherOrigin = await listen((req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ authorization: req.headers.authorization ?? null })));
  origin = await listen((req, res, body) => {
    const url = new URL(req.url!, 'http://x');
    if (url.pathname === '/echo') res.writeHead(201, 'Created Here', { 'content-type': 'application/json', 'x-reply': 'yes' }).end(JSON.stringify({ method: req.method, body, header: req.headers['x-sent'] ?? null }));
    else if (url.pathname === '/redirect') res.writeHead(302, { location: url.searchParams.get('to') ?? '/echo' }).end();
    else if (url.pathname === '/big') res.writeHead(200).end(Buffer.alloc(11 * 1024 * 1024));
    else if (url.pathname === '/hang') req.socket.on('close', () => hangingClosed++);
    else if (url.pathname === '/slow') setTimeout(() => res.writeHead(200).end('slow'), 3000);
    else res.writeHead(200).end('ok');
  });
  platform = await withPlatform({ hosts: 1, warmSlots: 2, egressAllow: ['127.0.0.1/32'] });
}, 60_000);
afterAll(async () => {
  await platform?.cleanup();
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
});

let counter = 0;
async function run(body: string, query = '') {
  const name = `fetcher-${++counter}`;
  const put = await deploy(platform, name, `const ORIGIN = ${JSON.stringify(origin)}; const OTHER = ${JSON.stringify(otherOrigin)};\nexport default { async fetch(request, env, ctx) {\n${body}\n} };`, query);
  expect(put.status, JSON.stringify(put.body)).toBe(201);
  const res = await platform.app.request(`/v1/invoke/${name}`);
  const text = await res.text();
  try {
    return { status: res.status, json: JSON.parse(text) };
  } catch {
    return { status: res.status, json: text as unknown };
  }
}

/** A function body that reports what each fetch gave: status, or the error's name and code. */
const attempt = `const attempt = async (...args) => { try { const r = await fetch(...args); await r.arrayBuffer(); return r.status; } catch (e) { return e.name + ' ' + (e.code ?? e.message); } };`;

describe('fetch() from a function', () => {
  it('sends method, headers and body, and returns status, statusText, headers, body and url', async () => {
    const out = await run(`
      const res = await fetch(ORIGIN + '/echo', { method: 'POST', headers: { 'x-sent': 'hdr' }, body: 'payload' });
      return Response.json({ status: res.status, statusText: res.statusText, reply: res.headers.get('x-reply'), url: res.url, redirected: res.redirected, json: await res.json() });
    `);
    expect(out.json).toEqual({ status: 201, statusText: 'Created Here', reply: 'yes', url: `${origin}/echo`, redirected: false, json: { method: 'POST', body: 'payload', header: 'hdr' } });
  });

  it('streams a request body from a ReadableStream; passes a Request object', async () => {
    const out = await run(`
      const body = new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('str')); c.enqueue(new TextEncoder().encode('eam')); c.close(); } });
      const res = await fetch(new Request(ORIGIN + '/echo', { method: 'PUT', body, duplex: 'half' }));
      return Response.json(await res.json());
    `);
    expect(out.json).toEqual({ method: 'PUT', body: 'stream', header: null });
  });

  it('follows redirects (POST becomes GET on 302), or returns them with redirect: manual', async () => {
    const out = await run(`
      const followed = await fetch(ORIGIN + '/redirect?to=/echo', { method: 'POST', body: 'x' });
      const manual = await fetch(ORIGIN + '/redirect?to=/echo', { redirect: 'manual' });
      let refused;
      try { await fetch(ORIGIN + '/redirect', { redirect: 'error' }); } catch (e) { refused = e.code; }
      return Response.json({ followed: [followed.redirected, (await followed.json()).method], manual: [manual.status, manual.headers.get('location')], refused });
    `);
    expect(out.json).toEqual({ followed: [true, 'GET'], manual: [302, '/echo'], refused: 'ERR_FETCH_FAILED' });
  });

  it('drops Authorization when a redirect leaves the origin', async () => {
    const out = await run(`
      const res = await fetch(ORIGIN + '/redirect?to=' + encodeURIComponent(OTHER + '/'), { headers: { authorization: 'Bearer secret' } });
      return Response.json(await res.json());
    `);
    expect(out.json).toEqual({ authorization: null });
  });

  it('denies loopback, private, link-local and mapped addresses outside the allow-list, also behind a redirect', async () => {
    const port = new URL(origin).port;
    const out = await run(`
      ${attempt}
      return Response.json([
        await attempt('http://127.0.0.2:${port}/'),
        await attempt('http://169.254.169.254/latest/meta-data/'),
        await attempt('http://10.0.0.1/'),
        await attempt('http://[::1]:${port}/'),
        await attempt('http://[::ffff:127.0.0.2]:${port}/'),
        await attempt('http://0.0.0.0:${port}/'),
        await attempt(ORIGIN + '/redirect?to=' + encodeURIComponent('http://127.0.0.2:${port}/')),
        await attempt('file:///etc/passwd'),
        await attempt(ORIGIN + '/'),
      ]);
    `);
    expect(out.json).toEqual([
      'TypeError ERR_EGRESS_DENIED', 'TypeError ERR_EGRESS_DENIED', 'TypeError ERR_EGRESS_DENIED', 'TypeError ERR_EGRESS_DENIED',
      'TypeError ERR_EGRESS_DENIED', 'TypeError ERR_EGRESS_DENIED', 'TypeError ERR_EGRESS_DENIED', 'TypeError ERR_BAD_REQUEST', 200,
    ]);
  });

  it('limits subrequests per invocation and response bytes', async () => {
    const out = await run(`
      ${attempt}
      const results = [];
      for (let i = 0; i < 52; i++) results.push(await attempt(ORIGIN + '/'));
      return Response.json({ ok: results.filter((r) => r === 200).length, limited: results.slice(50) });
    `, '?timeoutMs=20000&cpuLimitMs=5000');
    expect(out.json).toEqual({ ok: 50, limited: ['TypeError ERR_SUBREQUEST_LIMIT', 'TypeError ERR_SUBREQUEST_LIMIT'] });
    const big = await run(`${attempt}\nreturn Response.json(await attempt(ORIGIN + '/big'));`, '?timeoutMs=10000');
    expect(big.json).toBe('TypeError ERR_TOO_LARGE');
  });

  it('pending host operations of one invocation hold at most 64 MiB: beyond, RangeError ERR_OVERLOADED; settled ones free their bytes', async () => {
    const out = await run(`
      const body = new Uint8Array(6 * 1024 * 1024);
      const send = () => fetch(ORIGIN + '/slow', { method: 'POST', body }).then((r) => r.text(), (e) => e.name + ' ' + e.message.slice(0, 14));
      const first = await Promise.all(Array.from({ length: 12 }, send));
      const second = await Promise.all(Array.from({ length: 4 }, send));
      return Response.json([first.filter((o) => o === 'slow').length, [...new Set(first.filter((o) => o !== 'slow'))], second]);
    `, '?timeoutMs=20000&cpuLimitMs=5000&memoryLimitMb=256');
    expect(out.json).toEqual([10, ['RangeError ERR_OVERLOADED'], ['slow', 'slow', 'slow', 'slow']]);
  });

  it('a subrequest still pending when the invocation times out is abandoned (its connection closed)', async () => {
    const before = hangingClosed;
    const out = await run(`await fetch(ORIGIN + '/hang'); return new Response('never');`, '?timeoutMs=300');
    expect(out.status).toBe(504);
    expect((out.json as { error: { code: string } }).error.code).toBe('ERR_FN_TIMEOUT');
    const deadline = Date.now() + 10_000;
    while (hangingClosed === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(hangingClosed).toBeGreaterThan(before);
  });

  it('an aborted signal rejects with its reason; fetch at the top level is refused', async () => {
    const out = await run(`
      const c = new AbortController(); c.abort();
      let aborted;
      try { await fetch(ORIGIN + '/', { signal: c.signal }); } catch (e) { aborted = e.name; }
      let timedOut;
      try { await fetch(ORIGIN + '/hang', { signal: AbortSignal.timeout(50) }); } catch (e) { timedOut = e.name; }
      return Response.json({ aborted, timedOut });
    `, '?timeoutMs=5000');
    expect(out.json).toEqual({ aborted: 'AbortError', timedOut: 'TimeoutError' });
  });
});

describe('the egress policy', () => {
  it('denies private and special ranges by default and allows public addresses', () => {
    const policy = egressPolicy();
    for (const address of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '224.0.0.1', '::1', 'fe80::1', 'fd00::1', '::ffff:10.0.0.1', '::ffff:7f00:1', '64:ff9b::a00:1']) {
      expect(policy.allows(address), address).toBe(false);
    }
    for (const address of ['1.1.1.1', '8.8.8.8', '2606:4700:4700::1111', '::ffff:1.1.1.1']) expect(policy.allows(address), address).toBe(true);
    expect(egressPolicy(['10.0.0.0/8']).allows('10.9.9.9')).toBe(true);
    expect(() => egressPolicy(['not-an-ip'])).toThrow(/not an IP/);
  });
});
