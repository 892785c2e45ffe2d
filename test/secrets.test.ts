/**
 * The management token stays out of tenants' reach: the CLI does not send it to invoke, the invoke
 * route does not forward it, /metrics needs it, and deleted functions leave no series behind.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, withPlatform } from './fixtures/platform.ts';

const CLI = join(import.meta.dirname, '..', 'cli', 'tributary.ts');
const TOKEN = 'mgmt-token-5b1f0c';
const ECHO_HEADERS = `export default { fetch(request) { return Response.json(Object.fromEntries(request.headers)); } };`;

let platform: Awaited<ReturnType<typeof withPlatform>>;
const auth = { authorization: `Bearer ${TOKEN}` };

beforeAll(async () => {
  platform = await withPlatform({ hosts: 1, warmSlots: 2, token: TOKEN });
  const res = await platform.app.request('/v1/functions/headers', {
    method: 'PUT',
    headers: { ...auth, 'content-type': 'application/javascript' },
    body: ECHO_HEADERS,
  });
  expect(res.status).toBe(201);
});
afterAll(() => platform.cleanup());

async function headersSeenByFunction(headers: Record<string, string>): Promise<Record<string, string>> {
  const res = await platform.app.request('/v1/invoke/headers', { headers });
  expect(res.status).toBe(200);
  return json(res);
}

describe('the CLI', () => {
  /** A stand-in server recording what the CLI sends. */
  let recorder: Server;
  let url: string;
  const seen: Array<{ method: string; path: string; headers: IncomingHttpHeaders }> = [];
  beforeAll(async () => {
    recorder = createServer((req, res) => {
      seen.push({ method: req.method!, path: req.url!, headers: req.headers });
      req.resume();
      req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"functions":[]}'));
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(recorder.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => recorder.close(() => resolve())));

  /** The real CLI as a child process; async, so the recorder in this process can answer it. */
  async function cli(...args: string[]) {
    await promisify(execFile)(process.execPath, ['--no-node-snapshot', CLI, ...args, '--url', url], {
      timeout: 20_000,
      env: { ...process.env, TRIBUTARY_TOKEN: TOKEN },
    });
  }

  it('invoke sends no Authorization header even with TRIBUTARY_TOKEN set', async () => {
    await cli('invoke', 'someone-elses', '--data', 'hi');
    const call = seen.find((s) => s.path === '/v1/invoke/someone-elses');
    expect(call?.method).toBe('POST');
    expect(call?.headers.authorization).toBeUndefined();
    expect(JSON.stringify(call?.headers)).not.toContain(TOKEN);
  });

  it('management commands still send the token', async () => {
    await cli('list');
    const call = seen.find((s) => s.path === '/v1/functions');
    expect(call?.headers.authorization).toBe(`Bearer ${TOKEN}`);
  });
});

describe('the invoke route', () => {
  it('does not forward the management token as Authorization', async () => {
    const seen = await headersSeenByFunction({ authorization: `Bearer ${TOKEN}`, 'x-other': 'kept' });
    expect(seen.authorization).toBeUndefined();
    expect(seen['x-other']).toBe('kept');
  });

  it('does not forward it in another scheme spelling or another header', async () => {
    const seen = await headersSeenByFunction({ authorization: `bearer   ${TOKEN}`, 'x-api-key': TOKEN, cookie: `session=${TOKEN}` });
    expect(JSON.stringify(seen)).not.toContain(TOKEN);
  });

  it("forwards the function's own Authorization values", async () => {
    const seen = await headersSeenByFunction({ authorization: 'Bearer tenant-own-token' });
    expect(seen.authorization).toBe('Bearer tenant-own-token');
    const basic = await headersSeenByFunction({ authorization: 'Basic dXNlcjpwYXNz' });
    expect(basic.authorization).toBe('Basic dXNlcjpwYXNz');
  });

  it('never forwards Proxy-Authorization (it is addressed to the gateway)', async () => {
    const seen = await headersSeenByFunction({ 'proxy-authorization': 'Basic cHJveHk6cHc=' });
    expect(seen['proxy-authorization']).toBeUndefined();
  });
});

describe('/metrics and /healthz with a token set', () => {
  it('/metrics answers 401 ERR_UNAUTHORIZED without the token', async () => {
    const res = await platform.app.request('/metrics');
    expect(res.status).toBe(401);
    expect((await json(res)).error.code).toBe('ERR_UNAUTHORIZED');
  });

  it('/metrics answers 401 with a wrong token', async () => {
    expect((await platform.app.request('/metrics', { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
  });

  it('/metrics answers 200 with the token', async () => {
    const res = await platform.app.request('/metrics', { headers: auth });
    expect(res.status).toBe(200);
    expect(await res.text()).toMatch(/tributary_isolates/);
  });

  it('/healthz stays open and says only that it is up and which hosts run', async () => {
    const res = await platform.app.request('/healthz');
    expect(res.status).toBe(200);
    expect(Object.keys(await json(res)).sort()).toEqual(['hosts', 'status']);
  });
});

describe('deleted functions', () => {
  it('leave no series in /metrics', async () => {
    const put = await platform.app.request('/v1/functions/short-lived', {
      method: 'PUT',
      headers: { ...auth, 'content-type': 'application/javascript' },
      body: `export default { fetch() { return new Response('x'); } };`,
    });
    expect(put.status).toBe(201);
    expect((await platform.app.request('/v1/invoke/short-lived')).status).toBe(200);
    const before = await (await platform.app.request('/metrics', { headers: auth })).text();
    expect(before).toMatch(/tributary_invocations_total\{function="short-lived"/);
    expect(before).toMatch(/tributary_invocation_duration_seconds_bucket\{le="[^"]+",function="short-lived"/);
    expect(before).toMatch(/tributary_cold_starts_total\{function="short-lived"/);

    expect((await platform.app.request('/v1/functions/short-lived', { method: 'DELETE', headers: auth })).status).toBe(204);
    const after = await (await platform.app.request('/metrics', { headers: auth })).text();
    expect(after).not.toContain('function="short-lived"');
    expect(after).toContain('function="headers"'); // others' series stay
  });
});
