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

function fenced(work: () => void): TributaryError | null {
  try {
    work();
    return null;
  } catch (error) {
    return error as TributaryError;
  }
}

describe('KafkaCommitLedger owners', () => {
  it("a zombie's stage after the new owner claimed is refused with ERR_KAFKA_FENCED and changes nothing", () => {
    open();
    const zombie = store.claim('g/n', 0, 't');
    const live = store.claim('g/n', 0, 't');
    store.stage('g/n', 0, 't', 10, entry('live'), live);
    const error = fenced(() => store.stage('g/n', 0, 't', 12, entry('zombie'), zombie));
    expect(error?.code).toBe('ERR_KAFKA_FENCED');
    expect(store.pendingEnd('g/n', 0, 't')).toBe(10);
    store.promote('g/n', 0, 't');
    expect(value()).toBe('live');
  });

  it('the next activation never sees a row a zombie tried to stage', () => {
    open();
    const zombie = store.claim('g/n', 0, 't');
    store.claim('g/n', 0, 't');
    expect(fenced(() => store.stage('g/n', 0, 't', 5, entry('zombie'), zombie))?.code).toBe('ERR_KAFKA_FENCED');
    // The live owner committed up to 8 on Kafka and crashed before staging again: recovery finds nothing.
    expect(store.recover('g/n', 0, 't', 8).outcome).toBe('none');
    expect(value()).toBe(null);
  });

  it('owners are per partition: claiming one does not fence another', () => {
    open();
    const p0 = store.claim('g/n', 0, 't');
    store.claim('g/n', 1, 't');
    store.stage('g/n', 0, 't', 3, entry('p0'), p0);
    store.promote('g/n', 0, 't');
    expect(value()).toBe('p0');
  });
});

describe('KafkaCommitLedger recovery', () => {
  it('promotes staged entries of a committed transaction and returns them for the store to adopt', () => {
    open();
    const owner = store.claim('g/n', 0, 't');
    const manifest = [{ namespace: 's3:g/n', partition: 0, writes: [{ key: '0001', value: 'staged/key' }] }];
    store.stage('g/n', 0, 't', 7, [...entry('v'), ...manifest], owner);
    const recovered = store.recover('g/n', 0, 't', 7);
    expect(recovered.outcome).toBe('promoted');
    expect(recovered.entries).toEqual([...entry('v'), ...manifest]);
    expect(value()).toBe('v');
    expect(fixture.log.stateSnapshot('s3:g/n', 0)).toEqual([{ key: '0001', value: 'staged/key' }]);
    expect(store.applied('g/n', 0, 't')).toBe(7);
  });

  it('drops staged entries past the committed offset (an aborted transaction)', () => {
    open();
    const owner = store.claim('g/n', 0, 't');
    store.stage('g/n', 0, 't', 9, entry('aborted'), owner);
    expect(store.recover('g/n', 0, 't', 4)).toEqual({ outcome: 'dropped', entries: [] });
    expect(value()).toBe(null);
    expect(store.pendingEnd('g/n', 0, 't')).toBe(null);
  });

  it('applies an at-least-once batch once: a replay ending at or below the applied offset changes nothing', () => {
    open();
    expect(store.apply('g/n', 0, 't', 5, entry('first'))).toBe(true);
    expect(store.apply('g/n', 0, 't', 5, entry('replayed'))).toBe(false);
    expect(value()).toBe('first');
  });
});
