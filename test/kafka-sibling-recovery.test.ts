/**
 * A node with two exactly-once Kafka inputs shares its state partitions between them. A crash
 * between one edge's Kafka commit and its promote leaves a staged row of that edge; the other
 * edge must not run the state partition before that row is settled, or it counts from a state
 * that lacks a committed transaction's writes (lost updates, found by `npm run chaos` on Kafka).
 * The other edge's `open` settles it: fences the edge's producer, reads its committed offset, and
 * promotes (or drops) the row.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import '../connectors/kafka/kafkajs-patches.ts'; // before kafkajs: the patched modules (see there)
import kafkajs from 'kafkajs';
import { KafkaCommitLedger } from '../connectors/kafka/kafka-commit-ledger.ts';
import { KafkaEdgeLog } from '../connectors/kafka/kafka-edge-log.ts';
import { KafkaJsBroker } from '../connectors/kafka/kafkajs-broker.ts';
import { EmbeddedStateStore } from '../connectors/state/embedded-state-store.ts';
import { GraphFaults } from '../scheduler/graph-faults.ts';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { BROKERS, createTopic, randomName } from './fixtures/kafka.ts';
import { openLog, type LogFixture } from './fixtures/log.ts';

const NS = 'g/count';
let fixture: LogFixture | null = null;
let ledger: KafkaCommitLedger | null = null;
const broker = new KafkaJsBroker({ brokers: BROKERS });

beforeAll(() => ensureService('kafka'), SERVICE_START_TIMEOUT_MS);
afterEach(() => {
  ledger?.close();
  fixture?.cleanup();
  ledger = null;
  fixture = null;
});

/** Commits `next` as `group`'s offset of partition 0 of `topic`, as a finished transaction would have. */
async function commitOffset(group: string, topic: string, next: number): Promise<void> {
  const admin = new kafkajs.Kafka({ brokers: BROKERS, logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.setOffsets({ groupId: group, topic, partitions: [{ partition: 0, offset: String(next) }] });
  } finally {
    await admin.disconnect();
  }
}

function edgeLog(topic: string, sibling: { topic: string; group: string }) {
  fixture ??= openLog();
  ledger ??= new KafkaCommitLedger(fixture.dir);
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
    stateStore: new EmbeddedStateStore(fixture.log),
    namespace: NS,
    interval: { ms: 100, observe: () => {} },
    commitEachUnit: true,
    faults: new GraphFaults('g'),
    context: { node: 'count', topic },
    siblings: [{ topic: sibling.topic, group: sibling.group, broker, transactionalId: (p) => `g/count/${sibling.topic}/${p}` }],
  });
}

describe('a state partition shared by two Kafka input edges', () => {
  it("opening one edge's partition promotes the other edge's committed staged row first", async () => {
    const left = randomName('left');
    const right = randomName('right');
    await createTopic(left, 1);
    await createTopic(right, 1);
    const log = edgeLog(right, { topic: left, group: `${left}-group` });
    // The left edge staged count=7 for its transaction ending at 5, Kafka committed it, and the process died before the promote.
    const owner = ledger!.claim(NS, 0, left);
    ledger!.stage(NS, 0, left, 5, [{ namespace: NS, partition: 0, writes: [{ key: 'n', value: '7' }] }], owner);
    await commitOffset(`${left}-group`, left, 5);
    await log.partition(0).open();
    expect(fixture!.log.stateSnapshot(NS, 0)).toEqual([{ key: 'n', value: '7' }]);
    expect(ledger!.pendingTopics(NS, 0)).toEqual([]);
    await log.partition(0).close();
  }, 60_000);

  it("drops the other edge's staged row when its transaction did not commit", async () => {
    const left = randomName('left');
    const right = randomName('right');
    await createTopic(left, 1);
    await createTopic(right, 1);
    const log = edgeLog(right, { topic: left, group: `${left}-group` });
    const owner = ledger!.claim(NS, 0, left);
    ledger!.stage(NS, 0, left, 9, [{ namespace: NS, partition: 0, writes: [{ key: 'n', value: 'aborted' }] }], owner);
    await commitOffset(`${left}-group`, left, 4);
    await log.partition(0).open();
    expect(fixture!.log.stateSnapshot(NS, 0)).toEqual([]);
    expect(ledger!.pendingTopics(NS, 0)).toEqual([]);
    await log.partition(0).close();
  }, 60_000);
});
