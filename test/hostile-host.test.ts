/**
 * Tenants going after the host process itself: results too large for the host channel, timers
 * left behind by finished calls, the host's environment. Each ends in a clean error for that
 * call (or nothing at all), with the host's pid unchanged.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOST_ENV_INHERITED } from '../runtime/host-supervisor.ts';
import { MAX_CHANNEL_MESSAGE_BYTES } from '../runtime/limits.ts';
import { deploy, json, withPlatform } from './fixtures/platform.ts';
import { batch, rejection, withHosts } from './fixtures/hosts.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;

beforeAll(async () => {
  platform = await withPlatform({ hosts: 1 });
  await deploy(platform, 'canary', `export default { fetch() { return new Response('alive'); } };`);
});
afterAll(() => platform.cleanup());

async function invoke(name: string) {
  const res = await platform.app.request(`/v1/invoke/${name}`);
  const text = await res.text();
  let body: any = null;
  try {
    body = JSON.parse(text);
  } catch {}
  return { status: res.status, text, body };
}

async function expectCanaryOnSameHost(before: Array<number | null>) {
  expect(platform.supervisor.pids()).toEqual(before);
  expect((await invoke('canary')).text).toBe('alive');
}

describe('results too large for the host', () => {
  it('a response with one 270 MiB header fails that call with ERR_TOO_LARGE; the host lives on', async () => {
    await deploy(platform, 'big-header', `export default { fetch() { return new Response('x', { headers: { 'x-big': 'a'.repeat(270 * 1024 * 1024) } }); } };`, '?memoryLimitMb=2048&timeoutMs=20000');
    const before = platform.supervisor.pids();
    const { status, body } = await invoke('big-header');
    expect(status).toBe(413);
    expect(body.error.code).toBe('ERR_TOO_LARGE');
    await expectCanaryOnSameHost(before);
  });

  it('a response with 130 headers of 1 MiB each (more than the host channel carries) fails that call with ERR_TOO_LARGE; the host lives on', async () => {
    await deploy(
      platform,
      'many-headers',
      `export default { fetch() { const h = new Headers(); const v = 'b'.repeat(1024 * 1024); for (let i = 0; i < 130; i++) h.set('x-h' + i, v); return new Response('x', { headers: h }); } };`,
      '?memoryLimitMb=2048&timeoutMs=20000',
    );
    const before = platform.supervisor.pids();
    const { status, body } = await invoke('many-headers');
    expect(status).toBe(413);
    expect(body.error.code).toBe('ERR_TOO_LARGE');
    await expectCanaryOnSameHost(before);
  });

  it('a batch emitting more than the host channel carries fails with ERR_TOO_LARGE; the host lives on', async () => {
    const hosts = await withHosts({ hosts: 1 });
    try {
      const spec = hosts.spec('big-emits', `export default { process(r, env, ctx) { for (let i = 0; i < 3; i++) ctx.emit('e'.repeat(50 * 1024 * 1024) + i); } };`, {
        memoryLimitMb: 2048,
        timeoutMs: 20_000,
        instanceTag: 'g/big#0',
      });
      const before = hosts.supervisor.pids();
      // The guest's own output budget (MAX_BATCH_OUTPUT_BYTES) or the host channel's limit refuses it:
      // the record fails, or the whole call does, with ERR_TOO_LARGE.
      const outcome = await hosts.supervisor.call('g/big#0', { op: 'process', spec, batch: batch([1]) }).then(
        (result) => ({ code: result.value.failures[0]?.error.code, emits: result.value.emits.length }),
        (error: { code: string }) => ({ code: error.code, emits: 0 }),
      );
      expect(outcome).toEqual({ code: 'ERR_TOO_LARGE', emits: 0 });
      expect(hosts.supervisor.pids()).toEqual(before);
      const small = hosts.spec('small-emits', `export default { process(r) { return r.value * 2; } };`, { instanceTag: 'g/small#0' });
      const ok = await hosts.supervisor.call('g/small#0', { op: 'process', spec: small, batch: batch([21]) });
      expect(ok.value.emits.map((e) => e.value)).toEqual([42]);
      expect(hosts.restarts).toEqual([]);
    } finally {
      await hosts.close();
    }
  });
});

describe('messages too large for the host channel', () => {
  it('a request over the channel limit fails with ERR_TOO_LARGE before anything is sent; the host and channel carry on', async () => {
    const hosts = await withHosts({ hosts: 1 });
    try {
      const spec = hosts.spec('echo-size', `export default { async fetch(request) { return new Response(String((await request.arrayBuffer()).byteLength)); } };`, { timeoutMs: 10_000 });
      const before = hosts.supervisor.pids();
      const huge = { method: 'POST', url: 'http://fn/', headers: [] as [string, string][], body: new Uint8Array(MAX_CHANNEL_MESSAGE_BYTES + 1) };
      const error = await rejection(hosts.supervisor.call('echo-size', { op: 'fetch', spec, request: huge }));
      expect(error.code).toBe('ERR_TOO_LARGE');
      const ok = await hosts.supervisor.call('echo-size', { op: 'fetch', spec, request: { ...huge, body: new Uint8Array(1000) } });
      expect(new TextDecoder().decode(ok.value.body!)).toBe('1000');
      expect(hosts.supervisor.pids()).toEqual(before);
      expect(hosts.restarts).toEqual([]);
    } finally {
      await hosts.close();
    }
  });
});

describe('timers of finished invocations', () => {
  it('do not accumulate: 400 calls each arming an hour-long timer over 160 KB, in a 16 MB isolate, all succeed', async () => {
    await deploy(
      platform,
      'timer-leak',
      `export default { fetch() { const big = new Array(20000).fill(Math.random()); setTimeout(() => big.length, 3600000); return new Response('armed'); } };`,
      '?memoryLimitMb=16',
    );
    const before = platform.supervisor.pids();
    for (let i = 0; i < 400; i++) {
      const { status, text, body } = await invoke('timer-leak');
      expect(status, JSON.stringify(body)).toBe(200);
      expect(text).toBe('armed');
    }
    await expectCanaryOnSameHost(before);
  });

  it('an invocation may not have more than 1000 pending: setTimeout then throws a RangeError', async () => {
    await deploy(
      platform,
      'timer-flood',
      `export default { fetch() {
        let armed = 0;
        try { for (;;) { setTimeout(() => {}, 60000); armed++; } } catch (e) { return Response.json({ armed, error: e.name, message: e.message }); }
      } };`,
    );
    const { status, body } = await invoke('timer-flood');
    expect(status).toBe(200);
    expect(body).toEqual({ armed: 1000, error: 'RangeError', message: expect.stringMatching(/too many timers/) });
    // The next invocation starts with none pending.
    expect((await invoke('timer-flood')).body.armed).toBe(1000);
  });
});

describe('host environment', () => {
  it('hosts get a scrubbed environment: no TRIBUTARY_TOKEN, AWS or Kafka secrets, even when the control plane has them', async () => {
    const planted = { TRIBUTARY_TOKEN: 'management-token', AWS_SECRET_ACCESS_KEY: 'aws-secret', AWS_ACCESS_KEY_ID: 'AKIA', KAFKA_SASL_PASSWORD: 'kafka-secret' };
    const saved = { ...process.env };
    Object.assign(process.env, planted, { TRIBUTARY_HOST_NODE_FLAGS: '--stack-size=900' });
    const hosts = await withHosts({ hosts: 1 });
    try {
      const pid = hosts.supervisor.pids()[0]!;
      const environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
      const names = environ.split('\0').filter(Boolean).map((entry) => entry.slice(0, entry.indexOf('=')));
      for (const name of names) expect([...HOST_ENV_INHERITED, 'TRIBUTARY_WARM_SLOTS', 'TRIBUTARY_HOST_CHANNEL_FD', 'NODE_CHANNEL_FD', 'NODE_CHANNEL_SERIALIZATION_MODE']).toContain(name); // the last two: Node's IPC channel, over which connections are handed to hosts
      for (const secret of Object.values(planted)) expect(environ).not.toContain(secret);
      // Node flags for hosts still travel, in argv.
      expect(readFileSync(`/proc/${pid}/cmdline`, 'latin1').split('\0')).toContain('--stack-size=900');
    } finally {
      await hosts.close();
      for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
      Object.assign(process.env, saved);
    }
  });

  it('a function cannot read the environment of its host', async () => {
    await deploy(platform, 'env-probe', `export default { fetch(request, env) { return Response.json({ env: Object.keys(env), process: typeof process }); } };`);
    // Only the platform's own binding (env.STATE in fetch, issue 12): nothing of the host's environment.
    expect((await invoke('env-probe')).body).toEqual({ env: ['STATE'], process: 'undefined' });
  });
});
