/**
 * Soak: a `tributary serve` started as users start it (shipped defaults, `--with-examples`),
 * legitimate tenants — HTTP invokes of `hello` and the WordCount graph fed by ingest — and, in the
 * second phase, hostile tenants beside them: infinite loops, memory and WASM bombs, floods of a slow
 * function and of unknown names, oversized headers, deep JSON, stalled uploads and poison graphs.
 *
 * Baseline in the same run: the legitimate load alone (phase "baseline"), then the same load with
 * the hostile tenants (phase "hostile"). Prints control-plane and host RSS over time, legitimate
 * p50/p99 and error rate per phase, host restarts and control-plane exits.
 *
 * Targets (issue 9): legitimate traffic sees 0 errors other than its own 429/503 (overload,
 * backpressure), control-plane RSS flat (growth < 10% after warm-up), 0 control-plane exits.
 *
 * SOAK_DURATION_S (default 60) is the length of each phase.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { percentile, printJson, printTable, round } from './report.ts';

const PHASE_S = Number(process.env.SOAK_DURATION_S ?? 60);
const SAMPLE_MS = 2000;
const LEGIT_CONNECTIONS = 4;
const CLI = fileURLToPath(new URL('../cli/tributary.ts', import.meta.url));

/** Errors legitimate callers are told to retry: not counted against the platform. */
const OWN_RETRY_CODES = new Set(['ERR_OVERLOADED', 'ERR_BACKPRESSURE']);

interface PhaseStats {
  latenciesMs: number[];
  ok: number;
  retryLater: number;
  errors: Map<string, number>;
}

const newStats = (): PhaseStats => ({ latenciesMs: [], ok: 0, retryLater: 0, errors: new Map() });

function rssMb(pid: number): number | null {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? round(Number(match[1]) / 1024, 1) : null;
  } catch {
    return null;
  }
}

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-soak-'));
const port = 20000 + Math.floor(Math.random() * 30000);
const base = `http://127.0.0.1:${port}`;
const server = spawn(process.execPath, ['--no-node-snapshot', CLI, 'serve', '--port', String(port), '--data-dir', dataDir, '--with-examples'], {
  stdio: ['ignore', 'pipe', 'pipe'],
});
let serverLog = '';
server.stdout!.on('data', (chunk) => (serverLog = (serverLog + chunk).slice(-50_000)));
server.stderr!.on('data', (chunk) => (serverLog = (serverLog + chunk).slice(-50_000)));
let exited: string | null = null;
server.on('exit', (code, signal) => (exited = `exit ${code ?? signal}`));

async function waitUp(): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited) throw new Error(`serve exited at startup (${exited}):\n${serverLog}`);
    try {
      if ((await fetch(`${base}/healthz`)).ok) return;
    } catch {}
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('serve did not start');
}

async function put(path: string, body: string, contentType: string): Promise<Response> {
  return fetch(`${base}${path}`, { method: 'PUT', headers: { 'content-type': contentType }, body });
}

async function deployFunction(name: string, source: string, query = ''): Promise<void> {
  const res = await put(`/v1/functions/${name}${query}`, source, 'application/javascript');
  if (res.status !== 201) throw new Error(`deploy ${name}: ${res.status} ${await res.text()}`);
}

async function errorCode(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: { code?: string } };
    return body.error?.code ?? `HTTP ${res.status}`;
  } catch {
    return `HTTP ${res.status}`;
  }
}

let phase: PhaseStats = newStats();
let running = true;

function countError(stats: PhaseStats, code: string): void {
  if (OWN_RETRY_CODES.has(code)) stats.retryLater++;
  else stats.errors.set(code, (stats.errors.get(code) ?? 0) + 1);
}

/** One legitimate client: invokes `hello` back to back. */
async function legitInvoker(): Promise<void> {
  let i = 0;
  while (running) {
    const stats = phase;
    const started = performance.now();
    try {
      const res = await fetch(`${base}/v1/invoke/hello?name=soak${i++ % 100}`);
      if (res.ok) {
        await res.arrayBuffer();
        stats.ok++;
        stats.latenciesMs.push(performance.now() - started);
      } else countError(stats, await errorCode(res));
    } catch (error) {
      countError(stats, `network: ${(error as Error).message}`);
    }
  }
}

