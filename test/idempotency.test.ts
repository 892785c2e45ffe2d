/** Idempotency keys of ingest: scoped to their graph (gone with it) and expiring after a documented TTL. */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import type { CommitSet } from '../connectors/transport.ts';
import { GraphStore } from '../scheduler/graph-store.ts';
import { openLog, records, type LogFixture } from './fixtures/log.ts';
import { deploy, json, tempDir, waitFor, withPlatform } from './fixtures/platform.ts';

const HOUR_MS = 3600_000;
const TOPIC = 'g/e/in->n';

let f: LogFixture;
afterEach(() => f?.cleanup());

function keyed(key: string): CommitSet {
  return { appends: [{ topic: TOPIC, partition: 0, records: records(1) }], offsets: [], state: [], idempotencyKey: key };
}

const keyRows = () => f.query<{ n: number }>('SELECT count(*) AS n FROM idempotency')[0].n;

describe('idempotency keys in the embedded log', () => {
  it('answers a key committed within the TTL as a duplicate', () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    expect(f.log.commit(keyed('g/in/k1'))).toBe(true);
    f.clock.now += 23 * HOUR_MS;
    expect(f.log.commit(keyed('g/in/k1'))).toBe(false);
    expect(f.log.head(TOPIC, 0)).toBe(1);
  });

  it('accepts a key again once the TTL (24 h by default) has passed, even before it is pruned', () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    expect(f.log.commit(keyed('g/in/k1'))).toBe(true);
    f.clock.now += 24 * HOUR_MS + 1;
    expect(f.log.commit(keyed('g/in/k1'))).toBe(true);
    expect(f.log.commit(keyed('g/in/k1'))).toBe(false);
  });

  it('takes the TTL from idempotencyTtlMs', () => {
    f = openLog({ idempotencyTtlMs: 1000 });
    f.log.ensureTopic(TOPIC, 1);
    f.log.commit(keyed('g/in/k1'));
    f.clock.now += 1001;
    expect(f.log.commit(keyed('g/in/k1'))).toBe(true);
  });

  it('prunes expired keys at the maintenance step', () => {
    f = openLog({ idempotencyTtlMs: 1000 });
    f.log.ensureTopic(TOPIC, 1);
    for (let i = 0; i < 50; i++) f.log.commit(keyed(`g/in/old-${i}`));
    f.clock.now += 500;
    f.log.commit(keyed('g/in/young'));
    f.clock.now += 501;
    expect(f.log.maintain().idempotencyKeysPruned).toBe(50);
    expect(keyRows()).toBe(1);
  });

  it('prunes expired keys as keyed commits arrive, faster than they arrive, with no timer', () => {
    f = openLog({ idempotencyTtlMs: 1000 });
    f.log.ensureTopic(TOPIC, 1);
    for (let i = 0; i < 1000; i++) f.log.commit(keyed(`g/in/old-${i}`));
    f.clock.now += 1001;
    for (let i = 0; i < 1000; i++) f.log.commit(keyed(`g/in/new-${i}`));
    expect(keyRows()).toBeLessThan(2000);
    expect(keyRows()).toBeGreaterThanOrEqual(1000);
    for (let i = 0; i < 1000; i++) f.log.commit(keyed(`g/in/newer-${i}`));
    expect(f.query<{ n: number }>("SELECT count(*) AS n FROM idempotency WHERE key LIKE 'g/in/old-%'")[0].n).toBe(0);
  });

  it('deletes the keys of a deleted graph with its topics, and no other graph’s', () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    f.log.ensureTopic('g2/e/in->n', 1);
    f.log.commit(keyed('g/in/k1'));
    f.log.commit({ ...keyed('g2/in/k1'), appends: [{ topic: 'g2/e/in->n', partition: 0, records: records(1) }] });
    f.log.deleteTopics('g/');
    expect(f.query<{ key: string }>('SELECT key FROM idempotency').map((r) => r.key)).toEqual(['g2/in/k1']);
    f.log.ensureTopic(TOPIC, 1);
    expect(f.log.commit(keyed('g/in/k1'))).toBe(true);
  });
});

