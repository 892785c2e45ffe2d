/**
 * Density and idle cost (issue 11 part 4): a `tributary serve` started as users start it (shipped
 * defaults), then 1,000 functions deployed and each invoked once, then 100 graphs deployed and
 * left idle. Prints:
 *
 *   - memory per loaded idle isolate: the hosts' RSS growth over the instances they report loaded
 *     (target ≤ 4 MB), next to the control plane's and hosts' RSS before and after;
 *   - first-invoke latency p50/p99 over all functions, next to a warm invoke's (the baseline, same
 *     run, same client);
 *   - CPU of the control plane and hosts while idle, without graphs (the baseline) and with the
 *     100 idle graphs (target: the graphs add < 2% of one core).
 *
 * BENCH_FUNCTIONS (default 1000), BENCH_GRAPHS (default 100), BENCH_IDLE_S (default 20: each idle
 * measurement's length), BENCH_CONCURRENCY (default 4: first invokes in flight).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printJson, printTable, round, summarize } from './report.ts';

const FUNCTIONS = Number(process.env.BENCH_FUNCTIONS ?? 1000);
const GRAPHS = Number(process.env.BENCH_GRAPHS ?? 100);
const IDLE_S = Number(process.env.BENCH_IDLE_S ?? 20);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 4);
const CLI = fileURLToPath(new URL('../cli/tributary.ts', import.meta.url));
/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ; 100 on Linux). */
const TICKS_PER_S = 100;

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-density-'));
const port = 20000 + Math.floor(Math.random() * 30000);
const base = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, ['--no-node-snapshot', CLI, 'serve', '--port', String(port), '--data-dir', dataDir], { stdio: ['ignore', 'pipe', 'pipe'] });
let serverLog = '';
server.stdout!.on('data', (chunk) => (serverLog = (serverLog + chunk).slice(-20_000)));
server.stderr!.on('data', (chunk) => (serverLog = (serverLog + chunk).slice(-20_000)));
let exited: string | null = null;
server.on('exit', (code, signal) => (exited = `exit ${code ?? signal}`));

function procStatus(pid: number, field: string): number {
  const match = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) / 1024 : NaN;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_S;
}

/** The host processes: children of the control plane running runtime/host/main.ts. */
function hostPids(): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === server.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('host/main.ts')) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

const rssOf = (pids: number[]) => pids.reduce((sum, pid) => sum + procStatus(pid, 'VmRSS'), 0);

