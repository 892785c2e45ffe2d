/**
 * The delivery contract, one suite run against both transports of a node's input edge: the
 * embedded log and Kafka (the project's real broker). For each delivery: poison records of every
 * kind are narrowed to the record responsible and dead-lettered with their error while the rest
 * of the batch proceeds; state updates are never lost when a batch is halved or when a node with
 * two input edges is redeployed mid-stream; event-time windows close once each, with exact counts,
 * across redeploys that change the replicas, and timers' state writes are never dropped; an
 * ingest no queue could take is refused with 413.
 * The state tests run again with S3 state (S3Proxy) on both transports.
 * The sink is the oracle: each test checks the exact multiset of outputs it must hold.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';
import { createTopic, inputProducer, randomName, readCommitted, type ReadRecord } from './fixtures/kafka.ts';
import { createBucket } from './fixtures/s3.ts';

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

/**
 * Counts the records of each key in state; emits `<key>:<count>`. Also counts them under
 * `pending:<key>`, flushed as `{key, flushed}` by a processing-time timer 1.5 s after the first (pending while partitions move).
 */
const FLUSHING_KEY_COUNTER = `export default {
  async process(r, env, ctx) {
    const stored = await env.STATE.get(r.key);
    const n = (stored === null ? 0 : Number(await stored.text())) + 1;
    await env.STATE.put(r.key, String(n));
    const pending = Number((await (await env.STATE.get('pending:' + r.key))?.text()) ?? 0) + 1;
    await env.STATE.put('pending:' + r.key, String(pending));
    if (ctx.timers.get(r.key) === null) ctx.timers.set(r.key, Date.now() + 1500);
    ctx.emit(r.key + ':' + n, { key: r.key });
  },
  async onTimer(timer, env, ctx) {
    ctx.emit({ key: timer.key, flushed: Number(await (await env.STATE.get('pending:' + timer.key)).text()) }, { key: timer.key });
    await env.STATE.delete('pending:' + timer.key);
  },
};`;

/** Counts the records of each key in state; emits `<key>:<count>`. */
const KEY_COUNTER = `export default { async process(r, env, ctx) {
  const stored = await env.STATE.get(r.key);
  const n = (stored === null ? 0 : Number(await stored.text())) + 1;
  await env.STATE.put(r.key, String(n));
  ctx.emit(r.key + ':' + n, { key: r.key });
} };`;

