/** GET /v1/graphs/{name} lists the autoscaler's last replica changes (`status.decisions`), newest first, with their reasons. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DECISION_HISTORY } from '../scheduler/autoscaler/autoscaler.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;

beforeAll(async () => {
  platform = await withPlatform({ autoscaleIntervalMs: 200, stableWindowMs: 1000 });
  // ~1 ms of CPU per record: a node whose load one replica cannot carry at ~1500 records/s.
  await deploy(platform, 'burn', `export default { process(r) { const end = Date.now() + 1; while (Date.now() < end) {} return r.value; } };`, '?timeoutMs=10000');
});
afterAll(() => platform.cleanup());

describe('status.decisions', () => {
  it('is empty before any change, then records a scale-up with from, to and reason', async () => {
    const spec = {
      nodes: [{ id: 'n', function: 'burn', replicas: { min: 1, max: 4 } }],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'n', delivery: 'exactly-once', partitionBy: 'key' },
        { from: 'n', to: 'out', delivery: 'exactly-once' },
      ],
      slo: { latencyMs: 250, percentile: 99 },
    };
    const res = await platform.app.request('/v1/graphs/burst', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    expect(res.status).toBe(201);
    expect((await json(platform.app.request('/v1/graphs/burst'))).status.decisions).toEqual([]);
    const runtime = platform.graphs.runtime('burst');
    let key = 0;
    const decisions = await waitFor(async () => {
      runtime.ingest('in', Array.from({ length: 75 }, () => ({ key: `k${key++ % 16}`, value: key })));
      await new Promise((r) => setTimeout(r, 50));
      const { status } = await json(platform.app.request('/v1/graphs/burst'));
      return status.decisions.length > 0 ? (status.decisions as Array<Record<string, unknown>>) : null;
    }, 60_000, 'a replica change');
    expect(decisions[0]).toMatchObject({ node: 'n', action: 'up', from: 1 });
    expect(decisions[0].to as number).toBeGreaterThan(1);
    expect(decisions[0].reason).toEqual(expect.any(String));
    expect(Date.parse(decisions[0].at as string)).not.toBeNaN();
    expect(decisions.length).toBeLessThanOrEqual(DECISION_HISTORY);
  }, 90_000);
});