describe('idempotency keys across a graph delete and re-create', () => {
  let platform: Awaited<ReturnType<typeof withPlatform>>;
  const spec = {
    nodes: [{ id: 'n', function: 'upper', replicas: { min: 1, max: 1 } }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'n', delivery: 'exactly-once' },
      { from: 'n', to: 'out', delivery: 'exactly-once' },
    ],
  };
  const put = () => platform.app.request('/v1/graphs/idem', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  const ingest = (value: string) =>
    json(platform.app.request('/v1/graphs/idem/sources/in', { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'k1' }, body: JSON.stringify([{ value }]) }));
  const sink = async () => (await json(platform.app.request('/v1/graphs/idem/sinks/out?from=0&limit=100'))).records.map((r: { value: string }) => r.value);

  beforeAll(async () => {
    platform = await withPlatform({ hosts: 1, warmSlots: 1 });
    await deploy(platform, 'upper', `export default { process(r) { return String(r.value).toUpperCase(); } };`);
  });
  afterAll(() => platform.cleanup());

  it('accepts a first-time POST reusing a key the deleted graph had seen', async () => {
    expect((await put()).status).toBe(201);
    expect(await ingest('first')).toEqual({ accepted: 1, duplicate: false });
    expect(await ingest('first')).toEqual({ accepted: 1, duplicate: true });
    await waitFor(async () => (await sink()).length === 1, 10_000, 'first record in the sink');
    expect((await platform.app.request('/v1/graphs/idem', { method: 'DELETE' })).status).toBeLessThan(300);
    expect((await put()).status).toBe(201);
    expect(await ingest('second')).toEqual({ accepted: 1, duplicate: false });
    expect(await waitFor(async () => ((await sink()).length === 1 ? sink() : null), 10_000, 'second record in the sink')).toEqual(['SECOND']);
  });
});

describe('idempotency keys scoped to the incarnation of their graph', () => {
  const spec = {
    nodes: [{ id: 'n', function: 'upper', replicas: { min: 1, max: 1 } }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'n', delivery: 'exactly-once' },
      { from: 'n', to: 'out', delivery: 'exactly-once' },
    ],
  };
  type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;
  const put = (p: TestPlatform) => p.app.request('/v1/graphs/inc', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  const ingest = (p: TestPlatform, value: string) =>
    json(p.app.request('/v1/graphs/inc/sources/in', { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': 'k1' }, body: JSON.stringify([{ value }]) }));
  const sink = async (p: TestPlatform) => (await json(p.app.request('/v1/graphs/inc/sinks/out?from=0&limit=100'))).records.map((r: { value: string }) => r.value);

  it('keeps a key across re-deploys of the live graph, and not past a delete that stopped half-way', async () => {
    const dataDir = tempDir();
    let platform = await withPlatform({ dataDir, hosts: 1, warmSlots: 1 });
    try {
      await deploy(platform, 'upper', `export default { process(r) { return String(r.value).toUpperCase(); } };`);
      expect((await put(platform)).status).toBe(201);
      expect(await ingest(platform, 'first')).toEqual({ accepted: 1, duplicate: false });
      expect((await put(platform)).status).toBe(201); // an update: same incarnation, the key still holds
      expect(await ingest(platform, 'first')).toEqual({ accepted: 1, duplicate: true });
      await platform.close();

      // A delete that removed the graph and crashed before the log's cleanup: its keys are still in log.db.
      const store = new GraphStore(dataDir);
      expect(store.delete('inc')).toBe(true);
      store.close();
      const log = new DatabaseSync(join(dataDir, 'log.db'), { readOnly: true });
      expect((log.prepare("SELECT count(*) AS n FROM idempotency WHERE key LIKE 'inc/%'").get() as { n: number }).n).toBe(1);
      log.close();

      platform = await withPlatform({ dataDir, hosts: 1, warmSlots: 1 });
      expect((await put(platform)).status).toBe(201);
      expect(await ingest(platform, 'second')).toEqual({ accepted: 1, duplicate: false });
      await waitFor(async () => (await sink(platform)).includes('SECOND'), 10_000, 'the new record in the sink');
    } finally {
      await platform.cleanup();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('gives a name a new incarnation after a delete, and keeps the old scope of graphs stored before incarnations', () => {
    const dataDir = tempDir();
    try {
      // graphs.db as it was before incarnations.
      const old = new DatabaseSync(join(dataDir, 'graphs.db'));
      old.exec('CREATE TABLE graphs (name TEXT PRIMARY KEY, spec TEXT NOT NULL, version INTEGER NOT NULL, updated_at TEXT NOT NULL)');
      old.prepare('INSERT INTO graphs VALUES (?, ?, 1, ?)').run('legacy', JSON.stringify(spec), new Date().toISOString());
      old.close();
      const store = new GraphStore(dataDir);
      expect(store.incarnation('legacy')).toBe(''); // keys stay `legacy/<source>/<key>` while it lives
      store.put('legacy', spec as never);
      expect(store.incarnation('legacy')).toBe('');
      store.delete('legacy');
      expect(store.incarnation('legacy')).toBeNull();
      store.put('legacy', spec as never);
      const first = store.incarnation('legacy');
      expect(first).toMatch(/^[0-9a-f]{16}$/);
      store.put('legacy', spec as never);
      expect(store.incarnation('legacy')).toBe(first);
      store.delete('legacy');
      store.put('legacy', spec as never);
      expect(store.incarnation('legacy')).not.toBe(first);
      store.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
