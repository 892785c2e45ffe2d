/** Retention of the embedded log: consumed edge batches, sinks and dead letters by age and size, disk reuse. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { serialize } from 'node:v8';
import { afterEach, describe, expect, it } from 'vitest';
import { SqliteLog } from '../connectors/embedded/sqlite-log.ts';
import { openLog, records, type LogFixture } from './fixtures/log.ts';

const EDGE = 'g/e/a->b';
const SINK = 'g/sink/out';
const DLQ = 'g/dlq/a';
const DAY_MS = 24 * 3600_000;

let f: LogFixture;
afterEach(() => f?.cleanup());

function commitOffset(group: string, topic: string, next: number, partition = 0) {
  f.log.commit({ appends: [], offsets: [{ group, topic, partition, next }], state: [] });
}

/** Commits an offset, then runs the maintenance step (what the log's timer does between commits). */
function consume(group: string, topic: string, next: number, partition = 0) {
  commitOffset(group, topic, next, partition);
  f.log.maintain();
}

/** `batches` batches of `size` records each on `topic`. */
function fill(topic: string, batches: number, size = 10, partition = 0) {
  for (let b = 0; b < batches; b++) f.log.append(topic, partition, records(size, f.log.head(topic, partition)));
}

describe('edge logs: truncated once every consumer group committed past a batch', () => {
  it('deletes the batches below the committed offset of the only group', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 10);
    consume('g/b', EDGE, 50);
    expect(f.batchRows(EDGE)).toBe(5);
    expect(f.log.start(EDGE, 0)).toBe(50);
    expect(f.log.head(EDGE, 0)).toBe(100);
  });

  it('keeps what the slowest of several groups has not committed', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 10);
    consume('g/c', EDGE, 20);
    consume('g/b', EDGE, 90);
    expect(f.batchRows(EDGE)).toBe(8);
    consume('g/c', EDGE, 100);
    expect(f.batchRows(EDGE)).toBe(1);
  });

  it('never truncates a partition no group has committed on', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 2);
    fill(EDGE, 10, 10, 0);
    fill(EDGE, 10, 10, 1);
    consume('g/b', EDGE, 100, 1);
    expect(f.batchRows(EDGE, 0)).toBe(10);
    expect(f.batchRows(EDGE, 1)).toBe(0);
  });

  it('keeps a batch the committed offset falls inside', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 3);
    consume('g/b', EDGE, 15);
    expect(f.batchRows(EDGE)).toBe(2);
    expect(f.log.read(EDGE, 0, 15, 100).map((r) => r.offset)[0]).toBe(15);
  });

  it('keeps the head of a partition whose every batch was deleted, across a restart', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 4);
    consume('g/b', EDGE, 40);
    expect(f.batchRows(EDGE)).toBe(0);
    const log = f.reopen();
    expect(log.head(EDGE, 0)).toBe(40);
    log.append(EDGE, 0, records(1, 40));
    expect(log.read(EDGE, 0, 40, 10).map((r) => r.offset)).toEqual([40]);
  });

  it('answers a read from a truncated offset with records from the first one kept', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 5);
    consume('g/b', EDGE, 30);
    // From the decoded tail and from SQLite alike.
    expect(f.log.read(EDGE, 0, 0, 5).map((r) => r.offset)).toEqual([30, 31, 32, 33, 34]);
    const log = f.reopen();
    expect(log.read(EDGE, 0, 0, 5).map((r) => r.offset)).toEqual([30, 31, 32, 33, 34]);
    expect(log.read(EDGE, 0, 12, 1)[0]).toMatchObject({ offset: 30, value: 30 });
  });

  it('makes a waiter below the first offset kept wait for a new record when none is left', async () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 2);
    consume('g/b', EDGE, 20);
    let woken = false;
    const waiting = f.log.waitForAppend(EDGE, 0, 5).then(() => (woken = true));
    await new Promise((r) => setImmediate(r));
    expect(woken).toBe(false);
    f.log.append(EDGE, 0, records(1, 20));
    await waiting;
    expect(f.log.read(EDGE, 0, 5, 10).map((r) => r.offset)).toEqual([20]);
  });

  it('deletes consumed batches as commits go on, without the maintenance step', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 200);
    for (let next = 10; next <= 2000; next += 10) commitOffset('g/b', EDGE, next);
    expect(f.batchRows(EDGE)).toBeLessThan(20);
  });

  it('deletes a bounded number of batches per commit and the maintenance step the rest', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 1000, 1);
    for (let i = 0; i < 20; i++) commitOffset('g/b', EDGE, 1000);
    const left = f.batchRows(EDGE);
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(1000);
    expect(f.log.maintain().batchesDeleted).toBe(left);
    expect(f.batchRows(EDGE)).toBe(0);
  });

  it('keeps every batch when truncation of consumed batches is off', () => {
    f = openLog({ truncateConsumed: false });
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 5);
    commitOffset('g/b', EDGE, 50);
    f.log.maintain();
    expect(f.batchRows(EDGE)).toBe(5);
  });

  it('does not apply age or size limits to edge logs', () => {
    f = openLog({ retention: { maxAgeMs: 1000, maxBytes: 1 } });
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 5);
    f.clock.now += 10_000;
    f.log.maintain();
    expect(f.batchRows(EDGE)).toBe(5);
  });
});

