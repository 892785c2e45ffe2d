/** The embedded log's memory and idle costs: a tail cache bounded in bytes, waiters woken by appends alone. */
import { afterEach, describe, expect, it } from 'vitest';
import { openLog, records, type LogFixture } from './fixtures/log.ts';

const MiB = 1024 * 1024;
const TOPIC = 'g/e/a->b';

let f: LogFixture;
afterEach(() => f?.cleanup());

const huge = (fill: string) => records(1, 0, () => fill.repeat(8 * MiB));
const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
const tick = () => new Promise((r) => setImmediate(r));

describe('decoded tail cache', () => {
  it('does not pin 20 records of 8 MiB appended to one partition', () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    for (let i = 0; i < 20; i++) f.log.append(TOPIC, 0, huge(String.fromCharCode(97 + i)));
    expect(f.log.tailCacheBytes).toBeLessThanOrEqual(8 * MiB);
    const read = f.log.read(TOPIC, 0, 19, 1);
    expect((read[0].value as string).length).toBe(8 * MiB);
    expect((read[0].value as string)[0]).toBe('t');
  });

  it('does not pin 20 records of 8 MiB spread over 20 partitions', () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 20);
    for (let p = 0; p < 20; p++) f.log.append(TOPIC, p, records(1, 0, () => 'v'.repeat(4 * MiB)));
    expect(f.log.tailCacheBytes).toBeLessThanOrEqual(64 * MiB);
    for (let p = 0; p < 20; p++) expect((f.log.read(TOPIC, p, 0, 1)[0].value as string).length).toBe(4 * MiB);
  });

  it('bounds each partition in bytes, dropping its oldest batches', () => {
    f = openLog({ tailMaxBytesPerPartition: 64 * 1024 });
    f.log.ensureTopic(TOPIC, 1);
    for (let i = 0; i < 100; i++) f.log.append(TOPIC, 0, records(1, i, () => 'x'.repeat(4096)));
    expect(f.log.tailCacheBytes).toBeLessThanOrEqual(64 * 1024);
    expect(f.log.read(TOPIC, 0, 0, 200).map((r) => r.offset)).toEqual(Array.from({ length: 100 }, (_, i) => i));
  });

  it('evicts the least recently used partition tails past the global bound', () => {
    f = openLog({ tailMaxBytes: 3 * 40 * 1024, tailMaxBytesPerPartition: 40 * 1024 });
    f.log.ensureTopic(TOPIC, 4);
    const batch = () => records(1, 0, () => 'y'.repeat(32 * 1024));
    for (let p = 0; p < 3; p++) f.log.append(TOPIC, p, batch());
    const full = f.log.tailCacheBytes;
    f.log.read(TOPIC, 0, 0, 1); // partition 0 becomes the most recently used
    f.log.append(TOPIC, 3, batch());
    expect(f.log.tailCacheBytes).toBeLessThanOrEqual(3 * 40 * 1024);
    expect(f.log.tailCacheBytes).toBe(full); // one tail (partition 1, least recently used) made room
    for (let p = 0; p < 4; p++) expect(f.log.read(TOPIC, p, 0, 1)).toHaveLength(1);
  });

  it('still bounds records per partition', () => {
    f = openLog({ tailMaxRecordsPerPartition: 100 });
    f.log.ensureTopic(TOPIC, 1);
    for (let i = 0; i < 50; i++) f.log.append(TOPIC, 0, records(10, i * 10));
    expect(f.log.read(TOPIC, 0, 0, 1000)).toHaveLength(500);
  });
});

describe('waiting for appends', () => {
  it('wakes a waiter on append, with no timer armed', async () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 100);
    const before = timers();
    let woken = 0;
    const waits = Array.from({ length: 100 }, (_, p) => f.log.waitForAppend(TOPIC, p, 0).then(() => woken++));
    expect(timers()).toBe(before);
    expect(f.log.waiterCount).toBe(100);
    await tick();
    expect(woken).toBe(0);
    f.log.append(TOPIC, 42, records(1));
    await tick();
    expect(woken).toBe(1);
    for (let p = 0; p < 100; p++) if (p !== 42) f.log.append(TOPIC, p, records(1));
    await Promise.all(waits);
    expect(f.log.waiterCount).toBe(0);
  });

  it('resolves at once when records are already there', async () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    f.log.append(TOPIC, 0, records(3));
    await f.log.waitForAppend(TOPIC, 0, 2);
    expect(f.log.waiterCount).toBe(0);
  });

  it('removes an aborted waiter at once', async () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    const controller = new AbortController();
    const waiting = f.log.waitForAppend(TOPIC, 0, 0, controller.signal);
    expect(f.log.waiterCount).toBe(1);
    controller.abort();
    await waiting;
    expect(f.log.waiterCount).toBe(0);
  });

  it('leaks nothing over many aborted waits on one partition', async () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    const controller = new AbortController();
    for (let i = 0; i < 10_000; i++) {
      const round = new AbortController();
      const waiting = f.log.waitForAppend(TOPIC, 0, 0, round.signal);
      round.abort();
      await waiting;
    }
    const lasting = f.log.waitForAppend(TOPIC, 0, 0, controller.signal);
    expect(f.log.waiterCount).toBe(1);
    f.log.append(TOPIC, 0, records(1));
    await lasting;
    expect(f.log.waiterCount).toBe(0);
  });

  it('waits without a timer when waitForData is given an infinite timeout', async () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    const before = timers();
    const waiting = f.log.waitForData(TOPIC, 0, 0, Infinity);
    expect(timers()).toBe(before);
    f.log.append(TOPIC, 0, records(1));
    await waiting;
  });

  it('keeps the timeout of waitForData for existing callers, and forgets the waiter after it', async () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 1);
    await f.log.waitForData(TOPIC, 0, 0, 5);
    expect(f.log.waiterCount).toBe(0);
  });

  it('wakes every waiter when the log closes or their topics are deleted', async () => {
    f = openLog();
    f.log.ensureTopic(TOPIC, 2);
    f.log.ensureTopic('h/e/a->b', 1);
    const deleted = f.log.waitForAppend(TOPIC, 1, 0);
    const other = f.log.waitForAppend('h/e/a->b', 0, 0);
    f.log.deleteTopics('g/');
    await deleted;
    expect(f.log.waiterCount).toBe(1);
    f.log.close();
    await other;
    expect(f.log.waiterCount).toBe(0);
  });
});
