/**
 * Processing-time timers (`ctx.timers` + `onTimer`): they fire when no record arrives, commit with
 * their batch (set, moved, deleted, fired) on exactly-once edges, survive kill -9, wake a node
 * scaled to zero, are dead-lettered when onTimer fails, never starve records, and stay out of
 * the tenant's reach as state keys.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TIMERS_PER_PARTITION } from '../runtime/stream-timers.ts';
import { deploy, json, tempDir, waitFor, withPlatform } from './fixtures/platform.ts';
import { ServerProcess } from './fixtures/server-process.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;

/** Session counts: each record adds to its key's count and (re)sets the key's timer `gapMs` ahead; onTimer emits the count and clears it. */
const SESSIONS = (gapMs: number) => `export default {
  async process(record, env, ctx) {
    const count = Number((await (await env.STATE.get(record.key))?.text()) ?? 0) + 1;
    await env.STATE.put(record.key, String(count));
    if (record.value === 'cancel') ctx.timers.delete(record.key);
    else ctx.timers.set(record.key, Date.now() + ${gapMs});
  },
  async onTimer(timer, env, ctx) {
    const count = (await (await env.STATE.get(timer.key))?.text()) ?? '0';
    await env.STATE.delete(timer.key);
    ctx.emit({ key: timer.key, count: Number(count), late: Date.now() - timer.at, kind: timer.kind }, { key: timer.key });
  },
};`;

function graphSpec(fn: string, extra: Record<string, unknown> = {}) {
  return {
    nodes: [{ id: 'n', function: fn, replicas: { min: 1, max: 1 }, ...extra }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'n', delivery: 'exactly-once', partitionBy: 'key', partitions: 2 },
      { from: 'n', to: 'out', delivery: 'exactly-once' },
    ],
  };
}

async function putGraph(platform: { app: { request: TestPlatform['app']['request'] } }, name: string, spec: object) {
  const res = await platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  expect(res.status, await res.clone().text()).toBe(201);
}

