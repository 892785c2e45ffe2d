/**
 * WordCount over a real Kafka broker (started with scripts/kafka.sh), every semantic in one run:
 * source topic → split → (Kafka edge, by word) → count (env.STATE) → Kafka sink, for records of
 * 64 B and 1 KiB, next to a bare kafkajs consume→produce loop doing the same WordCount without
 * isolates or platform — the ceiling, measured in the same run.
 *
 * Per configuration: throughput (a backlog produced as fast as the producer goes, timed until the
 * sink holds every count: input records/s and words/s), then end-to-end latency (records paced at
 * a fraction of that throughput; sink arrival minus the source record's timestamp, p50/p99, read
 * by a read_committed kafkajs consumer in this process).
 *
 * Targets (issue 4): at-most-once ≥ 0.8x the bare loop; exactly-once at 100 ms ≥ 0.5x
 * at-most-once; exactly-once with commitIntervalMs "auto" and a 50 ms p99 SLO meets it.
 * BENCH_KAFKA_SCALE (default 1) scales the record counts; BENCH_KAFKA_ONLY (a regular expression
 * over run labels such as "at-most-once|64 B") selects runs while tuning.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import '../connectors/kafka/kafkajs-patches.ts'; // before kafkajs: the patched modules (see there)
import kafkajs from 'kafkajs';
import { startPlatform } from '../api/platform.ts';
import { ensureService, SERVICE_DEFAULTS } from '../scripts/services.ts';
import type { Delivery } from '../scheduler/graph-spec.ts';
import { printJson, printTable, round, summarize } from './report.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const BROKERS = [...SERVICE_DEFAULTS.kafka.brokers];
const SCALE = Number(process.env.BENCH_KAFKA_SCALE ?? 1);
const PARTITIONS = 4;
const SLO_MS = 50;
const SIZES = [
  { label: '64 B', bytes: 64, records: Math.round(20_000 * SCALE) },
  { label: '1 KiB', bytes: 1024, records: Math.round(1_500 * SCALE) },
];
const LATENCY_PHASE_MS = 2000;
const ONLY = process.env.BENCH_KAFKA_ONLY ? new RegExp(process.env.BENCH_KAFKA_ONLY) : null;
const kafka = new kafkajs.Kafka({ brokers: BROKERS, clientId: 'bench', logLevel: kafkajs.logLevel.NOTHING });
let runId = 0;
const unique = (what: string) => `bench-${process.pid}-${++runId}-${what}`;

/** Sentences of `bytes` bytes from a 1000-word vocabulary (about 10 words per 64 B). */
function sentences(count: number, bytes: number): string[] {
  let seed = 11;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  return Array.from({ length: count }, () => {
    let line = '';
    while (line.length < bytes) line += `${line ? ' ' : ''}w${(next() % 1000).toString(36)}`;
    return line.slice(0, bytes).trimEnd();
  });
}

function wordsOf(lines: string[]): number {
  return lines.reduce((sum, line) => sum + line.split(' ').filter((w) => w).length, 0);
}

async function createTopics(...topics: string[]): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: topics.map((topic) => ({ topic, numPartitions: PARTITIONS })), waitForLeaders: true });
  await admin.disconnect();
}

/** Counts sink records and their end-to-end latency (now − source timestamp). */
async function sinkReader(topic: string) {
  const consumer = kafka.consumer({ groupId: unique('reader'), maxWaitTimeInMs: 20, sessionTimeout: 6000, heartbeatInterval: 1000 });
  const state = { count: 0, latencies: [] as number[], measuring: false };
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const now = Date.now();
      state.count += batch.messages.length;
      if (state.measuring) for (const m of batch.messages) state.latencies.push(now - Number(m.timestamp));
    },
  });
  return { state, close: () => consumer.disconnect() };
}

async function producer() {
  const p = kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
  await p.connect();
  return p;
}