/** The legitimate stream tenant: 20 lines a second into WordCount. */
async function legitIngest(): Promise<void> {
  let n = 0;
  while (running) {
    const stats = phase;
    try {
      const res = await fetch(`${base}/v1/graphs/wordcount/sources/lines`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': `soak-${n}` },
        body: JSON.stringify([{ value: `the quick brown fox ${n} jumps over the lazy dog` }, { value: `soak line ${n}` }]),
      });
      if (res.status === 202) stats.ok++;
      else countError(stats, await errorCode(res));
      await res.arrayBuffer().catch(() => {});
    } catch (error) {
      countError(stats, `network: ${(error as Error).message}`);
    }
    n++;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const HOSTILE_FUNCTIONS: Record<string, { source: string; query?: string }> = {
  'hostile-loop': { source: 'export default { fetch() { for (;;) {} } };', query: '?timeoutMs=200' },
  'hostile-bomb': { source: 'export default { fetch() { const a = []; for (;;) a.push(new Array(1e5).fill(a.length)); } };', query: '?memoryLimitMb=16' },
  'hostile-wasm-memory': {
    source: `export default { fetch() { const ms = []; for (let i = 0; i < 64; i++) { const m = new WebAssembly.Memory({ initial: 1, maximum: 4096 }); m.grow(4095); ms.push(m); } return new Response(String(ms.length)); } };`,
    query: '?memoryLimitMb=16',
  },
  'hostile-resizable': {
    source: `export default { fetch() { const b = []; for (let i = 0; i < 64; i++) { const x = new ArrayBuffer(1, { maxByteLength: 256 * 1024 * 1024 }); x.resize(256 * 1024 * 1024); b.push(x); } return new Response('x'); } };`,
    query: '?memoryLimitMb=16',
  },
  'hostile-slow': { source: 'export default { async fetch() { await new Promise((r) => setTimeout(r, 200)); return new Response("slow"); } };' },
  'hostile-headers': { source: `export default { fetch() { const h = new Headers(); for (let i = 0; i < 2000; i++) h.set('x-' + i, 'v'.repeat(4096)); return new Response('h', { headers: h }); } };` },
  'hostile-timers': { source: 'export default { fetch() { for (let i = 0; i < 900; i++) setTimeout(() => {}, 3600_000); return new Response("t"); } };' },
};

const hostileCounts = new Map<string, Map<string, number>>();
function countHostile(kind: string, outcome: string): void {
  const byOutcome = hostileCounts.get(kind) ?? new Map<string, number>();
  byOutcome.set(outcome, (byOutcome.get(outcome) ?? 0) + 1);
  hostileCounts.set(kind, byOutcome);
}

/** A hostile client: repeats `attack` (up to `concurrency` at once) until the run ends. */
async function hostile(kind: string, concurrency: number, pauseMs: number, attack: () => Promise<string>): Promise<void> {
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (running) {
        try {
          countHostile(kind, await attack());
        } catch (error) {
          countHostile(kind, `network: ${(error as Error).message.slice(0, 40)}`);
        }
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      }
    }),
  );
}

const outcome = async (res: Response) => (res.ok ? `${res.status}` : await errorCode(res));
const invokeHostile = (name: string) => async () => outcome(await fetch(`${base}/v1/invoke/${name}`));

function chain(length: number) {
  const nodes = Array.from({ length }, (_, i) => ({ id: `n${i}`, function: 'wordcount-split' }));
  const edges = [
    { from: 'in', to: 'n0', delivery: 'at-least-once' },
    ...nodes.slice(1).map((n, i) => ({ from: `n${i}`, to: n.id, delivery: 'at-least-once' })),
    { from: `n${length - 1}`, to: 'out', delivery: 'at-least-once' },
  ].reverse();
  return { nodes, sources: [{ id: 'in', type: 'http' }], sinks: [{ id: 'out', type: 'log' }], edges };
}

function ladder(layers: number) {
  const nodes = Array.from({ length: layers * 2 }, (_, i) => ({ id: `l${Math.floor(i / 2)}${i % 2 ? 'b' : 'a'}`, function: 'wordcount-split' }));
  const edges: Array<{ from: string; to: string; delivery: string }> = [
    { from: 'in', to: 'l0a', delivery: 'at-most-once' },
    { from: 'in', to: 'l0b', delivery: 'at-most-once' },
  ];
  for (let l = 0; l + 1 < layers; l++) {
    for (const a of ['a', 'b']) for (const b of ['a', 'b']) edges.push({ from: `l${l}${a}`, to: `l${l + 1}${b}`, delivery: 'at-most-once' });
  }
  edges.push({ from: `l${layers - 1}a`, to: 'out', delivery: 'at-most-once' }, { from: `l${layers - 1}b`, to: 'out', delivery: 'at-most-once' });
  return { nodes, sources: [{ id: 'in', type: 'http' }], sinks: [{ id: 'out', type: 'log' }], edges, slo: { latencyMs: 100, percentile: 99 } };
}