describe('sinks and dead letters: retention by age and by size', () => {
  it('drops the oldest sink batches beyond the size limit, keeping the newest', () => {
    f = openLog({ retention: { maxBytes: 10_000 } });
    f.log.ensureTopic(SINK, 1);
    for (let i = 0; i < 50; i++) f.log.append(SINK, 0, records(1, i, () => 'x'.repeat(1000)));
    const bytes = f.query<{ b: number }>('SELECT sum(bytes) AS b FROM batches WHERE topic = ?', SINK)[0].b;
    expect(bytes).toBeLessThanOrEqual(10_000);
    expect(f.log.read(SINK, 0, 0, 1000).at(-1)!.offset).toBe(49);
    expect(f.log.start(SINK, 0)).toBeGreaterThan(0);
  });

  it('keeps the newest batch even when it alone is larger than the size limit', () => {
    f = openLog({ retention: { maxBytes: 100 } });
    f.log.ensureTopic(SINK, 1);
    f.log.append(SINK, 0, records(1, 0, () => 'x'.repeat(1000)));
    f.log.append(SINK, 0, records(1, 1, () => 'y'.repeat(1000)));
    expect(f.batchRows(SINK)).toBe(1);
    expect(f.log.read(SINK, 0, 0, 10).map((r) => r.offset)).toEqual([1]);
  });

  it('drops sink batches older than the age limit at the maintenance step', () => {
    f = openLog({ retention: { maxAgeMs: DAY_MS } });
    f.log.ensureTopic(SINK, 1);
    fill(SINK, 3, 1);
    f.clock.now += DAY_MS / 2;
    fill(SINK, 2, 1);
    f.clock.now += DAY_MS / 2 + 1;
    expect(f.log.maintain().batchesDeleted).toBe(3);
    expect(f.log.read(SINK, 0, 0, 10).map((r) => r.offset)).toEqual([3, 4]);
    f.clock.now += DAY_MS;
    f.log.maintain();
    expect(f.batchRows(SINK)).toBe(0);
    expect(f.log.head(SINK, 0)).toBe(5);
  });

  it('applies the same limits to dead letters', () => {
    f = openLog({ retention: { maxAgeMs: 1000 } });
    f.log.ensureTopic(DLQ, 1);
    fill(DLQ, 2, 1);
    f.clock.now += 1001;
    f.log.maintain();
    expect(f.batchRows(DLQ)).toBe(0);
  });

  it('defaults to 7 days and 1 GiB per partition', () => {
    f = openLog();
    expect(f.log.retentionOf(SINK)).toEqual({ maxAgeMs: 7 * DAY_MS, maxBytes: 1024 ** 3 });
    expect(f.log.retentionOf(EDGE)).toBeNull();
  });

  it('takes graph-level settings from setRetention, the longest prefix winning', () => {
    f = openLog();
    f.log.setRetention('g/', { maxAgeMs: 1000 });
    f.log.setRetention('g/sink/out', { maxBytes: 5 });
    expect(f.log.retentionOf(DLQ)).toEqual({ maxAgeMs: 1000, maxBytes: 1024 ** 3 });
    expect(f.log.retentionOf(SINK)).toEqual({ maxAgeMs: 7 * DAY_MS, maxBytes: 5 });
    expect(f.log.retentionOf('h/sink/out')!.maxAgeMs).toBe(7 * DAY_MS);
    f.log.setRetention('g/', null);
    expect(f.log.retentionOf(DLQ)!.maxAgeMs).toBe(7 * DAY_MS);
  });

  it('enforces a size limit lowered by setRetention on a partition written before a restart', () => {
    f = openLog();
    f.log.ensureTopic(SINK, 1);
    fill(SINK, 20, 1);
    const log = f.reopen();
    log.setRetention('g/', { maxBytes: 200 });
    log.maintain();
    expect(f.batchRows(SINK)).toBeLessThan(20);
    expect(f.query<{ b: number }>('SELECT sum(bytes) AS b FROM batches WHERE topic = ?', SINK)[0].b).toBeLessThanOrEqual(200);
  });

  it('forgets a deleted graph’s settings', () => {
    f = openLog();
    f.log.setRetention('g/', { maxAgeMs: 5 });
    f.log.deleteTopics('g/');
    expect(f.log.retentionOf(SINK)!.maxAgeMs).toBe(7 * DAY_MS);
  });
});