/** Backlog as fast as possible, until the sink holds `expected` counts; then a paced phase for latency. */
async function measure(input: string, sink: string, lines: string[], until: () => Promise<void>) {
  const reader = await sinkReader(sink);
  await until();
  const p = await producer();
  const expected = wordsOf(lines);
  const started = performance.now();
  let partition = 0;
  for (let i = 0; i < lines.length; i += 500) {
    await p.send({ topic: input, acks: -1, messages: lines.slice(i, i + 500).map((value) => ({ value, partition: partition++ % PARTITIONS })) });
  }
  while (reader.state.count < expected) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - started) / 1000;
  const recordsPerSec = lines.length / seconds;
  // Latency at a sustainable rate: a fifth of the measured throughput, in 10 ms ticks.
  const perTick = Math.max(1, Math.round((recordsPerSec / 5) * 0.01));
  reader.state.measuring = true;
  const before = reader.state.count;
  let sent = 0;
  const paceStarted = Date.now();
  while (Date.now() - paceStarted < LATENCY_PHASE_MS) {
    const tick = lines.slice(sent % lines.length, (sent % lines.length) + perTick);
    await p.send({ topic: input, acks: -1, messages: tick.map((value) => ({ value, partition: partition++ % PARTITIONS })) });
    sent += tick.length;
    await new Promise((r) => setTimeout(r, 10));
  }
  const pacedWords = wordsOf(Array.from({ length: sent }, (_, i) => lines[i % lines.length]));
  const deadline = Date.now() + 10_000;
  while (reader.state.count < before + pacedWords && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  await p.disconnect();
  await reader.close();
  const latency = summarize(reader.state.latencies);
  return { recordsPerSec: Math.round(recordsPerSec), wordsPerSec: Math.round(expected / seconds), seconds: round(seconds, 2), p50Ms: latency.p50, p99Ms: latency.p99, pacedPerSec: perTick * 100 };
}

