/**
 * WordCount on the embedded log, the three delivery semantics side by side in one run: sentences
 * of 10 words go in through the source, split emits one record per word, count keeps per-word
 * counts in env.STATE and emits {word, count} to a log sink. Reports tuples/s (words counted and
 * committed to the sink per second), end-to-end latency p50/p99 (ingest → sink commit), and each
 * semantic's ratio to at-most-once.
 *
 * Targets (issue 3): at-most-once ≥ 1,000,000 tuples/s; at-least-once ≥ 0.7x and exactly-once
 * ≥ 0.5x of at-most-once.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPlatform } from '../api/platform.ts';
import { TributaryError } from '../runtime/errors.ts';
import type { Delivery } from '../scheduler/graph-spec.ts';
import { printJson, printTable, round } from './report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SENTENCES = Number(process.env.BENCH_SENTENCES ?? 50_000);
const WORDS_PER_SENTENCE = 10;
const CHUNK = 1000;
const VOCABULARY = Array.from({ length: 1000 }, (_, i) => `w${i.toString(36)}`);

function sentences(count: number, seed: number): string[] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31);
  return Array.from({ length: count }, () => Array.from({ length: WORDS_PER_SENTENCE }, () => VOCABULARY[next() % VOCABULARY.length]).join(' '));
}

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-wc-'));
const platform = await startPlatform({ dataDir, maxLagRecords: 2_000_000 });

async function run(delivery: Delivery, count: number) {
  const name = `wc-${delivery}-${count}`;
  const graph = JSON.parse(readFileSync(join(ROOT, 'functions/wordcount.graph.json'), 'utf8'));
  for (const edge of graph.edges) edge.delivery = delivery;
  // No autoscaler in this bench: run every node at its maximum replicas (one per host).
  for (const node of graph.nodes) node.replicas = { min: node.replicas.max, max: node.replicas.max };
  await platform.graphs.deploy(name, graph);
  const runtime = platform.graphs.runtime(name);
  const input = sentences(count, 7);
  const expected = count * WORDS_PER_SENTENCE;
  const started = performance.now();
  for (let i = 0; i < input.length; i += CHUNK) {
    const chunk = input.slice(i, i + CHUNK).map((value) => ({ value }));
    for (;;) {
      try {
        runtime.ingest('lines', chunk);
        break;
      } catch (error) {
        if (!(error instanceof TributaryError && error.code === 'ERR_BACKPRESSURE')) throw error;
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    await new Promise((r) => setImmediate(r));
  }
  const sinkTopic = runtime.topology.sinkTopic('counts');
  while (platform.log.head(sinkTopic, 0) < expected) await new Promise((r) => setTimeout(r, 2));
  const seconds = (performance.now() - started) / 1000;
  const result = {
    delivery,
    tuples: expected,
    seconds: round(seconds, 2),
    tuplesPerSec: Math.round(expected / seconds),
    p50Ms: runtime.latency.percentile(50),
    p99Ms: runtime.latency.percentile(99),
  };
  await platform.graphs.delete(name);
  return result;
}

try {
  for (const name of ['wordcount-split', 'wordcount-count']) {
    await platform.functions.deploy({ name, kind: 'js', code: readFileSync(join(ROOT, 'functions', `${name}.js`), 'utf8'), memoryLimitMb: 128, timeoutMs: 5000 });
  }
  await run('exactly-once', 2000); // warm-up: isolates, code caches, JIT
  const results = [];
  for (const delivery of ['at-most-once', 'at-least-once', 'exactly-once'] as const) results.push(await run(delivery, SENTENCES));
  const amo = results[0].tuplesPerSec;
  const rows = results.map((r) => ({ ...r, p50Ms: r.p50Ms ?? NaN, p99Ms: r.p99Ms ?? NaN, "ratio to AMO": round(r.tuplesPerSec / amo) }));
  printTable(`WordCount, embedded log, ${SENTENCES} sentences × ${WORDS_PER_SENTENCE} words per semantic (targets: AMO ≥ 1,000,000 tuples/s; ALO ≥ 0.7x; EO ≥ 0.5x)`, rows);
  printJson('wordcount', { sentences: SENTENCES, results: rows });
} finally {
  await platform.close();
  rmSync(dataDir, { recursive: true, force: true });
}
