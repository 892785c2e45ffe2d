/**
 * Kafka sources, sinks and edges in one platform against the project's real broker: validation
 * of Kafka specs, the unreachable-broker path (deploy answers ERR_KAFKA_UNAVAILABLE, the edge is
 * degraded and retries with backoff), dead letters on a Kafka topic while the stream continues,
 * the replacement read_committed filter, and the "auto" commit interval's prediction.
 */
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { filterAbortedMessages } from '../connectors/kafka/kafkajs-patches.ts';
import '../connectors/kafka/kafkajs-broker.ts';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { CommitInterval } from '../scheduler/kafka/commit-interval.ts';
import { createTopic, inputProducer, randomName, readCommitted } from './fixtures/kafka.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;

const PARSE = `export default {
  process(record, env, ctx) {
    const order = JSON.parse(record.value); // throws on a record it cannot decode
    ctx.emit({ id: order.id, total: order.qty * order.price }, { key: String(order.id) });
  },
};`;

function putGraph(platform: TestPlatform, name: string, spec: unknown) {
  return platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
}

const node = (id: string) => ({ id, function: 'parse' });

describe('Kafka graph specs', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    platform = await withPlatform({ hosts: 1, warmSlots: 1 });
    expect((await deploy(platform, 'parse', PARSE)).status).toBe(201);
  });
  afterAll(() => platform.cleanup());

  it('reports every Kafka problem with its JSON path', async () => {
    const res = await putGraph(platform, 'bad', {
      nodes: [node('a'), node('b'), node('c')],
      sources: [
        { id: 'in', type: 'kafka', topic: 'bad topic!', group: 'g' },
        { id: 'web', type: 'http' },
      ],
      sinks: [
        { id: 'out', type: 'kafka', topic: 'out', brokers: ['10.0.0.1:9092'] },
        { id: 'log', type: 'log' },
      ],
      edges: [
        { from: 'in', to: 'a', delivery: 'exactly-once', commitIntervalMs: 'auto' },
        { from: 'in', to: 'c', delivery: 'at-most-once', commitIntervalMs: 10 },
        { from: 'a', to: 'out', delivery: 'exactly-once' },
        { from: 'web', to: 'b', delivery: 'at-least-once', transport: 'kafka' },
        { from: 'b', to: 'log', delivery: 'at-least-once', commitIntervalMs: 5 },
        { from: 'c', to: 'log', delivery: 'at-most-once', transport: 'carrier-pigeon' },
      ],
    });
    expect(res.status).toBe(400);
    const { error } = await json(res);
    expect(error.code).toBe('ERR_GRAPH_INVALID');
    const byPath = Object.fromEntries((error.problems as Array<{ path: string; message: string }>).map((p) => [p.path, p.message]));
    expect(byPath['$.sources[0].topic']).toMatch(/Kafka topic name/);
    expect(byPath['$.edges[0].commitIntervalMs']).toMatch(/slo/);
    expect(byPath['$.edges[1].commitIntervalMs']).toMatch(/at-most-once/);
    expect(byPath['$.edges[3].transport']).toMatch(/http source/);
    expect(byPath['$.edges[4].commitIntervalMs']).toMatch(/Kafka edges only/);
    expect(byPath['$.edges[5].transport']).toMatch(/unknown transport/);
    expect(byPath['$.sources[id=in].group']).toMatch(/feeds several edges/);
    expect(byPath['$.nodes[id=a]']).toMatch(/exactly-once .* another Kafka cluster/);
    expect(byPath['$.nodes[id=c]']).toMatch(/mixes transports/);
  });

  it('answers ERR_KAFKA_UNAVAILABLE for unreachable brokers, shows the edge degraded and backs off', async () => {
    const dead = ['127.0.0.1:1'];
    const spec = {
      nodes: [node('parse')],
      sources: [{ id: 'in', type: 'kafka', topic: 'orders', brokers: dead }],
      sinks: [{ id: 'out', type: 'kafka', topic: 'totals', brokers: dead }],
      edges: [
        { from: 'in', to: 'parse', delivery: 'exactly-once' },
        { from: 'parse', to: 'out', delivery: 'exactly-once' },
      ],
    };
    const res = await putGraph(platform, 'unreachable', spec);
    expect(res.status).toBe(503);
    const { error } = await json(res);
    expect(error.code).toBe('ERR_KAFKA_UNAVAILABLE');
    expect(error.message).toMatch(/deployed .* degraded/);
    expect(error.graph).toMatchObject({ name: 'unreachable', version: 1 });
    const status = async () => (await json(platform.app.request('/v1/graphs/unreachable'))).status.edges[0];
    const first = await status();
    expect(first).toMatchObject({ transport: 'kafka', state: 'degraded', topic: 'orders' });
    expect(first.reason).toMatch(/^ERR_KAFKA_UNAVAILABLE: .*127\.0\.0\.1:1/);
    // Retries back off: the attempt count grows slowly, with a growing wait.
    const later = await waitFor(async () => {
      const edge = await status();
      return edge.attempts >= 3 ? edge : null;
    }, 15_000, 'three attempts');
    expect(later.retryInMs).toBeGreaterThan(0);
    expect(later.state).toBe('degraded');
    // Deleted; its dead-letter topic and group stay owed to brokers that never answered (retried in the background).
    const deleted = await platform.app.request('/v1/graphs/unreachable', { method: 'DELETE' });
    expect(deleted.status).toBe(202);
    expect(await json(deleted)).toMatchObject({ deleted: true, kafka: { state: 'pending', topics: ['tributary.unreachable.parse.dlq'] } });
  }, 30_000);
});

