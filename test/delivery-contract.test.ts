/**
 * The delivery contract, one suite run against both transports of a node's input edge: the
 * embedded log and Kafka (the project's real broker). For each delivery: poison records of every
 * kind are narrowed to the record responsible and dead-lettered with their error while the rest
 * of the batch proceeds; state updates are never lost when a batch is halved or when a node with
 * two input edges is redeployed mid-stream; an ingest no queue could take is refused with 413.
 * The sink is the oracle: each test checks the exact multiset of outputs it must hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';
import { randomName } from './fixtures/kafka.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;
type Delivery = 'exactly-once' | 'at-least-once' | 'at-most-once';
type EdgeTransport = 'embedded' | 'kafka';

const DELIVERIES: Delivery[] = ['exactly-once', 'at-least-once', 'at-most-once'];

/** Counts every record it sees under one key; emits the running count. */
const COUNTER = `export default { async process(r, env, ctx) {
  if (r.value === 'hang') for (;;) {}
  const stored = await env.STATE.get('n');
  const n = (stored === null ? 0 : Number(await stored.text())) + 1;
  await env.STATE.put('n', String(n));
  ctx.emit(n, { key: 'n' });
} };`;

const POISONS = {
  'a record that throws on every attempt': { fn: `export default { process(r) { if (r.value === 'bad') throw new Error('bad record'); return r.value; } };`, error: /bad record/ },
  'a record that times out its batch': { fn: `export default { process(r) { if (r.value === 'bad') for (;;) {} return r.value; } };`, query: '?timeoutMs=100', error: /ERR_FN_TIMEOUT/ },
  'a record whose emit cannot leave the isolate (a function)': { fn: `export default { process(r, env, ctx) { ctx.emit(r.value === 'bad' ? () => 1 : r.value); } };`, error: /could not be cloned|ERR_FN_BAD_OUTPUT/ },
  'a record whose emit nests 2000 deep': {
    fn: `export default { process(r, env, ctx) { if (r.value !== 'bad') return r.value; let v = {}; for (let i = 0; i < 2000; i++) v = { v }; ctx.emit(v); } };`,
    error: /ERR_TOO_DEEP|ERR_FN_BAD_OUTPUT|call stack/,
  },
  'a record that emits more than MAX_EMITS_PER_RECORD outputs': {
    fn: `export default { process(r, env, ctx) { if (r.value !== 'bad') return r.value; for (let i = 0; i < 10001; i++) ctx.emit(i); } };`,
    error: /ERR_QUOTA_EXCEEDED/,
  },
} as const;

function putGraph(platform: TestPlatform, name: string, spec: unknown) {
  return platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
}

