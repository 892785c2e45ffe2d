/**
 * DELETE /v1/graphs/{name} removes everything the graph owned, on every store, against the
 * project's real Kafka and S3 servers: its internal edge and dead-letter topics and its consumer
 * groups on the broker (never the user's source and sink topics), its state objects in the
 * bucket, its rows in the embedded log; a re-deploy of the name starts from nothing. With its
 * broker down, the delete answers within its bounded wait with what is still owed, a re-deploy of
 * the name is refused until it is removed, and the cleanup completes once the broker is back —
 * in the same process, and after a restart of the platform.
 */
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import '../connectors/kafka/kafkajs-patches.ts'; // before kafkajs: the patched modules
import kafkajs from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_DEFAULTS, SERVICE_START_TIMEOUT_MS, ensureService, stopService } from '../scripts/services.ts';
import { BROKERS, createTopic, inputProducer, privateBroker, randomName, readCommitted } from './fixtures/kafka.ts';
import { deploy, json, tempDir, waitFor, withPlatform } from './fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket } from './fixtures/s3.ts';
import { functionSource } from './fixtures/wordcount.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;

/** Lines from a user's Kafka topic → split → (Kafka edge) → count (state) → the user's Kafka topic; HTTP → tally (state, S3) → log sink. */
function graphSpec(inTopic: string, outTopic: string) {
  return {
    nodes: [
      { id: 'split', function: 'wordcount-split' },
      { id: 'count', function: 'wordcount-count' },
      { id: 'tally', function: 'wordcount-count' },
    ],
    sources: [
      { id: 'lines', type: 'kafka', topic: inTopic },
      { id: 'web', type: 'http' },
    ],
    sinks: [
      { id: 'counts', type: 'kafka', topic: outTopic },
      { id: 'tallies', type: 'log' },
    ],
    edges: [
      { from: 'lines', to: 'split', delivery: 'exactly-once', commitIntervalMs: 20 },
      { from: 'split', to: 'count', delivery: 'exactly-once', transport: 'kafka', partitionBy: 'key', commitIntervalMs: 20 },
      { from: 'count', to: 'counts', delivery: 'exactly-once' },
      { from: 'web', to: 'tally', delivery: 'exactly-once', partitionBy: 'key' },
      { from: 'tally', to: 'tallies', delivery: 'exactly-once' },
    ],
  };
}

/** What the platform creates for graph `g` on Kafka, and must remove. */
const ownedTopics = (g: string) => [`tributary.${g}.split.count`, `tributary.${g}.split.dlq`, `tributary.${g}.count.dlq`];
const ownedGroups = (g: string) => [`tributary.${g}.split`, `tributary.${g}.count`];

async function onBroker(brokers: string[]): Promise<{ topics: Set<string>; groups: Set<string> }> {
  const admin = new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return { topics: new Set(await admin.listTopics()), groups: new Set((await admin.listGroups()).groups.map((g) => g.groupId)) };
  } finally {
    await admin.disconnect();
  }
}

/** Rows of the embedded log (log.db: records, offsets, keys, state, Kafka-edge state) that mention graph `g`. */
function logRows(dataDir: string, g: string): Record<string, number> {
  const db = new DatabaseSync(join(dataDir, 'log.db'), { readOnly: true });
  try {
    const columns: Array<[string, string]> = [
      ['topics', 'topic'], ['batches', 'topic'], ['offsets', 'grp'], ['offsets', 'topic'], ['log_starts', 'topic'], ['idempotency', 'key'], ['state', 'ns'],
      ['kafka_state_applied', 'ns'], ['kafka_state_owner', 'ns'], ['kafka_state_pending', 'ns'],
    ];
    const rows: Record<string, number> = {};
    for (const [table, column] of columns) {
      rows[`${table}.${column}`] = Number((db.prepare(`SELECT count(*) AS n FROM ${table} WHERE instr(${column}, ?) > 0`).get(`${g}/`) as { n: number }).n);
    }
    return rows;
  } finally {
    db.close();
  }
}

