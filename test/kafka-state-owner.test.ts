/**
 * Owner tokens on Kafka-fed state staged in the local log: once a new owner has claimed a
 * partition (after fencing the previous producer), a zombie owner can stage nothing — it can
 * neither replace the live owner's staged writes before their promote nor leave a row behind
 * that the next activation would promote.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { KafkaStateStore } from '../connectors/kafka/kafka-state-store.ts';
import { TributaryError } from '../runtime/errors.ts';
import { openLog, type LogFixture } from './fixtures/log.ts';

let fixture: LogFixture;
let store: KafkaStateStore;

afterEach(() => {
  store.close();
  fixture.cleanup();
});

function open() {
  fixture = openLog();
  store = new KafkaStateStore(fixture.dir);
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

describe('KafkaStateStore owners', () => {
  it("a zombie's stage after the new owner claimed is refused with ERR_KAFKA_FENCED and changes nothing", () => {
    open();
    const zombie = store.claim('g/n', 0, 't');
    const live = store.claim('g/n', 0, 't');
    store.stage('g/n', 0, 't', 10, [{ key: 'n', value: 'live' }], live);
    const error = fenced(() => store.stage('g/n', 0, 't', 12, [{ key: 'n', value: 'zombie' }], zombie));
    expect(error?.code).toBe('ERR_KAFKA_FENCED');
    expect(store.pendingEnd('g/n', 0, 't')).toBe(10);
    store.promote('g/n', 0, 't');
    expect(value()).toBe('live');
  });

  it('the next activation never sees a row a zombie tried to stage', () => {
    open();
    const zombie = store.claim('g/n', 0, 't');
    store.claim('g/n', 0, 't');
    expect(fenced(() => store.stage('g/n', 0, 't', 5, [{ key: 'n', value: 'zombie' }], zombie))?.code).toBe('ERR_KAFKA_FENCED');
    // The live owner committed up to 8 on Kafka and crashed before staging again: recovery finds nothing.
    expect(store.recover('g/n', 0, 't', 8)).toBe('none');
    expect(value()).toBe(null);
  });

  it('owners are per partition: claiming one does not fence another', () => {
    open();
    const p0 = store.claim('g/n', 0, 't');
    store.claim('g/n', 1, 't');
    store.stage('g/n', 0, 't', 3, [{ key: 'n', value: 'p0' }], p0);
    store.promote('g/n', 0, 't');
    expect(value()).toBe('p0');
  });
});
