/**
 * The per-host memory guard: a host whose RSS passes `hostMemoryLimitMb` is recycled before the
 * machine runs out. Only its in-flight calls fail (ERR_HOST_CRASHED, saying it was recycled for
 * memory); the other host keeps serving with the same pid, and the recycled one comes back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from './fixtures/platform.ts';
import { rejection, request, withHosts, type Hosts } from './fixtures/hosts.ts';

let hosts: Hosts;

beforeAll(async () => {
  // A fresh host uses ~110 MiB; the hoarder below pushes its host far past 400.
  hosts = await withHosts({ hosts: 2, hostMemoryLimitMb: 400 });
});
afterAll(() => hosts.close());

const text = (body: Uint8Array | null) => new TextDecoder().decode(body!);

describe('host memory guard', () => {
  it('recycles a host over its memory limit, failing only its in-flight calls; the other host keeps serving', async () => {
    const hoarder = hosts.nameOn(0, 'hoarder');
    const steady = hosts.nameOn(1, 'steady');
    const hoard = hosts.spec(
      hoarder,
      `export default { async fetch() {
        globalThis.kept = [];
        for (let i = 0; i < 50; i++) kept.push(new Uint8Array(10 * 1024 * 1024).fill(i));
        await new Promise((r) => setTimeout(r, 20000));
        return new Response('kept');
      } };`,
      { memoryLimitMb: 1024, timeoutMs: 30_000 },
    );
    const serve = hosts.spec(steady, `export default { fetch() { return new Response('steady'); } };`);
    expect(text((await hosts.supervisor.call(steady, { op: 'fetch', spec: serve, request: request() })).value.body)).toBe('steady');
    const before = hosts.supervisor.pids();

    const error = await rejection(hosts.supervisor.call(hoarder, { op: 'fetch', spec: hoard, request: request() }));
    expect(error.code).toBe('ERR_HOST_CRASHED');
    expect(error.message).toMatch(/recycled for memory/);
    expect(hosts.restarts).toEqual([{ host: 0, reason: expect.stringMatching(/^memory: RSS \d+ MiB over the host limit of 400 MiB/) }]);

    // The other host was never touched.
    expect(text((await hosts.supervisor.call(steady, { op: 'fetch', spec: serve, request: request() })).value.body)).toBe('steady');
    expect(hosts.supervisor.pids()[1]).toBe(before[1]);

    // The recycled host comes back and serves again.
    await waitFor(() => {
      const pid = hosts.supervisor.pids()[0];
      return pid !== null && pid !== before[0];
    }, 15_000, 'host 0 restarted');
    const small = hosts.spec(hoarder, `export default { fetch() { return new Response('lean'); } };`);
    expect(text((await hosts.supervisor.call(hoarder, { op: 'fetch', spec: small, request: request() })).value.body)).toBe('lean');
  });
});
