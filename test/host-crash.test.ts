/**
 * A host process that dies (kill -9, or a V8 abort) fails only its in-flight calls with
 * ERR_HOST_CRASHED and is restarted; the control plane and the other hosts keep serving.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, waitFor, withPlatform, json } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;

/** A function name whose home is `host`. */
function nameOnHost(host: number, prefix: string): string {
  for (let i = 0; ; i++) if (platform.supervisor.homeOf(`${prefix}${i}`) === host) return `${prefix}${i}`;
}

beforeAll(async () => {
  platform = await withPlatform({ hosts: 2 });
});
afterAll(() => platform.cleanup());

describe('host crash', () => {
  it('kill -9 fails in-flight calls with ERR_HOST_CRASHED, restarts the host, and the other host keeps serving', async () => {
    const slow = nameOnHost(0, 'slow');
    const steady = nameOnHost(1, 'steady');
    await deploy(platform, slow, `export default { async fetch() { await new Promise((r) => setTimeout(r, 3000)); return new Response('late'); } };`, '?timeoutMs=10000');
    await deploy(platform, steady, `export default { fetch() { return new Response('steady'); } };`);
    const before = platform.supervisor.pids();

    const inFlight = Promise.all([1, 2, 3].map(() => platform.app.request(`/v1/invoke/${slow}`)));
    await new Promise((r) => setTimeout(r, 300));
    platform.supervisor.kill(0);
    const responses = await inFlight;
    for (const res of responses) {
      expect(res.status).toBe(503);
      expect((await json(res)).error.code).toBe('ERR_HOST_CRASHED');
    }

    // The other host serves while host 0 restarts.
    const during = await platform.app.request(`/v1/invoke/${steady}`);
    expect(await during.text()).toBe('steady');

    const after = await waitFor(() => {
      const pids = platform.supervisor.pids();
      return pids[0] !== null && pids[0] !== before[0] ? pids : null;
    }, 15_000, 'host 0 restart');
    expect(after[1]).toBe(before[1]);

    const metrics = await (await platform.app.request('/metrics')).text();
    expect(metrics).toMatch(/tributary_host_restarts_total\{host="0",reason="crash"\} 1/);

    // Functions homed on the restarted host work again (cold start on the new process).
    const quick = nameOnHost(0, 'quick');
    await deploy(platform, quick, `export default { fetch() { return new Response('back'); } };`);
    expect(await (await platform.app.request(`/v1/invoke/${quick}`)).text()).toBe('back');
  });

  it('routes calls to a surviving host while a function home host is down', async () => {
    const name = nameOnHost(1, 'roaming');
    await deploy(platform, name, `export default { fetch() { return new Response('roamed'); } };`);
    platform.supervisor.kill(1);
    await waitFor(() => platform.supervisor.pids()[1] === null, 5000, 'host 1 seen down');
    // Until host 1 is back, its functions run on host 0.
    const res = await platform.app.request(`/v1/invoke/${name}`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('roamed');
    await waitFor(() => platform.supervisor.pids().every((p) => p !== null), 15_000, 'all hosts up');
  });
});