/** Headers and half of a 9 MiB upload body, then silence until the server gives up on it. */
function stalledUpload(): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    const started = Date.now();
    socket.on('connect', () => {
      socket.write(`PUT /v1/functions/stalled HTTP/1.1\r\nHost: x\r\nContent-Type: application/javascript\r\nContent-Length: ${9 * 1024 * 1024}\r\n\r\n`);
      socket.write(Buffer.alloc(1024 * 1024, 0x20));
    });
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk));
    const finish = () => resolve(answer ? `answered after ${Math.round((Date.now() - started) / 1000)} s` : `closed after ${Math.round((Date.now() - started) / 1000)} s`);
    socket.on('close', finish);
    socket.on('error', () => {});
    setTimeout(() => socket.destroy(), 120_000).unref();
  });
}

const deepJson = `[{"value": ${'['.repeat(6000)}${']'.repeat(6000)}}]`;

function startHostiles(): Promise<void>[] {
  return [
    hostile('infinite loop', 2, 50, invokeHostile('hostile-loop')),
    hostile('memory bomb', 1, 200, invokeHostile('hostile-bomb')),
    hostile('wasm memory', 1, 200, invokeHostile('hostile-wasm-memory')),
    hostile('resizable buffers', 1, 200, invokeHostile('hostile-resizable')),
    hostile('slow-function flood', 64, 0, invokeHostile('hostile-slow')),
    hostile('huge headers', 1, 100, invokeHostile('hostile-headers')),
    hostile('leaked timers', 1, 20, invokeHostile('hostile-timers')),
    hostile('unknown names', 4, 0, async () => outcome(await fetch(`${base}/v1/invoke/nope-${Math.random().toString(36).slice(2)}`))),
    hostile('deep JSON ingest', 1, 100, async () =>
      outcome(await fetch(`${base}/v1/graphs/wordcount/sources/lines`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: deepJson })),
    ),
    hostile('9000-node chain', 1, 1000, async () => outcome(await put('/v1/graphs/poison-chain', JSON.stringify(chain(9000)), 'application/json'))),
    hostile('ladder graph churn', 1, 2000, async () => {
      const first = await outcome(await put('/v1/graphs/poison-ladder', JSON.stringify(ladder(18)), 'application/json'));
      await fetch(`${base}/v1/invoke/hello`); // keep the loop honest: no busy churn
      return first;
    }),
    hostile('stalled uploads', 8, 0, stalledUpload),
  ];
}

interface Sample {
  t: number;
  phase: string;
  controlPlaneMb: number | null;
  hostsMb: Array<number | null>;
}

async function hostPids(): Promise<number[]> {
  try {
    const { hosts } = (await (await fetch(`${base}/healthz`)).json()) as { hosts: Array<number | null> };
    return hosts.filter((p): p is number => p !== null);
  } catch {
    return [];
  }
}

async function hostRestarts(): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^tributary_host_restarts_total\{[^}]*\} (\d+)/gm)) total += Number(match[1]);
  return total;
}

function report(stats: PhaseStats) {
  const sorted = [...stats.latenciesMs].sort((a, b) => a - b);
  const errors = [...stats.errors.values()].reduce((a, b) => a + b, 0);
  const total = stats.ok + stats.retryLater + errors;
  return {
    requests: total,
    p50Ms: round(percentile(sorted, 50), 2),
    p99Ms: round(percentile(sorted, 99), 2),
    retryLater: stats.retryLater,
    errors,
    errorRate: total ? round(errors / total, 5) : 0,
    errorCodes: Object.fromEntries(stats.errors),
  };
}

await waitUp();
const samples: Sample[] = [];
const t0 = Date.now();
let phaseName = 'baseline';
const sampler = setInterval(async () => {
  const pids = await hostPids();
  samples.push({ t: round((Date.now() - t0) / 1000, 0), phase: phaseName, controlPlaneMb: rssMb(server.pid!), hostsMb: pids.map(rssMb) });
}, SAMPLE_MS);

