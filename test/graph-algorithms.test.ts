/**
 * The graph algorithms the control plane runs over tenant-sized specs: the critical path by a
 * longest-path pass over a topological order, and iterative cycle detection. Checked against brute
 * force on small random graphs, and on shapes that broke the recursive versions (a 9000-node chain
 * listed in reverse, an 18-layer ladder with 2^19 source-to-sink paths).
 */
import { describe, expect, it } from 'vitest';
import { Dag, findCycles, type Link } from '../scheduler/dag.ts';
import { validateGraph } from '../scheduler/graph-spec.ts';
import { ModelPolicy, MAX_POLICY_STEPS, type NodeInput } from '../scheduler/autoscaler/policy.ts';
import { MAX_GRAPH_NODES } from '../runtime/limits.ts';
import { mulberry32 as random } from '../bench/random.ts';


/** A random DAG on `n` ids: edges only from a lower to a higher rank, ids listed shuffled. */
function randomDag(rand: () => number, n: number, density: number) {
  const ranked = Array.from({ length: n }, (_, i) => `v${i}`);
  const links: Link[] = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (rand() < density) links.push({ from: ranked[i], to: ranked[j] });
  const ids = [...ranked].sort(() => rand() - 0.5);
  const weights = new Map(ranked.map((id) => [id, Math.floor(rand() * 10)]));
  return { ids, links: links.sort(() => rand() - 0.5), weights };
}

/** Brute force: the heaviest of every path (from any id to any id), by exhaustive search. */
function bruteForceHeaviest(ids: string[], links: Link[], weight: (id: string) => number): number {
  const next = new Map<string, string[]>();
  for (const { from, to } of links) next.set(from, [...(next.get(from) ?? []), to]);
  let best = 0;
  const walk = (id: string, sum: number): void => {
    best = Math.max(best, sum);
    for (const to of next.get(id) ?? []) walk(to, sum + weight(to));
  };
  for (const id of ids) walk(id, weight(id));
  return best;
}

function chain(n: number): { ids: string[]; links: Link[] } {
  const ids = Array.from({ length: n }, (_, i) => `n${i}`);
  const links = ids.slice(1).map((id, i) => ({ from: ids[i], to: id }));
  return { ids: [...ids].reverse(), links: links.reverse() };
}

/** L layers of two nodes, each feeding both nodes of the next layer: 2^L paths. */
function ladder(layers: number): { ids: string[]; links: Link[] } {
  const ids: string[] = [];
  const links: Link[] = [];
  for (let l = 0; l < layers; l++) {
    ids.push(`a${l}`, `b${l}`);
    if (l > 0) for (const from of [`a${l - 1}`, `b${l - 1}`]) for (const to of [`a${l}`, `b${l}`]) links.push({ from, to });
  }
  return { ids, links };
}

