/**
 * Pathological graphs against a real `tributary serve` process: each is refused with a 4xx and a
 * code (never a 500), or deploys and runs without an error in the control plane, and the process
 * stays up. Restarting over a stored graph that can no longer launch comes up with that graph
 * degraded and the others running.
 */
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GraphStore } from '../scheduler/graph-store.ts';
import type { GraphSpec } from '../scheduler/graph-spec.ts';
import { MAX_GRAPH_NODES } from '../runtime/limits.ts';
import { json, tempDir, waitFor } from './fixtures/platform.ts';
import { ServerProcess } from './fixtures/server-process.ts';

const ECHO = `export default { process(r) { return r.value; } };`;

/** `n` nodes in a line from `in` to `out`, nodes and edges listed in reverse (the order that broke recursion). */
function reverseChain(n: number, extra: Record<string, unknown> = {}) {
  const nodes = Array.from({ length: n }, (_, i) => ({ id: `n${i}`, function: 'echo' }));
  const edges = [
    { from: 'in', to: 'n0', delivery: 'at-least-once', partitions: 1 },
    ...nodes.slice(1).map((node, i) => ({ from: `n${i}`, to: node.id, delivery: 'at-least-once', partitions: 1 })),
    { from: `n${n - 1}`, to: 'out', delivery: 'at-least-once' },
  ];
  return { nodes: nodes.reverse(), sources: [{ id: 'in', type: 'http' }], sinks: [{ id: 'out', type: 'log' }], edges: edges.reverse(), ...extra };
}

/** `layers` layers of two nodes, each feeding both nodes of the next layer: 2^layers source-to-sink paths. */
function ladder(layers: number) {
  const nodes: Array<{ id: string; function: string }> = [];
  const edges: Array<Record<string, unknown>> = [];
  for (let l = 0; l < layers; l++) {
    for (const side of ['a', 'b']) {
      nodes.push({ id: `${side}${l}`, function: 'echo' });
      if (l === 0) edges.push({ from: 'in', to: `${side}0`, delivery: 'at-least-once', partitions: 1 });
      else for (const prev of ['a', 'b']) edges.push({ from: `${prev}${l - 1}`, to: `${side}${l}`, delivery: 'at-least-once', partitions: 1 });
    }
  }
  for (const side of ['a', 'b']) edges.push({ from: `${side}${layers - 1}`, to: 'out', delivery: 'at-least-once' });
  return { nodes, sources: [{ id: 'in', type: 'http' }], sinks: [{ id: 'out', type: 'log' }], edges, slo: { latencyMs: 500, percentile: 99 } };
}

function pipe(extra: { node?: Record<string, unknown>; edge?: Record<string, unknown>; graph?: Record<string, unknown> } = {}) {
  return {
    nodes: [{ id: 'n', function: 'echo', ...extra.node }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'n', delivery: 'at-least-once', ...extra.edge },
      { from: 'n', to: 'out', delivery: 'at-least-once' },
    ],
    ...extra.graph,
  };
}