let results: Record<string, ReturnType<typeof report>> = {};
let restartsBefore = 0;
let restartsAfter = 0;
try {
  for (const [name, { source, query }] of Object.entries(HOSTILE_FUNCTIONS)) await deployFunction(name, source, query);
  const legit = [...Array.from({ length: LEGIT_CONNECTIONS }, legitInvoker), legitIngest()];
  await new Promise((r) => setTimeout(r, PHASE_S * 1000));
  results.baseline = report(phase);
  restartsBefore = await hostRestarts();
  phaseName = 'hostile';
  phase = newStats();
  const hostiles = startHostiles();
  await new Promise((r) => setTimeout(r, PHASE_S * 1000));
  results.hostile = report(phase);
  running = false;
  restartsAfter = await hostRestarts().catch(() => -1);
  await Promise.race([Promise.all([...legit, ...hostiles]), new Promise((r) => setTimeout(r, 5000))]);
} finally {
  running = false;
  clearInterval(sampler);
}

// Warm-up: caches and pools fill to their bounds first (the tail cache, isolate pools, the
// registry cache, the bodies of stalled uploads), so growth is measured from 15 s into the hostile
// phase to its end; the first sample and the end of the baseline phase are printed beside it.
const WARM_S = PHASE_S + Math.min(15, PHASE_S / 2);
const first = samples[0]?.controlPlaneMb ?? null;
const baselineEnd = samples.filter((s) => s.phase === 'baseline').at(-1)?.controlPlaneMb ?? null;
const warm = samples.find((s) => s.t >= WARM_S)?.controlPlaneMb ?? null;
const last = samples.at(-1)?.controlPlaneMb ?? null;
const peak = Math.max(...samples.map((s) => s.controlPlaneMb ?? 0));
const growth = warm && last ? round((last - warm) / warm, 3) : null;
const controlPlaneExits = exited ? 1 : 0;

printTable('RSS over time (MiB)', samples.filter((_, i) => i % 3 === 0 || i === samples.length - 1).map((s) => ({
  't s': s.t,
  phase: s.phase,
  'control plane': s.controlPlaneMb ?? 'gone',
  hosts: s.hostsMb.map((m) => m ?? '-').join(' / '),
})));
printTable(`Legitimate traffic (${LEGIT_CONNECTIONS} invoke connections + WordCount ingest), ${PHASE_S} s per phase`, Object.entries(results).map(([name, r]) => ({
  phase: name,
  requests: r.requests,
  'p50 ms': r.p50Ms,
  'p99 ms': r.p99Ms,
  '429/503 retry': r.retryLater,
  errors: r.errors,
  'error rate': r.errorRate,
})));
printTable('Hostile tenants (outcomes seen)', [...hostileCounts].map(([kind, outcomes]) => ({
  tenant: kind,
  outcomes: [...outcomes].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([o, n]) => `${o} ×${n}`).join(', '),
})));
for (const [name, r] of Object.entries(results)) if (r.errors > 0) console.log(`${name} errors: ${JSON.stringify(r.errorCodes)}`);
const verdict = (ok: boolean) => (ok ? 'met' : 'NOT met');
console.log(`\nhost restarts during the hostile phase: ${restartsAfter - restartsBefore}; control-plane exits: ${controlPlaneExits}`);
console.log(`control-plane RSS: ${first} MiB at start, ${baselineEnd} MiB at the end of the baseline phase, ${warm} MiB after warm-up (t=${WARM_S} s) → ${last} MiB at the end (peak ${peak}): growth after warm-up ${growth === null ? '?' : `${round(growth * 100, 1)}%`} (target < 10%: ${verdict(growth !== null && growth < 0.1)})`);
console.log(`legitimate errors under attack: ${results.hostile?.errors ?? '?'} (target 0: ${verdict(results.hostile?.errors === 0)}); control-plane exits 0: ${verdict(controlPlaneExits === 0)}`);
printJson('soak', { phaseS: PHASE_S, results, samples, hostile: Object.fromEntries([...hostileCounts].map(([k, v]) => [k, Object.fromEntries(v)])), hostRestarts: restartsAfter - restartsBefore, controlPlaneExits, controlPlaneRss: { first, baselineEnd, warm, warmS: WARM_S, last, peak, growth } });

server.kill('SIGTERM');
await new Promise((r) => setTimeout(r, 3000));
if (!exited) server.kill('SIGKILL');
rmSync(dataDir, { recursive: true, force: true });
if (controlPlaneExits) {
  console.error(`serve exited during the soak (${exited}); its last output:\n${serverLog.slice(-5000)}`);
  process.exitCode = 1;
}