const putGraph = (platform: TestPlatform, name: string, spec: unknown) =>
  platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });

const ingest = (platform: TestPlatform, name: string, key: string, idempotencyKey: string) =>
  json(platform.app.request(`/v1/graphs/${name}/sources/web`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
    body: JSON.stringify([{ key, value: key }]),
  }));

const tallies = async (platform: TestPlatform, name: string) =>
  (await json(platform.app.request(`/v1/graphs/${name}/sinks/tallies?from=0&limit=100`))).records.map((r: { value: { word: string; count: number } }) => r.value);

/** Counts on the user's Kafka sink, parsed, in offset order. */
const counts = async (topic: string) =>
  (await readCommitted(topic)).sort((a, b) => a.offset - b.offset).map((r) => JSON.parse(r.value) as { word: string; count: number });

/** Per word, the counts it was emitted with, in order. */
function byWord(records: Array<{ word: string; count: number }>): Record<string, number[]> {
  const out: Record<string, number[]> = {};
  for (const { word, count } of records) (out[word] ??= []).push(count);
  return out;
}

/**
 * PUT, then wait until every Kafka edge runs: on a broker that has just started, the first topic
 * creation may fail (the deploy then answers with `error.graph`: deployed, retrying).
 */
async function deployAndWait(platform: TestPlatform, name: string, spec: unknown): Promise<void> {
  const res = await putGraph(platform, name, spec);
  if (res.status !== 201) expect((await json(res)).error.graph, `deploy of ${name}`).toMatchObject({ name });
  await waitFor(async () => {
    const { status } = await json(platform.app.request(`/v1/graphs/${name}`));
    return status.edges.filter((e: { transport?: string }) => e.transport === 'kafka').every((e: { state: string }) => e.state === 'running');
  }, 60_000, `Kafka edges of ${name} running`);
}

async function deployFunctions(platform: TestPlatform): Promise<void> {
  expect((await deploy(platform, 'wordcount-split', functionSource('wordcount-split'))).status).toBe(201);
  expect((await deploy(platform, 'wordcount-count', functionSource('wordcount-count'))).status).toBe(201);
}