describe('critical path (longest-path pass over a topological order)', () => {
  it('equals the brute-force heaviest path on 300 small random DAGs', () => {
    const rand = random(9);
    for (let trial = 0; trial < 300; trial++) {
      const { ids, links, weights } = randomDag(rand, 1 + Math.floor(rand() * 9), rand());
      const weight = (id: string) => weights.get(id)!;
      const { weight: found, path } = Dag.of(ids, links).longestPath(weight);
      expect(found, `trial ${trial}`).toBe(bruteForceHeaviest(ids, links, weight));
      // The path it returns is a real path whose weights sum to what it claims.
      expect(path.reduce((sum, id) => sum + weight(id), 0)).toBe(found);
      const linked = new Set(links.map((l) => `${l.from}>${l.to}`));
      for (let i = 1; i < path.length; i++) expect(linked.has(`${path[i - 1]}>${path[i]}`)).toBe(true);
    }
  });

  it('orders ids topologically (Kahn) whatever order they are listed in', () => {
    const rand = random(3);
    const { ids, links } = randomDag(rand, 40, 0.2);
    const dag = Dag.of(ids, links);
    expect(dag.acyclic).toBe(true);
    const position = new Map(dag.order.map((id, i) => [id, i]));
    expect(position.size).toBe(40);
    for (const { from, to } of links) expect(position.get(from)!).toBeLessThan(position.get(to)!);
  });

  it('walks a 9000-node chain listed in reverse without recursion', () => {
    const { ids, links } = chain(9000);
    const { weight, path } = Dag.of(ids, links).longestPath(() => 1);
    expect(weight).toBe(9000);
    expect(path[0]).toBe('n0');
    expect(path[8999]).toBe('n8999');
  });

  it('finds the critical path of an 18-layer ladder (2^18 paths) in one pass', () => {
    const { ids, links } = ladder(18);
    let calls = 0;
    const { weight, path } = Dag.of(ids, links).longestPath((id) => {
      calls++;
      return id.startsWith('b') ? 2 : 1;
    });
    expect(calls).toBe(36); // one weight per node, not per path
    expect(weight).toBe(36);
    expect(path).toEqual(Array.from({ length: 18 }, (_, l) => `b${l}`));
  });

  it('counts Infinity, and treats NaN and negative weights as 0', () => {
    const dag = Dag.of(['a', 'b', 'c'], [{ from: 'a', to: 'b' }]);
    expect(dag.longestPath((id) => (id === 'b' ? Infinity : 1))).toEqual({ weight: Infinity, path: ['a', 'b'] });
    expect(dag.longestPath((id) => (id === 'c' ? 5 : id === 'a' ? NaN : -3))).toEqual({ weight: 5, path: ['c'] });
    expect(Dag.of([], []).longestPath(() => 1)).toEqual({ weight: 0, path: [] });
  });

  it('terminates on a cycle (a spec that skipped validation), ignoring the edges against its order', () => {
    const dag = Dag.of(['a', 'b', 'c'], [{ from: 'a', to: 'b' }, { from: 'b', to: 'c' }, { from: 'c', to: 'b' }]);
    expect(dag.acyclic).toBe(false);
    expect([...dag.order].sort()).toEqual(['a', 'b', 'c']);
    expect(dag.longestPath(() => 1).weight).toBeGreaterThanOrEqual(1);
  });

  it('traces explicit paths into the same DAG', () => {
    const dag = Dag.fromPaths([['a', 'b'], ['c']]);
    expect(dag.longestPath((id) => ({ a: 1, b: 2, c: 2.5 })[id]!)).toEqual({ weight: 3, path: ['a', 'b'] });
  });
});

describe('cycle detection (iterative depth-first search)', () => {
  const adjacency = (links: Link[]) => {
    const map = new Map<string, string[]>();
    for (const { from, to } of links) map.set(from, [...(map.get(from) ?? []), to]);
    return map;
  };

  it('finds nothing in a DAG, and the one cycle of a 9000-node chain listed in reverse closed at its end', () => {
    const { links } = chain(9000);
    expect(findCycles(adjacency(links))).toEqual([]);
    const cycles = findCycles(adjacency([...links, { from: 'n8999', to: 'n0' }]));
    expect(cycles).toHaveLength(1);
    expect(cycles[0]).toHaveLength(9001);
    expect(cycles[0][0]).toBe(cycles[0][9000]);
  });

  it('reports each of several cycles once', () => {
    const cycles = findCycles(adjacency([{ from: 'a', to: 'b' }, { from: 'b', to: 'a' }, { from: 'c', to: 'd' }, { from: 'd', to: 'e' }, { from: 'e', to: 'c' }, { from: 'x', to: 'x' }]));
    const shown = cycles.map((c) => c.join(' -> ')).sort();
    expect(shown).toEqual(['a -> b -> a', 'c -> d -> e -> c', 'x -> x']);
  });

  it('does not enumerate the elementary cycles of a complete digraph (exponentially many), and stops at its limit', () => {
    const ids = Array.from({ length: 60 }, (_, i) => `k${i}`);
    const links: Link[] = [];
    for (const from of ids) for (const to of ids) if (from !== to) links.push({ from, to });
    const all = findCycles(adjacency(links));
    // At most one cycle per edge closing one (a back edge), far below the elementary cycles' count.
    expect(all.length).toBeGreaterThan(0);
    expect(all.length).toBeLessThanOrEqual(links.length);
    expect(findCycles(adjacency(links), 10)).toHaveLength(10);
  });
});

