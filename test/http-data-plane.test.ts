/**
 * The HTTP data plane over real sockets: the control plane hands each accepted connection to a
 * host, which serves invokes itself and proxies every other route to the control plane. Real
 * processes (startServer, `tributary serve`), real sockets, real isolates; waits are causal (a
 * local server holds what a function fetches until the test releases it), never timed.
 */
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { Agent, createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../api/server.ts';
import { bundleFunction } from '../runtime/function-bundle.ts';
import { json, tempDir, waitFor } from './fixtures/platform.ts';
import { ServerProcess } from './fixtures/server-process.ts';

const ECHO = `export default { async fetch(request) {
  const url = new URL(request.url);
  return Response.json({ method: request.method, path: url.pathname, q: url.search, headers: Object.fromEntries(request.headers), body: await request.text() },
    { headers: { 'content-length': '999', 'transfer-encoding': 'gzip', connection: 'close', 'x-fn': 'yes' } });
} };`;

/** A local server a function fetches from: `/hold` answers only once the test calls `release()`. */
class HoldServer {
  readonly server: Server;
  held: ServerResponse[] = [];
  private released = false;

  constructor() {
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      if (this.released) return void res.end('released');
      this.held.push(res);
    });
  }

  async start(): Promise<string> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  release(): void {
    this.released = true;
    for (const res of this.held.splice(0)) res.end('released');
  }

  reset(): void {
    this.released = false;
  }

  close(): void {
    this.release();
    this.server.closeAllConnections();
    this.server.close();
  }
}

/** One HTTP/1.1 exchange over a raw socket: what the server answered, as text, until it closed or `until` matched. */
async function raw(url: string, send: (write: (text: string) => void) => void, until = /\r\n\r\n/): Promise<string> {
  const { port, hostname } = new URL(url);
  const socket = connect(Number(port), hostname);
  await once(socket, 'connect');
  let answer = '';
  const done = new Promise<string>((resolve) => {
    socket.on('data', (chunk) => {
      answer += chunk.toString('latin1');
      if (until.test(answer)) resolve(answer);
    });
    socket.on('close', () => resolve(answer));
    socket.on('error', () => resolve(answer));
  });
  send((text) => socket.write(text));
  const text = await done;
  socket.destroy();
  return text;
}

async function put(server: RunningServer, name: string, code: string, query = '', headers: Record<string, string> = {}) {
  const res = await fetch(`${server.url}/v1/functions/${name}${query}`, { method: 'PUT', headers: { 'content-type': 'application/javascript', ...headers }, body: code });
  expect(res.status, await res.clone().text()).toBe(201);
  return res.json();
}

