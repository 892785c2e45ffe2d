/**
 * Scaling curves: throughput and end-to-end p99 of a pass-through graph on the embedded log as one
 * dimension at a time moves away from a base configuration (issue 11, item 5):
 *
 *   depth       1, 2, 4, 8 nodes in a chain           (base 1)
 *   partitions  1, 4, 16, 64 on every node-to-node and source edge   (base 4)
 *   record      64 B, 1 KiB, 16 KiB, 64 KiB values    (base 256 B)
 *   replicas    1 .. cores per node                   (base 1)
 *
 * Every node runs `scale-pass` (emits its record unchanged), edges are exactly-once unless
 * BENCH_SCALE_DELIVERY says otherwise, and replicas are pinned (no autoscaler). The baseline,
 * measured first in the same run, is the base configuration; each row prints its throughput and
 * p99 next to the baseline's as ratios, and "cost/unit" — how the time per record grows against
 * the dimension: the exponent k in time/record ∝ dimension^k (1.0 = linear in it; below 1 = cheaper
 * than linear, above = faster than linear; '-' for the baseline and for replicas).
 *
 * Records per configuration: BENCH_SCALE_RECORDS (default 20,000), capped at 64 MiB of values
 * per configuration; BENCH_SCALE_ONLY (a regular expression over the dimension names) selects.
 * Prints a table per dimension and one JSON line.
 */
import { availableParallelism, tmpdir } from 'node:os';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { startPlatform } from '../api/platform.ts';
import { TributaryError } from '../runtime/errors.ts';
import type { Delivery, GraphSpec } from '../scheduler/graph-spec.ts';
import { printJson, printTable, round } from './report.ts';

const RECORDS = Number(process.env.BENCH_SCALE_RECORDS ?? 20_000);
const DELIVERY = (process.env.BENCH_SCALE_DELIVERY ?? 'exactly-once') as Delivery;
const MAX_BYTES_PER_CONFIG = 64 * 1024 * 1024;
const MAX_INGEST_BYTES = 1024 * 1024;
const MAX_INGEST_RECORDS = 1000;
const CORES = availableParallelism();
const ONLY = process.env.BENCH_SCALE_ONLY ? new RegExp(process.env.BENCH_SCALE_ONLY) : null;

interface Config {
  depth: number;
  partitions: number;
  recordBytes: number;
  replicas: number;
}

const BASE: Config = { depth: 1, partitions: 4, recordBytes: 256, replicas: 1 };

const DIMENSIONS: Array<{ name: keyof Config; values: number[]; label: (v: number) => string }> = [
  { name: 'depth', values: [1, 2, 4, 8], label: (v) => `${v} nodes` },
  { name: 'partitions', values: [1, 4, 16, 64], label: (v) => `${v} partitions` },
  { name: 'recordBytes', values: [64, 1024, 16 * 1024, 64 * 1024], label: (v) => (v >= 1024 ? `${v / 1024} KiB` : `${v} B`) },
  { name: 'replicas', values: Array.from({ length: Math.max(1, CORES) }, (_, i) => i + 1), label: (v) => `${v} replicas` },
];

function graphOf(config: Config): GraphSpec {
  const nodes = Array.from({ length: config.depth }, (_, i) => ({ id: `n${i}`, function: 'scale-pass', replicas: { min: config.replicas, max: config.replicas } }));
  const chain = ['in', ...nodes.map((n) => n.id), 'out'];
  const edges = chain.slice(1).map((to, i) => ({ from: chain[i], to, delivery: DELIVERY, ...(to === 'out' ? {} : { partitions: config.partitions }) }));
  return { nodes, sources: [{ id: 'in', type: 'http' }], sinks: [{ id: 'out', type: 'log' }], edges } as GraphSpec;
}

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-scale-'));
const platform = await startPlatform({ dataDir, maxLagRecords: 2_000_000 });
let runs = 0;

async function measure(config: Config) {
  const name = `scale-${runs++}`;
  const count = Math.max(100, Math.min(RECORDS, Math.floor(MAX_BYTES_PER_CONFIG / config.recordBytes)));
  await platform.graphs.deploy(name, graphOf(config));
  const runtime = platform.graphs.runtime(name);
  const value = 'x'.repeat(config.recordBytes);
  const perChunk = Math.max(1, Math.min(MAX_INGEST_RECORDS, Math.floor(MAX_INGEST_BYTES / config.recordBytes)));
  const started = performance.now();
  for (let sent = 0; sent < count; ) {
    const n = Math.min(perChunk, count - sent);
    const chunk = Array.from({ length: n }, (_, i) => ({ key: `k${(sent + i) % 1024}`, value }));
    try {
      runtime.ingest('in', chunk);
      sent += n;
    } catch (error) {
      if (!(error instanceof TributaryError && error.code === 'ERR_BACKPRESSURE')) throw error;
      await new Promise((r) => setTimeout(r, 2));
    }
    await new Promise((r) => setImmediate(r));
  }
  const sinkTopic = runtime.topology.sinkTopic('out');
  while (platform.log.head(sinkTopic, 0) < count) await new Promise((r) => setTimeout(r, 2));
  const seconds = (performance.now() - started) / 1000;
  const result = {
    records: count,
    recordsPerSec: Math.round(count / seconds),
    mibPerSec: round((count * config.recordBytes) / seconds / 2 ** 20, 1),
    p50Ms: runtime.latency.percentile(50) ?? NaN,
    p99Ms: runtime.latency.percentile(99) ?? NaN,
  };
  await platform.graphs.delete(name);
  return result;
}

try {
  await platform.functions.deploy({ name: 'scale-pass', kind: 'js', code: 'export default { process(record, env, ctx) { ctx.emit(record.value, { key: record.key }); } };', memoryLimitMb: 256, timeoutMs: 5000 });
  await measure({ ...BASE, depth: 2 }); // warm-up: isolates, code caches, JIT
  const baseline = await measure(BASE);
  const tables: Record<string, unknown[]> = {};
  for (const dimension of DIMENSIONS.filter((d) => !ONLY || ONLY.test(d.name))) {
    const rows = [];
    const baseValue = BASE[dimension.name];
    for (const value of dimension.values) {
      const config = { ...BASE, [dimension.name]: value };
      const result = value === baseValue ? baseline : await measure(config);
      // Time per record relative to the baseline, against how far the dimension moved from it.
      const slowdown = baseline.recordsPerSec / result.recordsPerSec;
      const moved = value / baseValue;
      rows.push({
        [dimension.name]: dimension.label(value),
        ...result,
        'x baseline rec/s': round(result.recordsPerSec / baseline.recordsPerSec),
        'x baseline p99': round(result.p99Ms / baseline.p99Ms),
        'cost/unit': dimension.name === 'replicas' || moved === 1 ? '-' : round(Math.log(slowdown) / Math.log(moved), 2),
      });
    }
    tables[dimension.name] = rows;
    printTable(`Scaling by ${dimension.name} (baseline: ${BASE.depth} node, ${BASE.partitions} partitions, ${BASE.recordBytes} B, ${BASE.replicas} replica, ${DELIVERY}: ${baseline.recordsPerSec} rec/s, p99 ${baseline.p99Ms} ms)`, rows as Array<Record<string, string | number>>);
  }
  printJson('scale', { delivery: DELIVERY, cores: CORES, base: BASE, baseline, dimensions: tables });
} finally {
  await platform.close();
  rmSync(dataDir, { recursive: true, force: true });
}
