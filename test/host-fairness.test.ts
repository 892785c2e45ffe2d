/**
 * Fairness on one host: a CPU-heavy or long-running function cannot starve the others sharing
 * its host (synchronous entries are cut after a slice and re-run asynchronously, off the host's
 * event loop), and every invocation has a CPU-time budget (ERR_FN_CPU_LIMIT) besides its
 * wall-clock timeout. One host, so every function shares it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, json, withPlatform } from './fixtures/platform.ts';
import { batch, rejection, request, withHosts, type Hosts } from './fixtures/hosts.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;
let hosts: Hosts;

beforeAll(async () => {
  platform = await withPlatform({ hosts: 1 });
  await deploy(platform, 'trivial', `export default { fetch() { return new Response('quick'); } };`);
  hosts = await withHosts({ hosts: 1 });
});
afterAll(async () => {
  await platform.cleanup();
  await hosts.close();
});

/** Resolves to whether `promise` is still pending. */
async function isPending(promise: Promise<unknown>): Promise<boolean> {
  const marker = Symbol('pending');
  return (await Promise.race([promise.then(() => null, () => null), new Promise((r) => setImmediate(() => r(marker)))])) === marker;
}

const TRIVIAL = `export default { fetch() { return new Response('quick'); } };`;

describe('a CPU hog does not starve its host', () => {
  it('a busy loop with timeoutMs 60000: the trivial function on the same host answers while the hog still runs', async () => {
    await deploy(platform, 'hog', `export default { fetch() { const end = Date.now() + 2500; while (Date.now() < end); return new Response('hog done'); } };`, '?timeoutMs=60000');
    const before = platform.supervisor.pids();
    const hog = Promise.resolve(platform.app.request('/v1/invoke/hog'));
    for (let i = 0; i < 5; i++) {
      const res = await platform.app.request('/v1/invoke/trivial');
      expect(await res.text()).toBe('quick');
      expect(await isPending(hog)).toBe(true);
    }
    const res = await hog;
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('hog done');
    expect(platform.supervisor.pids()).toEqual(before);
  });

  it('while(true) with timeoutMs 60000 ends in ERR_FN_CPU_LIMIT at its CPU budget; the trivial function answers meanwhile', async () => {
    const hog = hosts.spec('spin', `export default { fetch() { while (true) {} } };`, { timeoutMs: 60_000, cpuLimitMs: 1500 });
    const quick = hosts.spec('quick', TRIVIAL);
    const before = hosts.supervisor.pids();
    const spinning = rejection(hosts.supervisor.call('spin', { op: 'fetch', spec: hog, request: request() }));
    for (let i = 0; i < 5; i++) {
      const res = await hosts.supervisor.call('quick', { op: 'fetch', spec: quick, request: request() });
      expect(new TextDecoder().decode(res.value.body!)).toBe('quick');
      expect(await isPending(spinning)).toBe(true);
    }
    const error = await spinning;
    expect(error.code).toBe('ERR_FN_CPU_LIMIT');
    expect(error.message).toMatch(/1500 ms/);
    expect(hosts.supervisor.pids()).toEqual(before);
  });

  it('the CPU budget spans every entry of an invocation: short bursts across timers add up to ERR_FN_CPU_LIMIT', async () => {
    const spec = hosts.spec(
      'bursts',
      `export default { async fetch() {
        for (let i = 0; i < 100; i++) { await new Promise((r) => setTimeout(r, 1)); const end = Date.now() + 10; while (Date.now() < end); }
        return new Response('never');
      } };`,
      { timeoutMs: 30_000, cpuLimitMs: 200 },
    );
    const error = await rejection(hosts.supervisor.call('bursts', { op: 'fetch', spec, request: request() }));
    expect(error.code).toBe('ERR_FN_CPU_LIMIT');
  });

  it('the wall-clock timeout is still ERR_FN_TIMEOUT when it comes before the CPU budget', async () => {
    const spec = hosts.spec('idle-forever', `export default { async fetch() { await new Promise(() => {}); } };`, { timeoutMs: 300, cpuLimitMs: 300 });
    const error = await rejection(hosts.supervisor.call('idle-forever', { op: 'fetch', spec, request: request() }));
    expect(error.code).toBe('ERR_FN_TIMEOUT');
  });

  it('a call cut by its slice is re-run from scratch: its result is whole and its partial console output appears once', async () => {
    const spec = hosts.spec(
      'rerun',
      `let runs = 0;
       export default { fetch() { runs++; console.log('start'); const end = Date.now() + 150; while (Date.now() < end); return Response.json({ runs }); } };`,
      { timeoutMs: 5000 },
    );
    const first = await hosts.supervisor.call('rerun', { op: 'fetch', spec, request: request() });
    // The re-run happens in a fresh instance: it counts one run, and the cut attempt's log line is gone.
    expect(JSON.parse(new TextDecoder().decode(first.value.body!))).toEqual({ runs: 1 });
    expect(first.logs.filter((l) => l.line === 'start')).toHaveLength(1);
    // Later calls start asynchronously on that instance at once.
    const second = await hosts.supervisor.call('rerun', { op: 'fetch', spec, request: request() });
    expect(JSON.parse(new TextDecoder().decode(second.value.body!))).toEqual({ runs: 2 });
    expect(second.logs.filter((l) => l.line === 'start')).toHaveLength(1);
  });
});

