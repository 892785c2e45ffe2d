/**
 * Nexmark on the embedded log, exactly-once: q0 (pass-through), q1 (currency map), q2 (filter),
 * q5 (hot items, sliding window), q7 (highest bid, tumbling window) and q8 (new users, windowed
 * join) as Tributary graphs, each fed the same generated events (bench/nexmark/generator.ts) and
 * checked against the plain reference implementation (bench/nexmark/reference.ts) in the same run.
 *
 * Throughput: events ingested per second, from the first ingest until the sink holds every
 * expected result, and per core (the run uses all of the machine's cores: control plane and
 * hosts). Printed next to Flink's published per-core figures (Nexmark on Flink 1.13 with RocksDB,
 * github.com/nexmark/nexmark): q0 ≈ 155K, q1 ≈ 158K, q2 ≈ 175K, q5 ≈ 22K, q7 ≈ 12K records/s per
 * core (q8: not published per core there).
 *
 * Windowed queries read event time from the events' `dateTime`; after the events, one `flush`
 * event per source partition (ignored by every query) carries event time past the last window so
 * the watermarks close it. BENCH_NEXMARK_EVENTS (default 50,000), BENCH_NEXMARK_RATE (events per
 * second of event time, default 1000: a 50 s span), BENCH_NEXMARK_ONLY (a regular expression over
 * query names) tune it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { startPlatform } from '../api/platform.ts';
import { TributaryError } from '../runtime/errors.ts';
import { partitionOf } from '../scheduler/topology.ts';
import { nexmarkEvents, type NexmarkEvent } from './nexmark/generator.ts';
import { DOLLAR_TO_EURO, Q2_MODULUS, Q5_SIZE_MS, Q5_SLIDE_MS, Q7_SIZE_MS, Q8_SIZE_MS, REFERENCE, canonical, type QueryName, type Row } from './nexmark/reference.ts';
import { printJson, printTable, round } from './report.ts';

const EVENTS = Number(process.env.BENCH_NEXMARK_EVENTS ?? 50_000);
const RATE = Number(process.env.BENCH_NEXMARK_RATE ?? 1000);
const ONLY = process.env.BENCH_NEXMARK_ONLY ? new RegExp(process.env.BENCH_NEXMARK_ONLY) : null;
const CORES = availableParallelism();
const PARTITIONS = 4;
const CHUNK = 1000;
const BASE_TIME = 1_700_000_000_000;
const FLINK_PER_CORE: Record<QueryName, number | null> = { q0: 155_000, q1: 158_000, q2: 175_000, q5: 22_000, q7: 12_000, q8: null };

interface Query {
  /** Functions by node id, in chain order. */
  nodes: Array<{ id: string; code: string; partitionBy: 'key' | 'round-robin' }>;
  /** The ingest key of an event (the first edge partitions by it when the first node asks). */
  key(event: NexmarkEvent): string;
  eventTime: boolean;
}

