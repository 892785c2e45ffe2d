/**
 * What durability costs per commit of the embedded log, in the same run on the same disk: an
 * ingest-like commit (one batch of BENCH_RECORDS records, ~200-byte values) repeated
 * BENCH_COMMITS times under
 *   process-crash   the default (synchronous=NORMAL): survives kill -9, not power loss;
 *   durable         the default, every commit marked `durable` (synchronous=FULL around it);
 *   durable 1/10    one commit in ten marked `durable` (e.g. only those that gate an effect);
 *   fsync           durability 'fsync' (synchronous=FULL for every commit).
 * Prints commits/s and commit latency p50/p99. Run: node --no-node-snapshot bench/log-durability.ts
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SqliteLog, type SqliteLogOptions } from '../connectors/embedded/sqlite-log.ts';
import type { LogRecord } from '../connectors/transport.ts';
import { printJson, printTable, round, summarize } from './report.ts';

const COMMITS = Number(process.env.BENCH_COMMITS ?? 2000);
const RECORDS = Number(process.env.BENCH_RECORDS ?? 100);
const TOPIC = 'bench/e/in->a';

function run(label: string, options: Partial<SqliteLogOptions>, durableEvery: number) {
  const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-durability-'));
  const log = new SqliteLog({ dataDir, maintenanceIntervalMs: 0, ...options });
  log.ensureTopic(TOPIC, 1);
  const records: LogRecord[] = Array.from({ length: RECORDS }, (_, i) => ({ key: `k${i}`, value: { i, text: 'x'.repeat(200) }, timestamp: Date.now() }));
  const latencies: number[] = [];
  const started = performance.now();
  for (let n = 0; n < COMMITS; n++) {
    const t = performance.now();
    log.commit({ appends: [{ topic: TOPIC, partition: 0, records }], offsets: [], state: [], durable: durableEvery > 0 && n % durableEvery === 0 });
    latencies.push(performance.now() - t);
  }
  const seconds = (performance.now() - started) / 1000;
  log.close();
  rmSync(dataDir, { recursive: true, force: true });
  return { run: label, commitsPerSec: Math.round(COMMITS / seconds), ...summarize(latencies) };
}

const rows = [
  run('process-crash', {}, 0),
  run('durable', {}, 1),
  run('durable 1/10', {}, 10),
  run('fsync', { durability: 'fsync' }, 0),
];
const base = rows[0].commitsPerSec;
const table = rows.map((r) => ({ run: r.run, commitsPerSec: r.commitsPerSec, vsDefault: round(r.commitsPerSec / base, 2), p50Ms: r.p50, p99Ms: r.p99 }));
printTable(`${COMMITS} commits of ${RECORDS} records each`, table);
printJson('log-durability', { commits: COMMITS, records: RECORDS, runs: table });