describe('graph batches', () => {
  it('a CPU-heavy batch on a replica is cut, re-run asynchronously from scratch, and emits each output once', async () => {
    const spec = hosts.spec(
      'heavy-batch',
      `export default { process(r, env, ctx) { const end = Date.now() + 30; while (Date.now() < end); ctx.emit(r.value * 10); } };`,
      { timeoutMs: 5000, instanceTag: 'g/heavy#0' },
    );
    const result = await hosts.supervisor.call('g/heavy#0', { op: 'process', spec, batch: batch([1, 2, 3]) });
    expect(result.value.emits.map((e) => e.value)).toEqual([10, 20, 30]);
    expect(result.value.failures).toEqual([]);
    const again = await hosts.supervisor.call('g/heavy#0', { op: 'process', spec, batch: batch([4]) });
    expect(again.value.emits.map((e) => e.value)).toEqual([40]);
  });
});

describe('module top level', () => {
  it('a top-level infinite loop is refused at validation with ERR_FN_CPU_LIMIT once its CPU budget is spent', async () => {
    const spec = hosts.spec('toplevel-cpu', `while (true) {}\nexport default { fetch() {} };`, { timeoutMs: 300_000, cpuLimitMs: 500 });
    const error = await rejection(hosts.supervisor.call('toplevel-cpu', { op: 'validate', spec, code: `while (true) {}\nexport default { fetch() {} };` }));
    expect(error.code).toBe('ERR_FN_CPU_LIMIT');
  });

  it('a top level that needs more than one slice loads, and its calls then stay on the fast path', async () => {
    const source = `const end = Date.now() + 100; while (Date.now() < end); const table = [1, 2, 3];
      export default { fetch() { return Response.json(table); } };`;
    const put = await deploy(platform, 'heavy-top', source, '?timeoutMs=5000');
    expect(put.status).toBe(201);
    expect(await json(platform.app.request('/v1/invoke/heavy-top'))).toEqual([1, 2, 3]);
  });

  // Last: its isolate spins on one of isolated-vm's threads until the platform closes.
  it('a top-level infinite loop with timeoutMs 300000 does not block the host: other functions answer while it is validated', async () => {
    const before = platform.supervisor.pids();
    let settled = false;
    const upload = deploy(platform, 'toplevel-spin', `while (true) {}\nexport default { fetch() {} };`, '?timeoutMs=300000').finally(() => (settled = true));
    upload.catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
    for (let i = 0; i < 5; i++) {
      const res = await platform.app.request('/v1/invoke/trivial');
      expect(await res.text()).toBe('quick');
      expect(settled).toBe(false);
    }
    expect(platform.supervisor.pids()).toEqual(before);
  });
});
