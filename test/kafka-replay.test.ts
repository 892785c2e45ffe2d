/**
 * Replay of a Kafka source against the project's real broker (docs/replay.md): a seek by time
 * and by offset moves the node's consumer group (the graph paused, the group empty), forgets the
 * commit ledger's applied offsets and, with resetState, the node's state; an exactly-once keyed
 * count into a Kafka sink then reprocesses exactly what the seek named, once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { createTopic, inputProducer, randomName, readCommitted } from './fixtures/kafka.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';
import { functionSource } from './fixtures/wordcount.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;

/** The keyed count of WordCount's second stage: emits {word, count} per record, count in env.STATE. */
const COUNT = functionSource('wordcount-count');

let platform: TestPlatform;
beforeAll(() => ensureService('kafka'), SERVICE_START_TIMEOUT_MS);
beforeAll(async () => {
  platform = await withPlatform({ hosts: 1, warmSlots: 1 });
  expect((await deploy(platform, 'kcount', COUNT)).status).toBe(201);
});
afterAll(() => platform.cleanup());

function seek(graph: string, body: unknown) {
  return platform.app.request(`/v1/graphs/${graph}/sources/in/seek`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

const words = (n: number, salt: number) => Array.from({ length: n }, (_, i) => ({ key: `w${(i * 3 + salt) % 4}`, value: String(i) }));
const tally = (records: Array<{ key: string }>) => records.reduce<Record<string, number>>((m, r) => ((m[r.key] = (m[r.key] ?? 0) + 1), m), {});
/** The highest count per word among outputs. */
const finalCounts = (outputs: Array<{ word: string; count: number }>) => outputs.reduce<Record<string, number>>((m, o) => ((m[o.word] = Math.max(m[o.word] ?? 0, o.count)), m), {});

describe('seek on a Kafka source', () => {
  it('by time and by offset, with and without resetState; out of range refused', async () => {
    const graph = randomName('kreplay');
    const input = randomName('kreplay-in');
    const output = randomName('kreplay-out');
    await createTopic(input, 2);
    const put = await platform.app.request(`/v1/graphs/${graph}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        nodes: [{ id: 'count', function: 'kcount' }],
        sources: [{ id: 'in', type: 'kafka', topic: input }],
        sinks: [{ id: 'out', type: 'kafka', topic: output }],
        edges: [
          { from: 'in', to: 'count', delivery: 'exactly-once', commitIntervalMs: 20 },
          { from: 'count', to: 'out', delivery: 'exactly-once' },
        ],
      }),
    });
    expect(put.status, await put.clone().text()).toBe(201);
    const outputs = async (n: number) =>
      waitFor(async () => {
        const records = await readCommitted(output);
        return records.length >= n ? records.map((r) => JSON.parse(r.value) as { word: string; count: number }) : null;
      }, 30_000, `${n} outputs`);

    const producer = await inputProducer();
    const early = words(10, 0);
    const late = words(6, 1);
    let since = 0;
    try {
      await producer.send(input, early);
      await outputs(10);
      await new Promise((r) => setTimeout(r, 50));
      since = Date.now();
      await new Promise((r) => setTimeout(r, 50));
      await producer.send(input, late);
      await outputs(16);
    } finally {
      await producer.close();
    }

    // By time, resetting the count: only the late records are counted again, from zero.
    let res = await seek(graph, { timestamp: since, resetState: true });
    let body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.edges[0]).toMatchObject({ node: 'count', topic: input, transport: 'kafka' });
    expect(body.edges[0].partitions.reduce((n: number, p: any) => n + (p.from - p.to), 0)).toBe(6);
    let all = await outputs(22);
    await new Promise((r) => setTimeout(r, 500));
    expect(await readCommitted(output)).toHaveLength(22);
    expect(finalCounts(all.slice(16))).toEqual(tally(late));

    // By offset 0, resetting: everything again, the first pass's results once more.
    res = await seek(graph, { offset: 0, resetState: true });
    body = await json(res);
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.edges[0].partitions.map((p: any) => p.to)).toEqual([0, 0]);
    expect(body.sinks.out.heads).toHaveLength(1); // the sink topic's end offsets when the graph paused
    all = await outputs(38);
    await new Promise((r) => setTimeout(r, 500));
    expect(await readCommitted(output)).toHaveLength(38);
    const firstPass = all.slice(0, 16).map((o) => `${o.word}:${o.count}`).sort();
    expect(all.slice(22).map((o) => `${o.word}:${o.count}`).sort()).toEqual(firstPass);

    // Without resetState the count goes on: the replayed records are counted on top (documented).
    res = await seek(graph, { offset: 0 });
    expect(res.status, await res.clone().text()).toBe(200);
    all = await outputs(54);
    const doubled = Object.fromEntries(Object.entries(tally([...early, ...late])).map(([k, n]) => [k, 2 * n]));
    expect(finalCounts(all.slice(38))).toEqual(doubled);

    // Past the high watermark: refused, the range said.
    res = await seek(graph, { offset: { '0': 10_000 } });
    body = await json(res);
    expect(res.status).toBe(400);
    expect(body.error.code).toBe('ERR_OFFSET_OUT_OF_RANGE');
    expect(body.error.partitions[0]).toMatchObject({ node: 'count', partition: 0, offset: 10_000, earliest: 0 });
    expect((await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' })).status).toBe(204);
  }, 120_000);

  it('a group another process still consumes is refused with ERR_SEEK_CONFLICT; the graph runs on', async () => {
    const graph = randomName('kconflict');
    const input = randomName('kconflict-in');
    await createTopic(input, 2);
    const spec = JSON.stringify({
      nodes: [{ id: 'count', function: 'kcount' }],
      sources: [{ id: 'in', type: 'kafka', topic: input }],
      sinks: [{ id: 'out', type: 'kafka', topic: randomName('kconflict-out') }],
      edges: [
        { from: 'in', to: 'count', delivery: 'exactly-once', commitIntervalMs: 20 },
        { from: 'count', to: 'out', delivery: 'exactly-once' },
      ],
    });
    // A second platform (another process, as far as the brokers see) runs the same graph: a member of the same group.
    const other = await withPlatform({ hosts: 1, warmSlots: 1 });
    try {
      expect((await deploy(other, 'kcount', COUNT)).status).toBe(201);
      for (const p of [platform, other]) {
        const res = await p.app.request(`/v1/graphs/${graph}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: spec });
        expect(res.status, await res.clone().text()).toBe(201);
      }
      await waitFor(async () => (await json(platform.app.request(`/v1/graphs/${graph}`))).status.state === 'running', 30_000, 'running');
      const res = await seek(graph, { offset: 0 });
      const body = await json(res);
      expect(res.status, JSON.stringify(body)).toBe(409);
      expect(body.error.code).toBe('ERR_SEEK_CONFLICT');
      expect(body.error.message).toMatch(/another process consumes it/);
      // Resumed: the graph is back (a new runtime) and consumes.
      await waitFor(async () => (await json(platform.app.request(`/v1/graphs/${graph}`))).status.state === 'running', 30_000, 'running again');
    } finally {
      await other.cleanup();
    }
    expect((await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' })).status).toBe(204);
  }, 120_000);
});
