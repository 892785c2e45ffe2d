/**
 * A real Prometheus (Debian's package, started by scripts/prometheus.sh with a 1 s scrape of
 * 127.0.0.1:8787/metrics) scrapes a running platform whose /metrics needs the management token
 * (the script hands it over as `authorization: { type: Bearer, credentials_file }`); its HTTP
 * API must return our series.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../api/server.ts';
import { SERVICE_DEFAULTS, SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { tempDir, waitFor } from './fixtures/platform.ts';

const ROOT = join(import.meta.dirname, '..');
const dataDir = tempDir();
const token = `prom-${Math.random().toString(36).slice(2)}`;
let server: RunningServer;

beforeAll(async () => {
  server = await startServer({ port: 8787, dataDir, hosts: 1, autoscaleIntervalMs: 500, token });
  const { functions, graphs } = server.platform;
  for (const name of ['wordcount-split', 'wordcount-count']) {
    await functions.deploy({ name, kind: 'js', code: readFileSync(join(ROOT, 'functions', `${name}.js`), 'utf8'), memoryLimitMb: 128, timeoutMs: 1000 });
  }
  await graphs.deploy('prom', JSON.parse(readFileSync(join(ROOT, 'functions/wordcount.graph.json'), 'utf8')));
  graphs.ingest('prom', 'lines', [{ value: 'scrape me if you can' }]);
  await ensureService('prometheus', { PROM_TARGETS: '127.0.0.1:8787', TRIBUTARY_TOKEN: token });
}, SERVICE_START_TIMEOUT_MS);

afterAll(async () => {
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

async function query(promql: string): Promise<Array<{ metric: Record<string, string>; value: [number, string] }>> {
  const res = await fetch(`${SERVICE_DEFAULTS.prometheus.url}/api/v1/query?query=${encodeURIComponent(promql)}`);
  const body = (await res.json()) as { status: string; data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  expect(body.status).toBe('success');
  return body.data.result;
}

describe('Prometheus scrapes the platform', () => {
  it('is the only one let in: /metrics answers 401 without the token', async () => {
    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_UNAUTHORIZED');
  });

  it('finds the autoscaler, graph and runtime series through its query API', async () => {
    const replicas = await waitFor(async () => {
      const result = await query('tributary_node_replicas{graph="prom"}');
      return result.length >= 2 ? result : null;
    }, 60_000, 'tributary_node_replicas in Prometheus');
    expect(replicas.map((r) => r.metric.node).sort()).toEqual(['count', 'split']);
    for (const series of ['tributary_graph_e2e_latency_seconds_count', 'tributary_autoscaler_decisions_total', 'tributary_cold_starts_total', 'tributary_isolates']) {
      const found = await waitFor(async () => ((await query(series)).length > 0 ? true : null), 30_000, series);
      expect(found).toBe(true);
    }
    const up = await query('up{job="tributary"}');
    expect(up.some((r) => r.value[1] === '1')).toBe(true);
  });
});
