/**
 * A record whose batch crashes its host (here: it hoards memory until the host's memory guard
 * recycles the process) must not wedge its partition: the batch is narrowed to that record, which
 * is dead-lettered with ERR_HOST_CRASHED after the node's attempts, and the rest of the stream
 * proceeds. Crash-prone, hence a file of its own.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;

const HOARDER = `export default { async process(r) {
  if (r.value === 'crash') {
    globalThis.kept = [];
    for (let i = 0; i < 60; i++) kept.push(new Uint8Array(10 * 1024 * 1024).fill(i));
    await new Promise((res) => setTimeout(res, 20000));
  }
  return r.value;
} };`;

beforeAll(async () => {
  // A fresh host uses ~110 MiB; the hoarder pushes its host far past 400.
  platform = await withPlatform({ hosts: 2, warmSlots: 1, hostMemoryLimitMb: 400 });
  expect((await deploy(platform, 'hoarder', HOARDER, '?memoryLimitMb=1024&timeoutMs=30000')).status).toBe(201);
});
afterAll(() => platform.cleanup());

describe('a record that crashes its host', () => {
  for (const delivery of ['exactly-once', 'at-most-once'] as const) {
    it(`${delivery}: is dead-lettered with ERR_HOST_CRASHED after bounded tries; the others reach the sink`, async () => {
      const graph = `crash-${delivery}`;
      const spec = {
        nodes: [{ id: 'n', function: 'hoarder', replicas: { min: 1, max: 1 } }],
        sources: [{ id: 'in', type: 'http' }],
        sinks: [{ id: 'out', type: 'log' }],
        edges: [
          { from: 'in', to: 'n', delivery, partitionBy: 'key', partitions: 1 },
          { from: 'n', to: 'out', delivery },
        ],
      };
      const put = await platform.app.request(`/v1/graphs/${graph}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
      expect(put.status).toBe(201);
      const records = ['a', 'b', 'crash', 'c', 'd'].map((value) => ({ key: 'k', value }));
      const res = await platform.app.request(`/v1/graphs/${graph}/sources/in`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) });
      expect(res.status).toBe(202);
      const sink = async () => (await json(platform.app.request(`/v1/graphs/${graph}/sinks/out`))).records.map((r: { value: string }) => r.value);
      await waitFor(async () => (await sink()).length >= 4, 90_000, 'the four good records').catch(async (error) => {
        const { status } = await json(platform.app.request(`/v1/graphs/${graph}`));
        throw new Error(`${error.message}: sink ${JSON.stringify(await sink())}, node ${JSON.stringify(status.nodes.n)}`);
      });
      expect((await sink()).sort()).toEqual(['a', 'b', 'c', 'd']);
      const dead = await waitFor(async () => {
        const letters = (await json(platform.app.request(`/v1/graphs/${graph}/nodes/n/dead-letters`))).records;
        return letters.length >= 1 ? letters : null;
      }, 10_000, 'the dead letter');
      expect(dead).toHaveLength(1);
      expect(dead[0].value.record.value).toBe('crash');
      expect(dead[0].value.error).toMatch(/ERR_HOST_CRASHED/);
    }, 120_000);
  }
});
