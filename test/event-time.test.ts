/**
 * Event time: sources read it (a value field, or the ingest `timestamp`), watermarks trail it by
 * the out-of-orderness and flow along edges (the minimum over every upstream partition), an idle
 * input stops holding them back after its timeout, event-time timers fire once the watermark
 * passes, late records go to the dead letters when the node asks, and watermarks survive kill -9.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, json, tempDir, waitFor, withPlatform } from './fixtures/platform.ts';
import { ServerProcess } from './fixtures/server-process.ts';
import { partitionOf } from '../scheduler/topology.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;
type Requester = { app: { request: (path: string, init?: RequestInit) => Response | Promise<Response> } };

const WINDOW_MS = 1000;
/** Two keys on different partitions of the 2-partition source edge. */
const [A, B] = (() => {
  const names = Array.from({ length: 64 }, (_, i) => `key${i}`);
  const first = names[0];
  return [first, names.find((n) => partitionOf(n, 2) !== partitionOf(first, 2))!];
})();
/** Tumbling counts per key: each record adds to its window's count and sets an event timer at the window's end. */
const TUMBLING = `export default {
  async process(record, env, ctx) {
    const start = record.timestamp - (record.timestamp % ${WINDOW_MS});
    const id = record.key + '@' + start;
    const count = Number((await (await env.STATE.get(id))?.text()) ?? 0) + 1;
    await env.STATE.put(id, String(count));
    ctx.timers.set(id, start + ${WINDOW_MS}, { kind: 'event' });
  },
  async onTimer(timer, env, ctx) {
    const count = Number(await (await env.STATE.get(timer.key)).text());
    await env.STATE.delete(timer.key);
    ctx.emit({ window: timer.key, count, kind: timer.kind, watermark: ctx.watermark }, { key: timer.key });
  },
};`;
const PASS = `export default { process(record, env, ctx) { ctx.emit(record.value, { key: record.key }); } };`;

function spec(options: { late?: boolean; idleTimeoutMs?: number } = {}) {
  return {
    nodes: [
      { id: 'map', function: 'pass', replicas: { min: 1, max: 1 } },
      { id: 'win', function: 'tumbling', replicas: { min: 1, max: 1 }, ...(options.late && { late: { allowedMs: 0 } }) },
    ],
    sources: [{ id: 'in', type: 'http', eventTime: { field: 'ts', outOfOrdernessMs: 200, ...(options.idleTimeoutMs && { idleTimeoutMs: options.idleTimeoutMs }) } }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'map', delivery: 'exactly-once', partitionBy: 'key', partitions: 2 },
      // One partition: win hears from both map partitions, and its watermark is the lower of theirs.
      { from: 'map', to: 'win', delivery: 'exactly-once', partitionBy: 'key', partitions: 1 },
      { from: 'win', to: 'out', delivery: 'exactly-once' },
    ],
  };
}

