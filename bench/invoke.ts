/**
 * Invoke throughput and latency: a trivial function (`new Response('ok')`) on Tributary against
 * a bare hono handler (bench/bare-hono.ts, one process) and workerd (Cloudflare's runtime, from
 * the npm package, bench/workerd/hello.capnp), all in the same run, with the same load generator
 * (autocannon, in its own process), connections and duration. Each target is driven flat out in
 * BENCH_ROUNDS interleaved rounds (its peak: the median), then at half its peak rate, where its
 * p99 is read.
 *
 * Targets (issue 11): Tributary ≥ 1.0x workerd and ≥ 0.5x bare hono requests/s; p99 ≤ 5 ms at
 * half the peak rate. BENCH_CONTROL_PLANE=1 adds Tributary with every request served by the
 * control plane (the path used while no host is live: invokes cross the host channel).
 *
 *   BENCH_DURATION_S=10 BENCH_CONNECTIONS=32 BENCH_ROUNDS=3 npm run bench:invoke
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type RunningServer } from '../api/server.ts';
import { printJson, printTable, round } from './report.ts';

const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 10);
const WITH_CONTROL_PLANE = process.env.BENCH_CONTROL_PLANE === '1';
/** Peak runs per target, interleaved across targets; the median counts. */
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 3));
const AUTOCANNON = fileURLToPath(new URL('../node_modules/autocannon/autocannon.js', import.meta.url));
const WORKERD = fileURLToPath(new URL('../node_modules/@cloudflare/workerd-linux-64/bin/workerd', import.meta.url));
const WORKERD_CONFIG = fileURLToPath(new URL('./workerd/hello.capnp', import.meta.url));
const FUNCTION = `export default { fetch() { return new Response('ok'); } };`;

