/**
 * The shipped defaults, as a new user runs them: `tributary serve` with no tuning flags (the CLI
 * hands the platform `undefined` for every option left unset). A graph with replicas {1, 4} and an
 * SLO goes through load up (≥ 2 replicas), down (back to 1 after the default 10 s stable window)
 * and idle, and the control plane never exits. Before options were merged with `withDefaults`,
 * the first scale-down tick threw `reading 'at'` and ended the process.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Autoscaler, DEFAULT_AUTOSCALE_INTERVAL_MS, DEFAULT_STABLE_WINDOW_MS } from '../scheduler/autoscaler/autoscaler.ts';
import { ThresholdPolicy } from '../scheduler/autoscaler/policy.ts';
import { deploy, tempDir, waitFor, withPlatform } from './fixtures/platform.ts';
import { ServerProcess } from './fixtures/server-process.ts';

/** Burns ~1.5 ms of CPU per record: a CPU-bound node whose load the autoscaler can see. */
const BURN = `export default { process(r) { const end = performance.now() + 1.5; while (performance.now() < end) {} return r.value; } };`;

function pipe(slo?: { latencyMs: number; percentile: number }) {
  return {
    nodes: [{ id: 'n', function: 'burn', replicas: { min: 1, max: 4 } }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'n', delivery: 'at-least-once', partitionBy: 'key' },
      { from: 'n', to: 'out', delivery: 'at-least-once' },
    ],
    ...(slo ? { slo } : {}),
  };
}

describe('autoscaler options left unset', () => {
  let platform: Awaited<ReturnType<typeof withPlatform>>;
  beforeAll(async () => {
    // Explicit undefined, as `tributary serve` passes for flags it was not given.
    platform = await withPlatform({ autoscaleIntervalMs: undefined, stableWindowMs: undefined });
    await deploy(platform, 'burn', BURN, '?timeoutMs=30000');
    const res = await platform.app.request('/v1/graphs/window', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pipe()) });
    expect(res.status, await res.clone().text()).toBe(201);
  });
  afterAll(() => platform?.cleanup());

  it('keeps the defaults instead of undefined', () => {
    const runtime = platform.graphs.runtime('window');
    expect(platform.graphs.autoscaler('window')!.stableWindowMs).toBe(DEFAULT_STABLE_WINDOW_MS);
    const autoscaler = new Autoscaler(runtime, { policy: new ThresholdPolicy(100), cores: 1, intervalMs: undefined, stableWindowMs: undefined });
    expect(autoscaler.intervalMs).toBe(DEFAULT_AUTOSCALE_INTERVAL_MS);
    expect(autoscaler.stableWindowMs).toBe(DEFAULT_STABLE_WINDOW_MS);
    const nonsense = new Autoscaler(runtime, { policy: new ThresholdPolicy(100), cores: 1, intervalMs: Number.NaN, stableWindowMs: -5 });
    expect(nonsense.intervalMs).toBe(DEFAULT_AUTOSCALE_INTERVAL_MS);
    expect(nonsense.stableWindowMs).toBe(DEFAULT_STABLE_WINDOW_MS);
  });

  it('scales down after the default stable window on an injected clock, without throwing', async () => {
    const autoscaler = platform.graphs.autoscaler('window')!;
    autoscaler.stop(); // this test drives the ticks with its own clock
    expect(autoscaler.stableWindowMs).toBe(DEFAULT_STABLE_WINDOW_MS);
    const runtime = platform.graphs.runtime('window');
    runtime.setReplicas('n', 3, 'test');
    const start = Date.now();
    const actions: string[] = [];
    for (let t = 0; t <= 12_000; t += 1000) actions.push(autoscaler.tick(start + t)[0].action);
    // Idle: the policy wants 1 from the first tick; it may act only once a whole window wanted fewer.
    expect(actions.slice(0, 9).every((a) => a === 'hold')).toBe(true);
    expect(actions).toContain('down');
    expect(runtime.replicaCount('n')).toBe(1);
    expect(runtime.status().errors.count).toBe(0);
  });
});

describe('tributary serve with the shipped defaults', () => {
  const dataDir = tempDir();
  const server = new ServerProcess(dataDir); // only --port and --data-dir
  const health = { checks: 0, failures: [] as string[], stop: false, loop: Promise.resolve() };

  beforeAll(async () => {
    await server.start();
    health.loop = (async () => {
      while (!health.stop) {
        try {
          const res = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(5000) });
          if (!res.ok) health.failures.push(`healthz ${res.status}`);
        } catch (error) {
          health.failures.push(`healthz: ${(error as Error).message}`);
        }
        health.checks++;
        await new Promise((r) => setTimeout(r, 250));
      }
    })();
  });
  afterAll(async () => {
    health.stop = true;
    await health.loop;
    await server.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const api = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
  const describeGraph = async () => (await (await api('/v1/graphs/load')).json()) as { status: { nodes: { n: { replicas: number; lastDecision: { action: string } | null } }; errors: { count: number } } };

  it(
    'drives a graph through load up, down and idle: the process never exits and /healthz answers throughout',
    async () => {
      const fn = await api('/v1/functions/burn?timeoutMs=30000', { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: BURN });
      expect(fn.status, await fn.text()).toBe(201);
      const put = await api('/v1/graphs/load', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pipe({ latencyMs: 250, percentile: 99 })) });
      expect(put.status, await put.text()).toBe(201);

      const seen = new Set<string>();
      const watch = async () => {
        const { status } = await describeGraph();
        if (status.nodes.n.lastDecision) seen.add(status.nodes.n.lastDecision.action);
        return status;
      };

      // Up: ~1200 records/s at ~1.5 ms each is more than one replica can serve.
      let key = 0;
      let peak = 1;
      const deadline = Date.now() + 30_000;
      while (peak < 2 && Date.now() < deadline) {
        const body = JSON.stringify(Array.from({ length: 60 }, () => ({ key: `k${key++ % 16}`, value: key })));
        const res = await api('/v1/graphs/load/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body });
        expect([202, 429]).toContain(res.status);
        await res.arrayBuffer();
        peak = Math.max(peak, (await watch()).nodes.n.replicas);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(peak).toBeGreaterThanOrEqual(2);
      expect(seen).toContain('up');

      // Down: no more input; after the default 10 s stable window it goes back to one replica.
      const scaledDown = await waitFor(
        async () => {
          const status = await watch();
          return status.nodes.n.replicas === 1 ? status : null;
        },
        60_000,
        'scale-down after the default stable window',
      );
      expect(scaledDown.errors.count).toBe(0);
      expect(seen).toContain('down');

      // Idle: a few more ticks with nothing to do.
      const idleUntil = Date.now() + 3000;
      while (Date.now() < idleUntil) {
        expect((await watch()).nodes.n.replicas).toBe(1);
        await new Promise((r) => setTimeout(r, 250));
      }
      const status = await watch();
      expect(status.errors.count).toBe(0);
      expect(server.running, server.output).toBe(true);
      const metrics = await (await api('/metrics')).text();
      expect(metrics).toMatch(/tributary_autoscaler_decisions_total\{graph="load",node="n",action="up"\} [1-9]/);
      expect(metrics).toMatch(/tributary_autoscaler_decisions_total\{graph="load",node="n",action="down"\} [1-9]/);
      expect(metrics).not.toMatch(/tributary_control_plane_errors_total\{[^}]*\} [1-9]/);
      expect(health.checks).toBeGreaterThan(10);
      expect(health.failures).toEqual([]);
    },
    120_000,
  );
});