async function put(platform: Requester, graph: string, body: object) {
  const res = await platform.app.request(`/v1/graphs/${graph}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  expect(res.status, await res.clone().text()).toBe(201);
}
async function feed(platform: Requester, graph: string, records: Array<{ key: string; ts: number }>) {
  const body = JSON.stringify(records.map((r) => ({ key: r.key, value: { ts: r.ts } })));
  const res = await platform.app.request(`/v1/graphs/${graph}/sources/in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  expect(res.status, await res.clone().text()).toBe(202);
}
const sink = async (platform: Requester, graph: string) => (await json(platform.app.request(`/v1/graphs/${graph}/sinks/out?from=0&limit=1000`))).records.map((r: { value: any }) => r.value);
const windows = async (platform: Requester, graph: string) => (await sink(platform, graph)).map((w: { window: string; count: number }) => `${w.window}=${w.count}`).sort();
const deadLetters = async (platform: Requester, graph: string) => (await json(platform.app.request(`/v1/graphs/${graph}/nodes/win/dead-letters`))).records.map((r: { value: any }) => r.value);

describe('event time', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await withPlatform();
    expect((await deploy(platform, 'tumbling', TUMBLING)).status).toBe(201);
    expect((await deploy(platform, 'pass', PASS)).status).toBe(201);
  });
  afterAll(() => platform.cleanup());

  it('closes tumbling windows when the watermark passes them, through an upstream node, with out-of-order records inside the bound', async () => {
    await put(platform, 'tumble', spec({ idleTimeoutMs: 60_000 }));
    // A and B go to different map partitions, both feeding win's one partition.
    const t0 = 1_700_000_000_000;
    await feed(platform, 'tumble', [
      { key: A, ts: t0 + 100 },
      { key: B, ts: t0 + 150 },
      { key: A, ts: t0 + 900 },
      { key: A, ts: t0 + 700 }, // out of order, within 200 ms
      { key: B, ts: t0 + 1100 },
    ]);
    await new Promise((r) => setTimeout(r, 600));
    // Watermarks of A's partition: t0+700 (900 - 200), B's: t0+900: below window 0's end (t0+1000), nothing closes.
    expect(await sink(platform, 'tumble')).toEqual([]);
    await feed(platform, 'tumble', [
      { key: A, ts: t0 + 1300 },
      { key: B, ts: t0 + 1250 },
    ]);
    // A's: t0+1100, B's: t0+1050: both past t0+1000, so window 0 of both keys closes; window 1 stays open.
    await waitFor(async () => (await sink(platform, 'tumble')).length >= 2, 10_000, 'window 0 closed');
    await new Promise((r) => setTimeout(r, 300));
    expect(await windows(platform, 'tumble')).toEqual([`${A}@${t0}=3`, `${B}@${t0}=1`].sort());
    for (const w of await sink(platform, 'tumble')) {
      expect(w.kind).toBe('event');
      expect(w.watermark).toBeGreaterThanOrEqual(t0 + 1000);
    }
    const status = (await json(platform.app.request('/v1/graphs/tumble'))).status.nodes;
    expect(status.win.watermark.watermark).toBeGreaterThanOrEqual(t0 + 1000);
    expect(status.map.watermark.watermark).toBeGreaterThanOrEqual(t0 + 1000);
    expect(status.win.timers.nextEventTimerAt).toBe(t0 + 2000);
  });

  it('takes the minimum over upstream partitions, and stops waiting for one gone idle', async () => {
    await put(platform, 'idle', spec({ idleTimeoutMs: 1500 }));
    const t0 = 1_700_000_100_000;
    await feed(platform, 'idle', [
      { key: A, ts: t0 + 10 },
      { key: B, ts: t0 + 20 },
    ]);
    await new Promise((r) => setTimeout(r, 300));
    await feed(platform, 'idle', [{ key: B, ts: t0 + 5000 }]);
    // B's map partition is far ahead, but A's (watermark t0-190) holds win's watermark back...
    await new Promise((r) => setTimeout(r, 500));
    expect(await sink(platform, 'idle')).toEqual([]);
    // ...until it has been silent for the idle timeout; then both windows close on B's.
    await waitFor(async () => (await sink(platform, 'idle')).length >= 2, 10_000, 'windows after the idle timeout');
    expect(await windows(platform, 'idle')).toEqual([`${A}@${t0}=1`, `${B}@${t0}=1`].sort());
  });

  it('dead-letters records behind the watermark when the node asks, and runs them when it does not', async () => {
    for (const late of [true, false]) {
      const graph = late ? 'late-on' : 'late-off';
      await put(platform, graph, spec({ late, idleTimeoutMs: 300 }));
      const t0 = 1_700_000_200_000;
      await feed(platform, graph, [{ key: 'a', ts: t0 + 5000 }]);
      await waitFor(async () => (await json(platform.app.request(`/v1/graphs/${graph}`))).status.nodes.win.processed >= 1, 10_000, 'the first record');
      // The other map partition sent nothing: after the idle timeout it no longer holds win back.
      await waitFor(async () => (await json(platform.app.request(`/v1/graphs/${graph}`))).status.nodes.win.watermark.watermark === t0 + 4800, 10_000, 'the watermark at t0+4800');
      await feed(platform, graph, [{ key: 'a', ts: t0 + 100 }]); // 4.9 s behind a watermark of t0+4800
      await waitFor(async () => (await json(platform.app.request(`/v1/graphs/${graph}`))).status.nodes.win.processed + (await deadLetters(platform, graph)).length >= 2, 10_000, 'the late record handled');
      const dead = await deadLetters(platform, graph);
      if (late) {
        expect(dead).toHaveLength(1);
        expect(dead[0].error).toMatch(/^ERR_LATE_RECORD/);
        expect(dead[0].record.value).toEqual({ ts: t0 + 100 });
      } else {
        expect(dead).toEqual([]);
        // Run, and its window (long past the watermark) closes at once.
        await waitFor(async () => (await sink(platform, graph)).length >= 1, 10_000, 'the late window');
        expect(await windows(platform, graph)).toEqual([`a@${t0}=1`]);
      }
    }
  });

  it('forwards no watermark past the event timers a node has yet to fire, and measures latency from arrival', async () => {
    // Stage 1 holds 2500 timers due at once (more than one timer batch fires); stage 2 counts what
    // they emit in one window, which must not close before the last of them arrives.
    const fanOut = `export default {
      process(record, env, ctx) { if (record.timestamp % 1000 === 500) for (let i = 0; i < 2500; i++) ctx.timers.set('t' + i, record.timestamp, { kind: 'event' }); },
      onTimer(timer, env, ctx) { ctx.emit(timer.key, { key: 'all' }); },
    };`;
    const count = `import { tumbling } from 'tributary:windows';
      export default tumbling(${WINDOW_MS}, { key: () => 'all', init: () => 0, add: (n) => n + 1 });`;
    expect((await deploy(platform, 'fan-out', fanOut, '?timeoutMs=20000')).status).toBe(201);
    expect((await deploy(platform, 'count-all', count)).status).toBe(201);
    await put(platform, 'fan', {
      nodes: [
        { id: 'fan', function: 'fan-out', replicas: { min: 1, max: 1 } },
        { id: 'count', function: 'count-all', replicas: { min: 1, max: 1 } },
      ],
      sources: [{ id: 'in', type: 'http', eventTime: { field: 'ts', idleTimeoutMs: 60_000 } }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'fan', delivery: 'exactly-once', partitions: 1 },
        { from: 'fan', to: 'count', delivery: 'exactly-once', partitionBy: 'key', partitions: 1 },
        { from: 'count', to: 'out', delivery: 'exactly-once' },
      ],
    });
    const t0 = 1_700_000_400_000;
    await feed(platform, 'fan', [{ key: 'x', ts: t0 + 500 }]); // sets the timers (and makes them due)
    await feed(platform, 'fan', [{ key: 'x', ts: t0 + 5000 }]); // moves the watermark past window 0
    await waitFor(async () => (await sink(platform, 'fan')).length >= 1, 20_000, 'the window of 2500 timer outputs');
    await new Promise((r) => setTimeout(r, 500));
    expect((await sink(platform, 'fan')).map((w: { start: number; value: number }) => `${w.start - t0}=${w.value}`)).toEqual(['0=2500']);
    // Event times are from 2023; latency is counted from arrival all the same.
    const { p99Ms } = (await json(platform.app.request('/v1/graphs/fan'))).status.endToEndLatency;
    expect(p99Ms).toBeLessThan(60_000);
  });

  it('hears every upstream partition through markers, even one that sends no data its way', async () => {
    // Both edges by key with 2 partitions: win's partition of A gets data from map's partition of A
    // only; map's other partition reaches it by markers, or it would wait out the 60 s idle timeout.
    const twoByTwo = spec({ idleTimeoutMs: 60_000 });
    twoByTwo.edges[1] = { from: 'map', to: 'win', delivery: 'exactly-once', partitionBy: 'key', partitions: 2 };
    await put(platform, 'markers', twoByTwo);
    const t0 = 1_700_000_500_000;
    await feed(platform, 'markers', [{ key: A, ts: t0 + 100 }, { key: B, ts: t0 + 200 }]);
    await feed(platform, 'markers', [{ key: A, ts: t0 + 1500 }, { key: B, ts: t0 + 1600 }]);
    await waitFor(async () => (await sink(platform, 'markers')).length >= 2, 10_000, 'window 0 of both keys');
    expect(await windows(platform, 'markers')).toEqual([`${A}@${t0}=1`, `${B}@${t0}=1`].sort());
    // Markers are never run: win counted the 4 records alone.
    expect((await json(platform.app.request('/v1/graphs/markers'))).status.nodes.win.processed).toBe(4);
  });

  it('refuses bad event-time settings and records without event time', async () => {
    const bad = spec();
    (bad.sources[0] as { eventTime: object }).eventTime = { field: '__proto__.x', outOfOrdernessMs: -1, surprise: true };
    const res = await platform.app.request('/v1/graphs/bad', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(bad) });
    expect(res.status).toBe(400);
    const problems = (await json(res)).error.problems.map((p: { path: string }) => p.path);
    expect(problems).toEqual(expect.arrayContaining(['$.sources[0].eventTime.field', '$.sources[0].eventTime.outOfOrdernessMs', '$.sources[0].eventTime.surprise']));
    await put(platform, 'strict', spec());
    const ingest = await platform.app.request('/v1/graphs/strict/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ value: { ts: 5 } }, { value: { when: 5 } }]) });
    expect(ingest.status).toBe(400);
    expect((await json(ingest)).error.message).toMatch(/record 1: no event time at "ts"/);
    const explicit = await platform.app.request('/v1/graphs/strict/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ value: { ts: 5 }, timestamp: 'yesterday' }]) });
    expect(explicit.status).toBe(400);
  });
});

