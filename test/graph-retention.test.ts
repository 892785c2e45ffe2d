/**
 * Graph-level `retention` (and a log sink's own) reaches the embedded log: a sink kept to a few
 * KiB drops its oldest batches while the graph runs; an invalid setting is refused with its path.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;

beforeAll(async () => {
  platform = await withPlatform({ hosts: 1, warmSlots: 1 });
  await deploy(platform, 'echo', `export default { process(r) { return r.value; } };`);
});
afterAll(() => platform.cleanup());

function spec(extra: Record<string, unknown> = {}, sink: Record<string, unknown> = {}) {
  return {
    nodes: [{ id: 'n', function: 'echo' }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log', ...sink }],
    edges: [
      { from: 'in', to: 'n', delivery: 'exactly-once', partitions: 1 },
      { from: 'n', to: 'out', delivery: 'exactly-once' },
    ],
    ...extra,
  };
}

async function put(name: string, body: unknown) {
  return platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

async function fill(name: string) {
  for (let i = 0; i < 40; i++) {
    const records = Array.from({ length: 5 }, (_, j) => ({ value: `${i}-${j}-${'x'.repeat(200)}` }));
    const res = await platform.app.request(`/v1/graphs/${name}/sources/in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) });
    expect(res.status).toBe(202);
    // One sink batch per request: wait for it before the next.
    await waitFor(async () => (await json(platform.app.request(`/v1/graphs/${name}`))).status.sinks.out.records >= (i + 1) * 5, 10_000, 'the batch');
  }
}

const firstKept = async (name: string) => (await json(platform.app.request(`/v1/graphs/${name}/sinks/out?from=0&limit=1`))).records[0].offset;

describe('graph retention', () => {
  it('a graph-level maxBytes bounds its sink: the oldest batches go', async () => {
    expect((await put('kept-small', spec({ retention: { maxBytes: 4096 } }))).status).toBe(201);
    await fill('kept-small');
    expect(await firstKept('kept-small')).toBeGreaterThan(100);
  });

  it("a sink's own retention overrides the graph's", async () => {
    expect((await put('kept-sink', spec({ retention: { maxBytes: 1024 ** 3 } }, { retention: { maxBytes: 4096 } }))).status).toBe(201);
    await fill('kept-sink');
    expect(await firstKept('kept-sink')).toBeGreaterThan(100);
  });

  it('without retention the defaults keep everything of a small sink', async () => {
    expect((await put('kept-all', spec())).status).toBe(201);
    await fill('kept-all');
    expect(await firstKept('kept-all')).toBe(0);
  });

  it("a source's retention: invalid values and Kafka sources refused with their paths", async () => {
    const bad = spec();
    bad.sources = [{ id: 'in', type: 'http', retention: { maxBytes: -5 } } as never];
    let res = await put('bad-source-retention', bad);
    expect(res.status).toBe(400);
    expect((await json(res)).error.problems.map((p: { path: string }) => p.path)).toContain('$.sources[0].retention');
    res = await put('kafka-source-retention', {
      nodes: [{ id: 'n', function: 'echo' }],
      sources: [{ id: 'in', type: 'kafka', topic: 'retained', retention: { maxAgeMs: 1000 } }],
      sinks: [{ id: 'out', type: 'kafka', topic: 'retained-out' }],
      edges: [
        { from: 'in', to: 'n', delivery: 'at-least-once' },
        { from: 'n', to: 'out', delivery: 'at-least-once' },
      ],
    });
    expect(res.status).toBe(400);
    const problem = (await json(res)).error.problems.find((p: { path: string }) => p.path === '$.sources[0].retention');
    expect(problem.message).toMatch(/topic's retention/);
  });

  it("a source edge keeps consumed records as its source's retention says", async () => {
    expect((await put('kept-source', spec({}, {}))).status).toBe(201);
    const edge = 'kept-source/e/in->n';
    expect(platform.log.retentionOf(edge)).toEqual({ maxAgeMs: 24 * 3600_000, maxBytes: 256 * 1024 ** 2 });
    const custom = spec();
    custom.sources = [{ id: 'in', type: 'http', retention: { maxAgeMs: 5000 } } as never];
    expect((await put('kept-source', custom)).status).toBe(201);
    expect(platform.log.retentionOf(edge)).toEqual({ maxAgeMs: 5000, maxBytes: 256 * 1024 ** 2 });
    expect(platform.log.retentionOf('kept-source/sink/out')!.maxBytes).toBe(1024 ** 3);
  });

  it('an invalid retention is refused with its path', async () => {
    const res = await put('bad-retention', spec({ retention: { maxAgeMs: -1 } }, { retention: 'forever' }));
    expect(res.status).toBe(400);
    const paths = (await json(res)).error.problems.map((p: { path: string }) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['$.retention', '$.sinks[0].retention']));
  });
});