describe('DELETE of a graph on Kafka, S3 and the embedded log', () => {
  let platform: TestPlatform;
  let s3: S3Client;
  let bucket: Awaited<ReturnType<typeof createBucket>>;

  beforeAll(async () => {
    await Promise.all([ensureService('kafka'), ensureService('s3')]);
    s3 = new S3Client({ endpoint: SERVICE_DEFAULTS.s3.endpoint, region: SERVICE_DEFAULTS.s3.region, forcePathStyle: true, credentials: TEST_CREDENTIALS });
    bucket = await createBucket();
    platform = await withPlatform({ hosts: 1, warmSlots: 2, s3: bucket, autoscaleIntervalMs: 0 });
    await deployFunctions(platform);
  }, SERVICE_START_TIMEOUT_MS);
  afterAll(async () => {
    await platform?.cleanup();
    s3?.destroy();
  });

  async function stateKeys(g: string): Promise<string[]> {
    const out: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: bucket.bucket, Prefix: 'state/', ContinuationToken: token }));
      for (const o of page.Contents ?? []) if (o.Key!.includes(`/${g}/`)) out.push(o.Key!);
      token = page.NextContinuationToken;
    } while (token);
    return out;
  }

  it('removes its topics, groups, state objects and log rows, keeps the user’s topics, and a re-deploy starts empty', async () => {
    const g = randomName('del');
    const inTopic = randomName('del-lines');
    const outTopic = randomName('del-counts');
    await createTopic(inTopic, 2);
    const producer = await inputProducer();
    try {
      expect((await putGraph(platform, g, graphSpec(inTopic, outTopic))).status).toBe(201);
      await producer.send(inTopic, [{ value: 'x x' }, { value: 'x y' }, { value: 'y' }]);
      expect(await ingest(platform, g, 'x', 'k1')).toEqual({ accepted: 1, duplicate: false });
      expect(await ingest(platform, g, 'x', 'k2')).toEqual({ accepted: 1, duplicate: false });
      expect(await ingest(platform, g, 'x', 'k1')).toEqual({ accepted: 1, duplicate: true });
      await waitFor(async () => (await counts(outTopic)).length === 5, 60_000, 'five counts on the Kafka sink');
      expect(byWord(await counts(outTopic))).toEqual({ x: [1, 2, 3], y: [1, 2] });
      await waitFor(async () => (await tallies(platform, g)).length === 2, 20_000, 'two tallies');
      await waitFor(async () => (await stateKeys(g)).some((k) => k.includes('/live/')), 20_000, 'the tally published to S3');

      // What the graph owns exists before the delete (so the assertions below can fail).
      const before = await onBroker(BROKERS);
      for (const topic of [...ownedTopics(g), inTopic, outTopic]) expect(before.topics, topic).toContain(topic);
      for (const group of ownedGroups(g)) expect(before.groups, group).toContain(group);
      const rowsBefore = logRows(platform.dataDir, g);
      for (const table of ['topics.topic', 'batches.topic', 'offsets.grp', 'idempotency.key', 'kafka_state_applied.ns']) expect(rowsBefore[table], table).toBeGreaterThan(0);

      const res = await platform.app.request(`/v1/graphs/${g}`, { method: 'DELETE' });
      expect(res.status).toBe(204);

      // Gone when the delete answers: no wait.
      const after = await onBroker(BROKERS);
      for (const topic of ownedTopics(g)) expect(after.topics, topic).not.toContain(topic);
      for (const group of ownedGroups(g)) expect(after.groups, group).not.toContain(group);
      expect(after.topics).toContain(inTopic); // the user's
      expect(after.topics).toContain(outTopic);
      expect(await stateKeys(g)).toEqual([]);
      expect(Object.entries(logRows(platform.dataDir, g)).filter(([, n]) => n > 0)).toEqual([]);
      expect((await platform.app.request(`/v1/graphs/${g}`)).status).toBe(404);

      // The same graph again: its state, offsets and keys start empty. The user's input topic still
      // holds the three old lines, read again from the earliest record by the new group.
      expect((await putGraph(platform, g, graphSpec(inTopic, outTopic))).status).toBe(201);
      await producer.send(inTopic, [{ value: 'x' }]);
      await waitFor(async () => (await counts(outTopic)).length >= 11, 60_000, 'six more counts on the Kafka sink');
      expect(byWord((await counts(outTopic)).slice(5))).toEqual({ x: [1, 2, 3, 4], y: [1, 2] });
      expect(await ingest(platform, g, 'x', 'k1')).toEqual({ accepted: 1, duplicate: false });
      await waitFor(async () => (await tallies(platform, g)).length === 1, 20_000, 'one tally');
      expect(await tallies(platform, g)).toEqual([{ word: 'x', count: 1 }]);
      expect((await platform.app.request(`/v1/graphs/${g}`, { method: 'DELETE' })).status).toBe(204);
    } finally {
      await producer.close();
    }
  }, 180_000);
});

