/**
 * Stragglers end to end: the p99 of a node with one slow replica, with and without mitigation, in
 * the same run and on the same platform.
 *
 *   in → work (3 replicas, 6 partitions by key, exactly-once) → out
 *
 * The first of `work`'s isolates to load in each graph asks a role server in this process and is
 * told to be slow (SLOW_MS of CPU work per record on a quiet machine: an isolate with a
 * deoptimised function or a bloated heap, say); every other isolate, recycled ones included, is
 * told to be healthy (HEALTHY_MS). One host
 * per replica, so a slow replica does not slow its siblings' hosts.
 *
 * Baseline: the same graph with mitigation off (GraphRuntime.mitigateStragglers = false): the slow
 * replica keeps its partitions. Mitigated: detection (isolate CPU time per record over 3x the
 * median of its siblings', over 5 batches), steering its batches to healthy replicas, recycling
 * under a new instance tag (5 s cooldown). Detection reads CPU time, not wall time: on a loaded
 * machine healthy replicas wait for a core and look slow by the clock (BENCH_STRAGGLER_HOGS=n runs
 * n busy processes beside both graphs to make the machine so; `recycled` above 1 per slow replica
 * would be healthy replicas recycled). Reported: p50/p99/worst end-to-end latency over the run and after the first 5 s,
 * steered batches, recyclings, the gain per record each recycling expected next to what it got,
 * and records lost or repeated (exactly-once: 0 and 0).
 *
 * BENCH_TIME_SCALE scales the run (default 1: 20 s per graph at RATE records/s).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform } from '../api/platform.ts';
import { percentile, printJson, printTable, round } from './report.ts';

const SCALE = Number(process.env.BENCH_TIME_SCALE ?? 1);
const SECONDS = 20 * SCALE;
const RATE = Number(process.env.BENCH_STRAGGLER_RATE ?? 600); // records/s
// A batch's synchronous run is cut after 20 ms (runtime/host/budget.ts SYNC_SLICE_MS) and its
// isolate replaced — which would "cure" the straggler by accident: slow × MAX_BATCH stays under it.
const SLOW_MS = Number(process.env.BENCH_STRAGGLER_SLOW_MS ?? 3.5);
const HEALTHY_MS = 0.3;
const MAX_BATCH = 4;
const KEYS = 48;
const HOGS = Number(process.env.BENCH_STRAGGLER_HOGS ?? 0);
const loadAverage = () => loadavg().map((l) => l.toFixed(2)).join(' ');
/** Busy processes that make the machine a loaded one (killed by pid at the end). */
const hogs: ChildProcess[] = Array.from({ length: HOGS }, () => spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' }));

const loads = new Map<string, number>();
const roles = createServer((req, res) => {
  const graph = new URL(req.url ?? '/', 'http://x').searchParams.get('graph') ?? '';
  const n = (loads.get(graph) ?? 0) + 1;
  loads.set(graph, n);
  res.end(n === 1 ? 'slow' : 'fast');
});
await new Promise<void>((resolve) => roles.listen(0, '127.0.0.1', resolve));
const port = (roles.address() as AddressInfo).port;

/** Iterations of the work loop per ms of CPU (≈ 2.5 ms per million on this machine when quiet). */
const ITERATIONS_PER_MS = 400_000;
// CPU work, not a wait on the clock: detection compares isolate CPU time, and a clock-bound wait
// takes less CPU the busier the machine.
const work = (graph: string) => `let role = null;
const spin = (n) => { let x = 0; for (let i = 0; i < n; i++) x = (x + Math.sqrt(i)) * 0.999; return x; };
export default {
  async process(r, env, ctx) {
    role ??= fetch('http://127.0.0.1:${port}/role?graph=${graph}').then((res) => res.text());
    const work = spin((await role) === 'slow' ? ${Math.round(SLOW_MS * ITERATIONS_PER_MS)} : ${Math.round(HEALTHY_MS * ITERATIONS_PER_MS)});
    ctx.emit({ ...r.value, work: work > 0 }, { key: r.key });
  },
};`;

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-strag-'));
const platform = await startPlatform({ dataDir, hosts: 3, warmSlots: 8, egressAllow: ['127.0.0.1/32'], autoscaleIntervalMs: 0, maxBatchRecords: MAX_BATCH });

async function run(mitigation: boolean) {
  const graph = `strag-${mitigation ? 'on' : 'off'}-${Date.now().toString(36)}`;
  await platform.functions.deploy({ name: graph, kind: 'js', code: work(graph), memoryLimitMb: 128, timeoutMs: 10_000 });
  await platform.graphs.deploy(graph, {
    nodes: [{ id: 'work', function: graph, replicas: { min: 3, max: 3 } }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'work', delivery: 'exactly-once', partitionBy: 'key', partitions: 6 },
      { from: 'work', to: 'out', delivery: 'exactly-once' },
    ],
  });
  const runtime = platform.graphs.runtime(graph)!;
  runtime.mitigateStragglers = mitigation;
  const samples: Array<{ at: number; ms: number }> = [];
  const started = Date.now();
  runtime.latency.observer = (ms) => samples.push({ at: Date.now() - started, ms });
  let sent = 0;
  let owed = 0;
  let last = started;
  while (Date.now() - started < SECONDS * 1000) {
    const now = Date.now();
    owed += (RATE * (now - last)) / 1000;
    last = now;
    const due = Math.floor(owed);
    if (due > 0) {
      runtime.ingest('in', Array.from({ length: due }, () => ({ key: `k${sent % KEYS}`, value: { id: sent++ } })));
      owed -= due;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const deadline = Date.now() + 60_000;
  let ids: number[] = [];
  while (Date.now() < deadline) {
    ids = runtime.readSink('out', 0, sent * 2 + 10).map((r) => (r.value as { id: number }).id);
    if (ids.length >= sent) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  const unique = new Set(ids);
  const all = samples.map((s) => s.ms).sort((a, b) => a - b);
  const settled = samples.filter((s) => s.at >= 5000).map((s) => s.ms).sort((a, b) => a - b);
  const status = runtime.stragglerStatus('work')!;
  await platform.graphs.delete(graph);
  return {
    mitigation: mitigation ? 'on' : 'off',
    'p50 ms': round(percentile(all, 50), 1),
    'p99 ms': round(percentile(all, 99), 1),
    'p99 after 5 s': settled.length > 0 ? round(percentile(settled, 99), 1) : '-',
    'worst ms': round(all[all.length - 1] ?? 0, 0),
    steered: status.steeredBatches,
    recycled: status.recycled,
    'expected gain ms/rec': status.events.map((e) => e.expectedGainMsPerRecord).join(' ') || '-',
    'got gain ms/rec': status.events.map((e) => e.gotGainMsPerRecord ?? '?').join(' ') || '-',
    lost: sent - unique.size,
    repeated: ids.length - unique.size,
    'load avg': loadAverage(),
    events: status.events,
  };
}

try {
  const results = [await run(false), await run(true)];
  printTable(
    `Stragglers: in → work (3 replicas, one told at load to take ${SLOW_MS} ms/record, the others ${HEALTHY_MS} ms; batches ≤ ${MAX_BATCH}) → out, ${RATE} records/s for ${SECONDS} s per graph, ${HOGS} busy processes beside; mitigation off vs on in the same run (detection on isolate CPU time per record)`,
    results.map(({ events: _events, ...row }) => row),
  );
  printJson('stragglers', { rate: RATE, slowMs: SLOW_MS, seconds: SECONDS, hogs: HOGS, results });
} finally {
  for (const hog of hogs) hog.kill();
  await platform.close();
  roles.close();
  rmSync(dataDir, { recursive: true, force: true });
}
