/**
 * The field's algorithms as bench baselines (scheduler/autoscaler/baselines.ts): Knative's KPA
 * (stable and panic windows, rate limits, scale to zero after the grace period) and DS2 (target
 * parallelism for the whole graph in one step from true rates and selectivities).
 */
import { describe, expect, it } from 'vitest';
import { Ds2Policy, KnativeKpaPolicy } from '../scheduler/autoscaler/baselines.ts';
import type { NodeInput } from '../scheduler/autoscaler/policy.ts';

function node(partial: Partial<NodeInput> & { id: string }): NodeInput {
  return {
    arrivalRate: 0,
    recordServiceS: 0.001,
    batchServiceS: 0.01,
    partitions: 64,
    replicas: 1,
    min: 0,
    max: 64,
    queueDepth: 0,
    idleMs: 0,
    scaleToZeroAfterMs: 30_000,
    ...partial,
  };
}

describe('Knative KPA', () => {
  it('sizes on the stable-window average over the per-replica target (70% of it)', () => {
    let now = 0;
    const kpa = new KnativeKpaPolicy({ target: 10 }, () => now);
    let replicas = 1;
    // 14 records in flight = 2 replicas of 10 × 0.7.
    for (; now <= 60_000; now += 1000) [{ replicas }] = kpa.decide({ nodes: [node({ id: 'n', queueDepth: 14, replicas })], paths: [['n']], cores: 64 });
    expect(replicas).toBe(2);
  });

  it('panics when the panic window wants twice the ready replicas, and does not scale down until a stable window without panic', () => {
    let now = 0;
    const kpa = new KnativeKpaPolicy({ target: 10, stableWindowMs: 10_000 }, () => now);
    const at = (queueDepth: number, replicas: number) => kpa.decide({ nodes: [node({ id: 'n', queueDepth, replicas })], paths: [['n']], cores: 64 })[0];
    for (; now < 10_000; now += 1000) at(7, 1); // steady at 1 replica
    const jump = at(70, 1); // the 1 s panic window sees 70 in flight: 10 replicas wanted
    expect(jump.reason).toMatch(/panic/);
    expect(jump.replicas).toBe(10);
    now += 1000;
    expect(at(7, 10).replicas).toBe(10); // the load is gone, but panic holds the count
    for (now += 1000; now < 21_000; now += 1000) at(7, 10);
    const after = at(7, 10);
    expect(after.reason).toMatch(/stable/);
    expect(after.replicas).toBe(5); // down at most 2x per decision
  });

  it('scales to zero after the grace period without concurrency', () => {
    let now = 0;
    const kpa = new KnativeKpaPolicy({ target: 10, stableWindowMs: 6000, scaleToZeroGraceMs: 5000 }, () => now);
    const at = () => kpa.decide({ nodes: [node({ id: 'n', replicas: 1 })], paths: [['n']], cores: 64 })[0].replicas;
    expect(at()).toBe(1);
    now = 4000;
    expect(at()).toBe(1);
    now = 5000;
    expect(at()).toBe(0);
  });
});

describe('DS2', () => {
  it('sizes every node of a chain in one step from true rates and the selectivity observed on the way', () => {
    // split (1 ms/record) emits 5 words per line; count (0.5 ms/word) emits one per word.
    // Offered: 2000 lines/s; observed while under-provisioned: split processed 1000/s, count received 5000/s.
    const [split, count] = new Ds2Policy().decide({
      nodes: [
        node({ id: 'split', arrivalRate: 2000, recordServiceS: 0.001, processedRate: 1000 }),
        node({ id: 'count', arrivalRate: 5000, recordServiceS: 0.0005, processedRate: 2000 }),
      ],
      paths: [['split', 'count']],
      cores: 64,
    });
    expect(split.replicas).toBe(2); // 2000/s over 1000/s per instance
    expect(count.replicas).toBe(5); // 2000 × 5 = 10000 words/s over 2000/s per instance
  });

  it('keeps a node with min 0 at one replica until its idle window has passed, then zero', () => {
    const policy = new Ds2Policy();
    const decide = (idleMs: number) => policy.decide({ nodes: [node({ id: 'n', idleMs, scaleToZeroAfterMs: 1000 })], paths: [['n']], cores: 64 })[0].replicas;
    expect(decide(500)).toBe(1);
    expect(decide(1500)).toBe(0);
  });
});
