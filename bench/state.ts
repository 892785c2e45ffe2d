/**
 * WordCount with its counts in env.STATE, exactly-once, on the embedded store and on S3, next to
 * a stateless run in the same process: sentences of 10 words from a 1000-word vocabulary go in
 * through the source, split emits one record per word, count keeps per-word counts in env.STATE
 * (or, stateless, emits {word, count: 1} without touching it) and emits to a log sink. Reports
 * for each store:
 *   burst   BENCH_SENTENCES sentences ingested as fast as accepted: tuples/s (words counted and
 *           committed to the sink per second), the ratio to stateless, and p99 ingest → sink
 *           commit, which in a burst is mostly queueing;
 *   paced   PACED_TUPLES_PER_SEC for PACED_SECONDS, well below every store's throughput, after a
 *           second at that rate that is not measured (the graph's first batches load their
 *           state): end-to-end latency p50/p99 when nothing queues.
 *
 * S3 is the project's S3Proxy (scripts/s3.sh, filesystem backend, on this machine): what it costs
 * is one PUT per batch on the critical path (the staged writes) plus background publishing of
 * the live keys, coalesced across batches. `BENCH_SENTENCES` (default 20000) sets the size.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CreateBucketCommand, DeleteBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { startPlatform, type Platform } from '../api/platform.ts';
import { Bucket } from '../connectors/s3/bucket.ts';
import { TributaryError } from '../runtime/errors.ts';
import { SERVICE_DEFAULTS, ensureService } from '../scripts/services.ts';
import { printJson, printTable, round } from './report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const SENTENCES = Number(process.env.BENCH_SENTENCES ?? 20_000);
const WORDS_PER_SENTENCE = 10;
const CHUNK = 1000;
const VOCABULARY = Array.from({ length: 1000 }, (_, i) => `w${i.toString(36)}`);
const PACED_TUPLES_PER_SEC = 5000;
const PACED_SECONDS = 4;
const PACED_TICK_MS = 100;
const STATELESS_COUNT = `export default { process(record, env, ctx) { ctx.emit({ word: record.key, count: 1 }, { key: record.key }); } };`;

function sentences(count: number, seed: number): string[] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) % 2 ** 31);
  return Array.from({ length: count }, () => Array.from({ length: WORDS_PER_SENTENCE }, () => VOCABULARY[next() % VOCABULARY.length]).join(' '));
}

async function deployFunctions(platform: Platform): Promise<void> {
  const limits = { memoryLimitMb: 128, timeoutMs: 5000 };
  for (const name of ['wordcount-split', 'wordcount-count']) {
    await platform.functions.deploy({ name, kind: 'js', code: readFileSync(join(ROOT, 'functions', `${name}.js`), 'utf8'), ...limits });
  }
  await platform.functions.deploy({ name: 'wordcount-count-stateless', kind: 'js', code: STATELESS_COUNT, ...limits });
}

async function run(platform: Platform, label: string, countFunction: string, count: number, paced = false) {
  const name = `bench-${countFunction}-${count}${paced ? '-paced' : ''}`;
  const graph = JSON.parse(readFileSync(join(ROOT, 'functions/wordcount.graph.json'), 'utf8'));
  for (const edge of graph.edges) edge.delivery = 'exactly-once';
  // No autoscaler in this bench: every node at its maximum replicas.
  for (const node of graph.nodes) node.replicas = { min: node.replicas.max, max: node.replicas.max };
  graph.nodes.find((n: { id: string }) => n.id === 'count').function = countFunction;
  await platform.graphs.deploy(name, graph);
  const runtime = platform.graphs.runtime(name);
  const input = sentences(count, 7);
  const expected = count * WORDS_PER_SENTENCE;
  const sinkTopic = runtime.topology.sinkTopic('counts');
  // Paced: one chunk per tick, each tick on the wall clock (no drift from slow ticks).
  const chunkSize = paced ? (PACED_TUPLES_PER_SEC / WORDS_PER_SENTENCE) * (PACED_TICK_MS / 1000) : CHUNK;
  if (paced) {
    const warm = sentences(PACED_TUPLES_PER_SEC / WORDS_PER_SENTENCE, 3);
    for (let i = 0; i < warm.length; i += chunkSize) {
      runtime.ingest('lines', warm.slice(i, i + chunkSize).map((value) => ({ value })));
      await new Promise((r) => setTimeout(r, PACED_TICK_MS));
    }
    while (platform.log.head(sinkTopic, 0) < warm.length * WORDS_PER_SENTENCE) await new Promise((r) => setTimeout(r, 2));
    runtime.latency.reset();
  }
  const base = platform.log.head(sinkTopic, 0);
  const started = performance.now();
  for (let i = 0; i < input.length; i += chunkSize) {
    if (paced) {
      const due = started + (i / chunkSize) * PACED_TICK_MS - performance.now();
      if (due > 0) await new Promise((r) => setTimeout(r, due));
    }
    const chunk = input.slice(i, i + chunkSize).map((value) => ({ value }));
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
  while (platform.log.head(sinkTopic, 0) < base + expected) await new Promise((r) => setTimeout(r, 2));
  const seconds = (performance.now() - started) / 1000;
  // The last count of every word must be its true count: a bench that counts wrong measures nothing.
  const last = new Map<string, number>();
  for (let from = base; from < base + expected; from += 10_000) {
    for (const r of runtime.readSink('counts', from, 10_000)) last.set((r.value as { word: string }).word, (r.value as { count: number }).count);
  }
  if (countFunction === 'wordcount-count' && !paced) {
    const truth = new Map<string, number>();
    for (const line of input) for (const word of line.split(' ')) truth.set(word, (truth.get(word) ?? 0) + 1);
    for (const [word, n] of truth) if (last.get(word) !== n) throw new Error(`${label}: '${word}' counted ${last.get(word)}, expected ${n}`);
  }
  const result = {
    state: label,
    tuples: expected,
    seconds: round(seconds, 2),
    tuplesPerSec: Math.round(expected / seconds),
    p50Ms: runtime.latency.percentile(50) ?? NaN,
    p99Ms: runtime.latency.percentile(99) ?? NaN,
  };
  await platform.graphs.delete(name);
  return result;
}

const { endpoint, region, accessKeyId, secretAccessKey } = SERVICE_DEFAULTS.s3;
await ensureService('s3');
const bucketName = `bench-state-${Date.now()}`;
const admin = new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey } });
await admin.send(new CreateBucketCommand({ Bucket: bucketName }));
const s3 = { endpoint, region, bucket: bucketName, credentials: { accessKeyId, secretAccessKey } };

const dirs = [mkdtempSync(join(tmpdir(), 'tributary-bench-state-')), mkdtempSync(join(tmpdir(), 'tributary-bench-state-s3-'))];
const embedded = await startPlatform({ dataDir: dirs[0], maxLagRecords: 2_000_000, autoscaleIntervalMs: 0 });
const onS3 = await startPlatform({ dataDir: dirs[1], maxLagRecords: 2_000_000, autoscaleIntervalMs: 0, s3 });
try {
  await deployFunctions(embedded);
  await deployFunctions(onS3);
  // Warm-up: isolates, code caches, JIT, S3 connections.
  await run(embedded, 'warm', 'wordcount-count', 2000);
  await run(onS3, 'warm', 'wordcount-count', 2000);
  const configs = [
    { platform: embedded, label: 'none (stateless count)', fn: 'wordcount-count-stateless' },
    { platform: embedded, label: 'embedded (SQLite)', fn: 'wordcount-count' },
    { platform: onS3, label: 'S3 (S3Proxy, local)', fn: 'wordcount-count' },
  ];
  const pacedSentences = (PACED_TUPLES_PER_SEC * PACED_SECONDS) / WORDS_PER_SENTENCE;
  const rows = [];
  for (const { platform, label, fn } of configs) {
    const burst = await run(platform, label, fn, SENTENCES);
    const paced = await run(platform, label, fn, pacedSentences, true);
    rows.push({
      state: label,
      tuples: burst.tuples,
      seconds: burst.seconds,
      tuplesPerSec: burst.tuplesPerSec,
      'ratio to stateless': 0,
      'burst p99Ms': burst.p99Ms,
      'paced p50Ms': paced.p50Ms,
      'paced p99Ms': paced.p99Ms,
    });
  }
  for (const row of rows) row['ratio to stateless'] = round(row.tuplesPerSec / rows[0].tuplesPerSec);
  printTable(
    `WordCount exactly-once, counts in env.STATE (1000-word vocabulary): burst of ${SENTENCES} sentences × ${WORDS_PER_SENTENCE} words; ` +
      `paced at ${PACED_TUPLES_PER_SEC} tuples/s for ${PACED_SECONDS} s`,
    rows,
  );
  printJson('state', { sentences: SENTENCES, pacedTuplesPerSec: PACED_TUPLES_PER_SEC, pacedSeconds: PACED_SECONDS, results: rows });
} finally {
  await embedded.close();
  await onS3.close();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  // Leave the rig's S3 as it was: empty the bench's bucket, then remove it.
  const bucket = await Bucket.open(s3);
  await bucket.delete(await bucket.list(''));
  bucket.close();
  await admin.send(new DeleteBucketCommand({ Bucket: bucketName }));
  admin.destroy();
}
