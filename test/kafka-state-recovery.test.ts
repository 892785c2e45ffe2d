/**
 * A node with two exactly-once Kafka inputs shares its state partitions between them. A crash
 * between one edge's Kafka commit and its promote leaves a staged row of that edge; the other
 * edge must not run the state partition before that row is settled, or it counts from a state
 * that lacks a committed transaction's writes (lost updates, found by `npm run chaos` on Kafka).
 * The other edge's `open` settles it: fences the edge's producer, reads its committed offset, and
 * promotes (or drops) the row — with the local ledger, and with S3 state, where the staged
 * transaction's name travels in the offset commit's metadata.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KafkaCommitLedger } from '../connectors/kafka/kafka-commit-ledger.ts';
import { KafkaEdgeLog } from '../connectors/kafka/kafka-edge-log.ts';
import { KafkaS3State } from '../connectors/kafka/kafka-s3-state.ts';
import type { KafkaStateLedger } from '../connectors/kafka/kafka-state-ledger.ts';
import { KafkaJsBroker } from '../connectors/kafka/kafkajs-broker.ts';
import { Bucket } from '../connectors/s3/bucket.ts';
import type { StateWrite } from '../connectors/transport.ts';
import { GraphFaults } from '../scheduler/graph-faults.ts';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { BROKERS, createTopic, randomName } from './fixtures/kafka.ts';
import { openLog, type LogFixture } from './fixtures/log.ts';
import { PrivateS3, createBucket } from './fixtures/s3.ts';

const NS = 'g/count';
const broker = new KafkaJsBroker({ brokers: BROKERS });

interface Ledgers {
  ledger: KafkaStateLedger;
  snapshot(): Promise<StateWrite[]>;
  close(): void;
}

const kinds: Record<string, () => Promise<Ledgers>> = {
  'the local ledger': async () => {
    const fixture: LogFixture = openLog();
    const ledger = new KafkaCommitLedger(fixture.dir);
    return { ledger, snapshot: async () => fixture.log.stateSnapshot(NS, 0), close: () => (ledger.close(), fixture.cleanup()) };
  },
  'S3 state': () => s3Ledgers(),
};

/** S3 state over its own local log.db: a second one over the same bucket is another process's. */
async function s3Ledgers(options?: Awaited<ReturnType<typeof createBucket>>): Promise<Ledgers & { ledger: KafkaS3State; bucket: Awaited<ReturnType<typeof createBucket>> }> {
  const fixture: LogFixture = openLog();
  const local = new KafkaCommitLedger(fixture.dir);
  const where = options ?? (await createBucket());
  const bucket = await Bucket.open(where);
  const ledger = new KafkaS3State({ bucket, local });
  return { ledger, bucket: where, snapshot: () => ledger.store.snapshot(NS, 0), close: () => (local.close(), bucket.close(), fixture.cleanup()) };
}

let open: Ledgers | null = null;
beforeAll(async () => {
  await ensureService('kafka');
  await ensureService('s3');
}, SERVICE_START_TIMEOUT_MS * 2);
afterEach(() => {
  open?.close();
  open = null;
});

/** What a crashed owner of partition 0 of `topic` left: staged `value` at `end`, and Kafka committed `committed` (with the stage's metadata if it covers `end`). */
async function crashedAfterStage(ledger: KafkaStateLedger, topic: string, end: number, value: string, committed: number): Promise<void> {
  const producer = broker.producer({ transactionalId: `g/count/${topic}/0` });
  await producer.connect();
  try {
    const owner = await ledger.claim(NS, 0, topic);
    const metadata = await ledger.stage(NS, 0, topic, end, [{ namespace: NS, partition: 0, writes: [{ key: 'n', value }] }], owner);
    const tx = await producer.begin();
    await tx.sendOffsets(`${topic}-group`, topic, 0, committed, committed >= end ? metadata : null);
    await tx.commit();
  } finally {
    await producer.disconnect();
  }
}

function edgeLog(ledger: KafkaStateLedger, topic: string, sibling: { topic: string; group: string }) {
  return new KafkaEdgeLog({
    broker,
    topic,
    group: `${topic}-group`,
    delivery: 'exactly-once',
    brokerOf: () => broker,
    producerFor: () => Promise.reject(new Error('unused')),
    dropProducer: () => {},
    transactionalId: (p) => `g/count/${topic}/${p}`,
    ledger,
    namespace: NS,
    interval: { ms: 100, observe: () => {} },
    commitEachUnit: true,
    faults: new GraphFaults('g'),
    context: { node: 'count', topic },
    siblings: [{ topic: sibling.topic, group: sibling.group, broker, transactionalId: (p) => `g/count/${sibling.topic}/${p}` }],
  });
}

