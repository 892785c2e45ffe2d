/**
 * Autoscaling under a load trace — idle → base → 10x step → ramp down → idle — against a one-node
 * graph with a p99 latency SLO, for three policies in the same run:
 *   latency-model  ours (Erlang C along the critical path, damping, scale to zero)
 *   static-max     replicas.max all the time
 *   threshold-rps  OpenFaaS-style: ⌈requests per second / target per replica⌉
 * Reports SLO attainment (share of 1-second windows with records whose p99 meets the SLO),
 * replica-seconds, time and replica changes to reach the steady count after the step, and the
 * time from the start of the idle phase to zero replicas.
 *
 * Targets (issue 5): ≥ 99% of windows meet the SLO, ≤ 60% of static's replica-seconds, steady
 * count within 2 decisions after the step.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform } from '../api/platform.ts';
import { ModelPolicy, StaticPolicy, ThresholdPolicy, type ScalingPolicy } from '../scheduler/autoscaler/policy.ts';
import { percentile, printJson, printTable, round } from './report.ts';

const SLO_MS = Number(process.env.BENCH_SLO_MS ?? 250);
const BASE_RPS = 100;
const SCALE = Number(process.env.BENCH_TIME_SCALE ?? 1);
const PHASES = [
  { name: 'idle', seconds: 4 * SCALE, rps: () => 0 },
  { name: 'base', seconds: 6 * SCALE, rps: () => BASE_RPS },
  { name: 'step', seconds: 15 * SCALE, rps: () => BASE_RPS * 10 },
  { name: 'ramp', seconds: 10 * SCALE, rps: (t: number) => BASE_RPS * 10 * (1 - t) },
  { name: 'idle', seconds: 15 * SCALE, rps: () => 0 },
];

const policies: Record<string, ScalingPolicy> = {
  'latency-model': new ModelPolicy(),
  'static-max': new StaticPolicy(),
  'threshold-rps': new ThresholdPolicy(300),
};

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-as-'));
const platform = await startPlatform({
  dataDir,
  autoscaleIntervalMs: 1000,
  stableWindowMs: 5000,
  policy: (graph) => policies[graph.split('-run')[0]] ?? new ModelPolicy(),
});

async function run(policyName: string) {
  const name = `${policyName}-run`;
  await platform.graphs.deploy(name, {
    nodes: [{ id: 'burn', function: 'burn', replicas: { min: 0, max: 4 } }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'burn', delivery: 'exactly-once', partitionBy: 'round-robin', partitions: 4 },
      { from: 'burn', to: 'out', delivery: 'exactly-once' },
    ],
    slo: { latencyMs: SLO_MS, percentile: 99 },
    scaleToZeroAfterMs: 3000,
  });
  const runtime = platform.graphs.runtime(name);
  let window: number[] = [];
  runtime.latency.observer = (ms) => window.push(ms);
  const windows: Array<{ p99: number; n: number }> = [];
  const replicaTrace: Array<{ at: number; replicas: number; phase: string }> = [];
  const started = Date.now();
  let replicaMs = 0;
  let lastSample = started;
  let phaseStart = started;
  let nextWindow = started + 1000;
  for (const phase of PHASES) {
    phaseStart = Date.now();
    const end = phaseStart + phase.seconds * 1000;
    let owed = 0;
    let last = phaseStart;
    while (Date.now() < end) {
      const now = Date.now();
      owed += (phase.rps((now - phaseStart) / (phase.seconds * 1000)) * (now - last)) / 1000;
      last = now;
      const due = Math.floor(owed);
      if (due > 0) {
        runtime.ingest('in', Array.from({ length: due }, (_, i) => ({ value: i })));
        owed -= due;
      }
      const replicas = runtime.replicaCount('burn');
      replicaMs += replicas * (now - lastSample);
      lastSample = now;
      replicaTrace.push({ at: now - started, replicas, phase: phase.name });
      if (now >= nextWindow) {
        if (window.length > 0) windows.push({ p99: percentile(window.sort((a, b) => a - b), 99), n: window.length });
        window = [];
        nextWindow += 1000;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  const stepTrace = replicaTrace.filter((s) => s.phase === 'step');
  const steady = stepTrace[stepTrace.length - 1]?.replicas ?? 0;
  let settleAt = stepTrace[0]?.at ?? 0;
  let changes = 0;
  for (let i = 1; i < stepTrace.length; i++) {
    if (stepTrace[i].replicas !== stepTrace[i - 1].replicas) {
      changes++;
      settleAt = stepTrace[i].at;
    }
  }
  const lastIdleStart = replicaTrace.findLast((s, i) => s.phase === 'idle' && replicaTrace[i - 1]?.phase === 'ramp')?.at;
  const zeroAt = replicaTrace.find((s) => lastIdleStart !== undefined && s.at >= lastIdleStart && s.replicas === 0)?.at;
  const met = windows.filter((w) => w.p99 <= SLO_MS).length;
  await platform.graphs.delete(name);
  return {
    policy: policyName,
    'SLO windows met %': round((100 * met) / Math.max(1, windows.length), 1),
    windows: windows.length,
    'replica-seconds': round(replicaMs / 1000, 1),
    'steady replicas (step)': steady,
    'replica changes to steady': changes,
    'time to steady s': round((settleAt - (stepTrace[0]?.at ?? 0)) / 1000, 1),
    'time to zero s': zeroAt !== undefined && lastIdleStart !== undefined ? round((zeroAt - lastIdleStart) / 1000, 1) : NaN,
    'worst window p99 ms': Math.max(0, ...windows.map((w) => w.p99)),
  };
}

try {
  await platform.functions.deploy({
    name: 'burn',
    kind: 'js',
    code: `export default { process(r) { const end = Date.now() + 1; while (Date.now() < end) {} return r.value; } };`,
    memoryLimitMb: 128,
    timeoutMs: 10_000,
  });
  const results = [];
  for (const name of Object.keys(policies)) results.push(await run(name));
  const staticSeconds = results.find((r) => r.policy === 'static-max')!['replica-seconds'];
  const rows = results.map((r) => ({ ...r, 'vs static replica-s': round(r['replica-seconds'] / staticSeconds) }));
  printTable(`Autoscaling, 1 ms/record CPU-bound node, p99 SLO ${SLO_MS} ms, trace idle→${BASE_RPS}/s→${BASE_RPS * 10}/s step→ramp→idle (targets: ≥ 99% windows, ≤ 0.6x static replica-s, ≤ 2 changes to steady)`, rows);
  printJson('autoscale', { sloMs: SLO_MS, phases: PHASES.map((p) => ({ name: p.name, seconds: p.seconds })), results: rows });
} finally {
  await platform.close();
  rmSync(dataDir, { recursive: true, force: true });
}