const dataDir = tempDir();
const server = new ServerProcess(dataDir);
const api = (path: string, init?: RequestInit) => fetch(`${server.url}${path}`, init);
const putGraph = async (name: string, spec: unknown) => {
  const res = await api(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  return { status: res.status, body: await json(res) };
};
const putFunction = async (name: string, source: string) => {
  const res = await api(`/v1/functions/${name}`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: source });
  expect(res.status, await res.text()).toBe(201);
};
/** The platform's count of errors caught in control-plane callbacks, over every `where`. */
const controlPlaneErrors = async () => {
  const text = await (await api('/metrics')).text();
  return [...text.matchAll(/^tributary_control_plane_errors_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
};
const healthy = async () => (await api('/healthz')).ok && server.running;

beforeAll(async () => {
  await server.start();
  await putFunction('echo', ECHO);
});
afterAll(async () => {
  await server.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('hostile graphs', () => {
  it('a 9000-node chain listed in reverse is refused: 400 ERR_GRAPH_TOO_LARGE, the process alive', async () => {
    const { status, body } = await putGraph('chain9000', reverseChain(9000));
    expect(status).toBe(400);
    expect(body.error.code).toBe('ERR_GRAPH_TOO_LARGE');
    expect(body.error.problems).toEqual(expect.arrayContaining([expect.objectContaining({ path: '$.nodes', code: 'ERR_GRAPH_TOO_LARGE' })]));
    expect(await healthy()).toBe(true);
  });

  it('a 1e6-element nodes array is refused by its length', async () => {
    const body = `{"nodes":[${new Array(1_000_000).fill('0').join(',')}],"sources":[],"sinks":[],"edges":[]}`;
    const res = await api('/v1/graphs/million', { method: 'PUT', headers: { 'content-type': 'application/json' }, body });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe('ERR_GRAPH_TOO_LARGE');
    expect(await healthy()).toBe(true);
  });

  it('a MAX_GRAPH_NODES chain listed in reverse deploys, and the autoscaler ticks on it without an error', async () => {
    const before = await controlPlaneErrors();
    const { status, body } = await putGraph('chainmax', reverseChain(MAX_GRAPH_NODES, { slo: { latencyMs: 1000, percentile: 99 } }));
    expect(status, JSON.stringify(body)).toBe(201);
    // Every node has a decision once a tick ran; wait for a second one to see ticks repeat.
    const first = await waitFor(async () => {
      const { status: s } = await json(api('/v1/graphs/chainmax'));
      return Object.values(s.nodes).every((n: any) => n.lastDecision !== null) ? s : null;
    }, 15_000, 'a first autoscaler decision on every node');
    const firstAt = first.nodes.n0.lastDecision.at;
    const later = await waitFor(async () => {
      const { status: s } = await json(api('/v1/graphs/chainmax'));
      return s.nodes.n0.lastDecision.at !== firstAt ? s : null;
    }, 15_000, 'a later tick');
    expect(later.errors).toEqual({ count: 0, last: null });
    expect(await controlPlaneErrors()).toBe(before);
    expect(await healthy()).toBe(true);
  });

  it('an 18-layer ladder (2^18 paths) deploys and ticks without an error', async () => {
    const before = await controlPlaneErrors();
    expect((await putGraph('ladder', ladder(18))).status).toBe(201);
    const ticked = await waitFor(async () => {
      const { status: s } = await json(api('/v1/graphs/ladder'));
      return s.nodes.b17.lastDecision ? s : null;
    }, 15_000, 'autoscaler decisions on the ladder');
    const at = ticked.nodes.b17.lastDecision.at;
    await waitFor(async () => (await json(api('/v1/graphs/ladder'))).status.nodes.b17.lastDecision.at !== at, 15_000, 'a later tick');
    const { status } = await json(api('/v1/graphs/ladder'));
    expect(status.errors).toEqual({ count: 0, last: null });
    expect(await controlPlaneErrors()).toBe(before);
    expect(await healthy()).toBe(true);
  });

  it('replicas.max 1e9 is refused: 400 ERR_GRAPH_TOO_LARGE', async () => {
    const { status, body } = await putGraph('replicas', pipe({ node: { replicas: { min: 1, max: 1e9 } } }));
    expect(status).toBe(400);
    expect(body.error.code).toBe('ERR_GRAPH_TOO_LARGE');
    expect(body.error.problems[0]).toMatchObject({ path: '$.nodes[0].replicas.max', code: 'ERR_GRAPH_TOO_LARGE' });
  });

  it('1e6 partitions on an edge are refused: 400 ERR_GRAPH_TOO_LARGE', async () => {
    const { status, body } = await putGraph('partitions', pipe({ edge: { partitions: 1e6 } }));
    expect(status).toBe(400);
    expect(body.error.code).toBe('ERR_GRAPH_TOO_LARGE');
    expect(body.error.problems[0]).toMatchObject({ path: '$.edges[0].partitions', code: 'ERR_GRAPH_TOO_LARGE' });
  });

  it('partitions over all edges beyond MAX_GRAPH_PARTITIONS are refused', async () => {
    const spec = reverseChain(40);
    for (const edge of spec.edges) if (edge.to !== 'out') edge.partitions = 256;
    const { status, body } = await putGraph('manyparts', spec);
    expect(status).toBe(400);
    expect(body.error.code).toBe('ERR_GRAPH_TOO_LARGE');
    expect(body.error.problems).toEqual([expect.objectContaining({ path: '$.edges', code: 'ERR_GRAPH_TOO_LARGE' })]);
  });

  it('a size problem beside another kind answers ERR_GRAPH_INVALID, the size problem in `problems`', async () => {
    const { status, body } = await putGraph('mixed', pipe({ node: { replicas: { min: 1, max: 1e9 } }, edge: { delivery: 'sometimes' } }));
    expect(status).toBe(400);
    expect(body.error.code).toBe('ERR_GRAPH_INVALID');
    expect(body.error.problems.map((p: { code: string }) => p.code).sort()).toEqual(['ERR_GRAPH_INVALID', 'ERR_GRAPH_TOO_LARGE']);
  });

  it('absurd scaleToZeroAfterMs and slo.latencyMs are refused', async () => {
    const idle = await putGraph('idle', pipe({ graph: { scaleToZeroAfterMs: 1e300 } }));
    expect(idle.status).toBe(400);
    expect(idle.body.error.problems[0].path).toBe('$.scaleToZeroAfterMs');
    const slo = await putGraph('slo', pipe({ graph: { slo: { latencyMs: 1e12, percentile: 99 } } }));
    expect(slo.status).toBe(400);
    expect(slo.body.error.problems[0].path).toBe('$.slo');
  });

  it('a cycle in a long chain is reported as ERR_GRAPH_CYCLE', async () => {
    const spec = reverseChain(200);
    spec.edges.push({ from: 'n199', to: 'n100', delivery: 'at-least-once', partitions: 1 });
    const { status, body } = await putGraph('cyclic', spec);
    expect(status).toBe(400);
    expect(body.error.code).toBe('ERR_GRAPH_CYCLE');
    expect(body.error.problems).toHaveLength(1);
    // The cycle, from wherever the search entered it: n100 … n199 and back.
    const { message } = body.error.problems[0];
    for (const step of ['n100 -> n101', 'n150 -> n151', 'n199 -> n100']) expect(message).toContain(step);
    expect(message).not.toContain('n99 ');
  });

  it('a spec with fields the platform does not read stores only the ones it does', async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 50; i++) deep = { deep };
    const { status, body } = await putGraph('extra', pipe({ node: { replicas: { min: 1, max: 2, note: deep } }, graph: { slo: { latencyMs: 100, percentile: 99, note: deep } } }));
    expect(status, JSON.stringify(body)).toBe(201);
    expect(body.spec.nodes[0].replicas).toEqual({ min: 1, max: 2 });
    expect(body.spec.slo).toEqual({ latencyMs: 100, percentile: 99 });
  });
});

describe('restart over stored graphs that can no longer launch', () => {
  const restartDir = tempDir();
  const restarted = new ServerProcess(restartDir);
  afterAll(async () => {
    await restarted.stop();
    rmSync(restartDir, { recursive: true, force: true });
  });

  it('comes up: those graphs show as degraded with the reason, the others run', async () => {
    await restarted.start();
    const call = (path: string, init?: RequestInit) => fetch(`${restarted.url}${path}`, init);
    expect((await call('/v1/functions/echo', { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: ECHO })).status).toBe(201);
    expect((await call('/v1/functions/doomed', { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: ECHO })).status).toBe(201);
    const put = (name: string, spec: unknown) => call(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
    expect((await put('good', pipe())).status).toBe(201);
    expect((await put('orphan', { ...pipe(), nodes: [{ id: 'n', function: 'doomed' }] })).status).toBe(201);
    expect((await call('/v1/functions/doomed', { method: 'DELETE' })).status).toBe(204);
    await restarted.stop();

    // A graph stored before the limits existed: written to the store directly, as an old version would have.
    const store = new GraphStore(restartDir);
    store.put('ancient', reverseChain(9000) as unknown as GraphSpec);
    store.close();

    await restarted.start();
    expect(await json(call('/healthz'))).toMatchObject({ status: 'ok' });
    const ancient = (await json(call('/v1/graphs/ancient'))).status;
    expect(ancient.state).toBe('degraded');
    expect(ancient.reason).toMatch(/^ERR_GRAPH_TOO_LARGE: /);
    expect(ancient.errors.last).toMatchObject({ where: 'graph.launch', code: 'ERR_GRAPH_TOO_LARGE' });
    const orphan = (await json(call('/v1/graphs/orphan'))).status;
    expect(orphan.state).toBe('degraded');
    expect(orphan.reason).toMatch(/unknown function 'doomed'/);
    // Ingest into a degraded graph is a 503 with the reason, not a 500.
    const refused = await call('/v1/graphs/orphan/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{"value":1}]' });
    expect(refused.status).toBe(503);
    expect((await json(refused)).error.message).toMatch(/degraded/);

    // The other graph runs.
    expect((await call('/v1/graphs/good/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '[{"value":42}]' })).status).toBe(202);
    await waitFor(async () => (await json(call('/v1/graphs/good/sinks/out'))).records.length === 1, 15_000, 'the good graph processes a record');
    expect((await json(call('/v1/graphs/good'))).status.state).toBe('running');

    // A degraded graph can be fixed by redeploying it, or deleted.
    expect((await put('ancient', pipe())).status).toBe(201);
    expect((await json(call('/v1/graphs/ancient'))).status.state).toBe('running');
    expect((await call('/v1/graphs/orphan', { method: 'DELETE' })).status).toBe(204);
    expect((await call('/v1/graphs/orphan')).status).toBe(404);
    expect(restarted.running).toBe(true);
  });
});