for (const [kind, make] of Object.entries(kinds)) {
  describe(`a state partition shared by two Kafka input edges (${kind})`, () => {
    it("opening one edge's partition promotes the other edge's committed staged transaction first", async () => {
      open = await make();
      const [left, right] = [randomName('left'), randomName('right')];
      await createTopic(left, 1);
      await createTopic(right, 1);
      // The left edge staged n=7 for its transaction ending at 5, Kafka committed it, and the process died before the promote.
      await crashedAfterStage(open.ledger, left, 5, '7', 5);
      const log = edgeLog(open.ledger, right, { topic: left, group: `${left}-group` });
      await log.partition(0).open();
      expect(await open.snapshot()).toEqual([{ key: 'n', value: '7' }]);
      expect(await open.ledger.pendingTopics(NS, 0)).toEqual([]);
      await log.partition(0).close();
    }, 60_000);

    it("drops the other edge's staged transaction when it did not commit", async () => {
      open = await make();
      const [left, right] = [randomName('left'), randomName('right')];
      await createTopic(left, 1);
      await createTopic(right, 1);
      await crashedAfterStage(open.ledger, left, 9, 'aborted', 4);
      const log = edgeLog(open.ledger, right, { topic: left, group: `${left}-group` });
      await log.partition(0).open();
      expect(await open.snapshot()).toEqual([]);
      expect(await open.ledger.pendingTopics(NS, 0)).toEqual([]);
      await log.partition(0).close();
    }, 60_000);
  });
}

describe('Kafka-fed state in S3 across processes', () => {
  it('a partition opened by a process with another data directory resumes over the committed state, and drops an aborted stage', async () => {
    const first = await s3Ledgers();
    const second = await s3Ledgers(first.bucket);
    try {
      const topic = randomName('moved');
      await createTopic(topic, 1);
      // The first process committed n=3 up to offset 4, staged n=9 for offset 8 and died before committing it.
      await crashedAfterStage(first.ledger, topic, 4, '3', 4);
      const owner = await first.ledger.claim(NS, 0, topic);
      await first.ledger.stage(NS, 0, topic, 8, [{ namespace: NS, partition: 0, writes: [{ key: 'n', value: '9' }] }], owner);
      const log = new KafkaEdgeLog({ ...edgeLog(second.ledger, topic, { topic: randomName('none'), group: 'none' }).options, siblings: [] });
      expect(await log.partition(0).open()).toBe(4);
      expect(await second.snapshot()).toEqual([{ key: 'n', value: '3' }]);
      expect(await second.ledger.pendingTopics(NS, 0)).toEqual([]);
      await log.partition(0).close();
    } finally {
      first.close();
      second.close();
    }
  }, 60_000);

  it("ignores offset metadata it did not write (a user's group)", async () => {
    open = await s3Ledgers();
    const topic = randomName('foreign');
    await createTopic(topic, 1);
    const producer = broker.producer({ transactionalId: `g/count/${topic}/0` });
    await producer.connect();
    const tx = await producer.begin();
    await tx.sendOffsets(`${topic}-group`, topic, 0, 3, 'state/kafka/txn/other/0/x/00000000000000000003-evil.json');
    await tx.commit();
    await producer.disconnect();
    const log = new KafkaEdgeLog({ ...edgeLog(open.ledger, topic, { topic: randomName('none'), group: 'none' }).options, siblings: [] });
    expect(await log.partition(0).open()).toBe(3);
    expect(await open.snapshot()).toEqual([]);
    await log.partition(0).close();
  }, 60_000);
});

describe('Kafka-fed state in S3 while S3 is down', () => {
  it('a committed transaction is published once S3 is back; meanwhile reads fail with ERR_S3_UNAVAILABLE instead of hanging', async () => {
    const s3 = await PrivateS3.start();
    const fixture = openLog();
    const local = new KafkaCommitLedger(fixture.dir);
    const bucket = await Bucket.open(await createBucket(s3.endpoint));
    const ledger = new KafkaS3State({ bucket, local });
    try {
      const owner = await ledger.claim(NS, 0, 't');
      await ledger.stage(NS, 0, 't', 3, [{ namespace: NS, partition: 0, writes: [{ key: 'n', value: '3' }] }], owner);
      await s3.stop();
      // Kafka committed it: the promote publishes in the background, retrying.
      await ledger.promote(NS, 0, 't');
      const started = Date.now();
      const error = await ledger.store.snapshot(NS, 0).then(() => null, (e: unknown) => e as { code?: string });
      expect(error?.code).toBe('ERR_S3_UNAVAILABLE');
      expect(Date.now() - started).toBeLessThan(30_000);
      await s3.start();
      await expect.poll(() => ledger.store.snapshot(NS, 0).catch(() => null), { timeout: 30_000, interval: 500 }).toEqual([{ key: 'n', value: '3' }]);
    } finally {
      await ledger.close();
      local.close();
      bucket.close();
      fixture.cleanup();
      await s3.destroy();
    }
  }, 120_000);
});
