/**
 * Disk use of the embedded log over a long run, with retention and without, in the same process.
 *
 * A two-stage pipeline on the log itself (no isolates: what is measured is the log): ingest
 * appends batches of BENCH_RECORDS records to a 4-partition edge; stage 1 reads each partition,
 * appends what it read to a second edge and commits its offset in the same transaction
 * (exactly-once); stage 2 reads the second edge and commits to a sink, whose retention is
 * BENCH_SINK_MAX_BYTES per partition. The maintenance step runs every MAINTAIN_EVERY batches in
 * both runs, as the log's timer would. Printed every SAMPLES-th of the run: log.db and WAL sizes,
 * the batch rows stored and free pages, for
 *   retention   the defaults: consumed edge batches deleted, sink kept to its size limit;
 *   baseline    truncateConsumed: false and no sink limit: nothing is ever deleted.
 * BENCH_BATCHES (default 20000) ingest batches per run.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { SqliteLog, type SqliteLogOptions } from '../connectors/embedded/sqlite-log.ts';
import type { LogRecord } from '../connectors/transport.ts';
import { printJson, printTable, round } from './report.ts';

const BATCHES = Number(process.env.BENCH_BATCHES ?? 20_000);
const RECORDS = Number(process.env.BENCH_RECORDS ?? 50);
const VALUE_BYTES = Number(process.env.BENCH_VALUE_BYTES ?? 200);
const SINK_MAX_BYTES = Number(process.env.BENCH_SINK_MAX_BYTES ?? 16 * 1024 * 1024);
const PARTITIONS = 4;
const MAINTAIN_EVERY = 500;
const SAMPLES = 10;
const MiB = 1024 * 1024;

const EDGE1 = 'bench/e/in->a';
const EDGE2 = 'bench/e/a->b';
const SINK = 'bench/sink/out';

interface Sample {
  run: string;
  batches: number;
  dbMiB: number;
  walMiB: number;
  totalMiB: number;
  batchRows: number;
  freePages: number;
}

function size(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

function run(label: string, options: Partial<SqliteLogOptions>): { samples: Sample[]; commitsPerSec: number; cpuUsPerCommit: number } {
  const dataDir = mkdtempSync(join(tmpdir(), `tributary-bench-log-${label}-`));
  const log = new SqliteLog({ dataDir, maintenanceIntervalMs: 0, ...options });
  const inspector = new DatabaseSync(join(dataDir, 'log.db'));
  const rows = inspector.prepare('SELECT count(*) AS n FROM batches');
  const free = inspector.prepare('PRAGMA freelist_count');
  log.ensureTopic(EDGE1, PARTITIONS);
  log.ensureTopic(EDGE2, PARTITIONS);
  log.ensureTopic(SINK, 1);
  const value = 'v'.repeat(VALUE_BYTES);
  const batch: LogRecord[] = Array.from({ length: RECORDS }, (_, i) => ({ key: `k${i}`, value: { i, value }, timestamp: Date.now() }));
  const next = { a: new Array(PARTITIONS).fill(0), b: new Array(PARTITIONS).fill(0) };
  const samples: Sample[] = [];
  let commits = 0;
  const started = performance.now();
  const cpu = process.cpuUsage();
  for (let n = 1; n <= BATCHES; n++) {
    const p = n % PARTITIONS;
    log.append(EDGE1, p, batch);
    // Stage 1: edge 1 → edge 2, exactly-once.
    const read1 = log.read(EDGE1, p, next.a[p], 1000);
    next.a[p] = read1[read1.length - 1].offset + 1;
    log.commit({ appends: [{ topic: EDGE2, partition: p, records: read1 }], offsets: [{ group: 'bench/a', topic: EDGE1, partition: p, next: next.a[p] }], state: [] });
    // Stage 2: edge 2 → sink, exactly-once.
    const read2 = log.read(EDGE2, p, next.b[p], 1000);
    next.b[p] = read2[read2.length - 1].offset + 1;
    log.commit({ appends: [{ topic: SINK, partition: 0, records: read2 }], offsets: [{ group: 'bench/b', topic: EDGE2, partition: p, next: next.b[p] }], state: [] });
    commits += 3;
    if (n % MAINTAIN_EVERY === 0) log.maintain();
    if (n % Math.max(1, Math.floor(BATCHES / SAMPLES)) === 0 || n === BATCHES) {
      const db = size(join(dataDir, 'log.db'));
      const wal = size(join(dataDir, 'log.db-wal'));
      samples.push({
        run: label,
        batches: n,
        dbMiB: round(db / MiB, 1),
        walMiB: round(wal / MiB, 1),
        totalMiB: round((db + wal) / MiB, 1),
        batchRows: Number((rows.get() as { n: number }).n),
        freePages: Number((free.get() as { freelist_count: number }).freelist_count),
      });
    }
  }
  const commitsPerSec = commits / ((performance.now() - started) / 1000);
  const used = process.cpuUsage(cpu);
  const cpuUsPerCommit = (used.user + used.system) / commits;
  inspector.close();
  log.close();
  rmSync(dataDir, { recursive: true, force: true });
  return { samples, commitsPerSec, cpuUsPerCommit };
}

const retention = run('retention', { retention: { maxBytes: SINK_MAX_BYTES } });
const baseline = run('baseline', { truncateConsumed: false, retention: { maxBytes: Infinity, maxAgeMs: Infinity } });
const rows = [...retention.samples, ...baseline.samples].sort((a, b) => a.batches - b.batches || a.run.localeCompare(b.run));
printTable(`log.db + WAL over ${BATCHES} ingest batches of ${RECORDS} records (${VALUE_BYTES}-byte values), 3 commits per batch`, rows as unknown as Array<Record<string, string | number>>);
const last = (r: typeof retention) => r.samples[r.samples.length - 1];
printTable('summary', [
  { run: 'retention', finalMiB: last(retention).totalMiB, peakMiB: Math.max(...retention.samples.map((s) => s.totalMiB)), commitsPerSec: Math.round(retention.commitsPerSec), cpuUsPerCommit: Math.round(retention.cpuUsPerCommit) },
  { run: 'baseline', finalMiB: last(baseline).totalMiB, peakMiB: Math.max(...baseline.samples.map((s) => s.totalMiB)), commitsPerSec: Math.round(baseline.commitsPerSec), cpuUsPerCommit: Math.round(baseline.cpuUsPerCommit) },
]);
printJson('log-retention', {
  batches: BATCHES,
  records: RECORDS,
  valueBytes: VALUE_BYTES,
  sinkMaxBytes: SINK_MAX_BYTES,
  retention: { commitsPerSec: Math.round(retention.commitsPerSec), cpuUsPerCommit: Math.round(retention.cpuUsPerCommit), samples: retention.samples },
  baseline: { commitsPerSec: Math.round(baseline.commitsPerSec), cpuUsPerCommit: Math.round(baseline.cpuUsPerCommit), samples: baseline.samples },
});
