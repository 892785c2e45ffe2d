/**
 * The watchdog kills only wedged hosts: busy ones (long queues, slow awaiting functions, a graph
 * pouring many partitions into one replica) keep their pid; past a function's queue bound calls
 * fail fast with 503 ERR_OVERLOADED and Retry-After. A host whose event loop is truly stopped is
 * still killed and restarted.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_INSTANCES_PER_FUNCTION, MAX_QUEUED_CALLS_PER_INSTANCE } from '../runtime/limits.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';
import { batch, request, withHosts } from './fixtures/hosts.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;

beforeAll(async () => {
  platform = await withPlatform({ hosts: 2 });
});
afterAll(() => platform.cleanup());

const AWAITING = (ms: number) => `export default { async fetch() { await new Promise((r) => setTimeout(r, ${ms})); return new Response('done'); } };`;

describe('busy hosts are not wedged hosts', () => {
  it('40 concurrent invokes of a function awaiting 200 ms all answer, none with ERR_HOST_CRASHED, pids unchanged', async () => {
    await deploy(platform, 'await200', AWAITING(200));
    const before = platform.supervisor.pids();
    const responses = await Promise.all(Array.from({ length: 40 }, () => platform.app.request('/v1/invoke/await200')));
    for (const res of responses) {
      if (res.status === 200) {
        expect(await res.text()).toBe('done');
      } else {
        expect(res.status).toBe(503);
        expect((await json(res)).error.code).toBe('ERR_OVERLOADED');
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      }
    }
    expect(responses.filter((res) => res.status === 200).length).toBeGreaterThan(0);
    expect(platform.supervisor.pids()).toEqual(before);
  });

  it('more concurrent invokes than the queue bound: the excess gets 503 ERR_OVERLOADED with Retry-After', async () => {
    await deploy(platform, 'await50', AWAITING(50), '?timeoutMs=5000');
    const before = platform.supervisor.pids();
    // Untagged calls run on up to MAX_INSTANCES_PER_FUNCTION instances, each with its own bound.
    const accepted = MAX_INSTANCES_PER_FUNCTION * (MAX_QUEUED_CALLS_PER_INSTANCE + 1);
    const results = await Promise.all(
      Array.from({ length: accepted + 60 }, async () => {
        const res = await platform.app.request('/v1/invoke/await50');
        return { status: res.status, retryAfter: res.headers.get('retry-after'), body: res.status === 200 ? await res.text() : await json(res) };
      }),
    );
    const overloaded = results.filter((r) => r.status !== 200);
    expect(overloaded.length).toBeGreaterThan(0);
    for (const r of overloaded) {
      expect(r.status).toBe(503);
      expect(r.body.error.code).toBe('ERR_OVERLOADED');
      expect(r.body.error.retryAfterS).toBeGreaterThanOrEqual(1);
      expect(r.retryAfter).toBe(String(r.body.error.retryAfterS));
    }
    expect(results.filter((r) => r.status === 200).every((r) => r.body === 'done')).toBe(true);
    expect(platform.supervisor.pids()).toEqual(before);
  });

  it('a graph replica (one instance per tag) refuses calls beyond its queue at once, before any accepted call finishes', async () => {
    const hosts = await withHosts({ hosts: 1 });
    try {
      const spec = hosts.spec('replica-queue', `export default { async process(r) { await new Promise((res) => setTimeout(res, 40)); return r.value; } };`, {
        instanceTag: 'g/n#0',
        timeoutMs: 5000,
      });
      await hosts.supervisor.call('g/n#0', { op: 'process', spec, batch: batch([0]) }); // loaded: the burst meets a warm replica
      const order: string[] = [];
      const calls = Array.from({ length: MAX_QUEUED_CALLS_PER_INSTANCE + 1 + 20 }, (_, i) =>
        hosts.supervisor.call('g/n#0', { op: 'process', spec, batch: batch([i]) }).then(
          () => order.push('ok'),
          (error: { code: string; details: { retryAfterS: number } }) => {
            expect(error.code).toBe('ERR_OVERLOADED');
            expect(error.details.retryAfterS).toBeGreaterThanOrEqual(1);
            order.push('overloaded');
          },
        ),
      );
      await Promise.all(calls);
      const refused = order.filter((o) => o === 'overloaded').length;
      // One runs, MAX_QUEUED_CALLS_PER_INSTANCE wait (give or take one finishing while the burst arrives), the rest are refused...
      expect(refused).toBeGreaterThanOrEqual(18);
      // ...at once: every refusal came back before the first accepted call finished.
      expect(order.slice(0, refused)).toEqual(Array(refused).fill('overloaded'));
      expect(hosts.restarts).toEqual([]);
    } finally {
      await hosts.close();
    }
  });

  it('a graph with 8 partitions into one replica of an awaiting function keeps its host alive and processes every record', async () => {
    // 200 records over 8 partitions, 40 ms each: ~1 s per batch, 8 s of work queued on one isolate,
    // far past any one batch's timeout (the old send-time deadline killed the host here).
    await deploy(platform, 'slow-node', `export default { async process(r) { await new Promise((res) => setTimeout(res, 40)); return r.value; } };`, '?timeoutMs=2500');
    const put = await platform.app.request('/v1/graphs/fan-in', {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        nodes: [{ id: 'n', function: 'slow-node', replicas: { min: 1, max: 1 } }],
        sources: [{ id: 'in', type: 'http' }],
        sinks: [{ id: 'out', type: 'log' }],
        edges: [
          { from: 'in', to: 'n', delivery: 'at-least-once', partitions: 8 },
          { from: 'n', to: 'out', delivery: 'at-least-once' },
        ],
      }),
    });
    expect(put.status, await put.clone().text()).toBeLessThan(300);
    const before = platform.supervisor.pids();
    const records = Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, value: i }));
    const ingest = await platform.app.request('/v1/graphs/fan-in/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(records) });
    expect(ingest.status, await ingest.clone().text()).toBeLessThan(300);
    const out = await waitFor(async () => {
      const body = await json(platform.app.request('/v1/graphs/fan-in/sinks/out?from=0&limit=1000'));
      return body.records.length >= records.length ? body.records : null;
    }, 30_000, 'all records in the sink');
    expect(new Set(out.map((r: { value: number }) => r.value)).size).toBe(records.length);
    expect(platform.supervisor.pids()).toEqual(before);
  });
});

describe('a host under a burst', () => {
  it('a burst of calls that each take most of a slice keeps the host beating: no recycle, all answered', async () => {
    const hosts = await withHosts({ hosts: 1, wedgedAfterMs: 2000 });
    try {
      const spec = hosts.spec('busy15', `export default { fetch() { const end = Date.now() + 15; while (Date.now() < end); return new Response('ok'); } };`);
      const before = hosts.supervisor.pids();
      await hosts.supervisor.call('busy15', { op: 'fetch', spec, request: request() });
      // 200 × 15 ms of synchronous work arrive in one write: longer than the watchdog's bound.
      const results = await Promise.all(Array.from({ length: 200 }, () => hosts.supervisor.call('busy15', { op: 'fetch', spec, request: request() })));
      expect(hosts.restarts).toEqual([]);
      expect(results.every((r) => new TextDecoder().decode(r.value.body!) === 'ok')).toBe(true);
      expect(hosts.supervisor.pids()).toEqual(before);
    } finally {
      await hosts.close();
    }
  });
});

describe('wedged hosts', () => {
  it('a host whose event loop stops (SIGSTOP) is killed and restarted; its in-flight call fails with ERR_HOST_CRASHED', async () => {
    const hosts = await withHosts({ hosts: 2, wedgedAfterMs: 1500 });
    try {
      const name = hosts.nameOn(0, 'frozen');
      const spec = hosts.spec(name, AWAITING(5000), { timeoutMs: 20_000 });
      const before = hosts.supervisor.pids();
      const inFlight = hosts.supervisor.call(name, { op: 'fetch', spec, request: request() }).catch((error: unknown) => error);
      await new Promise((r) => setTimeout(r, 100));
      process.kill(before[0]!, 'SIGSTOP');
      const error = (await inFlight) as { code: string; message: string };
      expect(error.code).toBe('ERR_HOST_CRASHED');
      expect(error.message).toMatch(/stopped responding/);
      const after = await waitFor(() => {
        const pids = hosts.supervisor.pids();
        return pids[0] !== null && pids[0] !== before[0] ? pids : null;
      }, 15_000, 'host 0 restarted');
      expect(after[1]).toBe(before[1]);
      expect(hosts.restarts).toEqual([{ host: 0, reason: expect.stringMatching(/^watchdog: /) }]);
      const again = await hosts.supervisor.call(name, { op: 'fetch', spec: hosts.spec(name, `export default { fetch() { return new Response('back'); } };`), request: request() });
      expect(new TextDecoder().decode(again.value.body!)).toBe('back');
    } finally {
      await hosts.close();
    }
  });
});
