/**
 * A host process must not outlive its control plane: when `tributary serve` is kill -9'd, its
 * hosts see their channel close and go too (they were seen hanging in exit handlers, isolates
 * loaded, holding their memory for good).
 */
import { describe, expect, it } from 'vitest';
import { tempDir, waitFor } from './fixtures/platform.ts';
import { ServerProcess, isHost } from './fixtures/server-process.ts';

describe('host processes of a killed control plane', () => {
  it('exit within seconds of a kill -9 of tributary serve, each time, with isolates loaded', async () => {
    const dataDir = tempDir();
    for (let round = 0; round < 3; round++) {
      const server = new ServerProcess(dataDir, ['--hosts', '2']);
      await server.start();
      const code = `export default { fetch() { return new Response('up'); } };`;
      const put = await fetch(`${server.url}/v1/functions/up`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: code });
      expect(put.status).toBeLessThan(300);
      expect(await (await fetch(`${server.url}/v1/invoke/up/`)).text()).toBe('up');
      const hosts = await waitFor(() => {
        const pids = server.hostPids();
        return pids.length === 2 ? pids : null;
      }, 10_000, 'both hosts');
      await server.kill9();
      await waitFor(() => hosts.every((pid) => !isHost(pid)), 10_000, `hosts ${hosts.join(', ')} to exit`);
    }
  }, 120_000);
});
