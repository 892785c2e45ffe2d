/**
 * End to end: `tributary serve --with-examples` as a real child process on a real socket, driven
 * by the CLI's own commands.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from './fixtures/platform.ts';

const CLI = join(import.meta.dirname, '..', 'cli', 'tributary.ts');
const dataDir = tempDir();
const port = 20000 + Math.floor(Math.random() * 20000);
const url = `http://127.0.0.1:${port}`;
let server: ChildProcess;

/**
 * Runs the real CLI as a child process. Asynchronously: a spawnSync would block this process's
 * event loop for seconds, and its fetch pool would then reuse keep-alive sockets the server has
 * long closed.
 */
function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, ['--no-node-snapshot', CLI, ...args, ...(args[0] === 'serve' ? [] : ['--url', url])], { encoding: 'utf8', timeout: 20_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
      resolve({ code, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  server = spawn(process.execPath, ['--no-node-snapshot', CLI, 'serve', '--port', String(port), '--data-dir', dataDir, '--with-examples', '--hosts', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  server.stdout!.on('data', (chunk) => (output += chunk));
  server.stderr!.on('data', (chunk) => (output += chunk));
  await waitFor(() => output.includes('listening on'), 30_000, `server start (output: ${output})`);
});

afterAll(async () => {
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  rmSync(dataDir, { recursive: true, force: true });
});

describe('tributary CLI against a running server', () => {
  it('serves the example functions deployed by --with-examples', async () => {
    const hello = await fetch(`${url}/v1/invoke/hello?name=Ada`);
    expect(await hello.text()).toBe('Hello, Ada!\n');
    const reverse = await fetch(`${url}/v1/invoke/reverse`, { method: 'POST', body: 'stressed' });
    expect(await reverse.text()).toBe('desserts');
  });

  it('runs the WordCount demo graph fed by the built-in generator', async () => {
    await waitFor(async () => {
      const res = await fetch(`${url}/v1/graphs/wordcount/sinks/counts?limit=5`);
      return res.ok && ((await res.json()) as { records: unknown[] }).records.length > 0;
    }, 15_000, 'word counts from the demo');
  });

  it('runs the windowed WordCount next to it: words per 10 s window, through tributary:windows', async () => {
    const windows = await waitFor(async () => {
      const res = await fetch(`${url}/v1/graphs/wordcount-windowed/sinks/windows?limit=1000`);
      const records = res.ok ? ((await res.json()) as { records: Array<{ value: { key: string; start: number; end: number; value: number } }> }).records : [];
      return records.length > 0 ? records.map((r) => r.value) : null;
    }, 30_000, 'a closed 10 s window from the demo');
    for (const w of windows) {
      expect(w.end - w.start).toBe(10_000);
      expect(w.start % 10_000).toBe(0);
      expect(w.value).toBeGreaterThan(0);
    }
  }, 40_000);

  it('deploy, list, invoke, logs and rm', async () => {
    const file = join(dataDir, 'shout.js');
    writeFileSync(file, `export default { async fetch(req) { const t = await req.text(); console.log('got', t); return new Response(t.toUpperCase()); } };`);
    const deployed = await cli('deploy', file, '--name', 'shout', '--timeout-ms', '500');
    expect(deployed.code, deployed.stderr).toBe(0);
    expect(JSON.parse(deployed.stdout)).toMatchObject({ name: 'shout', version: 1, kind: 'js', timeoutMs: 500 });

    expect((await cli('list')).stdout).toMatch(/^shout\tv1\tjs/m);
    const invoked = await cli('invoke', 'shout', '--data', 'quiet please');
    expect(invoked.stdout).toBe('QUIET PLEASE');
    expect((await cli('logs', 'shout')).stdout).toMatch(/log\s+got quiet please/);
    expect((await cli('rm', 'shout')).stdout).toMatch(/deleted shout/);
    const gone = await cli('invoke', 'shout');
    expect(gone.code).toBe(1);
    expect(gone.stderr).toMatch(/ERR_NOT_FOUND/);
  });

  it('deploy --cpu-limit-ms sets the CPU budget of the version', async () => {
    const file = join(dataDir, 'budget.js');
    writeFileSync(file, `export default { fetch() { return new Response('ok'); } };`);
    const deployed = await cli('deploy', file, '--timeout-ms', '800', '--cpu-limit-ms', '150');
    expect(deployed.code, deployed.stderr).toBe(0);
    expect(JSON.parse(deployed.stdout)).toMatchObject({ name: 'budget', timeoutMs: 800, cpuLimitMs: 150 });
    const refused = await cli('deploy', file, '--timeout-ms', '800', '--cpu-limit-ms', '900');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ERR_BAD_REQUEST/);
  });

  it('prints the stable error code of a failed deploy', async () => {
    const file = join(dataDir, 'broken.js');
    writeFileSync(file, 'export default {');
    const result = await cli('deploy', file);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/ERR_COMPILE/);
  });

  it('has --help on every command and rejects unknown ones', async () => {
    for (const command of ['serve', 'deploy', 'invoke', 'list', 'rm', 'logs']) {
      const result = await cli(command, '--help');
      expect(result.code, command).toBe(0);
      expect(result.stdout).toMatch(new RegExp(`usage: tributary ${command}`));
    }
    expect((await cli('frobnicate')).code).toBe(2);
    expect((await cli('deploy')).stderr).toMatch(/missing <file>/);
  });

  it('serves /metrics and /healthz on the socket', async () => {
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${url}/metrics`)).text()).toMatch(/tributary_invocations_total/);
  });
});
