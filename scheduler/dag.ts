/**
 * Algorithms over a graph's ids and edges. Every one is iterative and linear in ids + edges: a
 * spec is as large as the limits allow (a stored one, from before them, larger), so nothing here
 * recurses down a chain (9000 nodes overflow the stack) or enumerates paths (a ladder of L layers
 * of two nodes, each feeding both of the next layer, has 2^L of them).
 */

export interface Link {
  from: string;
  to: string;
}

export interface WeightedPath {
  /** Sum of the weights of the ids along `path` (Infinity when one is). */
  weight: number;
  path: string[];
}

/**
 * Ids and the edges between them, in topological order (Kahn's algorithm), with the heaviest
 * ("critical") path by a longest-path pass over that order.
 *
 * @example
 *   const dag = Dag.of(['a', 'b', 'c'], [{ from: 'a', to: 'b' }]);
 *   dag.longestPath((id) => latencyS.get(id)!); // { weight, path: ['a', 'b'] } when a + b > c
 */
export class Dag {
  /** Ids in topological order; ids on a cycle, if any (a spec that skipped validation), follow in input order. */
  readonly order: readonly string[];
  /** False when some ids lie on a cycle: edges against the order are then ignored. */
  readonly acyclic: boolean;
  /** Predecessors of `order[i]`, as positions in `order`, all before `i`. */
  private readonly predecessors: readonly number[][];

  private constructor(order: string[], acyclic: boolean, predecessors: number[][]) {
    this.order = order;
    this.acyclic = acyclic;
    this.predecessors = predecessors;
  }

  /** Links naming an id not in `ids` are ignored; duplicate links count once. */
  static of(ids: Iterable<string>, links: Iterable<Link>): Dag {
    const index = new Map<string, number>();
    const names: string[] = [];
    for (const id of ids) {
      if (!index.has(id)) {
        index.set(id, names.length);
        names.push(id);
      }
    }
    const n = names.length;
    const successors: number[][] = Array.from({ length: n }, () => []);
    const indegree = new Int32Array(n);
    const seen = new Set<number>();
    for (const { from, to } of links) {
      const a = index.get(from);
      const b = index.get(to);
      if (a === undefined || b === undefined || seen.has(a * n + b)) continue;
      seen.add(a * n + b);
      successors[a].push(b);
      indegree[b]++;
    }
    // Kahn: repeatedly take an id none of whose predecessors is left.
    const position = new Int32Array(n).fill(-1);
    const order: number[] = [];
    for (let i = 0; i < n; i++) if (indegree[i] === 0) order.push(i);
    for (let head = 0; head < order.length; head++) {
      const id = order[head];
      position[id] = head;
      for (const next of successors[id]) if (--indegree[next] === 0) order.push(next);
    }
    const acyclic = order.length === n;
    for (let i = 0; i < n && !acyclic; i++) {
      if (position[i] === -1) {
        position[i] = order.length;
        order.push(i);
      }
    }
    const predecessors: number[][] = Array.from({ length: n }, () => []);
    for (let a = 0; a < n; a++) {
      for (const b of successors[a]) if (position[a] < position[b]) predecessors[position[b]].push(position[a]);
    }
    return new Dag(
      order.map((i) => names[i]),
      acyclic,
      predecessors,
    );
  }

  /** The DAG the given paths trace: their ids, and a link between each two consecutive ones. */
  static fromPaths(paths: readonly (readonly string[])[]): Dag {
    const links: Link[] = [];
    for (const path of paths) for (let i = 1; i < path.length; i++) links.push({ from: path[i - 1], to: path[i] });
    return Dag.of(
      paths.flatMap((path) => path),
      links,
    );
  }

  /** The ids with an edge into `id`. */
  predecessorsOf(id: string): string[] {
    const i = this.order.indexOf(id);
    return i < 0 ? [] : this.predecessors[i].map((p) => this.order[p]);
  }

  /**
   * The path with the largest sum of weights, in one pass over the topological order:
   * heaviest(v) = weight(v) + max over predecessors u of heaviest(u). O(ids + edges), one
   * `weightOf` call per id. Weights below zero (or NaN) count as 0. Among equal paths the first
   * in order wins, and a path always extends back through a predecessor when there is one.
   */
  longestPath(weightOf: (id: string) => number): WeightedPath {
    const n = this.order.length;
    if (n === 0) return { weight: 0, path: [] };
    const heaviest = new Float64Array(n);
    const via = new Int32Array(n).fill(-1);
    let end = 0;
    for (let i = 0; i < n; i++) {
      const weight = weightOf(this.order[i]);
      let from = -1;
      for (const p of this.predecessors[i]) if (from === -1 || heaviest[p] > heaviest[from]) from = p;
      heaviest[i] = (weight > 0 ? weight : 0) + (from === -1 ? 0 : heaviest[from]);
      via[i] = from;
      if (heaviest[i] > heaviest[end]) end = i;
    }
    const path: string[] = [];
    for (let i = end; i !== -1; i = via[i]) path.push(this.order[i]);
    return { weight: heaviest[end], path: path.reverse() };
  }
}

/**
 * Cycles of a directed graph, by an iterative depth-first search: each edge that closes a cycle
 * (leads back to an id on the current search path) reports that cycle once, as the ids along it
 * with the first repeated at the end. Linear in ids + edges plus the length of what it reports;
 * it stops after `limit` cycles, and never enumerates every elementary cycle (exponentially many).
 */
export function findCycles(adjacency: ReadonlyMap<string, readonly string[]>, limit = Infinity): string[][] {
  const cycles: string[][] = [];
  /** Ids on the current search path, with their place in `stack`; 'done' once fully explored. */
  const state = new Map<string, number | 'done'>();
  const stack: string[] = [];
  const nextEdge: number[] = [];
  for (const root of adjacency.keys()) {
    if (state.has(root)) continue;
    state.set(root, 0);
    stack.push(root);
    nextEdge.push(0);
    while (stack.length > 0) {
      const top = stack.length - 1;
      const id = stack[top];
      const edges = adjacency.get(id) ?? [];
      if (nextEdge[top] === edges.length) {
        state.set(id, 'done');
        stack.pop();
        nextEdge.pop();
        continue;
      }
      const next = edges[nextEdge[top]++];
      const seen = state.get(next);
      if (seen === undefined) {
        state.set(next, stack.length);
        stack.push(next);
        nextEdge.push(0);
      } else if (seen !== 'done') {
        cycles.push([...stack.slice(seen), next]);
        if (cycles.length >= limit) return cycles;
      }
    }
  }
  return cycles;
}