interface LoadResult {
  requestsPerSec: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

interface Target {
  name: string;
  url: string;
  stop(): Promise<void>;
}

/** Runs autocannon in a child process so the generator does not share a server's event loop; `rate` caps requests/s over all connections. */
function load(url: string, rate?: number): Promise<LoadResult> {
  const args = ['-c', String(CONNECTIONS), '-d', String(DURATION_S), '-j', ...(rate ? ['-R', String(Math.max(1, Math.round(rate)))] : []), url];
  return new Promise((resolve, reject) => {
    const child = fork(AUTOCANNON, args, { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    let out = '';
    child.stdout!.on('data', (chunk) => (out += chunk));
    child.on('error', reject);
    child.on('exit', () => {
      try {
        const r = JSON.parse(out);
        resolve({ requestsPerSec: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, errors: r.errors, non2xx: r.non2xx });
      } catch (error) {
        reject(error);
      }
    });
  });
}

async function bareHono(): Promise<Target> {
  const child = fork(fileURLToPath(new URL('./bare-hono.ts', import.meta.url)), [], { stdio: 'inherit' });
  const port = await new Promise<number>((resolve) => child.once('message', (m: { port: number }) => resolve(m.port)));
  return { name: 'bare hono handler', url: `http://127.0.0.1:${port}/v1/invoke/trivial`, stop: () => stopChild(child) };
}

async function workerd(): Promise<Target> {
  const port = await freePort();
  const child = spawn(WORKERD, ['serve', WORKERD_CONFIG, '--socket-addr', `http=127.0.0.1:${port}`], { stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}/v1/invoke/trivial`;
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      if ((await fetch(url)).ok) break;
    } catch {}
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('workerd did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { name: 'workerd hello worker', url, stop: () => stopChild(child) };
}

async function tributary(dataPlane: 'hosts' | 'control-plane'): Promise<Target> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-'));
  const server: RunningServer = await startServer({ port: 0, dataDir, dataPlane });
  const put = await fetch(`${server.url}/v1/functions/trivial`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: FUNCTION });
  if (put.status !== 201) throw new Error(`upload failed: ${await put.text()}`);
  // Load it on every host: connections spread over them.
  await Promise.all(Array.from({ length: 4 * server.platform.supervisor.size }, async () => (await fetch(`${server.url}/v1/invoke/trivial`, { headers: { connection: 'close' } })).text()));
  return {
    name: dataPlane === 'hosts' ? 'tributary (hosts serve)' : 'tributary (control plane serves)',
    url: `${server.url}/v1/invoke/trivial`,
    async stop() {
      await server.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill();
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Every target is started first (idle ones cost nothing), then driven in rounds — each round runs
 * every target once, in turn — so a change in the machine's load hits all of them alike; a
 * target's peak is its median round. Then each runs once at half its peak rate.
 */
async function measureAll(starts: Array<() => Promise<Target>>) {
  const targets: Target[] = [];
  try {
    for (const start of starts) targets.push(await start());
    for (const target of targets) await load(target.url).catch(() => null); // warm-up (JIT), not counted
    const rounds: LoadResult[][] = targets.map(() => []);
    for (let round = 0; round < ROUNDS; round++) {
      for (let i = 0; i < targets.length; i++) rounds[i].push(await load(targets[i].url));
    }
    const results = [];
    for (let i = 0; i < targets.length; i++) {
      const sorted = [...rounds[i]].sort((a, b) => a.requestsPerSec - b.requestsPerSec);
      const peak = sorted[Math.floor(sorted.length / 2)];
      const half = await load(targets[i].url, peak.requestsPerSec / 2);
      results.push({ name: targets[i].name, peak, half, rounds: rounds[i].map((r) => round(r.requestsPerSec, 0)) });
    }
    return results;
  } finally {
    for (const target of targets) await target.stop();
  }
}

const [hono, cloudflare, platform, viaControlPlane = null] = await measureAll([bareHono, workerd, () => tributary('hosts'), ...(WITH_CONTROL_PLANE ? [() => tributary('control-plane')] : [])]);
const results = [hono, cloudflare, platform, ...(viaControlPlane ? [viaControlPlane] : [])];
const errorsOf = (r: LoadResult) => r.errors + r.non2xx;
printTable(`Invoke, ${CONNECTIONS} connections × ${DURATION_S} s per run (targets: ≥ 1.0x workerd, ≥ 0.5x bare hono, p99 ≤ 5 ms at half peak)`, results.map((r) => ({
  target: r.name,
  'peak req/s': round(r.peak.requestsPerSec, 0),
  rounds: r.rounds.join(' '),
  'p50 ms': r.peak.p50,
  'p99 ms': r.peak.p99,
  'half-peak req/s': round(r.half.requestsPerSec, 0),
  'half p50 ms': r.half.p50,
  'half p99 ms': r.half.p99,
  errors: errorsOf(r.peak) + errorsOf(r.half),
})));
const vsWorkerd = round(platform.peak.requestsPerSec / cloudflare.peak.requestsPerSec);
const vsHono = round(platform.peak.requestsPerSec / hono.peak.requestsPerSec);
const verdict = { vsWorkerd: vsWorkerd >= 1, vsHono: vsHono >= 0.5, p99AtHalfPeak: platform.half.p99 <= 5 };
console.log(`\ntributary/workerd = ${vsWorkerd} (≥ 1.0: ${verdict.vsWorkerd ? 'met' : 'NOT met'}), tributary/bare hono = ${vsHono} (≥ 0.5: ${verdict.vsHono ? 'met' : 'NOT met'}), p99 at half peak = ${platform.half.p99} ms (≤ 5: ${verdict.p99AtHalfPeak ? 'met' : 'NOT met'})`);
if (viaControlPlane) console.log(`hosts serving vs control plane serving: ${round(platform.peak.requestsPerSec / viaControlPlane.peak.requestsPerSec)}x`);
printJson('invoke', { connections: CONNECTIONS, durationS: DURATION_S, rounds: ROUNDS, results, ratios: { vsWorkerd, vsHono }, targetsMet: verdict });