describe('source edges kept for replay (keepConsumed): by age and size, never unconsumed', () => {
  it('keeps consumed batches until they are too old, then deletes only consumed ones', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    f.log.keepConsumed(EDGE, { maxAgeMs: 1000 });
    fill(EDGE, 5);
    consume('g/b', EDGE, 30);
    expect(f.batchRows(EDGE)).toBe(5); // consumed, but young: kept for a seek
    f.clock.now += 1001;
    f.log.maintain();
    expect(f.batchRows(EDGE)).toBe(2); // the three consumed ones went, the unconsumed stay however old
    expect(f.log.start(EDGE, 0)).toBe(30);
    consume('g/b', EDGE, 50);
    expect(f.batchRows(EDGE)).toBe(0);
  });

  it('deletes the oldest consumed batches past maxBytes, at the append', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    fill(EDGE, 1);
    const batchBytes = f.query<{ b: number }>('SELECT bytes AS b FROM batches WHERE topic = ?', EDGE)[0].b;
    f.log.keepConsumed(EDGE, { maxBytes: batchBytes * 4 });
    fill(EDGE, 7);
    expect(f.batchRows(EDGE)).toBe(8); // nothing consumed: over its size, still kept whole
    commitOffset('g/b', EDGE, 20);
    fill(EDGE, 1);
    expect(f.batchRows(EDGE)).toBe(7); // only the two consumed batches may go
    commitOffset('g/b', EDGE, 90);
    fill(EDGE, 1);
    expect(f.batchRows(EDGE)).toBeLessThanOrEqual(4);
    expect(f.log.start(EDGE, 0)).toBeGreaterThan(0);
  });

  it('defaults to 24 h and 256 MiB; an unregistered edge is truncated once consumed', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    f.log.ensureTopic('g/e/x->y', 1);
    f.log.keepConsumed(EDGE, {});
    expect(f.log.retentionOf(EDGE)).toEqual({ maxAgeMs: DAY_MS, maxBytes: 256 * 1024 ** 2 });
    fill(EDGE, 3);
    fill('g/e/x->y', 3);
    consume('g/b', EDGE, 30);
    consume('g/y', 'g/e/x->y', 30);
    expect(f.batchRows(EDGE)).toBe(3);
    expect(f.batchRows('g/e/x->y')).toBe(0);
    f.log.keepConsumed(EDGE, null);
    f.log.maintain();
    consume('g/b', EDGE, 30);
    expect(f.batchRows(EDGE)).toBe(0);
  });

  it('finds the first offset appended at or after a time', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    f.log.keepConsumed(EDGE, {});
    const t0 = f.clock.now;
    fill(EDGE, 2);
    f.clock.now += 100;
    fill(EDGE, 2);
    expect(f.log.offsetAtTime(EDGE, 0, t0)).toBe(0);
    expect(f.log.offsetAtTime(EDGE, 0, t0 + 1)).toBe(20);
    expect(f.log.offsetAtTime(EDGE, 0, t0 + 100)).toBe(20);
    expect(f.log.offsetAtTime(EDGE, 0, t0 + 101)).toBe(40); // none that recent: the head
  });
});