describe('the model policy on a maximum-size graph', () => {
  const node = (id: string, partial: Partial<NodeInput> = {}): NodeInput => ({
    id,
    arrivalRate: 3000,
    recordServiceS: 0.001,
    batchServiceS: 0.005,
    partitions: 64,
    replicas: 1,
    min: 1,
    max: 64,
    queueDepth: 100,
    idleMs: 0,
    scaleToZeroAfterMs: 60_000,
    ...partial,
  });

  it('decides for a MAX_GRAPH_NODES chain listed in reverse, every node overloaded, within its step bound', () => {
    const { ids, links } = chain(MAX_GRAPH_NODES);
    const decisions = new ModelPolicy().decide({ nodes: ids.map((id) => node(id)), dag: Dag.of(ids, links), slo: { latencyMs: 10, percentile: 99 }, cores: 64 });
    expect(decisions).toHaveLength(MAX_GRAPH_NODES);
    const added = decisions.reduce((sum, d) => sum + d.replicas - 1, 0);
    expect(added).toBeGreaterThan(0);
    expect(added).toBeLessThanOrEqual(MAX_POLICY_STEPS);
    for (const d of decisions) expect(d.replicas).toBeLessThanOrEqual(64);
  });

  it('decides for an 18-layer ladder and spends replicas on its critical path', () => {
    const { ids, links } = ladder(18);
    // The b-side is slower: the critical path runs through every b node.
    const nodes = ids.map((id) => node(id, { arrivalRate: 500, recordServiceS: id.startsWith('b') ? 0.0018 : 0.0005 }));
    const decisions = new ModelPolicy().decide({ nodes, dag: Dag.of(ids, links), slo: { latencyMs: 200, percentile: 99 }, cores: 4 });
    const replicas = new Map(decisions.map((d) => [d.node, d.replicas]));
    for (let l = 0; l < 18; l++) {
      expect(replicas.get(`b${l}`)).toBeGreaterThanOrEqual(2);
      expect(replicas.get(`a${l}`)).toBe(1);
    }
  });
});

describe('graph validation over hostile sizes', () => {
  const fn = () => true;

  it('refuses a 1e6-element nodes array by its length, without reading one element', () => {
    const untouchable = new Proxy(new Array(1_000_000), {
      get(target, key, receiver) {
        if (typeof key === 'string' && /^\d+$/.test(key)) throw new Error(`element ${key} was read`);
        return Reflect.get(target, key, receiver);
      },
    });
    const error = (() => {
      try {
        validateGraph({ nodes: untouchable, sources: [], sinks: [], edges: [] }, fn);
      } catch (e) {
        return e as { code: string; details: { problems: Array<{ path: string; code: string }> } };
      }
    })();
    expect(error?.code).toBe('ERR_GRAPH_TOO_LARGE');
    expect(error?.details.problems).toEqual([expect.objectContaining({ path: '$.nodes', code: 'ERR_GRAPH_TOO_LARGE' })]);
  });

  it('reports a cycle in a long chain listed in reverse, once', () => {
    const n = MAX_GRAPH_NODES;
    const nodes = Array.from({ length: n }, (_, i) => ({ id: `n${i}`, function: 'f' }));
    const edges = [
      { from: 'in', to: 'n0', delivery: 'at-least-once', partitions: 1 },
      ...nodes.slice(1).map((node, i) => ({ from: `n${i}`, to: node.id, delivery: 'at-least-once', partitions: 1 })),
      { from: `n${n - 1}`, to: 'n0', delivery: 'at-least-once', partitions: 1 },
      { from: `n${n - 1}`, to: 'out', delivery: 'at-least-once' },
    ].reverse();
    try {
      validateGraph({ nodes: nodes.reverse(), sources: [{ id: 'in', type: 'http' }], sinks: [{ id: 'out', type: 'log' }], edges }, fn);
      expect.unreachable();
    } catch (error) {
      const { code, details } = error as { code: string; details: { problems: Array<{ code: string; message: string }> } };
      expect(code).toBe('ERR_GRAPH_CYCLE');
      expect(details.problems).toHaveLength(1);
      expect(details.problems[0].message).toContain(`n${n - 1} -> n0`);
    }
  });
});
