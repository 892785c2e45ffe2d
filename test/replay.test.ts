/**
 * Replay on the embedded log (docs/replay.md): `POST /v1/graphs/{name}/sources/{id}/seek` rewinds a
 * source's consumers by offset or by time; with `resetState` a keyed count is recomputed exactly
 * and a tumbling window gives the first pass's results again; without it the count goes on from
 * where it was (double counting, as documented); bad requests get their codes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';
import { functionSource } from './fixtures/wordcount.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;
let platform: TestPlatform;

/** The keyed count of WordCount's second stage: emits {word, count} per record, count in env.STATE. */
const COUNT = functionSource('wordcount-count');
/** The same count, 10 ms per record: it falls behind the stage before it. */
const SLOW_COUNT = COUNT.replace('async process(record, env, ctx) {', 'async process(record, env, ctx) {\n    await new Promise((r) => setTimeout(r, 10));');
/** The count, 3 s on the record 'slow': longer than the 2 s a pause waits for a running batch. */
const STALL_COUNT = COUNT.replace('async process(record, env, ctx) {', "async process(record, env, ctx) {\n    if (record.value === 'slow') await new Promise((r) => setTimeout(r, 3000));");
const UPPER = `export default { process(record, env, ctx) { ctx.emit(record.value, { key: record.key }); } };`;
/** A processing-time timer per record, 1.5 s ahead, keyed by when it was set: one per record and pass. */
const REMIND = `export default {
  process(record, env, ctx) { ctx.timers.set(record.key + '@' + Date.now(), Date.now() + 1500); },
  onTimer(timer, env, ctx) { ctx.emit({ key: timer.key.split('@')[0] }); },
};`;
const WINDOW = `import { tumbling } from 'tributary:windows';
export default tumbling(1000, { init: () => 0, add: (n) => n + 1 });`;

beforeAll(async () => {
  platform = await withPlatform({ hosts: 1, warmSlots: 1 });
  expect((await deploy(platform, 'replay-stall-count', STALL_COUNT, '?timeoutMs=10000')).status).toBe(201);
  for (const [name, code] of [['replay-count', COUNT], ['replay-pass', UPPER], ['replay-window', WINDOW], ['replay-remind', REMIND], ['replay-slow-count', SLOW_COUNT]]) {
    const put = await deploy(platform, name, code);
    expect(put.status, JSON.stringify(put.body)).toBe(201);
  }
});
afterAll(() => platform.cleanup());

/** in -> pass -> count -> out: a stateful keyed count behind a stateless stage. */
function countGraph(extra: Record<string, unknown> = {}) {
  return {
    nodes: [
      { id: 'pass', function: 'replay-pass' },
      { id: 'count', function: 'replay-count' },
    ],
    sources: [{ id: 'in', type: 'http', ...extra }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'pass', delivery: 'exactly-once', partitionBy: 'key', partitions: 2 },
      { from: 'pass', to: 'count', delivery: 'exactly-once', partitionBy: 'key', partitions: 2 },
      { from: 'count', to: 'out', delivery: 'exactly-once' },
    ],
  };
}

async function put(name: string, spec: unknown) {
  const res = await platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  expect(res.status, await res.clone().text()).toBe(201);
}