const SKIP_FLUSH = `if (record.value.type === 'flush') return;`;
const QUERIES: Record<QueryName, Query> = {
  q0: {
    eventTime: false,
    key: () => '',
    nodes: [{ id: 'q0', partitionBy: 'round-robin', code: `export default { process(record, env, ctx) { const b = record.value; if (b.type !== 'bid') return;
      ctx.emit({ auction: b.auction, bidder: b.bidder, price: b.price, dateTime: b.dateTime, extra: b.extra }); } };` }],
  },
  q1: {
    eventTime: false,
    key: () => '',
    nodes: [{ id: 'q1', partitionBy: 'round-robin', code: `export default { process(record, env, ctx) { const b = record.value; if (b.type !== 'bid') return;
      ctx.emit({ auction: b.auction, bidder: b.bidder, price: ${DOLLAR_TO_EURO} * b.price, dateTime: b.dateTime, extra: b.extra }); } };` }],
  },
  q2: {
    eventTime: false,
    key: () => '',
    nodes: [{ id: 'q2', partitionBy: 'round-robin', code: `export default { process(record, env, ctx) { const b = record.value; if (b.type !== 'bid' || b.auction % ${Q2_MODULUS} !== 0) return;
      ctx.emit({ auction: b.auction, price: b.price }); } };` }],
  },
  q5: {
    eventTime: true,
    key: (e) => (e.type === 'bid' ? String(e.auction) : e.type),
    nodes: [
      // Bids per auction per sliding window, then the auctions at each window's maximum.
      { id: 'count', partitionBy: 'key', code: `import { sliding } from 'tributary:windows';
        const counts = sliding(${Q5_SIZE_MS}, ${Q5_SLIDE_MS}, { key: (r) => String(r.value.auction), init: () => 0, add: (n) => n + 1,
          emit: (w, ctx) => ctx.emit({ auction: Number(w.key), num: w.value, starttime: w.start }, { key: String(w.start) }) });
        export default { async process(record, env, ctx) { if (record.value.type !== 'bid') return; return counts.process(record, env, ctx); }, onTimer: counts.onTimer };` },
      { id: 'hottest', partitionBy: 'key', code: `import { tumbling } from 'tributary:windows';
        // Counts of one window arrive stamped with its end: they share one tumbling window of the slide.
        export default tumbling(${Q5_SLIDE_MS}, { key: (r) => String(r.value.starttime),
          init: () => ({ max: 0, auctions: [] }),
          add: (acc, r) => r.value.num > acc.max ? { max: r.value.num, auctions: [r.value.auction] } : r.value.num === acc.max ? { max: acc.max, auctions: [...acc.auctions, r.value.auction] } : acc,
          emit: (w, ctx) => { for (const auction of w.value.auctions) ctx.emit({ auction, num: w.value.max, starttime: Number(w.key) }); } });` },
    ],
  },
  q7: {
    eventTime: true,
    key: () => 'all',
    nodes: [{ id: 'q7', partitionBy: 'key', code: `import { tumbling } from 'tributary:windows';
      const top = tumbling(${Q7_SIZE_MS}, { key: () => 'all', init: () => [],
        add: (best, r) => { const b = r.value; const row = { auction: b.auction, price: b.price, bidder: b.bidder, dateTime: b.dateTime, extra: b.extra };
          return best.length === 0 || b.price > best[0].price ? [row] : b.price === best[0].price ? [...best, row] : best; },
        emit: (w, ctx) => { for (const row of w.value) ctx.emit(row); } });
      export default { async process(record, env, ctx) { if (record.value.type !== 'bid') return; return top.process(record, env, ctx); }, onTimer: top.onTimer };` }],
  },
  q8: {
    eventTime: true,
    key: (e) => (e.type === 'person' ? String(e.id) : e.type === 'auction' ? String(e.seller) : 'bid'),
    nodes: [{ id: 'q8', partitionBy: 'key', code: `import { windowJoin } from 'tributary:windows';
      const joined = windowJoin(${Q8_SIZE_MS}, { side: (r) => (r.value.type === 'person' ? 'left' : 'right'),
        join: (persons, auctions, w) => (auctions.length === 0 ? [] : persons.map((p) => ({ id: p.id, name: p.name, starttime: w.start }))) });
      export default { async process(record, env, ctx) { const t = record.value.type; if (t !== 'person' && t !== 'auction') return;
        const v = record.value; return joined.process({ ...record, value: t === 'person' ? { type: t, id: v.id, name: v.name } : { type: t } }, env, ctx); }, onTimer: joined.onTimer };` }],
  },
};