/** The ceiling: the same two stages in plain kafkajs (auto-commit, idempotent producers), no isolates. */
async function bareLoop(lines: string[]) {
  const [input, words, sink] = [unique('bare-in'), unique('bare-words'), unique('bare-out')];
  await createTopics(input, words, sink);
  const [out, outCount] = [await producer(), await producer()];
  const counts = new Map<string, number>();
  const split = kafka.consumer({ groupId: unique('bare-split'), maxWaitTimeInMs: 20, sessionTimeout: 6000, heartbeatInterval: 1000 });
  const count = kafka.consumer({ groupId: unique('bare-count'), maxWaitTimeInMs: 20, sessionTimeout: 6000, heartbeatInterval: 1000 });
  const joined = Promise.all([split, count].map((c) => new Promise((resolve) => c.on(c.events.GROUP_JOIN, resolve))));
  for (const [consumer, topic] of [[split, input], [count, words]] as const) {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
  }
  const hash = (key: string) => {
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    return (h >>> 0) % PARTITIONS;
  };
  await split.run({
    partitionsConsumedConcurrently: PARTITIONS,
    eachBatch: async ({ batch }) => {
      const messages = batch.messages.flatMap((m) =>
        String(m.value).toLowerCase().split(/[^a-z0-9']+/).filter((w) => w).map((w) => ({ key: w, value: w, timestamp: m.timestamp, partition: hash(w) })),
      );
      for (let i = 0; i < messages.length; i += 2000) await out.send({ topic: words, acks: -1, messages: messages.slice(i, i + 2000) });
    },
  });
  await count.run({
    partitionsConsumedConcurrently: PARTITIONS,
    eachBatch: async ({ batch }) => {
      const messages = batch.messages.map((m) => {
        const word = String(m.key);
        const n = (counts.get(word) ?? 0) + 1;
        counts.set(word, n);
        return { key: word, value: JSON.stringify({ word, count: n }), timestamp: m.timestamp, partition: batch.partition };
      });
      for (let i = 0; i < messages.length; i += 2000) await outCount.send({ topic: sink, acks: -1, messages: messages.slice(i, i + 2000) });
    },
  });
  const result = await measure(input, sink, lines, async () => void (await joined));
  await Promise.all([split.disconnect(), count.disconnect(), out.disconnect(), outCount.disconnect()]);
  return result;
}

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-kafka-'));
await ensureService('kafka');
const platform = await startPlatform({ dataDir, autoscaleIntervalMs: 0, kafkaBrokers: BROKERS, maxBatchRecords: Number(process.env.BENCH_KAFKA_BATCH ?? 1000) });

async function graphRun(lines: string[], delivery: Delivery, commitIntervalMs?: number | 'auto') {
  const name = unique('wc');
  const [input, sink] = [unique('in'), unique('out')];
  await createTopics(input, sink);
  const interval = delivery === 'at-most-once' ? {} : { commitIntervalMs: commitIntervalMs ?? 100 };
  await platform.graphs.deploy(name, {
    nodes: [
      { id: 'split', function: 'wordcount-split', replicas: { min: 2, max: 2 } },
      { id: 'count', function: 'wordcount-count', replicas: { min: 2, max: 2 } },
    ],
    sources: [{ id: 'lines', type: 'kafka', topic: input }],
    sinks: [{ id: 'counts', type: 'kafka', topic: sink }],
    edges: [
      { from: 'lines', to: 'split', delivery, ...interval },
      { from: 'split', to: 'count', delivery, transport: 'kafka', partitionBy: 'key', partitions: PARTITIONS, ...interval },
      { from: 'count', to: 'counts', delivery, partitions: PARTITIONS },
    ],
    slo: { latencyMs: SLO_MS, percentile: 99 },
  });
  const runtime = platform.graphs.runtime(name);
  // Ready once both consumer groups own every partition (group joins take a moment).
  const ready = async () => {
    for (;;) {
      const edges = runtime.status().edges as Array<{ to: string; partitions: Array<{ owned?: boolean }>; state: string }>;
      const consumed = edges.filter((e) => e.to === 'split' || e.to === 'count');
      if (consumed.every((e) => e.state === 'running' && e.partitions.length === PARTITIONS && e.partitions.every((p) => p.owned))) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const wallStarted = performance.now();
  const result = await measure(input, sink, lines, ready);
  const status = runtime.status().edges as Array<{ autoIntervalMs?: number }>;
  await platform.graphs.delete(name);
  console.error(`bench: ${delivery}${commitIntervalMs !== undefined ? ` @${commitIntervalMs}` : ''}, ${lines.length} records: ${round((performance.now() - wallStarted) / 1000, 1)} s`);
  return { ...result, autoIntervalMs: status[1]?.autoIntervalMs };
}

try {
  for (const name of ['wordcount-split', 'wordcount-count']) {
    await platform.functions.deploy({ name, kind: 'js', code: readFileSync(join(ROOT, 'functions', `${name}.js`), 'utf8'), memoryLimitMb: 128, timeoutMs: 5000 });
  }
  await graphRun(sentences(2000, 64), 'exactly-once', 100); // warm-up: isolates, JIT, broker
  const rows: Array<Record<string, string | number | boolean>> = [];
  const targets: Array<Record<string, string | number | boolean>> = [];
  for (const size of SIZES.filter((s) => !ONLY || ONLY.test(s.label) || !SIZES.some((x) => ONLY.test(x.label)))) {
    const lines = sentences(size.records, size.bytes);
    const bare = await bareLoop(lines);
    const runs: Array<[string, Delivery, number | 'auto' | undefined]> = [
      ['at-most-once', 'at-most-once', undefined],
      ['at-least-once', 'at-least-once', 100],
      ['exactly-once @1ms', 'exactly-once', 1],
      ['exactly-once @10ms', 'exactly-once', 10],
      ['exactly-once @100ms', 'exactly-once', 100],
      [`exactly-once auto (p99 SLO ${SLO_MS} ms)`, 'exactly-once', 'auto'],
    ];
    const results = new Map<string, Awaited<ReturnType<typeof graphRun>>>();
    for (const [label, delivery, interval] of runs) {
      if (ONLY && label !== 'at-most-once' && !ONLY.test(label)) continue; // at-most-once is every ratio's baseline
      results.set(label, await graphRun(lines, delivery, interval));
    }
    const amo = results.get('at-most-once')!;
    const row = (label: string, r: { recordsPerSec: number; wordsPerSec: number; p50Ms: number; p99Ms: number; pacedPerSec: number }, extra = '') => ({
      size: size.label,
      run: label + extra,
      'records/s': r.recordsPerSec,
      'words/s': r.wordsPerSec,
      'x bare': round(r.recordsPerSec / bare.recordsPerSec, 2),
      'x AMO': round(r.recordsPerSec / amo.recordsPerSec, 2),
      'latency @ rec/s': r.pacedPerSec,
      p50Ms: r.p50Ms,
      p99Ms: r.p99Ms,
    });
    rows.push(row('bare kafkajs loop (ceiling)', bare));
    for (const [label, r] of results) rows.push(row(label, r, r.autoIntervalMs !== undefined ? ` → ${r.autoIntervalMs} ms` : ''));
    const eo100 = results.get('exactly-once @100ms');
    const auto = results.get(`exactly-once auto (p99 SLO ${SLO_MS} ms)`);
    targets.push({ size: size.label, target: 'at-most-once ≥ 0.8x bare loop', value: round(amo.recordsPerSec / bare.recordsPerSec, 2), met: amo.recordsPerSec >= 0.8 * bare.recordsPerSec });
    if (eo100) targets.push({ size: size.label, target: 'exactly-once @100ms ≥ 0.5x at-most-once', value: round(eo100.recordsPerSec / amo.recordsPerSec, 2), met: eo100.recordsPerSec >= 0.5 * amo.recordsPerSec });
    if (auto) targets.push({ size: size.label, target: `"auto" p99 ≤ ${SLO_MS} ms`, value: auto.p99Ms, met: auto.p99Ms <= SLO_MS });
  }
  printTable(`WordCount over Kafka (${PARTITIONS} partitions per topic, 2 replicas per node; latency measured at ~1/5 of each run's throughput)`, rows);
  printTable('Targets (issue 4)', targets);
  printJson('kafka', { scale: SCALE, results: rows, targets });
} finally {
  await platform.close();
  rmSync(dataDir, { recursive: true, force: true });
}
