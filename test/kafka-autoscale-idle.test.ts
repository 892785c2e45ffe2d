/**
 * A Kafka-fed graph scales to zero once idle, against the project's real broker: an exactly-once
 * Kafka edge leaves a transaction marker after the last record of every transaction, so the
 * committed offset stays short of the head by the markers; the lag must read 0 all the same, or
 * the node never counts as idle.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { createTopic, inputProducer, randomName, readCommitted } from './fixtures/kafka.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;

describe('Kafka-fed autoscaling', () => {
  let platform: TestPlatform;
  beforeAll(async () => {
    await ensureService('kafka');
    platform = await withPlatform({ hosts: 1, warmSlots: 2, autoscaleIntervalMs: 200, stableWindowMs: 1000 });
    expect((await deploy(platform, 'idle-echo', `export default { process(r, env, ctx) { ctx.emit(r.value, { key: r.key }); } };`)).status).toBe(201);
  }, SERVICE_START_TIMEOUT_MS);
  afterAll(() => platform.cleanup());

  it('scales every node to zero once idle, the markers left after the last transaction counted as no lag', async () => {
    const name = randomName('idle');
    const input = `${name}-in`;
    const output = `${name}-out`;
    await createTopic(input, 2);
    await createTopic(output, 1);
    const spec = {
      nodes: [
        { id: 'a', function: 'idle-echo', replicas: { min: 0, max: 2 } },
        { id: 'b', function: 'idle-echo', replicas: { min: 0, max: 2 } },
      ],
      sources: [{ id: 'in', type: 'kafka', topic: input }],
      sinks: [{ id: 'out', type: 'kafka', topic: output }],
      edges: [
        { from: 'in', to: 'a', delivery: 'exactly-once', commitIntervalMs: 20 },
        { from: 'a', to: 'b', delivery: 'exactly-once', transport: 'kafka', partitionBy: 'key', partitions: 2, commitIntervalMs: 20 },
        { from: 'b', to: 'out', delivery: 'exactly-once' },
      ],
      scaleToZeroAfterMs: 1000,
    };
    const res = await platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    expect(res.status, await res.clone().text()).toBe(201);
    const producer = await inputProducer();
    try {
      for (let i = 0; i < 3; i++) await producer.send(input, Array.from({ length: 10 }, (_, j) => ({ key: `k${j}`, value: String(i * 10 + j) })));
    } finally {
      await producer.close();
    }
    await waitFor(async () => (await readCommitted(output)).length >= 30, 60_000, 'all records at the sink');

    const idle = await waitFor(async () => {
      const { status } = await json(platform.app.request(`/v1/graphs/${name}`));
      return status.nodes.a.replicas === 0 && status.nodes.b.replicas === 0 ? status : null;
    }, 60_000, 'both nodes at zero');
    for (const node of ['a', 'b']) expect(idle.decisions).toContainEqual(expect.objectContaining({ node, action: 'zero', to: 0 }));
    // The Kafka edge between them: markers beyond the records, yet no lag.
    const edge = idle.edges.find((e: { from: string; to: string }) => e.from === 'a' && e.to === 'b');
    expect(edge.lag).toBe(0);
    expect(edge.committedOffset).toBeGreaterThan(30); // 30 records and at least one marker per partition
    expect(await readCommitted(output)).toHaveLength(30);
  }, 150_000);
});