async function ingest(name: string, records: Array<{ key?: string; value: unknown; timestamp?: number }>) {
  const res = await platform.app.request(`/v1/graphs/${name}/sources/in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) });
  expect(res.status, await res.clone().text()).toBe(202);
}

function seek(name: string, body: unknown, source = 'in') {
  return platform.app.request(`/v1/graphs/${name}/sources/${source}/seek`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function sink(name: string): Promise<any[]> {
  return (await json(platform.app.request(`/v1/graphs/${name}/sinks/out?from=0&limit=10000`))).records;
}

async function drained(name: string) {
  await waitFor(async () => {
    const { status } = await json(platform.app.request(`/v1/graphs/${name}`));
    return status.state === 'running' && status.edges.every((e: { lag: number }) => e.lag === 0);
  }, 15_000, `${name} drained`);
}

/** The last count per word in sink records from `from` on. */
function finalCounts(records: any[], from = 0): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of records.filter((r) => r.offset >= from)) out[r.value.word] = Math.max(out[r.value.word] ?? 0, r.value.count);
  return out;
}

const words = (n: number, salt = 0) => Array.from({ length: n }, (_, i) => ({ key: `w${(i * 7 + salt) % 5}`, value: i }));
const expected = (records: Array<{ key: string }>) => records.reduce<Record<string, number>>((m, r) => ((m[r.key] = (m[r.key] ?? 0) + 1), m), {});

describe('seek on the embedded log', () => {
  it('offset 0 with resetState recomputes a keyed count exactly; the sink gets the results again', async () => {
    await put('r-reset', countGraph());
    const input = words(40);
    await ingest('r-reset', input);
    await drained('r-reset');
    const first = await sink('r-reset');
    expect(first).toHaveLength(40);
    expect(finalCounts(first)).toEqual(expected(input));

    const res = await seek('r-reset', { offset: 0, resetState: true, node: 'pass' });
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.edges[0].node).toBe('pass');
    expect(body.edges[0].partitions.map((p: any) => p.to)).toEqual([0, 0]);
    expect(body.edges[0].partitions.reduce((s: number, p: any) => s + p.from, 0)).toBe(40);
    expect(body.reset.nodes).toEqual(['pass', 'count']);
    expect(body.sinks).toEqual({ out: { heads: [40] } }); // the replay's outputs start there
    await drained('r-reset');
    const all = await waitFor(async () => ((await sink('r-reset')).length >= 80 ? sink('r-reset') : null), 15_000, 'replayed results');
    expect(all).toHaveLength(80);
    // The replay's outputs are new sink records (offsets 40..79), the same results once each.
    expect(finalCounts(all, 40)).toEqual(expected(input));
    const replayed = all.slice(40).map((r) => `${r.value.word}:${r.value.count}`).sort();
    expect(replayed).toEqual(first.map((r) => `${r.value.word}:${r.value.count}`).sort());
  });

  it('with resetState, records queued downstream at the seek are skipped: they are derived again', async () => {
    const spec = countGraph();
    spec.nodes[1].function = 'replay-slow-count';
    await put('r-queued', spec);
    const input: Array<{ key: string; value: number }> = [];
    for (let i = 0; i < 5; i++) {
      const chunk = words(20, i);
      input.push(...chunk);
      await ingest('r-queued', chunk);
      await new Promise((r) => setTimeout(r, 20));
    }
    const res = await seek('r-queued', { offset: 0, resetState: true });
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    // count was behind: what pass had queued for it was skipped, not counted on top of the replay.
    const skipped = body.reset.skipped.find((s: any) => s.from === 'pass' && s.to === 'count');
    expect(skipped.partitions.reduce((n: number, p: any) => n + (p.to - p.from), 0)).toBeGreaterThan(0);
    await drained('r-queued');
    const all = await sink('r-queued');
    const lastPerWord = finalCounts(all);
    expect(lastPerWord).toEqual(expected(input));
  });

  it('a batch still running at the seek is abandoned: it never commits after the offsets moved; ingest goes on meanwhile', async () => {
    await put('r-stall', {
      nodes: [{ id: 'count', function: 'replay-stall-count' }],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'count', delivery: 'exactly-once', partitionBy: 'key', partitions: 1 },
        { from: 'count', to: 'out', delivery: 'exactly-once' },
      ],
    });
    const input = [...words(5, 4), { key: 'w9', value: 'slow' }];
    await ingest('r-stall', input.slice(0, 5));
    await drained('r-stall');
    await ingest('r-stall', input.slice(5));
    await new Promise((r) => setTimeout(r, 300)); // the slow batch is running
    const seeking = seek('r-stall', { offset: 0, resetState: true });
    // Ingest goes on while the graph pauses for the seek (2 s here, waiting for the slow batch).
    await new Promise((r) => setTimeout(r, 500));
    const during = { key: 'w8', value: 'during' };
    await ingest('r-stall', [during]);
    const res = await seeking;
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.edges[0].partitions).toEqual([{ partition: 0, from: 5, to: 0, earliest: 0, head: 7 }]);
    await drained('r-stall');
    await new Promise((r) => setTimeout(r, 1500)); // the abandoned call has ended by now
    const all = await sink('r-stall');
    // 5 of the first pass, 7 of the replay: the abandoned batch added nothing.
    expect(all).toHaveLength(12);
    expect(finalCounts(all, 5)).toEqual(expected([...input, during]));
    const { status } = await json(platform.app.request('/v1/graphs/r-stall'));
    expect(status.edges[0].partitions[0].committed).toBe(7);
  });

  it('without resetState the state is kept: replayed records are counted again (double counting)', async () => {
    await put('r-keep', countGraph());
    const input = words(20, 1);
    await ingest('r-keep', input);
    await drained('r-keep');
    expect(await sink('r-keep')).toHaveLength(20);
    const res = await seek('r-keep', { offset: 0 });
    expect(res.status, await res.clone().text()).toBe(200);
    await drained('r-keep');
    const all = await waitFor(async () => ((await sink('r-keep')).length >= 40 ? sink('r-keep') : null), 15_000, 'replayed results');
    const doubled = Object.fromEntries(Object.entries(expected(input)).map(([k, n]) => [k, 2 * n]));
    expect(finalCounts(all)).toEqual(doubled);
  });

  it('by timestamp: only what arrived at or after it is replayed', async () => {
    await put('r-time', countGraph());
    const early = words(10, 2);
    await ingest('r-time', early);
    await drained('r-time');
    await new Promise((r) => setTimeout(r, 30));
    const since = Date.now();
    await new Promise((r) => setTimeout(r, 30));
    const late = words(6, 3);
    await ingest('r-time', late);
    await drained('r-time');
    expect(await sink('r-time')).toHaveLength(16);
    const res = await seek('r-time', { timestamp: new Date(since).toISOString(), resetState: true });
    const body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    // Per partition: from the head back to the first record of the late request.
    for (const p of body.edges[0].partitions) expect(p.from).toBe(p.head);
    expect(body.edges[0].partitions.reduce((s: number, p: any) => s + (p.from - p.to), 0)).toBe(6);
    await drained('r-time');
    const all = await waitFor(async () => ((await sink('r-time')).length >= 22 ? sink('r-time') : null), 15_000, 'replayed results');
    expect(all).toHaveLength(22);
    // State was reset: the replay counts only the late records.
    expect(finalCounts(all, 16)).toEqual(expected(late));
  });

  it('a tumbling window reprocessed after a seek with resetState gives the first pass results', async () => {
    const t0 = 1_700_000_000_000;
    await put('r-window', {
      nodes: [{ id: 'w', function: 'replay-window' }],
      sources: [{ id: 'in', type: 'http', eventTime: { field: 'ts', idleTimeoutMs: 60_000 } }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'w', delivery: 'exactly-once', partitionBy: 'key', partitions: 1 },
        { from: 'w', to: 'out', delivery: 'exactly-once' },
      ],
    });
    const records = [
      { key: 'a', value: { ts: t0 + 10 } },
      { key: 'b', value: { ts: t0 + 20 } },
      { key: 'a', value: { ts: t0 + 999 } },
      { key: 'a', value: { ts: t0 + 1000 } },
      { key: 'a', value: { ts: t0 + 2500 } }, // moves the watermark past [1000, 2000)
    ];
    await ingest('r-window', records);
    const windows = (rs: any[]) => rs.map((r) => `${r.value.key}[${r.value.start - t0},${r.value.end - t0})=${r.value.value}`).sort();
    const first = await waitFor(async () => ((await sink('r-window')).length >= 3 ? sink('r-window') : null), 15_000, 'first windows');
    await new Promise((r) => setTimeout(r, 300));
    expect(windows(first)).toEqual(['a[0,1000)=2', 'a[1000,2000)=1', 'b[0,1000)=1']);

    const res = await seek('r-window', { offset: 0, resetState: true });
    expect(res.status, await res.clone().text()).toBe(200);
    const all = await waitFor(async () => ((await sink('r-window')).length >= 6 ? sink('r-window') : null), 15_000, 'replayed windows');
    await new Promise((r) => setTimeout(r, 300));
    // Timers and the watermark were reset with the state: the windows close again, once each.
    expect(all).toHaveLength(6);
    expect(windows(all.slice(3))).toEqual(windows(first));
    // The window still open, [2000, 3000), holds the replayed record once (kept state would hold it twice).
    await ingest('r-window', [{ key: 'a', value: { ts: t0 + 5000 } }]);
    const closed = await waitFor(async () => ((await sink('r-window')).length >= 7 ? sink('r-window') : null), 15_000, 'the open window');
    await new Promise((r) => setTimeout(r, 300));
    expect(windows(closed.slice(6))).toEqual(['a[2000,3000)=1']);
  });

  it('timers pending at a seek with resetState are deleted: each record timer fires once, in the replay', async () => {
    await put('r-timers', {
      nodes: [{ id: 'remind', function: 'replay-remind' }],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'remind', delivery: 'exactly-once', partitions: 1 },
        { from: 'remind', to: 'out', delivery: 'exactly-once' },
      ],
    });
    await ingest('r-timers', ['a', 'b', 'c', 'd'].map((key) => ({ key, value: 1 })));
    await waitFor(async () => (await json(platform.app.request('/v1/graphs/r-timers'))).status.nodes.remind.timers.partitions > 0, 10_000, 'timers set');
    const res = await seek('r-timers', { offset: 0, resetState: true });
    expect(res.status, await res.clone().text()).toBe(200);
    await waitFor(async () => (await sink('r-timers')).length >= 4, 10_000, 'the replay timers');
    await new Promise((r) => setTimeout(r, 2000)); // the first pass's timers were due by now, had they survived
    const fired = await sink('r-timers');
    expect(fired.map((r) => r.value.key).sort()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('keeps a source edge only as long as its retention says', async () => {
    await put('r-short', countGraph({ retention: { maxAgeMs: 0 } }));
    await ingest('r-short', words(10));
    await drained('r-short');
    platform.log.maintain();
    const res = await seek('r-short', { offset: 0, node: 'pass' });
    const body = await json(res);
    expect(res.status).toBe(400);
    expect(body.error.code).toBe('ERR_OFFSET_OUT_OF_RANGE');
    expect(body.error.message).toMatch(/outside \[\d+, \d+\]/);
    expect(body.error.partitions.every((p: any) => p.earliest > 0 && p.earliest === p.head)).toBe(true);
  });
});

describe('seek errors', () => {
  beforeAll(() => put('r-errors', countGraph()));

  it.each([
    ['not an object', [1, 2], 'body must be a JSON object'],
    ['neither offset nor timestamp', { resetState: true }, 'exactly one of'],
    ['both', { offset: 1, timestamp: 1 }, 'exactly one of'],
    ['a negative offset', { offset: -1 }, '"offset" must be'],
    ['a fractional offset', { offset: 1.5 }, '"offset" must be'],
    ['a bad partition key', { offset: { x: 1 } }, 'partition numbers'],
    ['a bad timestamp', { timestamp: 'yesterday' }, '"timestamp" must be'],
    ['a non-boolean resetState', { offset: 0, resetState: 'yes' }, '"resetState" must be'],
    ['an unknown field', { offset: 0, rewind: true }, "unknown field 'rewind'"],
    ['an unknown node', { offset: 0, node: 'nope' }, "no edge into node 'nope'"],
    ['a partition the edge lacks', { offset: { '7': 0 } }, 'no partition 7'],
  ])('%s → 400 ERR_BAD_REQUEST', async (_what, body, message) => {
    const res = await seek('r-errors', body);
    const answer = await json(res);
    expect(res.status, JSON.stringify(answer)).toBe(400);
    expect(answer.error.code).toBe('ERR_BAD_REQUEST');
    expect(answer.error.message).toContain(message);
  });

  it('an offset past the head → 400 ERR_OFFSET_OUT_OF_RANGE with each partition range', async () => {
    const res = await seek('r-errors', { offset: 5 });
    const answer = await json(res);
    expect(res.status).toBe(400);
    expect(answer.error.code).toBe('ERR_OFFSET_OUT_OF_RANGE');
    expect(answer.error.partitions).toEqual([
      { node: 'pass', partition: 0, offset: 5, earliest: 0, head: 0 },
      { node: 'pass', partition: 1, offset: 5, earliest: 0, head: 0 },
    ]);
  });

  it('unknown graph or source → 404 ERR_NOT_FOUND', async () => {
    for (const [graph, source] of [['no-such-graph', 'in'], ['r-errors', 'nope'], ['r-errors', 'count']]) {
      const res = await platform.app.request(`/v1/graphs/${graph}/sources/${source}/seek`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"offset":0}' });
      expect(res.status).toBe(404);
      expect((await json(res)).error.code).toBe('ERR_NOT_FOUND');
    }
  });

  it('a refused seek does not pause the graph', async () => {
    const before = (await json(platform.app.request('/v1/graphs/r-errors'))).status.transitions.length;
    await seek('r-errors', { offset: 99 });
    const after = (await json(platform.app.request('/v1/graphs/r-errors'))).status.transitions.length;
    expect(after).toBe(before);
  });
});