async function feed(platform: TestPlatform, graph: string, records: Array<{ key: string; value: string }>) {
  const res = await platform.app.request(`/v1/graphs/${graph}/sources/in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) });
  expect(res.status, await res.clone().text()).toBe(202);
}

const sink = async (platform: TestPlatform, graph: string) => (await json(platform.app.request(`/v1/graphs/${graph}/sinks/out?from=0&limit=1000`))).records.map((r: { value: unknown }) => r.value);
const nodeStatus = async (platform: TestPlatform, graph: string) => (await json(platform.app.request(`/v1/graphs/${graph}`))).status.nodes.n;

describe('processing-time timers', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await withPlatform();
  });
  afterAll(() => platform.cleanup());

  it('fire with no further record, once per session, moved by each record and cancelled by delete', async () => {
    expect((await deploy(platform, 'sessions', SESSIONS(400))).status).toBe(201);
    await putGraph(platform, 'sessions', graphSpec('sessions'));
    await feed(platform, 'sessions', [
      { key: 'a', value: 'x' },
      { key: 'b', value: 'x' },
      { key: 'a', value: 'x' },
      { key: 'c', value: 'x' },
      { key: 'c', value: 'cancel' },
    ]);
    await new Promise((r) => setTimeout(r, 200));
    await feed(platform, 'sessions', [{ key: 'a', value: 'x' }]); // moves a's timer
    await waitFor(async () => (await sink(platform, 'sessions')).length >= 2, 10_000, 'two sessions closed');
    await new Promise((r) => setTimeout(r, 800));
    const closed = await sink(platform, 'sessions');
    expect(closed.map((s: { key: string; count: number }) => `${s.key}=${s.count}`).sort()).toEqual(['a=3', 'b=1']);
    for (const s of closed) {
      expect(s.kind).toBe('processing');
      // Never before it is due (how soon after is bench material, not a test's).
      expect(s.late).toBeGreaterThanOrEqual(0);
    }
    const status = await nodeStatus(platform, 'sessions');
    expect(status.timers).toMatchObject({ fired: 2, partitions: 0, nextDueAt: null });
    // c's state is still there (cancelled timer, count 2): the next record of c reopens its session.
    await feed(platform, 'sessions', [{ key: 'c', value: 'x' }]);
    await waitFor(async () => (await sink(platform, 'sessions')).length >= 3, 10_000, "c's session");
    expect((await sink(platform, 'sessions'))[2]).toMatchObject({ key: 'c', count: 3 });
  });

  it('fire once across a redeploy that changes the replicas while they are pending', async () => {
    expect((await deploy(platform, 'sessions-moving', SESSIONS(1200))).status).toBe(201);
    await putGraph(platform, 'moving', graphSpec('sessions-moving'));
    const keys = Array.from({ length: 8 }, (_, i) => `m${i}`);
    await feed(platform, 'moving', keys.flatMap((key) => [{ key, value: 'x' }, { key, value: 'x' }]));
    await waitFor(async () => (await nodeStatus(platform, 'moving')).processed >= 16, 10_000, 'the records processed');
    // Redeployed with two replicas: partitions move to other isolates, their timers with them.
    await putGraph(platform, 'moving', graphSpec('sessions-moving', { replicas: { min: 2, max: 2 } }));
    await waitFor(async () => (await sink(platform, 'moving')).length >= keys.length, 15_000, 'every session closed');
    await new Promise((r) => setTimeout(r, 1500));
    expect((await sink(platform, 'moving')).map((s: { key: string; count: number }) => `${s.key}=${s.count}`).sort()).toEqual(keys.map((k) => `${k}=2`).sort());
  });

  it('dead-letter a timer whose onTimer throws every attempt, and fire it no more', async () => {
    const fn = `export default {
      process(record, env, ctx) { ctx.timers.set(record.value, Date.now() + 50); },
      onTimer(timer, env, ctx) { if (timer.key === 'bad') throw new Error('cannot close ' + timer.key); ctx.emit(timer.key); },
    };`;
    expect((await deploy(platform, 'failing-timer', fn)).status).toBe(201);
    await putGraph(platform, 'failing', graphSpec('failing-timer'));
    await feed(platform, 'failing', [
      { key: 'k', value: 'good' },
      { key: 'k', value: 'bad' },
      { key: 'k', value: 'fine' },
    ]);
    await waitFor(async () => (await sink(platform, 'failing')).length >= 2, 10_000, 'the good timers');
    const dead = await waitFor(async () => {
      const records = (await json(platform.app.request('/v1/graphs/failing/nodes/n/dead-letters'))).records;
      return records.length > 0 ? records : null;
    }, 10_000, 'the dead letter');
    expect(dead).toHaveLength(1);
    expect(dead[0].value.error).toMatch(/cannot close bad/);
    expect(dead[0].value.timer).toMatchObject({ key: 'bad', kind: 'processing' });
    await new Promise((r) => setTimeout(r, 500));
    expect((await sink(platform, 'failing')).sort()).toEqual(['fine', 'good']);
    expect((await json(platform.app.request('/v1/graphs/failing/nodes/n/dead-letters'))).records).toHaveLength(1);
    expect((await nodeStatus(platform, 'failing')).timers.partitions).toBe(0);
  });

  it('a timer that keeps re-arming itself does not starve the partition of its records', async () => {
    const fn = `export default {
      process(record, env, ctx) { if (record.value === 'start') ctx.timers.set('spin', 0); else ctx.emit(record.value); },
      onTimer(timer, env, ctx) { ctx.timers.set('spin', 0); },
    };`;
    expect((await deploy(platform, 'spinner', fn)).status).toBe(201);
    await putGraph(platform, 'spin', { ...graphSpec('spinner'), edges: [{ from: 'in', to: 'n', delivery: 'exactly-once', partitions: 1 }, { from: 'n', to: 'out', delivery: 'exactly-once' }] });
    await feed(platform, 'spin', [{ key: 'k', value: 'start' }]);
    await waitFor(async () => (await nodeStatus(platform, 'spin')).timers.fired > 10, 10_000, 'the timer spinning');
    await feed(platform, 'spin', Array.from({ length: 50 }, (_, i) => ({ key: 'k', value: `r${i}` })));
    await waitFor(async () => (await sink(platform, 'spin')).length >= 50, 10_000, 'the records, between timer batches');
    expect(await sink(platform, 'spin')).toEqual(Array.from({ length: 50 }, (_, i) => `r${i}`));
    await platform.app.request('/v1/graphs/spin', { method: 'DELETE' });
  });

  it('wake a node scaled to zero', async () => {
    expect((await deploy(platform, 'sleepy', SESSIONS(2500))).status).toBe(201);
    await putGraph(platform, 'sleepy', graphSpec('sleepy', { replicas: { min: 0, max: 1 }, scaleToZeroAfterMs: 300 }));
    await feed(platform, 'sleepy', [{ key: 'z', value: 'x' }]);
    await waitFor(async () => (await nodeStatus(platform, 'sleepy')).replicas === 0, 10_000, 'scaled to zero');
    expect(await sink(platform, 'sleepy')).toEqual([]);
    await waitFor(async () => (await sink(platform, 'sleepy')).length >= 1, 10_000, 'the timer, after waking');
    expect((await sink(platform, 'sleepy'))[0]).toMatchObject({ key: 'z', count: 1 });
  });

  it('are not state the tenant can read or forge, and are refused without onTimer or past the ceilings', async () => {
    const fn = `export default {
      async process(record, env, ctx) {
        const tried = [];
        const attempt = async (what, f) => { try { await f(); tried.push(what + ':ok'); } catch (e) { tried.push(what + ':' + e.constructor.name); } };
        ctx.timers.set('t', Date.now() + 60_000);
        await attempt('put', () => env.STATE.put('\\u0000timer:t', 'p:0'));
        await attempt('get', () => env.STATE.get('\\u0000timer:t'));
        const listed = await env.STATE.list({ prefix: '\\u0000' });
        const all = await env.STATE.list();
        await attempt('key', () => ctx.timers.set('', 1));
        await attempt('long', () => ctx.timers.set('x'.repeat(257), 1));
        await attempt('nan', () => ctx.timers.set('x', NaN));
        await attempt('kind', () => ctx.timers.set('x', 1, { kind: 'bogus' }));
        await attempt('date', () => ctx.timers.set('d', new Date(Date.now() + 60_000)));
        ctx.emit({ tried, listed: listed.objects.length, all: all.objects.map((o) => o.key), get: ctx.timers.get('t').at > Date.now() && ctx.timers.get('t').kind === 'processing', missing: ctx.timers.get('nope') });
      },
      onTimer() {},
    };`;
    expect((await deploy(platform, 'forger', fn)).status).toBe(201);
    await putGraph(platform, 'forge', graphSpec('forger'));
    await feed(platform, 'forge', [{ key: 'k', value: 'x' }]);
    const [out] = await waitFor(async () => ((await sink(platform, 'forge')).length ? await sink(platform, 'forge') : null), 10_000, 'the probe');
    expect(out).toEqual({ tried: ['put:TypeError', 'get:TypeError', 'key:TypeError', 'long:TypeError', 'nan:TypeError', 'kind:TypeError', 'date:ok'], listed: 0, all: [], get: true, missing: null });

    const noHandler = `export default { process(record, env, ctx) { ctx.timers.set('t', 1); } };`;
    expect((await deploy(platform, 'no-handler', noHandler)).status).toBe(201);
    await putGraph(platform, 'nohandler', graphSpec('no-handler'));
    await feed(platform, 'nohandler', [{ key: 'k', value: 'x' }]);
    const dead = await waitFor(async () => {
      const records = (await json(platform.app.request('/v1/graphs/nohandler/nodes/n/dead-letters'))).records;
      return records.length > 0 ? records : null;
    }, 10_000, 'the dead letter');
    expect(dead[0].value.error).toMatch(/onTimer/);
  });

  it(`keep at most ${MAX_TIMERS_PER_PARTITION} timers per state partition`, async () => {
    const fn = `export default {
      process(record, env, ctx) {
        const n = Number(record.value);
        for (let i = 0; i < n; i++) ctx.timers.set('t' + record.key + i, Date.now() + 600_000);
        ctx.emit(n);
      },
      onTimer() {},
    };`;
    expect((await deploy(platform, 'hoarder', fn, '?timeoutMs=20000&memoryLimitMb=512')).status).toBe(201);
    await putGraph(platform, 'hoard', { ...graphSpec('hoarder'), edges: [{ from: 'in', to: 'n', delivery: 'exactly-once', partitions: 1 }, { from: 'n', to: 'out', delivery: 'exactly-once' }] });
    await feed(platform, 'hoard', [
      { key: 'a', value: String(MAX_TIMERS_PER_PARTITION) },
      { key: 'b', value: '1' },
    ]);
    const dead = await waitFor(async () => {
      const records = (await json(platform.app.request('/v1/graphs/hoard/nodes/n/dead-letters'))).records;
      return records.length > 0 ? records : null;
    }, 60_000, 'the record over the ceiling');
    expect(dead[0].value.record.key).toBe('b');
    expect(dead[0].value.error).toMatch(/ERR_QUOTA_EXCEEDED/);
    expect(await sink(platform, 'hoard')).toEqual([MAX_TIMERS_PER_PARTITION]);
    expect((await nodeStatus(platform, 'hoard')).timers.partitions).toBe(1);
  }, 90_000);
});

describe('timers across kill -9', () => {
  it('fire exactly once after the control plane is killed before and after they are due', async () => {
    const server = new ServerProcess(tempDir('tributary-timers-crash-'));
    await server.start();
    const request = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
    const client = { app: { request } } as unknown as TestPlatform;
    try {
      const put = await request('/v1/functions/sessions', { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: SESSIONS(1500) });
      expect(put.status).toBe(201);
      await putGraph(client, 'crash', graphSpec('sessions'));
      await feed(client, 'crash', Array.from({ length: 20 }, (_, i) => ({ key: `k${i % 5}`, value: 'x' })));
      // Committed (each key counted 4 times, timers set), then killed before any timer is due.
      await waitFor(async () => (await json(request('/v1/graphs/crash'))).status.nodes.n.processed >= 20, 10_000, 'the records processed');
      await server.kill9();
      await server.start();
      await waitFor(async () => (await sink(client, 'crash')).length >= 5, 15_000, 'five sessions after the restart');
      // Killed again after they fired: nothing fires twice.
      await server.kill9();
      await server.start();
      await new Promise((r) => setTimeout(r, 2500));
      const closed = await sink(client, 'crash');
      expect(closed.map((s: { key: string; count: number }) => `${s.key}=${s.count}`).sort()).toEqual(['k0=4', 'k1=4', 'k2=4', 'k3=4', 'k4=4']);
      expect((await json(request('/v1/graphs/crash'))).status.nodes.n.timers).toMatchObject({ partitions: 0, nextDueAt: null });
    } finally {
      await server.stop();
    }
  }, 90_000);
});