describe('databases written before retention', () => {
  function oldDatabase(dir: string) {
    const db = new DatabaseSync(join(dir, 'log.db'));
    db.exec(`
      PRAGMA journal_mode = WAL;
      CREATE TABLE topics (topic TEXT PRIMARY KEY, partitions INTEGER NOT NULL);
      CREATE TABLE batches (
        topic TEXT NOT NULL, partition INTEGER NOT NULL, base INTEGER NOT NULL, count INTEGER NOT NULL, payload BLOB NOT NULL,
        PRIMARY KEY (topic, partition, base)) WITHOUT ROWID;
      CREATE TABLE offsets (
        grp TEXT NOT NULL, topic TEXT NOT NULL, partition INTEGER NOT NULL, next INTEGER NOT NULL,
        PRIMARY KEY (grp, topic, partition)) WITHOUT ROWID;
      CREATE TABLE idempotency (key TEXT PRIMARY KEY, committed_at INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE state (ns TEXT NOT NULL, partition INTEGER NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (ns, partition, key)) WITHOUT ROWID;`);
    const insert = db.prepare('INSERT INTO batches (topic, partition, base, count, payload) VALUES (?, 0, ?, 1, ?)');
    db.prepare('INSERT INTO topics VALUES (?, 1), (?, 1)').run(EDGE, SINK);
    for (let i = 0; i < 10; i++) {
      insert.run(EDGE, i, serialize([[null, `old-${i}`, 0, undefined]]));
      insert.run(SINK, i, serialize([[null, 'z'.repeat(100), 0, undefined]]));
    }
    db.prepare('INSERT INTO idempotency VALUES (?, ?)').run('g/in/k', 0);
    db.close();
  }

  it('migrates in place: old batches stay readable, their size counts as length(payload)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tributary-old-log-'));
    try {
      oldDatabase(dir);
      const log = new SqliteLog({ dataDir: dir, maintenanceIntervalMs: 0 });
      expect(log.read(EDGE, 0, 0, 100).map((r) => r.value)).toEqual(Array.from({ length: 10 }, (_, i) => `old-${i}`));
      log.append(EDGE, 0, records(1, 10, () => 'new'));
      expect(log.read(EDGE, 0, 9, 2).map((r) => r.value)).toEqual(['old-9', 'new']);
      log.commit({ appends: [], offsets: [{ group: 'g/b', topic: EDGE, partition: 0, next: 5 }], state: [] });
      log.maintain();
      expect(log.read(EDGE, 0, 0, 1)[0].offset).toBe(5);
      const payload = serialize([[null, 'z'.repeat(100), 0, undefined]]).length;
      log.setRetention('g/', { maxBytes: payload * 4 });
      log.maintain();
      const kept = log.read(SINK, 0, 0, 100).map((r) => r.offset);
      expect(kept.at(-1)).toBe(9);
      expect(kept.length).toBeGreaterThanOrEqual(3); // down to 15/16 of the limit
      expect(kept.length).toBeLessThanOrEqual(4);
      // The old key is expired (committed long ago): a first-time request reusing it is accepted.
      expect(log.commit({ appends: [{ topic: EDGE, partition: 0, records: records(1) }], offsets: [], state: [], idempotencyKey: 'g/in/k' })).toBe(true);
      log.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('converts a small database to incremental auto-vacuum at open', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tributary-old-log-'));
    try {
      oldDatabase(dir);
      new SqliteLog({ dataDir: dir, maintenanceIntervalMs: 0 }).close();
      const db = new DatabaseSync(join(dir, 'log.db'));
      expect((db.prepare('PRAGMA auto_vacuum').get() as { auto_vacuum: number }).auto_vacuum).toBe(2);
      db.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('disk use', () => {
  it('creates new databases with incremental auto-vacuum', () => {
    f = openLog();
    expect(f.query<{ auto_vacuum: number }>('PRAGMA auto_vacuum')[0].auto_vacuum).toBe(2);
  });

  it('returns the pages freed by retention to the file system, in bounded steps', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    const big = 'x'.repeat(64 * 1024);
    for (let i = 0; i < 400; i++) f.log.append(EDGE, 0, records(1, i, () => big + i));
    f.log.maintain();
    const full = f.query<{ page_count: number }>('PRAGMA page_count')[0].page_count;
    commitOffset('g/b', EDGE, 400);
    f.log.maintain(); // the commit deleted a bounded number of batches; this step the rest
    let freed = 0;
    for (let step = 0; step < 50; step++) {
      const report = f.log.maintain();
      expect(report.pagesFreed).toBeLessThanOrEqual(2048);
      freed += report.pagesFreed;
      if (report.pagesFreed === 0) break;
    }
    expect(freed).toBeGreaterThan(full / 2);
    expect(f.query<{ page_count: number }>('PRAGMA page_count')[0].page_count).toBeLessThan(full / 2);
  });

  it('reuses free pages: a steady append-and-consume run does not grow the file', () => {
    f = openLog();
    f.log.ensureTopic(EDGE, 1);
    const value = 'v'.repeat(4096);
    const round = () => {
      for (let i = 0; i < 100; i++) f.log.append(EDGE, 0, records(10, f.log.head(EDGE, 0), () => value));
      commitOffset('g/b', EDGE, f.log.head(EDGE, 0));
      f.log.maintain();
    };
    for (let r = 0; r < 3; r++) round();
    const settled = f.query<{ page_count: number }>('PRAGMA page_count')[0].page_count;
    for (let r = 0; r < 10; r++) round();
    expect(f.query<{ page_count: number }>('PRAGMA page_count')[0].page_count).toBeLessThanOrEqual(settled * 1.1);
  });
});
