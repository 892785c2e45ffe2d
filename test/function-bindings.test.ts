/**
 * Per-function vars and secrets (issue 12): set with a deploy envelope, seen as `env` by fetch
 * and process, never shown by API reads, logs or metrics, refused with ERR_BAD_REQUEST when
 * malformed, and gone with the function.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, withPlatform } from './fixtures/platform.ts';

const SECRET = 'sk-live-8c1e0f7a9d';
const ENV_ECHO = `export default { fetch(request, env) {
  const url = new URL(request.url);
  return Response.json({ keys: Object.keys(env).sort(), greeting: env.GREETING, secretLength: (env.API_KEY ?? '').length, frozen: Object.isFrozen(env), state: 'STATE' in env });
} };`;

let platform: Awaited<ReturnType<typeof withPlatform>>;

beforeAll(async () => {
  platform = await withPlatform({ hosts: 2, warmSlots: 1 });
}, 60_000);
afterAll(() => platform?.cleanup());

function put(name: string, envelope: unknown) {
  return platform.app.request(`/v1/functions/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(envelope) });
}

describe('vars and secrets', () => {
  it('reach the function as a frozen env; API reads show their names only', async () => {
    const res = await put('bound', { js: ENV_ECHO, vars: { GREETING: 'hello' }, secrets: { API_KEY: SECRET } });
    const body = await res.text();
    expect(res.status, body).toBe(201);
    expect(body).not.toContain(SECRET);
    expect(JSON.parse(body).bindings).toEqual({ vars: ['GREETING'], secrets: ['API_KEY'] });
    const invoked = await json(platform.app.request('/v1/invoke/bound'));
    expect(invoked).toEqual({ keys: ['API_KEY', 'GREETING', 'STATE'], greeting: 'hello', secretLength: SECRET.length, frozen: true, state: true });
    // Both hosts serve it with its env (the other host loads it cold from the bindings file).
    const { supervisor, functions } = platform;
    const spec = functions.registry.specOf(functions.registry.require('bound'));
    const other = (supervisor.homeOf('bound') + 1) % supervisor.size;
    const cold = await supervisor.callHost(other, { op: 'fetch', spec, request: { method: 'GET', url: 'http://x/', headers: [], body: null } });
    expect(JSON.parse(Buffer.from(cold.value.body!).toString()).secretLength).toBe(SECRET.length);
    for (const path of ['/v1/functions/bound', '/v1/functions', '/v1/functions/bound/logs', '/metrics']) {
      const text = await (await platform.app.request(path)).text();
      expect(text, path).not.toContain(SECRET);
    }
  });

  it('are stored in a file only the platform user can read, and deleted with the function', async () => {
    const dir = join(platform.dataDir, 'bindings');
    const files = readdirSync(dir);
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) expect(statSync(join(dir, file)).mode & 0o077).toBe(0);
    expect((await put('doomed', { js: ENV_ECHO, secrets: { API_KEY: 'x' } })).status).toBe(201);
    const before = new Set(readdirSync(dir));
    expect((await platform.app.request('/v1/functions/doomed', { method: 'DELETE' })).status).toBe(204);
    const after = new Set(readdirSync(dir));
    expect(after.size).toBe(before.size - 1);
  });

  it('a new version without bindings sees an empty env, even with the same code', async () => {
    expect((await put('rebound', { js: ENV_ECHO, vars: { GREETING: 'v1' } })).status).toBe(201);
    expect((await json(platform.app.request('/v1/invoke/rebound'))).greeting).toBe('v1');
    expect((await put('rebound', { js: ENV_ECHO, vars: { GREETING: 'v2' } })).status).toBe(201);
    expect((await json(platform.app.request('/v1/invoke/rebound'))).greeting).toBe('v2');
    expect((await put('rebound', { js: ENV_ECHO })).status).toBe(201);
    expect((await json(platform.app.request('/v1/invoke/rebound'))).keys).toEqual(['STATE']);
  });

  it('process handlers see them next to STATE', async () => {
    const source = `export default { process(record, env, ctx) { return env.GREETING + ' ' + typeof env.STATE.get; } };`;
    expect((await put('bound-stream', { js: source, vars: { GREETING: 'hi' } })).status).toBe(201);
    const { functions } = platform;
    const result = await functions.process(functions.registry.require('bound-stream'), {
      records: [{ key: null, value: 'x', headers: {}, offset: 0, timestamp: 0 }],
      state: { namespace: 'test/bound', partition: 0, epoch: 1, snapshot: [] },
      maxAttempts: 1,
    }, 'bindings-test');
    expect(result.emits.map((e: { value: unknown }) => e.value)).toEqual(['hi function']);
  });

  it('malformed envelopes and bindings are refused with ERR_BAD_REQUEST before anything is deployed', async () => {
    const cases: unknown[] = [
      { js: ENV_ECHO, vars: { STATE: 'x' } },
      { js: ENV_ECHO, vars: JSON.parse('{"__proto__": "x"}') },
      { js: ENV_ECHO, vars: { 'not-an-identifier': 'x' } },
      { js: ENV_ECHO, vars: { A: 1 } },
      { js: ENV_ECHO, vars: { A: 'x' }, secrets: { A: 'y' } },
      { js: ENV_ECHO, secrets: { BIG: 'x'.repeat(6 * 1024) } },
      { js: ENV_ECHO, vars: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`V${i}`, 'x'])) },
      { js: ENV_ECHO, vars: ['A'] },
      { vars: { A: 'x' } },
      { js: ENV_ECHO, wasm: 'AGFzbQ==' },
      [ENV_ECHO],
    ];
    for (const envelope of cases) {
      const res = await put('refused', envelope);
      const text = await res.text();
      expect(res.status, text).toBe(400);
      expect(JSON.parse(text).error.code).toBe('ERR_BAD_REQUEST');
    }
    const pollution = await platform.app.request('/v1/functions/refused', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: '{"js": "export default { fetch() { return new Response(\\"x\\"); } }", "vars": {"__proto__": {"polluted": "yes"}}}',
    });
    expect(pollution.status).toBe(400);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect((await platform.app.request('/v1/functions/refused')).status).toBe(404);
    expect(existsSync(join(platform.dataDir, 'bindings'))).toBe(true);
  });
});