function ingest(platform: TestPlatform, name: string, source: string, records: unknown[]) {
  return platform.app.request(`/v1/graphs/${name}/sources/${source}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) });
}

async function sink(platform: TestPlatform, name: string) {
  return (await json(platform.app.request(`/v1/graphs/${name}/sinks/out?from=0&limit=10000`))).records as Array<{ value: any }>;
}

async function deadLetters(platform: TestPlatform, name: string, node = 'n') {
  return (await json(platform.app.request(`/v1/graphs/${name}/nodes/${node}/dead-letters`))).records as Array<{ value: any }>;
}

/** An input edge on the transport under test; the sink edge stays on the embedded log (its reader is the oracle). */
function inputEdge(transport: EdgeTransport, from: string, delivery: Delivery) {
  const kafka = transport === 'kafka' ? { transport: 'kafka', ...(delivery === 'at-most-once' ? {} : { commitIntervalMs: 20 }) } : {};
  return { from, to: 'n', delivery, partitionBy: 'key', partitions: 2, ...kafka };
}

function pipe(fn: string, transport: EdgeTransport, delivery: Delivery, sources = ['in']) {
  return {
    nodes: [{ id: 'n', function: fn, replicas: { min: 1, max: 1 } }],
    sources: sources.map((id) => ({ id, type: 'http' })),
    sinks: [{ id: 'out', type: 'log' }],
    edges: [...sources.map((id) => inputEdge(transport, id, delivery)), { from: 'n', to: 'out', delivery }],
  };
}

function contract(transport: EdgeTransport) {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await withPlatform({ hosts: 2, warmSlots: 1, maxLagRecords: 1000 });
  });
  afterAll(() => platform.cleanup());

  for (const delivery of DELIVERIES) {
    for (const [kind, poison] of Object.entries(POISONS)) {
      it(`${delivery}: ${kind} is dead-lettered with its error; the rest of its batch reaches the sink`, async () => {
        const fn = randomName('poison');
        const graph = randomName('g');
        expect((await deploy(platform, fn, poison.fn, 'query' in poison ? poison.query : '')).status).toBe(201);
        expect((await putGraph(platform, graph, pipe(fn, transport, delivery))).status).toBe(201);
        const values = ['a', 'b', 'c', 'bad', 'd', 'e', 'f'];
        expect((await ingest(platform, graph, 'in', values.map((value) => ({ key: 'k', value })))).status).toBe(202);
        const out = await waitFor(async () => {
          const records = await sink(platform, graph);
          return records.length >= 6 ? records : null;
        }, 30_000, 'the six good records');
        await waitFor(async () => (await deadLetters(platform, graph)).length >= 1, 20_000, 'the dead letter').catch(async (error) => {
          const { status } = await json(platform.app.request(`/v1/graphs/${graph}`));
          throw new Error(`${error.message}: node status ${JSON.stringify(status.nodes.n)}`);
        });
        await new Promise((r) => setTimeout(r, 200));
        expect((await sink(platform, graph)).map((r) => r.value).sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
        expect(out.length).toBe(6);
        const dead = await deadLetters(platform, graph);
        expect(dead).toHaveLength(1);
        expect(dead[0].value.record.value).toBe('bad');
        expect(dead[0].value.error).toMatch(poison.error);
        await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
      }, 60_000);
    }
  }

  it('exactly-once: halving a batch around a timing-out record keeps the state of the sub-batches already done', async () => {
    const fn = randomName('counter');
    const graph = randomName('g');
    expect((await deploy(platform, fn, COUNTER, '?timeoutMs=100')).status).toBe(201);
    expect((await putGraph(platform, graph, pipe(fn, transport, 'exactly-once'))).status).toBe(201);
    const values = ['1', '2', '3', 'hang', '4', '5', '6', '7'];
    expect((await ingest(platform, graph, 'in', values.map((value) => ({ key: 'n', value })))).status).toBe(202);
    await waitFor(async () => (await sink(platform, graph)).length >= 7, 30_000, 'seven counts');
    await new Promise((r) => setTimeout(r, 200));
    expect((await sink(platform, graph)).map((r) => r.value).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await deadLetters(platform, graph)).toHaveLength(1);
    await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
  }, 60_000);

  it('exactly-once: a stateful node with two input edges loses no update across redeploys', async () => {
    const fn = randomName('counter');
    const graph = randomName('g');
    expect((await deploy(platform, fn, COUNTER)).status).toBe(201);
    const spec = pipe(fn, transport, 'exactly-once', ['left', 'right']);
    expect((await putGraph(platform, graph, spec)).status).toBe(201);
    const total = 180;
    for (let i = 0; i < total; i += 20) {
      const batch = Array.from({ length: 10 }, (_, j) => ({ key: 'n', value: String(i + j) }));
      const sent = await Promise.all([ingest(platform, graph, 'left', batch), ingest(platform, graph, 'right', batch)]);
      expect(sent.map((r) => r.status)).toEqual([202, 202]);
      if (i === 60 || i === 120) expect((await putGraph(platform, graph, spec)).status).toBe(201);
      await new Promise((r) => setTimeout(r, 10));
    }
    await waitFor(async () => (await sink(platform, graph)).length >= total, 60_000, `${total} counts`).catch(async (error) => {
      throw new Error(`${error.message}: sink has ${(await sink(platform, graph)).length}`);
    });
    await new Promise((r) => setTimeout(r, 200));
    const counts = (await sink(platform, graph)).map((r) => r.value as number).sort((a, b) => a - b);
    expect(counts).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
  }, 120_000);

  it('an ingest larger than the edge queue could ever take is refused with 413 ERR_INGEST_TOO_LARGE, not 429', async () => {
    const fn = randomName('echo');
    const graph = randomName('g');
    expect((await deploy(platform, fn, `export default { process(r) { return r.value; } };`)).status).toBe(201);
    expect((await putGraph(platform, graph, pipe(fn, transport, 'at-least-once'))).status).toBe(201);
    const res = await ingest(platform, graph, 'in', Array.from({ length: 1001 }, (_, i) => ({ value: i })));
    expect(res.status).toBe(413);
    expect((await json(res)).error.code).toBe('ERR_INGEST_TOO_LARGE');
    expect((await ingest(platform, graph, 'in', Array.from({ length: 1000 }, (_, i) => ({ value: i })))).status).toBe(202);
    await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
  });
}

describe('delivery contract: embedded log', () => contract('embedded'));

describe('delivery contract: Kafka', () => {
  beforeAll(() => ensureService('kafka'), SERVICE_START_TIMEOUT_MS);
  contract('kafka');
});
