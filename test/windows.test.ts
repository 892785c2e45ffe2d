/**
 * `tributary:windows` in real isolates, imported unbundled and through `tributary deploy`'s
 * bundler: tumbling and sliding windows on event time, sessions on processing time, a windowed
 * join; results checked against what the records say.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundleFunction } from '../runtime/function-bundle.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;

let platform: TestPlatform;
beforeAll(async () => {
  platform = await withPlatform();
});
afterAll(() => platform.cleanup());

function graph(fn: string, eventTime: boolean) {
  return {
    nodes: [{ id: 'w', function: fn, replicas: { min: 1, max: 1 } }],
    sources: [{ id: 'in', type: 'http', ...(eventTime && { eventTime: { field: 'ts', idleTimeoutMs: 60_000 } }) }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'w', delivery: 'exactly-once', partitionBy: 'key', partitions: 1 },
      { from: 'w', to: 'out', delivery: 'exactly-once' },
    ],
  };
}

async function run(name: string, code: string, eventTime: boolean, batches: Array<Array<{ key: string; value: object }>>, expected: number) {
  const put = await deploy(platform, name, code);
  expect(put.status, JSON.stringify(put.body)).toBe(201);
  const res = await platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(graph(name, eventTime)) });
  expect(res.status, await res.clone().text()).toBe(201);
  for (const batch of batches) {
    const ingest = await platform.app.request(`/v1/graphs/${name}/sources/in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
    expect(ingest.status, await ingest.clone().text()).toBe(202);
    await new Promise((r) => setTimeout(r, 100));
  }
  const read = async () => (await json(platform.app.request(`/v1/graphs/${name}/sinks/out?from=0&limit=1000`))).records.map((r: { value: unknown }) => r.value);
  await waitFor(async () => (await read()).length >= expected, 10_000, `${expected} windows`);
  await new Promise((r) => setTimeout(r, 300));
  return read();
}

const t0 = 1_700_000_000_000;

describe('tributary:windows', () => {
  it('tumbling counts per key on event time, unbundled', async () => {
    const code = `import { tumbling } from 'tributary:windows';
      export default tumbling(1000, { init: () => 0, add: (n) => n + 1 });`;
    const out = await run('tumble', code, true, [
      [{ key: 'a', value: { ts: t0 + 10 } }, { key: 'b', value: { ts: t0 + 20 } }, { key: 'a', value: { ts: t0 + 999 } }, { key: 'a', value: { ts: t0 + 1000 } }],
      [{ key: 'a', value: { ts: t0 + 2500 } }],
    ], 3);
    expect(out.map((w: any) => `${w.key}[${w.start - t0},${w.end - t0})=${w.value}`).sort()).toEqual(['a[0,1000)=2', 'a[1000,2000)=1', 'b[0,1000)=1']);
  });

  it('sliding windows hold a record in every window covering it', async () => {
    const code = `import { sliding } from 'tributary:windows';
      export default sliding(2000, 1000, { init: () => [], add: (list, r) => [...list, r.value.id] });`;
    const out = await run('slide', code, true, [
      [{ key: 'k', value: { ts: t0 + 500, id: 1 } }, { key: 'k', value: { ts: t0 + 1500, id: 2 } }],
      [{ key: 'k', value: { ts: t0 + 5000, id: 3 } }],
    ], 3);
    expect(out.map((w: any) => `[${w.start - t0},${w.end - t0})=${w.value.join('+')}`).sort()).toEqual(['[-1000,1000)=1', '[0,2000)=1+2', '[1000,3000)=2']);
  });

  it('sessions on processing time close after the gap, merging what a record bridges', async () => {
    const code = `import { session } from 'tributary:windows';
      export default session(400, { time: 'processing', init: () => 0, add: (n) => n + 1, merge: (a, b) => a + b,
        emit: (s, ctx) => ctx.emit({ key: s.key, count: s.value, span: s.end - s.start }, { key: s.key }) });`;
    const out = await run('sessions', code, false, [[{ key: 'u1', value: {} }, { key: 'u2', value: {} }], [{ key: 'u1', value: {} }]], 2);
    expect(out.map((s: any) => `${s.key}=${s.count}`).sort()).toEqual(['u1=2', 'u2=1']);
    expect(out.find((s: any) => s.key === 'u1').span).toBeGreaterThanOrEqual(400);
  });

  it('a windowed join pairs both sides of a key within a window, deployed through the bundler', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tributary-join-'));
    const entry = join(dir, 'index.ts');
    writeFileSync(join(dir, 'sides.ts'), `export const side = (r: { value: { side: string } }) => (r.value.side === 'person' ? 'left' : 'right');\n`);
    writeFileSync(entry, `import { windowJoin } from 'tributary:windows';
      import { side } from './sides.ts';
      export default windowJoin(1000, { side, join: (people: any[], auctions: any[], w) => people.flatMap((p) => auctions.map((a) => ({ seller: w.key, name: p.name, item: a.item }))) });\n`);
    const { code } = await bundleFunction({ entry });
    expect(code).toContain('tributary:windows');
    const out = await run('join', code, true, [
      [
        { key: 's1', value: { ts: t0 + 10, side: 'person', name: 'Ann' } },
        { key: 's1', value: { ts: t0 + 20, side: 'auction', item: 'lamp' } },
        { key: 's1', value: { ts: t0 + 30, side: 'auction', item: 'desk' } },
        { key: 's2', value: { ts: t0 + 40, side: 'auction', item: 'rug' } },
        { key: 's1', value: { ts: t0 + 1100, side: 'auction', item: 'late-window' } },
      ],
      [{ key: 's3', value: { ts: t0 + 3000, side: 'person', name: 'Zed' } }],
    ], 2);
    expect(out.map((j: any) => `${j.seller}:${j.name}:${j.item}`).sort()).toEqual(['s1:Ann:desk', 's1:Ann:lamp']);
  });

  it('refuses imports of modules that do not exist', async () => {
    const put = await deploy(platform, 'nope', `import { x } from 'tributary:nope'; export default { process() {} };`);
    expect(put.status).toBe(400);
    expect(JSON.stringify(put.body)).toMatch(/tributary:windows/);
  });
});
