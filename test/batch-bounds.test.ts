/**
 * A batch is bounded in bytes as well as in records (MAX_BATCH_INPUT_BYTES), on every path a
 * partition is read: the decoded tail, the SQLite rows behind it, and the HTTP sink reads. Records
 * larger than the bound still go, one per batch. Without the bound a partition that fell behind
 * on large records would be read 1,000 at a time: gigabytes in the control plane for one batch.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BATCH_INPUT_BYTES } from '../runtime/limits.ts';
import { openLog, records, type LogFixture } from './fixtures/log.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

const MiB = 1024 * 1024;
const TOPIC = 'g/e/a->b';

describe('log reads', () => {
  let f: LogFixture;
  afterEach(() => f?.cleanup());

  const bytesOf = (read: Array<{ value: unknown }>) => read.reduce((sum, r) => sum + (r.value as string).length, 0);

  for (const path of ['decoded tail', 'SQLite rows'] as const) {
    it(`stop at the byte bound, from the ${path}`, () => {
      f = openLog();
      f.log.ensureTopic(TOPIC, 1);
      // 40 batches of 5 records of 256 KiB: 50 MiB behind, 1,000 records would be asked for.
      for (let i = 0; i < 40; i++) f.log.append(TOPIC, 0, records(5, i * 5, () => 'v'.repeat(256 * 1024)));
      if (path === 'SQLite rows') f.reopen();
      const first = f.log.read(TOPIC, 0, 0, 1000);
      expect(first.length).toBeGreaterThan(1);
      expect(bytesOf(first)).toBeLessThanOrEqual(MAX_BATCH_INPUT_BYTES);
      expect(bytesOf(first)).toBeGreaterThan(MAX_BATCH_INPUT_BYTES / 2);
      // Reading on from where each read stopped returns every record once, in order.
      const offsets = first.map((r) => r.offset);
      for (let next = offsets.length; next < 200; ) {
        const read = f.log.read(TOPIC, 0, next, 1000);
        expect(bytesOf(read)).toBeLessThanOrEqual(MAX_BATCH_INPUT_BYTES);
        offsets.push(...read.map((r) => r.offset));
        next = read[read.length - 1].offset + 1;
      }
      expect(offsets).toEqual(Array.from({ length: 200 }, (_, i) => i));
    });
  }

  it('return a record larger than the bound alone, and start mid-batch', () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    f.log.append(TOPIC, 0, records(3, 0, () => 'x'.repeat(3 * MiB)));
    for (const reopen of [false, true]) {
      if (reopen) f.reopen();
      expect(f.log.read(TOPIC, 0, 0, 1000).map((r) => r.offset)).toEqual([0]);
      expect(f.log.read(TOPIC, 0, 1, 1000).map((r) => r.offset)).toEqual([1]);
      expect(f.log.read(TOPIC, 0, 2, 1000).map((r) => r.offset)).toEqual([2]);
      expect(f.log.read(TOPIC, 0, 2, 1000, 64 * MiB).map((r) => r.offset)).toEqual([2]);
      expect(f.log.read(TOPIC, 0, 0, 1000, 64 * MiB).map((r) => r.offset)).toEqual([0, 1, 2]);
    }
  });
});

describe('a graph behind on large records', () => {
  let platform: Awaited<ReturnType<typeof withPlatform>>;
  beforeAll(async () => {
    platform = await withPlatform();
  });
  afterAll(() => platform.cleanup());

  it('processes them a bounded batch at a time, losing and repeating none', async () => {
    // The first record holds the node for a second, so the other 23 (7 MiB each: 161 MiB, past
    // the host channel's largest message) are all waiting when the next batch is read.
    const put = await deploy(
      platform,
      'big-pass',
      `let first = true;
       export default { process(r, env, ctx) {
         if (first) { first = false; const until = Date.now() + 1000; while (Date.now() < until); }
         ctx.emit(r.value.length + ':' + r.value.slice(0, 3), { key: r.key });
       } };`,
      '?timeoutMs=10000',
    );
    expect(put.status, JSON.stringify(put.body)).toBe(201);
    const spec = {
      nodes: [{ id: 'n', function: 'big-pass', replicas: { min: 1, max: 1 } }],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'n', delivery: 'exactly-once', partitions: 1 },
        { from: 'n', to: 'out', delivery: 'exactly-once' },
      ],
    };
    const graph = await platform.app.request('/v1/graphs/big', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    expect(graph.status, await graph.clone().text()).toBe(201);
    const count = 24;
    for (let i = 0; i < count; i++) {
      const value = `${String(i).padStart(3, '0')}${'z'.repeat(7 * MiB)}`;
      const ingest = await platform.app.request('/v1/graphs/big/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify([{ key: `k${i}`, value }]) });
      expect(ingest.status).toBe(202);
    }
    const sink = async () => (await json(platform.app.request('/v1/graphs/big/sinks/out?from=0&limit=1000'))).records as Array<{ value: string }>;
    await waitFor(async () => (await sink()).length >= count, 60_000, `${count} sink records`);
    expect((await sink()).map((r) => r.value)).toEqual(Array.from({ length: count }, (_, i) => `${7 * MiB + 3}:${String(i).padStart(3, '0')}`));
    const node = (await json(platform.app.request('/v1/graphs/big'))).status.nodes.n;
    expect(node.failed).toBe(0);
    // One record per batch: each is over the byte bound alone.
    expect(node.batches).toBe(count);
    expect((await json(platform.app.request('/v1/graphs/big/nodes/n/dead-letters'))).records).toEqual([]);
  });

  it('pages HTTP sink reads by bytes', async () => {
    // The sink above holds 24 short values; a log sink of large ones is read a bounded page at a time.
    const put = await deploy(platform, 'big-echo', 'export default { process(r, env, ctx) { ctx.emit(r.value, { key: r.key }); } };');
    expect(put.status).toBe(201);
    const spec = {
      nodes: [{ id: 'n', function: 'big-echo', replicas: { min: 1, max: 1 } }],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'n', delivery: 'exactly-once', partitions: 1 },
        { from: 'n', to: 'out', delivery: 'exactly-once' },
      ],
    };
    expect((await platform.app.request('/v1/graphs/echo', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) })).status).toBe(201);
    for (let i = 0; i < 6; i++) {
      const body = JSON.stringify([{ key: `k${i}`, value: 'e'.repeat(3 * MiB) }]);
      expect((await platform.app.request('/v1/graphs/echo/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body })).status).toBe(202);
    }
    const page = async (from: number) => (await json(platform.app.request(`/v1/graphs/echo/sinks/out?from=${from}&limit=1000`))).records as Array<{ offset: number }>;
    await waitFor(async () => (await json(platform.app.request('/v1/graphs/echo'))).status.nodes.n.processed >= 6, 30_000, '6 records processed');
    const offsets: number[] = [];
    for (let from = 0; from < 6; ) {
      const records = await page(from);
      expect(records.length).toBe(1);
      offsets.push(...records.map((r) => r.offset));
      from = records[records.length - 1].offset + 1;
    }
    expect(offsets).toEqual([0, 1, 2, 3, 4, 5]);
  });
});
