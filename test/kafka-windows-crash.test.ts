/**
 * Event-time windows on Kafka, exactly-once, while the test kill -9s `tributary serve` mid-stream:
 * a Kafka source read with event time from its JSON values, `tributary:windows` tumbling counts
 * per key, a Kafka sink read back with kcat (read_committed, an independent client). Every
 * (key, window) must appear exactly once, with its exact count: the windows' state, their timers
 * and the partitions' watermarks commit with the Kafka transactions. Beside it, a node flushing
 * per-key counts on processing-time timers (its timers fire in transactions that read no input,
 * recovered by their token): per key, the flushed counts must add up to the records sent.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { BROKERS, createTopic, inputProducer, randomName, readCommitted } from './fixtures/kafka.ts';
import { tempDir, waitFor } from './fixtures/platform.ts';
import { ServerProcess } from './fixtures/server-process.ts';

const PARTITIONS = 4;
const KEYS = Array.from({ length: 8 }, (_, i) => `user${i}`);
const WINDOWS = 24;
const WINDOW_MS = 1000;
const KILLS = 3;
const T0 = 1_700_000_000_000;

const TUMBLING = `import { tumbling } from 'tributary:windows';
export default tumbling(${WINDOW_MS}, { init: () => 0, add: (n) => n + 1 });`;

/** Counts records per key; a processing-time timer flushes the count 100 ms after the first. */
const FLUSH = `export default {
  async process(r, env, ctx) {
    const n = Number((await (await env.STATE.get(r.key))?.text()) ?? 0) + 1;
    await env.STATE.put(r.key, String(n));
    if (ctx.timers.get(r.key) === null) ctx.timers.set(r.key, Date.now() + 100);
  },
  async onTimer(timer, env, ctx) {
    ctx.emit({ key: timer.key, count: Number(await (await env.STATE.get(timer.key)).text()) }, { key: timer.key });
    await env.STATE.delete(timer.key);
  },
};`;

/** Window w holds 1 + (w + key index) % 4 records of each key. */
const countOf = (w: number, k: number) => 1 + ((w + k) % 4);

async function put(server: ServerProcess, path: string, body: string, type: string) {
  const res = await fetch(`${server.url}${path}`, { method: 'PUT', headers: { 'content-type': type }, body });
  expect(res.status, await res.clone().text()).toBe(201);
}

describe('Kafka event-time windows under kill -9', () => {
  const server = new ServerProcess(tempDir('tributary-kafka-windows-'), ['--hosts', '1', '--kafka-brokers', BROKERS.join(',')]);
  beforeAll(() => ensureService('kafka'), SERVICE_START_TIMEOUT_MS);
  afterAll(() => server.stop(), 60_000);

  it('each window closes once, with its exact count, and timer flushes count every record once', async () => {
    const [input, output, flushed, graph] = [randomName('clicks'), randomName('windows'), randomName('flushed'), randomName('kwin')];
    await createTopic(input, PARTITIONS);
    await server.start();
    await put(server, '/v1/functions/tumbling', TUMBLING, 'application/javascript');
    await put(server, '/v1/functions/flush', FLUSH, 'application/javascript');
    await put(server, `/v1/graphs/${graph}`, JSON.stringify({
      nodes: [{ id: 'w', function: 'tumbling', replicas: { min: 1, max: 1 } }, { id: 'f', function: 'flush', replicas: { min: 1, max: 1 } }],
      sources: [{ id: 'clicks', type: 'kafka', topic: input, eventTime: { field: 't', idleTimeoutMs: 3000 } }],
      sinks: [{ id: 'out', type: 'kafka', topic: output }, { id: 'flushed', type: 'kafka', topic: flushed }],
      edges: [
        { from: 'clicks', to: 'w', delivery: 'exactly-once', commitIntervalMs: 20 },
        { from: 'w', to: 'out', delivery: 'exactly-once' },
        { from: 'clicks', to: 'f', delivery: 'exactly-once', commitIntervalMs: 20 },
        { from: 'f', to: 'flushed', delivery: 'exactly-once' },
      ],
    }), 'application/json');

    const producer = await inputProducer();
    const expected: string[] = [];
    let kills = 0;
    try {
      for (let w = 0; w < WINDOWS; w++) {
        const records = KEYS.flatMap((key, k) => Array.from({ length: countOf(w, k) }, (_, j) => ({ key, value: JSON.stringify({ t: T0 + w * WINDOW_MS + j * 7 }) })));
        await producer.send(input, records);
        KEYS.forEach((key, k) => expected.push(`${key}@${w}=${countOf(w, k)}`));
        if (w % Math.floor(WINDOWS / (KILLS + 1)) === Math.floor(WINDOWS / (KILLS + 1)) - 1 && kills < KILLS) {
          // Mid-stream: transactions of records and of timers are open or committing.
          await new Promise((r) => setTimeout(r, 100 + Math.random() * 300));
          await server.kill9();
          kills++;
          await server.start();
        } else {
          await new Promise((r) => setTimeout(r, 150));
        }
      }
      // Event time far past the last window, on every partition, closes it.
      await producer.send(input, Array.from({ length: PARTITIONS }, (_, partition) => ({ key: 'closer', value: JSON.stringify({ t: T0 + (WINDOWS + 10) * WINDOW_MS }), partition })));
    } finally {
      await producer.close();
    }
    expect(kills).toBe(KILLS);

    const shown = (records: Array<{ value: string }>) =>
      records.map((r) => JSON.parse(r.value) as { key: string; start: number; value: number }).map((w) => `${w.key}@${(w.start - T0) / WINDOW_MS}=${w.value}`).sort();
    let seen: string[] = [];
    await waitFor(async () => {
      seen = shown(await readCommitted(output).catch(() => []));
      return seen.length >= expected.length;
    }, 90_000, `${expected.length} windows`).catch((error: Error) => {
      const missing = expected.filter((e) => !seen.includes(e));
      throw new Error(`${error.message}: ${seen.length} seen; missing ${JSON.stringify(missing.slice(0, 20))}\n${server.output.slice(-3000)}`);
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(shown(await readCommitted(output))).toEqual(expected.sort());

    const sent = new Map(KEYS.map((key, k) => [key, Array.from({ length: WINDOWS }, (_, w) => countOf(w, k)).reduce((a, b) => a + b, 0)]));
    sent.set('closer', PARTITIONS);
    const sums = async () => {
      const totals = new Map<string, number>();
      for (const r of await readCommitted(flushed).catch(() => [])) {
        const { key, count } = JSON.parse(r.value) as { key: string; count: number };
        totals.set(key, (totals.get(key) ?? 0) + count);
      }
      return totals;
    };
    await waitFor(async () => {
      const totals = await sums();
      return [...sent].every(([key, n]) => (totals.get(key) ?? 0) >= n);
    }, 30_000, 'every count flushed').catch(async (error: Error) => {
      throw new Error(`${error.message}: ${JSON.stringify([...(await sums())])}`);
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(Object.fromEntries(await sums())).toEqual(Object.fromEntries(sent));
  }, 240_000);
});