async function waitUp(): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`serve exited at startup (${exited}):\n${serverLog}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {
      // not yet listening
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('serve did not start');
}

async function put(path: string, body: string, contentType: string): Promise<void> {
  const res = await fetch(`${base}${path}`, { method: 'PUT', headers: { 'content-type': contentType }, body });
  if (res.status !== 201 && res.status !== 200) throw new Error(`PUT ${path}: ${res.status} ${await res.text()}`);
}

/** Loaded instances the hosts report (tributary_isolates{state="loaded"}, summed over hosts). */
async function loadedInstances(): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith('tributary_isolates{') && line.includes('state="loaded"')) sum += Number(line.split(' ').pop());
  return sum;
}

async function timedGet(path: string): Promise<number> {
  const started = performance.now();
  const res = await fetch(`${base}${path}`);
  await res.arrayBuffer();
  if (!res.ok) throw new Error(`GET ${path}: ${res.status}`);
  return performance.now() - started;
}

/** CPU seconds of the control plane and the hosts over `seconds` of idling, as % of one core. */
async function idleCpu(seconds: number): Promise<{ controlPlanePct: number; hostsPct: number }> {
  const hosts = hostPids();
  const before = { cp: cpuSeconds(server.pid!), hosts: hosts.reduce((s, pid) => s + cpuSeconds(pid), 0) };
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const after = { cp: cpuSeconds(server.pid!), hosts: hosts.reduce((s, pid) => s + cpuSeconds(pid), 0) };
  return { controlPlanePct: round(((after.cp - before.cp) / seconds) * 100, 2), hostsPct: round(((after.hosts - before.hosts) / seconds) * 100, 2) };
}

const functionSource = (i: number) => `const id = ${i};\nexport default { fetch() { return new Response('fn ' + id); }, process(record, env, ctx) { ctx.emit(record.value); } };`;

const graphSpec = (i: number) =>
  JSON.stringify({
    nodes: [{ id: 'map', function: `fn-${i % FUNCTIONS}`, replicas: { min: 0, max: 1 } }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'map', delivery: 'exactly-once' },
      { from: 'map', to: 'out', delivery: 'exactly-once' },
    ],
  });

try {
  await waitUp();
  await new Promise((r) => setTimeout(r, 2000)); // hosts pre-warm their slots
  const hosts = hostPids();
  const start = { cp: procStatus(server.pid!, 'VmRSS'), hosts: rssOf(hosts), loaded: await loadedInstances() };
  const baselineIdle = await idleCpu(IDLE_S);

  for (let i = 0; i < FUNCTIONS; i += CONCURRENCY) {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, FUNCTIONS - i) }, (_, j) => put(`/v1/functions/fn-${i + j}`, functionSource(i + j), 'application/javascript')));
  }
  const deployed = { cp: procStatus(server.pid!, 'VmRSS'), hosts: rssOf(hosts), loaded: await loadedInstances() };

  // First invokes: each function once, CONCURRENCY at a time, in an order unrelated to the deploys'.
  const firstMs: number[] = [];
  const order = Array.from({ length: FUNCTIONS }, (_, i) => (i * 7919) % FUNCTIONS);
  for (let i = 0; i < order.length; i += CONCURRENCY) {
    firstMs.push(...(await Promise.all(order.slice(i, i + CONCURRENCY).map((n) => timedGet(`/v1/invoke/fn-${n}`)))));
  }
  const invoked = { cp: procStatus(server.pid!, 'VmRSS'), hosts: rssOf(hosts), loaded: await loadedInstances() };
  // Baseline: warm invokes of the last functions called, the same client and concurrency.
  const warmMs: number[] = [];
  const recent = order.slice(-CONCURRENCY * 25);
  for (let i = 0; i < recent.length; i += CONCURRENCY) warmMs.push(...(await Promise.all(recent.slice(i, i + CONCURRENCY).map((n) => timedGet(`/v1/invoke/fn-${n}`)))));

  const functionsIdle = await idleCpu(IDLE_S);
  for (let i = 0; i < GRAPHS; i += CONCURRENCY) {
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, GRAPHS - i) }, (_, j) => put(`/v1/graphs/idle-${i + j}`, graphSpec(i + j), 'application/json')));
  }
  await new Promise((r) => setTimeout(r, 5000)); // starting → running, then nothing to do
  const graphsIdle = await idleCpu(IDLE_S);
  const end = { cp: procStatus(server.pid!, 'VmRSS'), hosts: rssOf(hosts), loaded: await loadedInstances() };

  const perIsolateMb = (invoked.hosts - start.hosts) / Math.max(1, invoked.loaded - start.loaded);
  const first = summarize(firstMs);
  const warm = summarize(warmMs);
  const graphsAddPct = round(graphsIdle.controlPlanePct + graphsIdle.hostsPct - (functionsIdle.controlPlanePct + functionsIdle.hostsPct), 2);
  printTable('Memory (RSS, MiB)', [
    { phase: 'started (warm slots only)', 'control plane': round(start.cp, 1), hosts: round(start.hosts, 1), 'loaded instances': start.loaded },
    { phase: `${FUNCTIONS} functions deployed`, 'control plane': round(deployed.cp, 1), hosts: round(deployed.hosts, 1), 'loaded instances': deployed.loaded },
    { phase: `each invoked once`, 'control plane': round(invoked.cp, 1), hosts: round(invoked.hosts, 1), 'loaded instances': invoked.loaded },
    { phase: `${GRAPHS} idle graphs`, 'control plane': round(end.cp, 1), hosts: round(end.hosts, 1), 'loaded instances': end.loaded },
  ]);
  printTable(`Per loaded idle isolate (target ≤ 4 MB)`, [{ 'MiB per instance': round(perIsolateMb, 2), 'hosts RSS growth MiB': round(invoked.hosts - start.hosts, 1), 'instances added': invoked.loaded - start.loaded }]);
  printTable(`Invoke latency, ${CONCURRENCY} in flight (ms)`, [
    { call: 'first invoke of each function', n: first.n, p50: first.p50, p99: first.p99, max: first.max },
    { call: 'warm invoke (baseline)', n: warm.n, p50: warm.p50, p99: warm.p99, max: warm.max },
  ]);
  printTable(`Idle CPU, % of one core over ${IDLE_S} s (target: ${GRAPHS} idle graphs add < 2%)`, [
    { phase: 'no functions, no graphs (baseline)', 'control plane': baselineIdle.controlPlanePct, hosts: baselineIdle.hostsPct },
    { phase: `${FUNCTIONS} functions loaded`, 'control plane': functionsIdle.controlPlanePct, hosts: functionsIdle.hostsPct },
    { phase: `+ ${GRAPHS} idle graphs`, 'control plane': graphsIdle.controlPlanePct, hosts: graphsIdle.hostsPct },
  ]);
  console.log(`\n${GRAPHS} idle graphs add ${graphsAddPct}% of one core; a loaded idle isolate costs ${round(perIsolateMb, 2)} MiB`);
  printJson('density', { functions: FUNCTIONS, graphs: GRAPHS, rssMb: { start, deployed, invoked, end }, perIsolateMb: round(perIsolateMb, 3), firstInvokeMs: first, warmInvokeMs: warm, idleCpuPct: { baseline: baselineIdle, functions: functionsIdle, graphs: graphsIdle }, graphsAddPct });
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  if (!exited) server.kill('SIGKILL');
  rmSync(dataDir, { recursive: true, force: true });
}