function graphOf(query: QueryName, spec: Query) {
  const chain = ['in', ...spec.nodes.map((n) => n.id), 'out'];
  return {
    nodes: spec.nodes.map((n) => ({ id: n.id, function: `nexmark-${query}-${n.id}`, replicas: { min: CORES, max: CORES } })),
    sources: [{ id: 'in', type: 'http', ...(spec.eventTime && { eventTime: { field: 'dateTime', outOfOrdernessMs: 0 } }) }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: chain.slice(1).map((to, i) => ({
      from: chain[i],
      to,
      delivery: 'exactly-once',
      ...(to === 'out' ? {} : { partitions: PARTITIONS, partitionBy: spec.nodes.find((n) => n.id === to)!.partitionBy }),
    })),
  };
}

/** Keys reaching every partition of the source edge: one flush event each. */
function flushKeys(): string[] {
  const keys = new Map<number, string>();
  for (let i = 0; keys.size < PARTITIONS; i++) if (!keys.has(partitionOf(`flush${i}`, PARTITIONS))) keys.set(partitionOf(`flush${i}`, PARTITIONS), `flush${i}`);
  return [...keys.values()];
}

const events = [...nexmarkEvents(0, EVENTS, { eventsPerSecond: RATE, baseTime: BASE_TIME, seed: 7 })];
const lastTime = events[events.length - 1].dateTime;
const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-nexmark-'));
const platform = await startPlatform({ dataDir, maxLagRecords: 2_000_000 });

async function ingestAll(runtime: ReturnType<typeof platform.graphs.runtime>, records: Array<{ key: string; value: unknown }>) {
  for (let i = 0; i < records.length; i += CHUNK) {
    const chunk = records.slice(i, i + CHUNK);
    for (;;) {
      try {
        runtime.ingest('in', chunk);
        break;
      } catch (error) {
        if (!(error instanceof TributaryError && error.code === 'ERR_BACKPRESSURE')) throw error;
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    await new Promise((r) => setImmediate(r));
  }
}

async function run(query: QueryName) {
  const spec = QUERIES[query];
  for (const node of spec.nodes) await platform.functions.deploy({ name: `nexmark-${query}-${node.id}`, kind: 'js', code: node.code, memoryLimitMb: 256, timeoutMs: 10_000 });
  const name = `nexmark-${query}`;
  await platform.graphs.deploy(name, graphOf(query, spec));
  const runtime = platform.graphs.runtime(name);
  const expected = REFERENCE[query](events);
  const records = events.map((e) => ({ key: spec.key(e), value: e }));
  if (spec.eventTime) for (const key of flushKeys()) records.push({ key, value: { type: 'flush', dateTime: lastTime + 60_000 } as unknown as NexmarkEvent });
  const started = performance.now();
  await ingestAll(runtime, records);
  const sinkTopic = runtime.topology.sinkTopic('out');
  const deadline = Date.now() + 600_000;
  while (platform.log.head(sinkTopic, 0) < expected.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const seconds = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 500)); // anything extra would show as a mismatch
  const rows: Row[] = [];
  for (let from = 0; ; ) {
    const page = runtime.readSink('out', from, 1000);
    if (page.length === 0) break;
    for (const r of page) rows.push(r.value as Row);
    from = page[page.length - 1].offset + 1;
  }
  const got = canonical(rows);
  const want = canonical(expected);
  const matches = JSON.stringify(got) === JSON.stringify(want);
  if (!matches) {
    const extra = got.filter((r) => !want.includes(r)).slice(0, 5);
    const missing = want.filter((r) => !got.includes(r)).slice(0, 5);
    console.error(`${query}: ${rows.length} results, ${expected.length} expected; extra ${JSON.stringify(extra)}, missing ${JSON.stringify(missing)}`);
  }
  await platform.graphs.delete(name);
  const perSec = EVENTS / seconds;
  return {
    query,
    events: EVENTS,
    results: rows.length,
    expected: expected.length,
    correct: matches,
    seconds: round(seconds, 2),
    'events/s': Math.round(perSec),
    'events/s/core': Math.round(perSec / CORES),
    'Flink/core': FLINK_PER_CORE[query] ?? '-',
    'x Flink': FLINK_PER_CORE[query] === null ? '-' : round(perSec / CORES / FLINK_PER_CORE[query]!, 3),
    p99Ms: runtime.latency.percentile(99) ?? NaN,
  };
}

try {
  const rows = [];
  for (const query of Object.keys(QUERIES) as QueryName[]) if (!ONLY || ONLY.test(query)) rows.push(await run(query));
  printTable(`Nexmark, embedded log, exactly-once, ${EVENTS} events at ${RATE}/s of event time, ${PARTITIONS} partitions, ${CORES} replicas per node (${CORES} cores); checked against the reference`, rows);
  printJson('nexmark', { events: EVENTS, rate: RATE, cores: CORES, partitions: PARTITIONS, results: rows });
  if (rows.some((r) => !r.correct)) {
    console.error('\nNexmark: results differ from the reference');
    process.exitCode = 1;
  }
} finally {
  await platform.close();
  rmSync(dataDir, { recursive: true, force: true });
}