async function servedBy(server: RunningServer): Promise<{ host: number; controlPlane: number }> {
  const text = await server.platform.metrics.registry.metrics();
  const read = (who: string) => Number(new RegExp(`tributary_connections_total\\{served_by="${who}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
  return { host: read('host'), controlPlane: read('control-plane') };
}

describe('hosts serve invokes on handed-over connections', () => {
  const dataDir = tempDir();
  const hold = new HoldServer();
  let holdUrl: string;
  let server: RunningServer;

  beforeAll(async () => {
    holdUrl = await hold.start();
    server = await startServer({ port: 0, dataDir, hosts: 2, warmSlots: 2, egressAllow: ['127.0.0.1/32'], maxBodyBytes: 1024 * 1024, bodyReadTimeoutMs: 1500 });
    await put(server, 'echo', ECHO);
  });
  afterAll(async () => {
    hold.close();
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('an invoke over a real socket is served by a host, with the invoke route semantics', async () => {
    const before = await servedBy(server);
    const res = await fetch(`${server.url}/v1/invoke/echo/a/b?q=1`, { method: 'POST', headers: { 'x-test': 'yes', 'proxy-authorization': 'Basic eA==' }, body: 'payload' });
    expect(res.status).toBe(200);
    const body = await json(res);
    expect(body).toMatchObject({ method: 'POST', path: '/a/b', q: '?q=1', body: 'payload' });
    expect(body.headers['x-test']).toBe('yes');
    expect(body.headers['proxy-authorization']).toBeUndefined();
    // Framing is the platform's: the function's Content-Length, Transfer-Encoding and Connection are dropped.
    expect(res.headers.get('x-fn')).toBe('yes');
    expect(res.headers.get('transfer-encoding')).toBeNull();
    expect(Number(res.headers.get('content-length'))).toBe(Buffer.byteLength(JSON.stringify(body)));
    const after = await servedBy(server);
    expect(after.host).toBeGreaterThan(before.host);
    expect(after.controlPlane).toBe(before.controlPlane);
    // Metrics observed in the hosts reach the control plane's /metrics.
    const metrics = await waitFor(async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      return /tributary_invocations_total\{function="echo",trigger="http",outcome="ok"\} [1-9]/.test(text) ? text : null;
    }, 10_000, 'invoke metrics from the hosts');
    expect(metrics).toMatch(/tributary_invocation_duration_seconds_count\{function="echo",trigger="http"\} [1-9]/);
  });

  it('errors are rendered as the control plane renders them', async () => {
    await put(server, 'thrower', `export default { fetch() { throw new TypeError('bad input here'); } };`);
    const res = await fetch(`${server.url}/v1/invoke/thrower`);
    expect(res.status).toBe(500);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect((await json(res)).error).toEqual({ code: 'ERR_FN_THREW', message: 'TypeError: bad input here' });
    const missing = await fetch(`${server.url}/v1/invoke/nobody-home`);
    expect(missing.status).toBe(404);
    expect((await json(missing)).error.code).toBe('ERR_NOT_FOUND');
    await put(server, 'badhead', `export default { fetch() { return new Response('x', { headers: { 'x-big': 'y'.repeat(70000) } }); } };`);
    const big = await fetch(`${server.url}/v1/invoke/badhead`);
    expect(big.status).toBe(413);
    expect((await json(big)).error.code).toBe('ERR_TOO_LARGE');
  });

  it('management routes, metrics, health and the console work on a handed-over connection, between invokes', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const ports = new Set<number>();
    const call = (method: string, path: string, body?: string, headers: Record<string, string> = {}) =>
      new Promise<{ status: number; text: string }>((resolve, reject) => {
        const req = httpRequest(`${server.url}${path}`, { method, agent, headers }, (res) => {
          ports.add(res.socket.localPort!);
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode!, text }));
        });
        req.on('error', reject);
        req.end(body);
      });
    try {
      expect((await call('GET', '/v1/invoke/echo')).status).toBe(200);
      const deployed = await call('PUT', '/v1/functions/same-conn', `export default { fetch() { return new Response('v1'); } };`, { 'content-type': 'application/javascript' });
      expect(deployed.status, deployed.text).toBe(201);
      expect((await call('GET', '/v1/invoke/same-conn')).text).toBe('v1');
      const list = await call('GET', '/v1/functions');
      expect(list.status).toBe(200);
      expect(JSON.parse(list.text).functions.map((f: { name: string }) => f.name)).toContain('same-conn');
      expect((await call('GET', '/metrics')).text).toContain('tributary_invocations_total');
      expect(JSON.parse((await call('GET', '/healthz')).text).status).toBe('ok');
      const console = await call('GET', '/');
      expect(console.status).toBe(200);
      expect(console.text).toMatch(/<html/i);
      expect((await call('DELETE', '/v1/functions/same-conn')).status).toBe(204);
      expect((await call('GET', '/v1/invoke/same-conn')).status).toBe(404);
      expect(ports.size).toBe(1);
    } finally {
      agent.destroy();
    }
  });

  it('a deploy returns once every host routes to the new version: an invoke right after a 201 sees it on any host', async () => {
    for (let version = 1; version <= 8; version++) {
      await put(server, 'versioned', `export default { fetch() { return new Response('v${version}'); } };`);
      // New connections each: they spread over both hosts.
      const seen = await Promise.all(Array.from({ length: 4 }, async () => (await fetch(`${server.url}/v1/invoke/versioned`, { headers: { connection: 'close' } })).text()));
      expect(seen).toEqual(Array(4).fill(`v${version}`));
    }
  });

  it('a host killed with -9 fails only the calls in flight on it; the other host serves on and the killed one returns', async () => {
    hold.reset();
    // One function per call: each has a lane of its own, so every call reaches the hold server wherever it runs.
    const names = Array.from({ length: 6 }, (_, i) => `held-${i}`);
    for (const name of names) await put(server, name, `export default { async fetch() { return new Response(await (await fetch('${holdUrl}/hold')).text()); } };`, '?timeoutMs=20000');
    const calls: Array<Promise<{ status: number; text: string }>> = [];
    for (const name of names) {
      calls.push(fetch(`${server.url}/v1/invoke/${name}`, { headers: { connection: 'close' } }).then(
        async (res) => ({ status: res.status, text: await res.text() }),
        () => ({ status: 0, text: 'connection failed' }),
      ));
      // One at a time: each new connection goes to the host with fewer open ones.
      await waitFor(() => hold.held.length === calls.length, 15_000, `call ${calls.length} in flight`);
    }
    const killed = server.platform.supervisor.pids()[0];
    server.platform.supervisor.kill(0);
    await waitFor(() => {
      const pid = server.platform.supervisor.pids()[0];
      return pid !== null && pid !== killed;
    }, 20_000, 'host 0 to restart');
    hold.release();
    const results = await Promise.all(calls);
    const ok = results.filter((r) => r.status === 200 && r.text === 'released');
    const failed = results.filter((r) => r.status !== 200);
    expect(ok.length + failed.length).toBe(6);
    expect(ok.length).toBeGreaterThan(0);
    expect(failed.length).toBeGreaterThan(0);
    // Served again on both hosts once the restarted one has the routing table.
    const after = await Promise.all(names.map(async (name) => (await fetch(`${server.url}/v1/invoke/${name}`, { headers: { connection: 'close' } })).text()));
    expect(after).toEqual(Array(6).fill('released'));
  });

  it('a streamed response reaches the client chunk by chunk, framed by the platform only', async () => {
    hold.reset();
    // The stream ends only after the function's fetch returns, which the test allows only once it has the first chunk:
    // were the body buffered until the end, this would never complete.
    await put(server, 'sse', `export default { fetch() {
      const enc = new TextEncoder();
      const body = new ReadableStream({ async start(c) {
        c.enqueue(enc.encode('data: first\\n\\n'));
        await (await fetch('${holdUrl}/hold')).text();
        c.enqueue(enc.encode('data: last\\n\\n'));
        c.close();
      } });
      return new Response(body, { headers: { 'content-type': 'text/event-stream', 'content-length': '3', 'transfer-encoding': 'gzip' } });
    } };`, '?timeoutMs=20000');
    const res = await fetch(`${server.url}/v1/invoke/sse`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('content-length')).toBeNull();
    expect(res.headers.get('transfer-encoding')).toBe('chunked');
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('data: first\n\n');
    await waitFor(() => hold.held.length === 1, 10_000, 'the function to wait on the hold server');
    hold.release();
    let rest = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      rest += new TextDecoder().decode(value);
    }
    expect(rest).toBe('data: last\n\n');
  });

  it('a client that disconnects cancels the stream', async () => {
    await put(server, 'ticker', `export default { fetch() {
      let timer;
      const body = new ReadableStream({
        start(c) { timer = setInterval(() => c.enqueue(new TextEncoder().encode('tick\\n')), 5); },
        cancel() { clearInterval(timer); console.log('cancelled by the client'); },
      });
      return new Response(body);
    } };`, '?timeoutMs=60000');
    const abort = new AbortController();
    const res = await fetch(`${server.url}/v1/invoke/ticker`, { signal: abort.signal });
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toMatch(/^tick/);
    abort.abort();
    await waitFor(async () => {
      const { logs } = await json(fetch(`${server.url}/v1/functions/ticker/logs`));
      return logs.some((l: { line: string }) => l.line === 'cancelled by the client');
    }, 20_000, 'the stream to be cancelled');
  });

  it('hono streamText and streamSSE over the socket: chunked by the platform, not by the app', async () => {
    const { code } = await bundleFunction({ entry: join(import.meta.dirname, 'fixtures', 'workers-apps', 'hono-app.ts') });
    await put(server, 'hono-app', code);
    const text = await fetch(`${server.url}/v1/invoke/hono-app/stream/text`);
    expect(text.headers.get('transfer-encoding')).toBe('chunked');
    expect(await text.text()).toBe('one\ntwo');
    const sse = await fetch(`${server.url}/v1/invoke/hono-app/stream/sse`);
    expect(sse.headers.get('content-type')).toBe('text/event-stream');
    expect(await sse.text()).toBe('event: tick\ndata: tick 0\nid: 0\n\nevent: tick\ndata: tick 1\nid: 1\n\nevent: tick\ndata: tick 2\nid: 2\n\n');
  }, 60_000);

  it('a function streaming forever is cut at its timeout; the host serves on', async () => {
    await put(server, 'forever', `export default { fetch() {
      return new Response(new ReadableStream({ pull(c) { c.enqueue(new Uint8Array(1024)); } }));
    } };`, '?timeoutMs=300');
    const res = await fetch(`${server.url}/v1/invoke/forever`);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    let received = 0;
    const outcome = await (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return 'ended';
          received += value.byteLength;
        }
      } catch {
        return 'cut';
      }
    })();
    expect(outcome).toBe('cut');
    expect(received).toBeGreaterThan(0);
    expect(received).toBeLessThanOrEqual(1024 * 1024 + 1024); // the body limit of this server
    expect((await fetch(`${server.url}/v1/invoke/echo`)).status).toBe(200);
  });

  it('hostile clients: a declared huge body, a body over the limit, a stalled body, a header flood', async () => {
    const huge = await raw(server.url, (w) => w('POST /v1/invoke/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n'), /\r\n\r\n[^]*\}/);
    expect(huge).toMatch(/^HTTP\/1\.1 413 /);
    expect(huge).toContain('ERR_TOO_LARGE');
    const over = await fetch(`${server.url}/v1/invoke/echo`, { method: 'POST', body: new Uint8Array(2 * 1024 * 1024) });
    expect(over.status).toBe(413);
    expect((await json(over)).error.code).toBe('ERR_TOO_LARGE');
    // Ten of the hundred declared bytes, then silence: 408 once the body read timeout passes.
    const stalled = await raw(server.url, (w) => w('POST /v1/invoke/echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789'), /\r\n\r\n[^]*\}/);
    expect(stalled).toMatch(/^HTTP\/1\.1 408 /);
    expect(stalled).toContain('ERR_BODY_TIMEOUT');
    const flood = await raw(server.url, (w) => {
      let head = 'GET /v1/invoke/echo HTTP/1.1\r\nHost: x\r\n';
      for (let i = 0; i < 400; i++) head += `x-flood-${i}: ${'v'.repeat(100)}\r\n`;
      w(`${head}\r\n`);
    });
    expect(flood).toMatch(/^HTTP\/1\.1 431 /);
    expect((await fetch(`${server.url}/v1/invoke/echo`)).status).toBe(200);
  });

  it('many connections at once are all answered', async () => {
    const answers = await Promise.all(Array.from({ length: 200 }, async (_, i) => {
      const res = await fetch(`${server.url}/v1/invoke/echo?i=${i}`, { headers: { connection: 'close' } });
      return (await json(res)).q;
    }));
    expect(answers).toEqual(Array.from({ length: 200 }, (_, i) => `?i=${i}`));
  });

});

describe('with a management token', () => {
  const dataDir = tempDir();
  const token = 'tok-9f3b2c1d-secret-value';
  let server: RunningServer;

  beforeAll(async () => {
    server = await startServer({ port: 0, dataDir, hosts: 2, warmSlots: 2, token });
    await put(server, 'echo', ECHO, '', { authorization: `Bearer ${token}` });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('hosts drop every header carrying the token (they know only its fingerprint) and forward the function its own Authorization', async () => {
    for (let i = 0; i < 4; i++) {
      const res = await fetch(`${server.url}/v1/invoke/echo`, {
        headers: { connection: 'close', 'x-leak': `Bearer ${token}`, cookie: `a=1; t=${token}; b=2`, authorization: 'Basic dXNlcjpwYXNz', 'x-near': token.slice(0, -1) },
      });
      const { headers } = await json(res);
      expect(headers['x-leak']).toBeUndefined();
      expect(headers.cookie).toBeUndefined();
      expect(headers.authorization).toBe('Basic dXNlcjpwYXNz');
      expect(headers['x-near']).toBe(token.slice(0, -1));
    }
  });

  it('management routes on handed-over connections still need the token', async () => {
    expect((await fetch(`${server.url}/v1/functions`)).status).toBe(401);
    expect((await fetch(`${server.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${server.url}/v1/functions`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await servedBy(server)).controlPlane).toBe(0);
  });
});

describe('the control plane serving (no host takes connections)', () => {
  const dataDir = tempDir();
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer({ port: 0, dataDir, hosts: 1, warmSlots: 1, dataPlane: 'control-plane' });
  });
  afterAll(async () => {
    await server?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('serves invokes itself and sends a streamed response once it ends', async () => {
    await put(server, 'echo', ECHO);
    await put(server, 'chunks', `export default { fetch() {
      const enc = new TextEncoder();
      return new Response(new ReadableStream({ start(c) { c.enqueue(enc.encode('a')); c.enqueue(enc.encode('b')); c.close(); } }), { headers: { 'transfer-encoding': 'chunked' } });
    } };`);
    const res = await fetch(`${server.url}/v1/invoke/echo/x`, { method: 'POST', body: 'hi' });
    expect((await json(res)).body).toBe('hi');
    const streamed = await fetch(`${server.url}/v1/invoke/chunks`);
    expect(await streamed.text()).toBe('ab');
    const counts = await servedBy(server);
    expect(counts.host).toBe(0);
    expect(counts.controlPlane).toBeGreaterThan(0);
  });
});

describe('tributary serve with the shipped defaults', () => {
  const dataDir = tempDir();
  const server = new ServerProcess(dataDir);
  beforeAll(() => server.start());
  afterAll(async () => {
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('hands connections to its hosts: invokes, management and streams all answer', async () => {
    const deployed = await fetch(`${server.url}/v1/functions/hi`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: `export default { fetch(r) { return new Response('hi ' + new URL(r.url).searchParams.get('name')); } };` });
    expect(deployed.status).toBe(201);
    expect(await (await fetch(`${server.url}/v1/invoke/hi?name=Ada`)).text()).toBe('hi Ada');
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/tributary_connections_total\{served_by="host"\} [1-9]/);
    expect(server.hostPids().length).toBeGreaterThan(0);
    expect(server.running).toBe(true);
  });
});