describe('event time across kill -9', () => {
  it('keeps the watermarks, and fires each window once', async () => {
    const server = new ServerProcess(tempDir('tributary-event-crash-'));
    await server.start();
    const client: Requester = { app: { request: (path, init) => fetch(`${server.url}${path}`, init) } };
    try {
      for (const [name, code] of [['tumbling', TUMBLING], ['pass', PASS]]) {
        expect((await client.app.request(`/v1/functions/${name}`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: code })).status).toBe(201);
      }
      await put(client, 'crash', spec({ idleTimeoutMs: 60_000 }));
      const t0 = 1_700_000_300_000;
      await feed(client, 'crash', [
        { key: A, ts: t0 + 100 },
        { key: B, ts: t0 + 200 },
        { key: A, ts: t0 + 300 },
      ]);
      await waitFor(async () => (await json(client.app.request('/v1/graphs/crash'))).status.nodes.win.processed >= 3, 10_000, 'the records counted');
      await server.kill9();
      await server.start();
      // After the restart, the watermarks of a and b (both needed) are what moves window 0 past: only b moves now.
      await feed(client, 'crash', [{ key: B, ts: t0 + 1500 }]);
      await new Promise((r) => setTimeout(r, 800));
      expect(await windows(client, 'crash')).toEqual([]);
      await feed(client, 'crash', [{ key: A, ts: t0 + 1600 }]);
      await waitFor(async () => (await sink(client, 'crash')).length >= 2, 15_000, 'window 0 after the restart');
      await server.kill9();
      await server.start();
      await new Promise((r) => setTimeout(r, 1500));
      expect(await windows(client, 'crash')).toEqual([`${A}@${t0}=2`, `${B}@${t0}=1`].sort());
    } finally {
      await server.stop();
    }
  }, 90_000);
});