const POISONS = {
  'a record that throws on every attempt': { fn: `export default { process(r) { if (r.value === 'bad') throw new Error('bad record'); return r.value; } };`, error: /bad record/ },
  'a record that times out its batch': { fn: `export default { process(r) { if (r.value === 'bad') for (;;) {} return r.value; } };`, query: "?timeoutMs=100", error: /ERR_FN_TIMEOUT|ERR_FN_CPU_LIMIT/ },
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

/**
 * What differs between transports: how a graph over them is specified, fed and observed. The
 * oracle reads outside the engine: the embedded log's sink API, or kcat on Kafka.
 */
interface Harness {
  /** A graph `sources → n → out` on the transport, its input edges with `delivery`, each source with `sourceSpec`'s settings. */
  spec(graph: string, fn: string, delivery: Delivery, sources?: string[], sourceSpec?: object): Promise<unknown>;
  feed(platform: TestPlatform, graph: string, source: string, records: Array<{ key: string; value: string }>): Promise<void>;
  sink(platform: TestPlatform, graph: string): Promise<unknown[]>;
  deadLetters(platform: TestPlatform, graph: string): Promise<Array<{ error: string; record: { value: unknown } }>>;
}

const embedded: Harness = {
  async spec(_graph, fn, delivery, sources = ['in'], sourceSpec = {}) {
    return {
      nodes: [{ id: 'n', function: fn, replicas: { min: 1, max: 1 } }],
      sources: sources.map((id) => ({ id, type: 'http', ...sourceSpec })),
      sinks: [{ id: 'out', type: 'log' }],
      edges: [...sources.map((from) => ({ from, to: 'n', delivery, partitionBy: 'key', partitions: 2 })), { from: 'n', to: 'out', delivery }],
    };
  },
  async feed(platform, graph, source, records) {
    expect((await ingest(platform, graph, source, records)).status).toBe(202);
  },
  async sink(platform, graph) {
    return (await json(platform.app.request(`/v1/graphs/${graph}/sinks/out?from=0&limit=10000`))).records.map((r: { value: unknown }) => r.value);
  },
  async deadLetters(platform, graph) {
    return (await json(platform.app.request(`/v1/graphs/${graph}/nodes/n/dead-letters`))).records.map((r: { value: any }) => r.value);
  },
};

/** A value as Tributary wrote it to Kafka (connectors/kafka/codec.ts): JSON under its header, else a string. */
const decoded = (record: ReadRecord) => (record.headers['tributary-encoding'] === 'json' ? JSON.parse(record.value) : record.value);

const kafkaTopics = (graph: string) => ({ input: (source: string) => `${graph}-${source}`, output: `${graph}-out` });

const kafka: Harness = {
  async spec(graph, fn, delivery, sources = ['in'], sourceSpec = {}) {
    const topics = kafkaTopics(graph);
    for (const source of sources) await createTopic(topics.input(source), 2);
    const interval = delivery === 'at-most-once' ? {} : { commitIntervalMs: 20 };
    return {
      nodes: [{ id: 'n', function: fn, replicas: { min: 1, max: 1 } }],
      sources: sources.map((id) => ({ id, type: 'kafka', topic: topics.input(id), ...sourceSpec })),
      sinks: [{ id: 'out', type: 'kafka', topic: topics.output }],
      edges: [...sources.map((from) => ({ from, to: 'n', delivery, ...interval })), { from: 'n', to: 'out', delivery }],
    };
  },
  async feed(_platform, graph, source, records) {
    const producer = await inputProducer();
    try {
      await producer.send(kafkaTopics(graph).input(source), records);
    } finally {
      await producer.close();
    }
  },
  async sink(_platform, graph) {
    return (await readCommitted(kafkaTopics(graph).output).catch(() => [])).map(decoded);
  },
  async deadLetters(_platform, graph) {
    return (await readCommitted(`tributary.${graph}.n.dlq`).catch(() => [])).map(decoded);
  },
};

/** The contract on `transport`; with `state: 's3'` only its state tests, with the node's state on S3. */
function contract(transport: EdgeTransport, state: 'embedded' | 's3' = 'embedded') {
  const h = transport === 'kafka' ? kafka : embedded;
  const all = state === 'embedded';
  let platform: TestPlatform;
  let s3: (Awaited<ReturnType<typeof createBucket>> & { pollIntervalMs: number }) | undefined;
  beforeAll(async () => {
    s3 = state === 's3' ? { ...(await createBucket()), pollIntervalMs: 250 } : undefined;
    platform = await withPlatform({ hosts: 2, warmSlots: 1, maxLagRecords: 1000, s3 });
  });
  afterAll(() => platform.cleanup());

  async function launch(fn: string, delivery: Delivery, sources?: string[], sourceSpec?: object) {
    const graph = randomName('contract');
    const spec = (await h.spec(graph, fn, delivery, sources, sourceSpec)) as { nodes: Array<Record<string, unknown>> };
    const res = await putGraph(platform, graph, spec);
    if (res.status !== 201 && transport === 'kafka') {
      // Stored, but the broker did not answer in time (a busy shared broker): its edges retry on their own.
      expect((await json(res)).error.message).toMatch(/deployed/);
      await waitFor(async () => {
        const { status } = await json(platform.app.request(`/v1/graphs/${graph}`));
        return status.edges.every((e: { state?: string }) => e.state === undefined || e.state === 'running');
      }, 30_000, 'the Kafka edges to run');
    } else {
      expect(res.status, await res.clone().text()).toBe(201);
    }
    return { graph, spec };
  }

  for (const delivery of all ? DELIVERIES : []) {
    for (const [kind, poison] of Object.entries(POISONS)) {
      it(`${delivery}: ${kind} is dead-lettered with its error; the rest of its batch reaches the sink`, async () => {
        const fn = randomName('poison');
        expect((await deploy(platform, fn, poison.fn, 'query' in poison ? poison.query : '')).status).toBe(201);
        const { graph } = await launch(fn, delivery);
        const values = ['a', 'b', 'c', 'bad', 'd', 'e', 'f'];
        await h.feed(platform, graph, 'in', values.map((value) => ({ key: 'k', value })));
        await waitFor(async () => (await h.sink(platform, graph)).length >= 6, 30_000, 'the six good records');
        await waitFor(async () => (await h.deadLetters(platform, graph)).length >= 1, 20_000, 'the dead letter').catch(async (error) => {
          const { status } = await json(platform.app.request(`/v1/graphs/${graph}`));
          throw new Error(`${error.message}: node status ${JSON.stringify(status.nodes.n)}`);
        });
        await new Promise((r) => setTimeout(r, 200));
        expect((await h.sink(platform, graph)).sort()).toEqual(['a', 'b', 'c', 'd', 'e', 'f']);
        const dead = await h.deadLetters(platform, graph);
        expect(dead).toHaveLength(1);
        expect(dead[0].record.value).toBe('bad');
        expect(dead[0].error).toMatch(poison.error);
        await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
      }, 60_000);
    }
  }

  it('exactly-once: halving a batch around a timing-out record keeps the state of the sub-batches already done', async () => {
    const fn = randomName('counter');
    expect((await deploy(platform, fn, COUNTER, '?timeoutMs=100')).status).toBe(201);
    const { graph } = await launch(fn, 'exactly-once');
    const values = ['1', '2', '3', 'hang', '4', '5', '6', '7'];
    await h.feed(platform, graph, 'in', values.map((value) => ({ key: 'n', value })));
    await waitFor(async () => (await h.sink(platform, graph)).length >= 7, 30_000, 'seven counts');
    await new Promise((r) => setTimeout(r, 200));
    expect(((await h.sink(platform, graph)) as number[]).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(await h.deadLetters(platform, graph)).toHaveLength(1);
    // S3 state is in the bucket: no state row of the node in the log's own table.
    const rows = [0, 1].flatMap((p) => platform.log.stateSnapshot(`${graph}/n`, p));
    if (state === 's3') expect(rows).toEqual([]);
    else expect(rows.length).toBeGreaterThan(0);
    await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
  }, 60_000);

  it('exactly-once: a stateful node with two input edges loses no update across redeploys', async () => {
    const fn = randomName('counter');
    expect((await deploy(platform, fn, COUNTER)).status).toBe(201);
    const { graph, spec } = await launch(fn, 'exactly-once', ['left', 'right']);
    const total = 180;
    for (let i = 0; i < total; i += 20) {
      const batch = Array.from({ length: 10 }, (_, j) => ({ key: 'n', value: String(i + j) }));
      await Promise.all([h.feed(platform, graph, 'left', batch), h.feed(platform, graph, 'right', batch)]);
      if (i === 60 || i === 120) expect((await putGraph(platform, graph, spec)).status).toBe(201);
      await new Promise((r) => setTimeout(r, 10));
    }
    await waitFor(async () => (await h.sink(platform, graph)).length >= total, 40_000, `${total} counts`).catch(async (error) => {
      const { status } = await json(platform.app.request(`/v1/graphs/${graph}`));
      throw new Error(`${error.message}: sink has ${(await h.sink(platform, graph)).length}; node ${JSON.stringify(status.nodes.n)}; edges ${JSON.stringify(status.edges)}`);
    });
    await new Promise((r) => setTimeout(r, 500));
    const counts = ((await h.sink(platform, graph)) as number[]).sort((a, b) => a - b);
    expect(counts.join(","), "counts, sorted").toBe(Array.from({ length: total }, (_, i) => i + 1).join(","));
    await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
  }, 120_000);

  it('exactly-once: event-time windows close once each, with their exact counts, across redeploys that change the replicas', async () => {
    const fn = randomName('tumble');
    const code = `import { tumbling } from 'tributary:windows';
      export default tumbling(1000, { init: () => 0, add: (n) => n + 1 });`;
    expect((await deploy(platform, fn, code)).status).toBe(201);
    const { graph, spec } = await launch(fn, 'exactly-once', ['in'], { eventTime: { field: 't', idleTimeoutMs: 2000 } });
    const t0 = 1_700_000_000_000;
    const keys = Array.from({ length: 6 }, (_, i) => `k${i}`);
    const windows = 10;
    const expected: string[] = [];
    for (let w = 0; w < windows; w++) {
      // Window w holds (w % 3) + 1 records of each key, sent in event-time order as JSON strings.
      const records = keys.flatMap((key) => Array.from({ length: (w % 3) + 1 }, (_, j) => ({ key, value: JSON.stringify({ t: t0 + w * 1000 + j * 10 }) })));
      await h.feed(platform, graph, 'in', records);
      for (const key of keys) expected.push(`${key}@${w}=${(w % 3) + 1}`);
      // The node's partitions move to other isolates with their pending windows, and back.
      if (w === 3 || w === 6) {
        const replicas = w === 3 ? { min: 2, max: 2 } : { min: 1, max: 1 };
        expect((await putGraph(platform, graph, { ...spec, nodes: [{ ...spec.nodes[0], replicas }] })).status).toBe(201);
        await waitFor(async () => (await json(platform.app.request(`/v1/graphs/${graph}`))).status.nodes.n.replicas === replicas.min, 30_000, `${replicas.min} replicas`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    // Event time far past the last window closes it (the idle timeout covers a partition no key reached).
    await h.feed(platform, graph, 'in', keys.map((key) => ({ key, value: JSON.stringify({ t: t0 + 20_000 }) })));
    const shown = (got: unknown[]) => (got as Array<{ key: string; start: number; value: number }>).map((w) => `${w.key}@${(w.start - t0) / 1000}=${w.value}`).sort();
    await waitFor(async () => (await h.sink(platform, graph)).length >= expected.length, 60_000, `${expected.length} windows`).catch(async (error) => {
      const { status } = await json(platform.app.request(`/v1/graphs/${graph}`));
      throw new Error(`${error.message}: sink ${JSON.stringify(shown(await h.sink(platform, graph)))}; node ${JSON.stringify(status.nodes.n)}`);
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(shown(await h.sink(platform, graph))).toEqual(expected.sort());
    await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
  }, 120_000);

  it('at-least-once: a node whose timers fire loses no state update across a redeploy', async () => {
    const fn = randomName('ticking');
    // Counts every record; the first of each key sets a timer that emits a tick.
    const code = `export default {
      async process(r, env, ctx) {
        const stored = await env.STATE.get('n');
        const n = (stored === null ? 0 : Number(await stored.text())) + 1;
        await env.STATE.put('n', String(n));
        if (n === 1) ctx.timers.set('tick', Date.now() + 20);
        ctx.emit(n, { key: 'n' });
      },
      onTimer(timer, env, ctx) { ctx.emit('tick', { key: 'n' }); },
    };`;
    expect((await deploy(platform, fn, code)).status).toBe(201);
    const { graph, spec } = await launch(fn, 'at-least-once');
    const counts = async () => ((await h.sink(platform, graph)) as unknown[]).filter((v): v is number => typeof v === 'number');
    const round = async (from: number) => {
      await h.feed(platform, graph, 'in', Array.from({ length: 5 }, (_, i) => ({ key: 'n', value: String(from + i) })));
      await waitFor(async () => Math.max(0, ...(await counts())) >= from + 4, 30_000, `the count to reach ${from + 4}`).catch(async (error) => {
        throw new Error(`${error.message}: sink ${JSON.stringify(await h.sink(platform, graph))}`);
      });
    };
    await round(1);
    await waitFor(async () => (await h.sink(platform, graph)).includes('tick'), 30_000, 'the tick');
    await round(6);
    // Restarted: the state it resumes from must hold every update, the timer's batch's included.
    expect((await putGraph(platform, graph, spec)).status).toBe(201);
    await round(11);
    await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
  }, 120_000);

  if (transport === 'kafka' && state === 's3') {
    for (const sources of [['in'], ['left', 'right']]) {
      it(`exactly-once: two processes sharing the consumer groups and the bucket hand partitions over with their state and timers (${sources.length} input edges)`, async () => {
        const fn = randomName('keycounter');
        expect((await deploy(platform, fn, FLUSHING_KEY_COUNTER)).status).toBe(201);
        const { graph } = await launch(fn, 'exactly-once', sources);
        const keys = Array.from({ length: 8 }, (_, i) => `k${i}`);
        const sent = new Map(keys.map((k) => [k, 0]));
        const feedRound = async () => {
          for (const source of sources) {
            await h.feed(platform, graph, source, keys.flatMap((key) => Array.from({ length: 5 }, () => ({ key, value: 'x' }))));
            for (const key of keys) sent.set(key, sent.get(key)! + 5);
          }
          const total = [...sent.values()].reduce((a, b) => a + b, 0);
          await waitFor(async () => (await h.sink(platform, graph)).filter((v) => typeof v === 'string').length >= total, 60_000, `${total} counts`);
        };
        const flushed = async () => {
          const sums = new Map(keys.map((k) => [k, 0]));
          for (const v of (await h.sink(platform, graph)) as Array<{ key: string; flushed: number }>) if (typeof v === 'object') sums.set(v.key, sums.get(v.key)! + v.flushed);
          return sums;
        };
        /** The input partitions `p` owns, per input edge. */
        const owned = (p: TestPlatform) =>
          (p.graphs.runtime(graph)!.status() as { edges: Array<{ from: string; partitions?: Array<{ partition: number; owned?: boolean }> }> }).edges
            .filter((e) => sources.includes(e.from))
            .map((e) => (e.partitions ?? []).filter((q) => q.owned).map((q) => q.partition).join(','));
        await feedRound();
        // A second process (its own data directory) runs the graph from the bucket's deploy log and
        // joins the groups: one of the two partitions of each input moves to it (the same one for
        // every input: they share its state partition), and back when it stops.
        const other = await withPlatform({ hosts: 1, warmSlots: 1, s3 });
        try {
          await waitFor(() => other.graphs.runtime(graph) !== undefined, 30_000, 'the graph on the second process');
          await waitFor(() => owned(platform).every((list) => list.length === 1) && owned(other).every((list) => list.length === 1), 60_000, 'one partition of each input on each process');
          expect(new Set(owned(platform)).size, 'the inputs of the node line up').toBe(1);
          expect(new Set(owned(other)).size, 'the inputs of the node line up').toBe(1);
          await feedRound();
          await feedRound();
        } finally {
          await other.cleanup();
        }
        await feedRound();
        await new Promise((r) => setTimeout(r, 500));
        await waitFor(async () => [...(await flushed()).values()].reduce((a, b) => a + b, 0) >= [...sent.values()].reduce((a, b) => a + b, 0), 30_000, 'every count flushed');
        await new Promise((r) => setTimeout(r, 300));
        expect(Object.fromEntries(await flushed()), 'the flushes, per key: every record once').toEqual(Object.fromEntries(sent));
        const got = ((await h.sink(platform, graph)) as unknown[]).filter((v): v is string => typeof v === 'string');
        for (const key of keys) {
          const counts = got.filter((v) => v.startsWith(`${key}:`)).map((v) => Number(v.slice(key.length + 1))).sort((a, b) => a - b);
          expect(counts.join(','), `counts of ${key}`).toBe(Array.from({ length: sent.get(key)! }, (_, i) => i + 1).join(','));
        }
        await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
      }, 240_000);
    }
  }

  if (all) it("the autoscaler's signals count the arrivals on the input edges", async () => {
    const fn = randomName('echo');
    expect((await deploy(platform, fn, `export default { process(r) { return r.value; } };`)).status).toBe(201);
    const { graph } = await launch(fn, 'at-least-once');
    await h.feed(platform, graph, 'in', Array.from({ length: 20 }, (_, i) => ({ key: `k${i}`, value: String(i) })));
    await waitFor(async () => (await h.sink(platform, graph)).length >= 20, 30_000, 'the records');
    const signals = await waitFor(() => {
      const s = platform.graphs.runtime(graph)!.nodeSignals('n');
      return s.inputHeads >= 20 ? s : null;
    }, 10_000, 'the arrivals in nodeSignals');
    expect(signals.partitions).toBe(2);
    await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
  }, 60_000);

  if (transport === 'embedded' && all) {
    it('an ingest larger than the edge queue could ever take is refused with 413 ERR_INGEST_TOO_LARGE, not 429', async () => {
      const fn = randomName('echo');
      expect((await deploy(platform, fn, `export default { process(r) { return r.value; } };`)).status).toBe(201);
      const { graph } = await launch(fn, 'at-least-once');
      const res = await ingest(platform, graph, 'in', Array.from({ length: 1001 }, (_, i) => ({ value: i })));
      expect(res.status).toBe(413);
      expect((await json(res)).error.code).toBe('ERR_INGEST_TOO_LARGE');
      expect((await ingest(platform, graph, 'in', Array.from({ length: 1000 }, (_, i) => ({ value: i })))).status).toBe(202);
      await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' });
    });
  }
}

describe('delivery contract: embedded log', () => contract('embedded'));

describe('delivery contract: Kafka', () => {
  beforeAll(() => ensureService('kafka'), SERVICE_START_TIMEOUT_MS);
  contract('kafka');
});

describe('delivery contract: embedded log, S3 state', () => {
  beforeAll(() => ensureService('s3'), SERVICE_START_TIMEOUT_MS);
  contract('embedded', 's3');
});

describe('delivery contract: Kafka, S3 state', () => {
  beforeAll(async () => {
    await ensureService('kafka');
    await ensureService('s3');
  }, SERVICE_START_TIMEOUT_MS * 2);
  contract('kafka', 's3');
});
