/**
 * Invoke throughput: a trivial function over HTTP on the platform, against a bare hono handler
 * in the same run, with the same load generator (autocannon, in its own process), fixed
 * connections and duration. Target (issue 2): throughput ratio ≥ 0.6; p50/p99 reported for both.
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../api/server.ts';
import { printJson, printTable, round } from './report.ts';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const AUTOCANNON = fileURLToPath(new URL('../node_modules/autocannon/autocannon.js', import.meta.url));

interface LoadResult {
  requestsPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

/** Runs autocannon in a child process so the generator does not share the server's event loop. */
function load(url: string): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = fork(AUTOCANNON, ['-c', String(CONNECTIONS), '-d', String(DURATION_S), '-j', url], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    let out = '';
    child.stdout!.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('exit', () => {
      const r = JSON.parse(out);
      resolve({ requestsPerSec: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx });
    });
  });
}

async function bareHono(): Promise<{ url: string; stop(): void }> {
  const child = fork(fileURLToPath(new URL('./bare-hono.ts', import.meta.url)), [], { stdio: 'inherit' });
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  return { url: `http://127.0.0.1:${port}/v1/invoke/trivial`, stop: () => child.kill() };
}

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-'));
const server = await startServer({ port: 0, dataDir });
const bare = await bareHono();
try {
  const put = await server.platform.app.request('/v1/functions/trivial', {
    method: 'PUT',
    headers: { 'content-type': 'application/javascript' },
    body: `export default { fetch() { return new Response('ok'); } };`,
  });
  if (put.status !== 201) throw new Error(`upload failed: ${await put.text()}`);
  await fetch(`${server.url}/v1/invoke/trivial`); // load it on its host once
  const baseline = await load(bare.url);
  const platform = await load(`${server.url}/v1/invoke/trivial`);
  const ratio = round(platform.requestsPerSec / baseline.requestsPerSec);
  printTable(`Invoke, ${CONNECTIONS} connections × ${DURATION_S} s each (target: ratio ≥ 0.6)`, [
    { target: 'bare hono handler (baseline)', 'req/s': round(baseline.requestsPerSec, 0), 'p50 ms': baseline.p50, 'p99 ms': baseline.p99, errors: baseline.errors + baseline.non2xx },
    { target: 'tributary trivial function', 'req/s': round(platform.requestsPerSec, 0), 'p50 ms': platform.p50, 'p99 ms': platform.p99, errors: platform.errors + platform.non2xx },
  ]);
  console.log(`\nthroughput ratio platform/bare = ${ratio} (target ≥ 0.6: ${ratio >= 0.6 ? 'met' : 'NOT met'})`);
  printJson('invoke', { connections: CONNECTIONS, durationS: DURATION_S, baseline, platform, ratio });
} finally {
  bare.stop();
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