describe('Kafka dead letters', () => {
  let platform: TestPlatform;
  beforeAll(() => ensureService('kafka'), SERVICE_START_TIMEOUT_MS);
  beforeAll(async () => {
    platform = await withPlatform({ hosts: 1, warmSlots: 1 });
    expect((await deploy(platform, 'parse', PARSE)).status).toBe(201);
  });
  afterAll(() => platform.cleanup());

  for (const delivery of ['exactly-once', 'at-least-once', 'at-most-once'] as const) {
    it(`${delivery}: a record the function cannot decode goes to the dead-letter topic; the stream continues`, async () => {
      const graph = randomName('orders');
      const input = randomName('orders-in');
      const output = randomName('orders-out');
      await createTopic(input, 2);
      const res = await putGraph(platform, graph, {
        nodes: [node('parse')],
        sources: [{ id: 'in', type: 'kafka', topic: input }],
        sinks: [{ id: 'out', type: 'kafka', topic: output }],
        edges: [
          { from: 'in', to: 'parse', delivery, ...(delivery === 'at-most-once' ? {} : { commitIntervalMs: 20 }) },
          { from: 'parse', to: 'out', delivery },
        ],
      });
      expect(res.status, await res.clone().text()).toBe(201);
      const producer = await inputProducer();
      await producer.send(input, [
        { key: '1', value: JSON.stringify({ id: 1, qty: 2, price: 5 }), partition: 0 },
        { key: '2', value: '{"id": 2, "qty": oops', partition: 0 },
        { key: '3', value: JSON.stringify({ id: 3, qty: 1, price: 7 }), partition: 0 },
        { key: '4', value: JSON.stringify({ id: 4, qty: 3, price: 1 }), partition: 1 },
      ]);
      await producer.close();
      const dlqTopic = `tributary.${graph}.parse.dlq`;
      const totals = await waitFor(async () => {
        const records = await readCommitted(output);
        return records.length >= 3 ? records : null;
      }, 30_000, 'three totals');
      expect(totals.map((r) => JSON.parse(r.value)).sort((a, b) => a.id - b.id)).toEqual([
        { id: 1, total: 10 },
        { id: 3, total: 7 },
        { id: 4, total: 3 },
      ]);
      expect(totals[0].headers['tributary-encoding']).toBe('json');
      const dead = await waitFor(async () => {
        const records = await readCommitted(dlqTopic);
        return records.length >= 1 ? records : null;
      }, 10_000, 'the dead letter');
      expect(dead).toHaveLength(1);
      const letter = JSON.parse(dead[0].value);
      expect(letter.error).toMatch(/JSON/);
      expect(letter.record).toMatchObject({ key: '2', value: '{"id": 2, "qty": oops' });
      expect(letter.source).toMatchObject({ topic: input, partition: 0, offset: 1 });
      // The HTTP API reads the same topic.
      const api = await json(platform.app.request(`/v1/graphs/${graph}/nodes/parse/dead-letters`));
      expect(api.records).toHaveLength(1);
      expect(api.records[0].value.record.key).toBe('2');
      const status = await waitFor(async () => {
        const s = (await json(platform.app.request(`/v1/graphs/${graph}`))).status;
        // On Kafka, deadLetters is the topic's end offset: transaction markers count too.
        return s.nodes.parse.deadLetters >= 1 && s.nodes.parse.failed === 1 ? s : null;
      }, 10_000, 'the status to count the dead letter');
      expect(status.edges[0]).toMatchObject({ transport: 'kafka', state: 'running', delivery });
      expect((await platform.app.request(`/v1/graphs/${graph}`, { method: 'DELETE' })).status).toBe(204);
    }, 60_000);
  }
});

describe('kafkajs read_committed filter replacement', () => {
  const message = (offset: number, producerId: string) => ({ offset: String(offset), key: Buffer.from('k'), batchContext: { producerId, inTransaction: true } });

  it('drops records of every aborted transaction that began before the fetch', () => {
    const aborted = [
      { producerId: '2', firstOffset: '6' },
      { producerId: '1', firstOffset: '5' },
    ];
    const kept = filterAbortedMessages({ messages: [message(10, '1'), message(11, '2'), message(12, '3')], abortedTransactions: aborted });
    expect(kept.map((m) => m.offset)).toEqual(['12']);
  });

  it('is the filter kafkajs uses', () => {
    const Batch = createRequire(import.meta.url)('kafkajs/src/consumer/batch.js');
    const batch = new Batch('t', '10', {
      partition: 0,
      highWatermark: '20',
      abortedTransactions: [{ producerId: '1', firstOffset: '5' }, { producerId: '2', firstOffset: '6' }],
      messages: [message(10, '1'), message(11, '2'), message(12, '3')],
    });
    expect(batch.messages.map((m: { offset: string }) => m.offset)).toEqual(['12']);
  });
});

describe('commit interval', () => {
  it('"auto" picks the largest interval whose predicted p99 fits the SLO share of a hop', () => {
    const auto = new CommitInterval({ setting: 'auto', sloLatencyMs: 100, hops: 2 });
    expect(auto.ms).toBe(25); // half the 50 ms share before any measurement
    for (let i = 0; i < 100; i++) auto.observe(i < 98 ? 4 : 12);
    expect(auto.ms).toBe(50 - 12);
    for (let i = 0; i < 300; i++) auto.observe(80);
    expect(auto.ms).toBe(1); // the SLO cannot be met: commit as often as possible
    const slow = new CommitInterval({ setting: 'auto', sloLatencyMs: 10_000, hops: 1 });
    slow.observe(1);
    expect(slow.ms).toBe(1000);
    expect(new CommitInterval({ setting: 7, hops: 1 }).ms).toBe(7);
    expect(new CommitInterval({ setting: undefined, hops: 1 }).ms).toBe(100);
  });
});
