/**
 * Owner tokens on Kafka-fed state staged in the local log: once a new owner has claimed a
 * partition (after fencing the previous producer), a zombie owner can stage nothing — it can
 * neither replace the live owner's staged writes before their promote nor leave a row behind
 * that the next activation would promote.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KafkaCommitLedger } from '../connectors/kafka/kafka-commit-ledger.ts';
import { TributaryError } from '../runtime/errors.ts';
import { openLog, type LogFixture } from './fixtures/log.ts';

let fixture: LogFixture;
let store: KafkaCommitLedger;

/** What an embedded StateStore seals for one write of key `n` on partition 0 of `g/n`. */
const entry = (value: string, partition = 0) => [{ namespace: 'g/n', partition, writes: [{ key: 'n', value }] }];

afterEach(() => {
  store.close();
  fixture.cleanup();
});

function open() {
  fixture = openLog();
  store = new KafkaCommitLedger(fixture.dir);
}

const value = () => fixture.log.stateSnapshot('g/n', 0).find((w) => w.key === 'n')?.value ?? null;

async function fenced(work: () => Promise<unknown>): Promise<TributaryError | null> {
  try {
    await work();
    return null;
  } catch (error) {
    return error as TributaryError;
  }
}

const at = (offset: number, metadata: string | null = null) => ({ offset, metadata });

describe('KafkaCommitLedger owners', () => {
  it("a zombie's stage after the new owner claimed is refused with ERR_KAFKA_FENCED and changes nothing", async () => {
    open();
    const zombie = await store.claim('g/n', 0, 't');
    const live = await store.claim('g/n', 0, 't');
    await store.stage('g/n', 0, 't', 10, entry('live'), live);
    const error = await fenced(() => store.stage('g/n', 0, 't', 12, entry('zombie'), zombie));
    expect(error?.code).toBe('ERR_KAFKA_FENCED');
    expect((await store.pending('g/n', 0, 't'))?.end).toBe(10);
    await store.promote('g/n', 0, 't');
    expect(value()).toBe('live');
  });

  it('the next activation never sees a row a zombie tried to stage', async () => {
    open();
    const zombie = await store.claim('g/n', 0, 't');
    await store.claim('g/n', 0, 't');
    expect((await fenced(() => store.stage('g/n', 0, 't', 5, entry('zombie'), zombie)))?.code).toBe('ERR_KAFKA_FENCED');
    // The live owner committed up to 8 on Kafka and crashed before staging again: recovery finds nothing.
    await store.recover('g/n', 0, 't', at(8));
    expect(value()).toBe(null);
    expect(await store.applied('g/n', 0, 't')).toBe(-1);
  });

  it('owners are per partition: claiming one does not fence another', async () => {
    open();
    const p0 = await store.claim('g/n', 0, 't');
    await store.claim('g/n', 1, 't');
    await store.stage('g/n', 0, 't', 3, entry('p0'), p0);
    await store.promote('g/n', 0, 't');
    expect(value()).toBe('p0');
  });
});

describe('KafkaCommitLedger recovery', () => {
  it('promotes staged entries of a committed transaction', async () => {
    open();
    const owner = await store.claim('g/n', 0, 't');
    const txn = await store.stage('g/n', 0, 't', 7, entry('v'), owner);
    await store.recover('g/n', 0, 't', at(7, txn));
    expect(value()).toBe('v');
    expect(await store.applied('g/n', 0, 't')).toBe(7);
    expect(await store.pendingTopics('g/n', 0)).toEqual([]);
  });

  it('drops staged entries past the committed offset (an aborted transaction)', async () => {
    open();
    const owner = await store.claim('g/n', 0, 't');
    await store.stage('g/n', 0, 't', 9, entry('aborted'), owner);
    expect(await store.pendingTopics('g/n', 0)).toEqual(['t']);
    await store.recover('g/n', 0, 't', at(4));
    expect(value()).toBe(null);
    expect(await store.pending('g/n', 0, 't')).toBe(null);
  });

  it('applies an at-least-once batch once: a replay ending at or below the applied offset changes nothing', async () => {
    open();
    await store.apply('g/n', 0, 't', 5, entry('first'));
    await store.apply('g/n', 0, 't', 5, entry('replayed'));
    expect(value()).toBe('first');
    expect(await store.applied('g/n', 0, 't')).toBe(5);
  });

  it('tells a committed transaction of timers from an aborted one by its token, though both end where the one before did', async () => {
    open();
    const owner = await store.claim('g/n', 0, 't');
    const first = await store.stage('g/n', 0, 't', 5, entry('records'), owner);
    await store.promote('g/n', 0, 't');
    // Timers fired after it: no input read, so the same end offset.
    const timers = await store.stage('g/n', 0, 't', 5, entry('timers'), owner);
    expect(timers).not.toBe(first);
    await store.recover('g/n', 0, 't', at(5, first));
    expect(value(), 'aborted: Kafka still shows the transaction before it').toBe('records');
    const again = await store.stage('g/n', 0, 't', 5, entry('timers'), owner);
    await store.recover('g/n', 0, 't', at(5, again));
    expect(value(), 'committed: its token is the committed metadata').toBe('timers');
    expect(await store.applied('g/n', 0, 't')).toBe(5);
  });

  it('promotes a transaction of timers, and applies an at-least-once batch of them, though they end at the applied offset', async () => {
    open();
    const owner = await store.claim('g/n', 0, 't');
    await store.stage('g/n', 0, 't', 5, entry('records'), owner);
    await store.promote('g/n', 0, 't');
    await store.stage('g/n', 0, 't', 5, entry('timers'), owner);
    await store.promote('g/n', 0, 't');
    expect(value()).toBe('timers');
    await store.apply('g/n', 0, 't', null, entry('timers again'));
    expect(value()).toBe('timers again');
    expect(await store.applied('g/n', 0, 't'), 'a unit without input moves no offset').toBe(5);
    await store.apply('g/n', 0, 't', 5, entry('a redelivered batch'));
    expect(value()).toBe('timers again');
  });
});
