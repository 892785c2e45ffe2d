import { describe, expect, it } from 'vitest';
import { erlangC, meanWait, waitQuantile } from '../scheduler/autoscaler/erlang-c.ts';
import { nodeLatency } from '../scheduler/autoscaler/latency-model.ts';
import { ModelPolicy, ThresholdPolicy, type NodeInput } from '../scheduler/autoscaler/policy.ts';
import { StragglerDetector } from '../scheduler/autoscaler/straggler.ts';
import { nodeInput } from './fixtures/node-input.ts';

describe('Erlang C', () => {
  it('matches textbook values', () => {
    // M/M/1: C = ρ.  M/M/2 with a = 1 (ρ = 0.5): C = 1/3.
    expect(erlangC(1, 0.5, 1)).toBeCloseTo(0.5, 10);
    expect(erlangC(2, 1, 1)).toBeCloseTo(1 / 3, 10);
    // Call-centre example: a = 10 Erlangs, 12 agents → C ≈ 0.4494.
    expect(erlangC(12, 10, 1)).toBeCloseTo(0.4494, 3);
    expect(meanWait(1, 0.5, 1)).toBeCloseTo(1, 10); // ρ/(μ-λ) = 0.5/0.5
  });

  it('is unstable at or above full utilisation and free with no load', () => {
    expect(erlangC(2, 2, 1)).toBe(1);
    expect(meanWait(2, 2, 1)).toBe(Infinity);
    expect(waitQuantile(3, 0, 1, 0.99)).toBe(0);
  });

  it('waiting-time quantile follows the exponential tail', () => {
    // M/M/1, λ=0.5, μ=1: P(Wq > t) = 0.5 e^{-0.5 t} → p99 at t = 2 ln(50).
    expect(waitQuantile(1, 0.5, 1, 0.99)).toBeCloseTo(2 * Math.log(50), 10);
    expect(waitQuantile(1, 0.5, 1, 0.4)).toBe(0);
  });
});

const node = (partial: Partial<NodeInput>) => nodeInput(partial);

describe('latency-model policy', () => {
  const policy = new ModelPolicy();
  const slo = { latencyMs: 100, percentile: 99 };

  it('chooses the fewest replicas that meet the SLO', () => {
    // 1500 records/s at 1 ms each needs more than one server; two give ρ = 0.75.
    const [decision] = policy.decide({ nodes: [node({ arrivalRate: 1500 })], paths: [['n']], slo, cores: 2 });
    expect(decision.replicas).toBe(2);
    expect(decision.predictedMs!).toBeLessThanOrEqual(100);
    const [light] = policy.decide({ nodes: [node({ arrivalRate: 100 })], paths: [['n']], slo, cores: 2 });
    expect(light.replicas).toBe(1);
  });

  it('knows replicas beyond the cores (or partitions) add nothing, and does not scale for nothing', () => {
    const [decision] = policy.decide({ nodes: [node({ arrivalRate: 5000, max: 8 })], paths: [['n']], slo, cores: 2 });
    expect(decision.replicas).toBe(2);
    expect(decision.reason).toMatch(/unreachable/);
    const [partitionBound] = policy.decide({ nodes: [node({ arrivalRate: 5000, partitions: 1, max: 8 })], paths: [['n']], slo, cores: 8 });
    expect(partitionBound.replicas).toBe(1);
    expect(nodeLatency(3, node({ arrivalRate: 1500 }), { cores: 2, percentile: 99 })).toBe(nodeLatency(2, node({ arrivalRate: 1500 }), { cores: 2, percentile: 99 }));
  });

  it('spends replicas on the critical path of the DAG', () => {
    const nodes = [node({ id: 'a', arrivalRate: 1500 }), node({ id: 'b', arrivalRate: 100 }), node({ id: 'c', arrivalRate: 100 })];
    const decisions = policy.decide({ nodes, paths: [['a', 'b'], ['c']], slo, cores: 4 });
    expect(decisions.map((d) => d.replicas)).toEqual([2, 1, 1]);
  });

  it('scales an idle node with replicas.min 0 to zero after its window, not before', () => {
    const idle = node({ min: 0, idleMs: 61_000 });
    expect(policy.decide({ nodes: [idle], paths: [['n']], slo, cores: 2 })[0].replicas).toBe(0);
    expect(policy.decide({ nodes: [node({ min: 0, idleMs: 30_000 })], paths: [['n']], slo, cores: 2 })[0].replicas).toBe(1);
    expect(policy.decide({ nodes: [node({ min: 1, idleMs: 600_000 })], paths: [['n']], slo, cores: 2 })[0].replicas).toBe(1);
  });

  it('threshold baseline follows requests per replica', () => {
    const [d] = new ThresholdPolicy(200).decide({ nodes: [node({ arrivalRate: 1000 })], paths: [['n']], cores: 2 });
    expect(d.replicas).toBe(5);
  });
});

describe('straggler detection', () => {
  it('flags a replica far slower than the others and steers to healthy ones', () => {
    const detector = new StragglerDetector({ factor: 3, minSamples: 3, warmupBatches: 1, warmupMs: 0 });
    for (let i = 0; i < 5; i++) {
      detector.end(0, 1);
      detector.end(1, 1.2);
      detector.end(2, 9);
    }
    expect(detector.isStraggler(2, 3)).toBe(true);
    expect(detector.isStraggler(0, 3)).toBe(false);
    for (let i = 0; i < 20; i++) expect([0, 1]).toContain(detector.alternative(2, 3));
    detector.reset(2);
    expect(detector.isStraggler(2, 3)).toBe(false);
  });

  it('does not judge a fresh isolate during its warm-up (cold start, JIT tiers)', () => {
    let now = 0;
    const detector = new StragglerDetector({ factor: 3, minSamples: 3, warmupBatches: 4, warmupMs: 5000, now: () => now });
    for (let i = 0; i < 10; i++) {
      detector.end(0, 1);
      detector.end(1, 1);
    }
    now = 6000;
    for (let i = 0; i < 10; i++) detector.end(0, 1);
    detector.reset(1); // recycled: a fresh isolate, slow while V8 warms it up
    for (let i = 0; i < 10; i++) detector.end(1, 8); // its batches, then its seconds of warm-up
    expect(detector.samples(1)).toBe(0);
    now = 12_000;
    for (let i = 0; i < 3; i++) detector.end(1, 1.1);
    expect(detector.isStraggler(1, 2)).toBe(false);
    // A slow one, once warm, is judged: the median of its recent batches, one fast spike or not.
    for (let i = 0; i < 7; i++) detector.end(1, i === 2 ? 1 : 9);
    expect(detector.isStraggler(1, 2)).toBe(true);
  });

  it('needs samples and at least two replicas', () => {
    const detector = new StragglerDetector({ minSamples: 5, warmupBatches: 1, warmupMs: 0 });
    detector.end(0, 100);
    detector.end(1, 1);
    expect(detector.isStraggler(0, 2)).toBe(false);
    expect(detector.isStraggler(0, 1)).toBe(false);
  });
});
