/** Scaling cost (ski rental), the measured-latency hold, the commit-delay floor and resources in the latency model's decisions. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelPolicy, demandRate, type NodeInput } from '../scheduler/autoscaler/policy.ts';
import { ScalingCost, holdScaleUp, scaleDownWaitMs } from '../scheduler/autoscaler/scaling-cost.ts';
import { nodeInput } from './fixtures/node-input.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

const node = (partial: Partial<NodeInput>) => nodeInput({ partitions: 8, ...partial });

const slo = { latencyMs: 100, percentile: 99 };
const policy = new ModelPolicy();

describe('scaling cost', () => {
  it('is unmeasured until a change happened, then a weighted mean of what changes cost', () => {
    const cost = new ScalingCost();
    expect(cost.snapshot()).toEqual({ addMs: null, removeMs: null, adds: 0, removes: 0 });
    cost.observeAdd(800);
    cost.observeAdd(-5); // a first batch faster than usual costs nothing, not less than nothing
    cost.observeRemove(200);
    cost.observeAdd(Number.NaN);
    const snapshot = cost.snapshot();
    expect(snapshot.adds).toBe(2);
    expect(snapshot.addMs).toBeCloseTo(560, 5);
    expect(snapshot.removeMs).toBe(200);
  });

  it('holds a scale-up back on a burst shorter than a replica round trip, and explains it', () => {
    const cost = { addMs: 1500, removeMs: 500, adds: 3, removes: 3 };
    const intervalMs = 1000;
    const held = holdScaleUp({ cost, wantedForMs: 1000, canWaitMs: Infinity, intervalMs });
    expect(held).toMatch(/1500 ms to add.*500 ms to remove.*lasted 1000 ms.*keep up.*ski rental/);
    // Once the load has lasted as long as the change costs, it pays: scale.
    expect(holdScaleUp({ cost, wantedForMs: 2000, canWaitMs: Infinity, intervalMs })).toBeNull();
    // A node falling behind may wait while its backlog stays within the SLO until the next decision...
    expect(holdScaleUp({ cost, wantedForMs: 1000, canWaitMs: 1500, intervalMs })).toMatch(/backlog stays within the SLO for ~1500 ms/);
    // ...and scales at once when it would not, whatever the cost.
    expect(holdScaleUp({ cost, wantedForMs: 0, canWaitMs: 500, intervalMs })).toBeNull();
    // Nothing measured yet: nothing to weigh.
    expect(holdScaleUp({ cost: { addMs: null, removeMs: null, adds: 0, removes: 0 }, wantedForMs: 0, canWaitMs: Infinity, intervalMs })).toBeNull();
  });

  it('stretches the scale-down wait to the round-trip cost when it exceeds the stable window', () => {
    expect(scaleDownWaitMs({ addMs: 100, removeMs: 50, adds: 1, removes: 1 }, 5000)).toBe(5000);
    expect(scaleDownWaitMs({ addMs: 6000, removeMs: 1000, adds: 1, removes: 1 }, 5000)).toBe(7000);
  });

  it('the latency model marks its decisions cost-aware and says what the current count predicts', () => {
    const [decision] = policy.decide({ nodes: [node({ arrivalRate: 900 })], paths: [['n']], slo, cores: 8 });
    expect(decision.costAware).toBe(true);
    expect(decision.currentMs).not.toBeNull(); // one replica keeps up at ρ = 0.9
    const [overloaded] = policy.decide({ nodes: [node({ arrivalRate: 1500 })], paths: [['n']], slo, cores: 8 });
    expect(overloaded.currentMs).toBeNull();
  });

  it('says how long a node can stay at its count before its backlog outlasts the SLO', () => {
    const [keepsUp] = policy.decide({ nodes: [node({ arrivalRate: 900, queueDepth: 10 })], paths: [['n']], slo, cores: 8 });
    expect(keepsUp.canWaitMs).toBe(Infinity);
    // 1100/s on 1000/s of capacity, 40 waiting: the 100 records one SLO serves are gone in 0.6 s.
    const [behind] = policy.decide({ nodes: [node({ arrivalRate: 1100, queueDepth: 40 })], paths: [['n']], slo, cores: 8 });
    expect(behind.canWaitMs).toBeCloseTo(600, 5);
    const [late] = policy.decide({ nodes: [node({ arrivalRate: 1100, queueDepth: 150 })], paths: [['n']], slo, cores: 8 });
    expect(late.canWaitMs).toBe(0);
  });

  it('sizes a step in one decision: demand is the arrival rate or the rate that serves the backlog within the SLO', () => {
    const sloS = slo.latencyMs / 1000;
    expect(demandRate(node({ arrivalRate: 500, queueDepth: 10 }), sloS)).toBe(500);
    expect(demandRate(node({ arrivalRate: 500, queueDepth: 200 }), sloS)).toBe(2000);
    // Right after a step to 3000/s at 1 ms per record, with a backlog the step left behind: the
    // first decision asks for the count that serves it, and at steady state (backlog gone) the
    // model asks for no fewer than the arrivals alone need, so the next decision holds.
    const [step] = policy.decide({ nodes: [node({ arrivalRate: 3000, queueDepth: 400 })], paths: [['n']], slo, cores: 8 });
    const [steady] = policy.decide({ nodes: [node({ arrivalRate: 3000, queueDepth: 30, replicas: step.replicas })], paths: [['n']], slo, cores: 8 });
    expect(step.replicas).toBeGreaterThanOrEqual(5); // 4000 records/s of demand
    expect(step.reason).toMatch(/backlog of 400/);
    expect(steady.replicas).toBeLessThanOrEqual(step.replicas);
    expect(steady.replicas).toBeGreaterThanOrEqual(4);
  });

  it('stops adding replicas when a node on the critical path cannot keep up at any count the machine allows', () => {
    const nodes = [node({ id: 'a', arrivalRate: 5000 }), node({ id: 'b', arrivalRate: 500 })];
    const decisions = policy.decide({ nodes, paths: [['a', 'b']], slo, cores: 2 });
    expect(decisions.map((d) => d.replicas)).toEqual([2, 1]);
    expect(decisions[0].unreachable).toMatch(/on this machine.*cores/);
  });

  it('counts a batch overhead and the record\'s own service as the floor, not a batch grown by a backlog', () => {
    // Batches of ~200 records (800 ms) after a step, but a batch costs 3 ms plus 4 ms a record.
    const grown = node({ arrivalRate: 300, recordServiceS: 0.004, batchServiceS: 0.8, queueDepth: 100 });
    const [unmeasured] = policy.decide({ nodes: [grown], paths: [['n']], slo: { latencyMs: 500, percentile: 99 }, cores: 2 });
    expect(unmeasured.unreachable).toMatch(/batch time/);
    const [measured] = policy.decide({ nodes: [{ ...grown, batchOverheadS: 0.003 }], paths: [['n']], slo: { latencyMs: 500, percentile: 99 }, cores: 2 });
    expect(measured.unreachable).toBeUndefined();
    expect(measured.replicas).toBe(2); // 1.2 cores of demand
  });

  it('scales every node that cannot keep up, not only the one an infinite critical path happens to name', () => {
    const nodes = [node({ id: 'a', arrivalRate: 1500 }), node({ id: 'b', arrivalRate: 1500 }), node({ id: 'c', arrivalRate: 1500 })];
    const decisions = policy.decide({ nodes, paths: [['a', 'b', 'c']], slo, cores: 4 });
    for (const d of decisions) expect(d.replicas, d.node).toBeGreaterThanOrEqual(2);
  });

  it('without scaling cost (the ablation) its decisions are not cost-aware', () => {
    const [decision] = new ModelPolicy({ weighScalingCost: false }).decide({ nodes: [node({ arrivalRate: 900 })], paths: [['n']], slo, cores: 8 });
    expect(decision.costAware).toBe(false);
  });
});

describe('latency model: measured latency, floors and resources', () => {
  it('holds a scale-up while the measured p99 is under half the SLO and the node keeps up', () => {
    const busy = node({ arrivalRate: 960 }); // ρ = 0.96 on one: predicted p99 ≈ 120 ms
    const [free] = policy.decide({ nodes: [busy], paths: [['n']], slo, cores: 8 });
    expect(free.replicas).toBeGreaterThan(1);
    const [held] = policy.decide({ nodes: [busy], paths: [['n']], slo, cores: 8, measuredMs: 30 });
    expect(held.replicas).toBe(1);
    expect(held.reason).toMatch(/holding 1: measured p99 30 ms < SLO\/2/);
    // Measured above half the SLO: scale as the model says.
    const [scaled] = policy.decide({ nodes: [busy], paths: [['n']], slo, cores: 8, measuredMs: 60 });
    expect(scaled.replicas).toBe(free.replicas);
    // A node that cannot keep up scales whatever was measured.
    const [overloaded] = policy.decide({ nodes: [node({ arrivalRate: 1500 })], paths: [['n']], slo, cores: 8, measuredMs: 10 });
    expect(overloaded.replicas).toBeGreaterThan(1);
  });

  it('says the SLO is unreachable when the exactly-once commit delay alone exceeds it, instead of adding replicas', () => {
    const nodes = [node({ id: 'a', arrivalRate: 500, commitDelayS: 0.08 }), node({ id: 'b', arrivalRate: 500, commitDelayS: 0.08 })];
    const decisions = policy.decide({ nodes, paths: [['a', 'b']], slo, cores: 8 });
    for (const d of decisions) {
      expect(d.unreachable).toMatch(/SLO 100 ms unreachable: batch time and exactly-once commit delay on the critical path \(a → b\)/);
      expect(d.reason).toMatch(/utilisation ≤ 70%/);
      expect(d.replicas).toBe(1); // 0.5 of a core: one replica at ρ = 0.5
    }
    // Under the SLO, the commit delay is part of each node's prediction.
    const [one] = policy.decide({ nodes: [node({ arrivalRate: 500, commitDelayS: 0.02 })], paths: [['n']], slo, cores: 8 });
    expect(one.unreachable).toBeUndefined();
    expect(one.predictedMs!).toBeGreaterThan(25);
  });

  it('respects the cores of ready hosts and memory per isolate, and says when this machine cannot meet the SLO', () => {
    const heavy = node({ arrivalRate: 3500, memoryMb: 128 });
    const [plenty] = policy.decide({ nodes: [heavy], paths: [['n']], slo, cores: 8, memoryBudgetMb: 4096 });
    expect(plenty.replicas).toBeGreaterThanOrEqual(4);
    expect(plenty.unreachable).toBeUndefined();
    const [cores] = policy.decide({ nodes: [heavy], paths: [['n']], slo, cores: 2, memoryBudgetMb: 4096 });
    expect(cores.replicas).toBe(2);
    expect(cores.unreachable).toMatch(/unreachable on this machine.*cores/);
    const [memory] = policy.decide({ nodes: [heavy], paths: [['n']], slo, cores: 8, memoryBudgetMb: 300 });
    expect(memory.replicas).toBe(2); // 2 × 128 MB fit in 300, a third does not
    expect(memory.unreachable).toMatch(/unreachable on this machine.*memory/);
    // replicas.max is the graph's own bound, not the machine's.
    const [max] = policy.decide({ nodes: [{ ...heavy, max: 2 }], paths: [['n']], slo, cores: 8 });
    expect(max.unreachable).toMatch(/unreachable: .*replicas.max/);
  });
});

describe('status.slo and metrics on a running graph', () => {
  let platform: Awaited<ReturnType<typeof withPlatform>>;
  beforeAll(async () => {
    platform = await withPlatform({ hosts: 1, warmSlots: 2, autoscaleIntervalMs: 200, stableWindowMs: 1000 });
    expect((await deploy(platform, 'slo-echo', `export default { process(r) { return r.value; } };`, '?memoryLimitMb=64')).status).toBe(201);
  });
  afterAll(() => platform.cleanup());

  it('shows the resources decided on and says when the SLO is unreachable, in the status and the metrics', async () => {
    // An SLO below one batch's own time: no replica count can meet it.
    const spec = {
      nodes: [{ id: 'n', function: 'slo-echo', replicas: { min: 1, max: 2 } }],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'n', delivery: 'exactly-once', partitionBy: 'key' },
        { from: 'n', to: 'out', delivery: 'exactly-once' },
      ],
      slo: { latencyMs: 0.001, percentile: 99 },
    };
    const put = await platform.app.request('/v1/graphs/tight', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    expect(put.status, await put.clone().text()).toBe(201);
    const slo = await waitFor(async () => {
      await platform.app.request('/v1/graphs/tight/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{"key":"a","value":1},{"key":"b","value":2}]' });
      const { status } = await json(platform.app.request('/v1/graphs/tight'));
      return status.slo && !status.slo.reachable ? status.slo : null;
    }, 20_000, 'status.slo unreachable');
    expect(slo).toMatchObject({ latencyMs: 0.001, percentile: 99, reachable: false });
    expect(slo.reason).toMatch(/SLO 0.001 ms unreachable/);
    expect(slo.resources.cores).toBe(1);
    expect(slo.resources.readyHosts).toBe(1);
    expect(slo.resources.memoryBudgetMb).toBeGreaterThan(0);
    expect(slo.resources.memoryUsedMb).toBe(64 * (await json(platform.app.request('/v1/graphs/tight'))).status.nodes.n.replicas);
    const metrics = await (await platform.app.request('/metrics')).text();
    expect(metrics).toMatch(/tributary_graph_slo_reachable\{graph="tight"\} 0/);
    expect(metrics).toMatch(/tributary_autoscaler_cores\{graph="tight"\} 1/);
    expect(metrics).toMatch(/tributary_autoscaler_memory_bytes\{graph="tight",kind="budget"\} [1-9]/);
  });
});