describe('DELETE of a graph whose Kafka broker is down', () => {
  const broker = privateBroker(19492);
  const dataDir = tempDir();
  let platform: TestPlatform | undefined;

  beforeAll(() => ensureService('kafka', broker.env), SERVICE_START_TIMEOUT_MS);
  afterAll(async () => {
    await platform?.cleanup();
    await stopService('kafka', broker.env);
  }, SERVICE_START_TIMEOUT_MS);

  const start = async () => {
    platform = await withPlatform({ dataDir, hosts: 1, warmSlots: 2, kafkaBrokers: broker.brokers, autoscaleIntervalMs: 0 });
    return platform;
  };
  const pendingMetric = async (p: TestPlatform) => /^tributary_kafka_cleanups_pending (\d+)$/m.exec(await (await p.app.request('/metrics')).text())?.[1];

  it('answers within its bounded wait with what is owed, refuses a re-deploy, and finishes once the broker is back, across a restart', async () => {
    const [a, b] = [randomName('dela'), randomName('delb')];
    const topics = { in: randomName('del-lines'), out: randomName('del-counts') };
    await createTopic(topics.in, 1, broker.brokers);
    let p = await start();
    await deployFunctions(p);
    for (const g of [a, b]) await deployAndWait(p, g, graphSpec(topics.in, topics.out));
    // Records through both graphs, so that their groups hold committed offsets.
    const producer = await inputProducer(broker.brokers);
    await producer.send(topics.in, [{ value: 'x' }]);
    await producer.close();
    await waitFor(async () => (await readCommitted(topics.out, broker.brokers)).length === 2, 60_000, 'a count from each graph');
    const before = await onBroker(broker.brokers);
    for (const topic of [...ownedTopics(a), ...ownedTopics(b)]) expect(before.topics, topic).toContain(topic);
    for (const group of [...ownedGroups(a), ...ownedGroups(b)]) expect(before.groups, group).toContain(group);

    await stopService('kafka', broker.env);
    const startedAt = Date.now();
    const res = await p.app.request(`/v1/graphs/${a}`, { method: 'DELETE' });
    expect(Date.now() - startedAt).toBeLessThan(15_000); // 10 s of bounded wait at most, plus stopping the runtime
    expect(res.status).toBe(202);
    const body = await json(res);
    expect(body).toMatchObject({ name: a, deleted: true, kafka: { state: 'pending', attempts: 1 } });
    expect(body.kafka.reason).toMatch(/^ERR_KAFKA_UNAVAILABLE/);
    expect([...body.kafka.topics].sort()).toEqual([...ownedTopics(a)].sort());
    expect([...body.kafka.groups].sort()).toEqual([...ownedGroups(a)].sort());
    expect((await p.app.request(`/v1/graphs/${a}`)).status).toBe(404); // the graph itself is deleted
    expect(await pendingMetric(p)).toBe('1');

    // A new graph of that name would take over the old topics and offsets: refused until they are gone.
    const again = await putGraph(p, a, graphSpec(topics.in, topics.out));
    expect(again.status).toBe(503);
    const { error } = await json(again);
    expect(error.code).toBe('ERR_KAFKA_UNAVAILABLE');
    expect(error.message).toMatch(/not deployed/);
    expect((await p.app.request(`/v1/graphs/${a}`)).status).toBe(404);

    // The platform restarts before the broker is back: a's cleanup was recorded, and resumes.
    await p.close();
    platform = undefined;
    p = await start();
    expect(await pendingMetric(p)).toBe('1');
    const deleteB = await p.app.request(`/v1/graphs/${b}`, { method: 'DELETE' });
    expect(deleteB.status).toBe(202);
    expect(await pendingMetric(p)).toBe('2');

    await ensureService('kafka', broker.env);
    // a: resumed from graphs.db after the restart; b: retried in the background of this process.
    await waitFor(async () => (await pendingMetric(p)) === '0', 150_000, 'both cleanups done once the broker is back');
    const after = await onBroker(broker.brokers);
    for (const topic of [...ownedTopics(a), ...ownedTopics(b)]) expect(after.topics, topic).not.toContain(topic);
    for (const group of [...ownedGroups(a), ...ownedGroups(b)]) expect(after.groups, group).not.toContain(group);
    expect(after.topics).toContain(topics.in);
    expect(after.topics).toContain(topics.out);
    await deployAndWait(p, a, graphSpec(topics.in, topics.out));
  }, 400_000);
});
