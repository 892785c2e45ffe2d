import { describe, expect, it } from 'vitest';
import { NodeStats } from '../scheduler/node-stats.ts';

describe('NodeStats service time per record', () => {
  it('weights batches by their records (DS2 useful time), not one vote per batch', () => {
    const stats = new NodeStats();
    // One large batch at 1 ms/record, then many 1-record batches dominated by a 5 ms fixed cost.
    stats.recordBatch(1000, 1000);
    for (let i = 0; i < 3; i++) stats.recordBatch(1, 6);
    // A per-batch mean would be pulled to ~3 ms/record; records-weighted stays near 1 ms.
    expect(stats.recordMs).toBeGreaterThan(0.99);
    expect(stats.recordMs).toBeLessThan(1.05);
    expect(stats.processed).toBe(1003);
  });

  it('follows a change of cost as new batches arrive', () => {
    const stats = new NodeStats();
    for (let i = 0; i < 40; i++) stats.recordBatch(100, 100);
    for (let i = 0; i < 40; i++) stats.recordBatch(100, 300);
    expect(stats.recordMs).toBeCloseTo(3, 2);
  });
});

describe('NodeStats batch overhead', () => {
  it('is the intercept of batch time over records: a backlog that grows batches does not grow it', () => {
    const stats = new NodeStats();
    // 3 ms per batch plus 4 ms per record, batches from 1 to 200 records as a backlog builds.
    for (const n of [1, 2, 1, 5, 20, 60, 120, 200, 150, 3]) stats.recordBatch(n, 3 + 4 * n);
    expect(stats.batchOverheadMs).toBeCloseTo(3, 5);
    expect(stats.batchMs).toBeGreaterThan(100);
  });

  it('falls back to the mean batch time less one record when batch sizes do not vary', () => {
    const stats = new NodeStats();
    for (let i = 0; i < 10; i++) stats.recordBatch(1, 7);
    expect(stats.batchOverheadMs).toBeCloseTo(0, 5); // 7 ms batches of one 7 ms record
    expect(stats.batchOverheadMs + stats.recordMs).toBeCloseTo(stats.batchMs, 5);
  });
});
