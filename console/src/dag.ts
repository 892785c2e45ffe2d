/**
 * Draws a graph as a layered DAG in SVG: each vertex (source, node, sink) in the column of its
 * longest path from a source (one Kahn pass over a topological order), vertices of a column
 * stacked in spec order, edges as curves labelled with their delivery and lag. Small graphs only
 * (the platform caps a graph's size), so no crossing minimisation.
 */
import { fmt, svg } from './dom.ts';
import type { GraphInfo } from './types.ts';

export interface NodeRates {
  inPerS: number | null;
  outPerS: number | null;
}

type Kind = 'source' | 'node' | 'sink';

interface Vertex {
  id: string;
  kind: Kind;
  layer: number;
  row: number;
  x: number;
  y: number;
  w: number;
  h: number;
}

const COLUMN_W = 340;
const ROW_H = 130;
const NODE = { w: 200, h: 100 };
const END = { w: 150, h: 46 };
const PAD = 20;

export function layout(info: GraphInfo): Map<string, Vertex> {
  const { spec } = info;
  const kinds = new Map<string, Kind>();
  for (const s of spec.sources) kinds.set(s.id, 'source');
  for (const n of spec.nodes) kinds.set(n.id, 'node');
  for (const s of spec.sinks) kinds.set(s.id, 'sink');
  const indegree = new Map([...kinds.keys()].map((id) => [id, 0]));
  const out = new Map<string, string[]>([...kinds.keys()].map((id) => [id, []]));
  for (const e of spec.edges) {
    if (!kinds.has(e.from) || !kinds.has(e.to)) continue;
    out.get(e.from)!.push(e.to);
    indegree.set(e.to, (indegree.get(e.to) ?? 0) + 1);
  }
  const layer = new Map<string, number>();
  const queue = [...kinds.keys()].filter((id) => indegree.get(id) === 0);
  for (const id of queue) layer.set(id, 0);
  while (queue.length > 0) {
    const id = queue.shift()!;
    for (const next of out.get(id)!) {
      layer.set(next, Math.max(layer.get(next) ?? 0, layer.get(id)! + 1));
      indegree.set(next, indegree.get(next)! - 1);
      if (indegree.get(next) === 0) queue.push(next);
    }
  }
  const rows = new Map<number, number>();
  const vertices = new Map<string, Vertex>();
  for (const [id, kind] of kinds) {
    const l = layer.get(id) ?? 0; // a vertex on a cycle cannot exist (the API refuses cycles)
    const row = rows.get(l) ?? 0;
    rows.set(l, row + 1);
    const size = kind === 'node' ? NODE : END;
    vertices.set(id, { id, kind, layer: l, row, w: size.w, h: size.h, x: PAD + l * COLUMN_W, y: PAD + row * ROW_H + (NODE.h - size.h) / 2 });
  }
  return vertices;
}

function lines(x: number, y: number, items: Array<{ text: string; class?: string }>, anchor = 'start'): SVGTextElement {
  const text = svg('text', { x, y, 'text-anchor': anchor });
  items.forEach((item, i) => text.append(svg('tspan', { x, dy: i === 0 ? 0 : 15, class: item.class }, item.text)));
  return text;
}

/** The DAG of `info`, with live numbers; `rates` per node id, `edgeRates` per "from->to". */
export function drawDag(info: GraphInfo, rates: Map<string, NodeRates>, edgeRates: Map<string, number | null>): SVGSVGElement {
  const vertices = layout(info);
  let width = 0;
  let height = 0;
  for (const v of vertices.values()) {
    width = Math.max(width, v.x + v.w + PAD);
    height = Math.max(height, v.y + v.h + PAD);
  }
  const root = svg('svg', { class: 'dag', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': `graph ${info.name}` });
  root.append(
    svg('defs', {}, svg('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' }, svg('path', { d: 'M 0 0 L 10 5 L 0 10 z', class: 'arrow' }))),
  );
  const { status } = info;
  status.edges.forEach((edge) => {
    const a = vertices.get(edge.from);
    const b = vertices.get(edge.to);
    if (!a || !b) return;
    const x1 = a.x + a.w;
    const y1 = a.y + a.h / 2;
    const x2 = b.x;
    const y2 = b.y + b.h / 2;
    const mx = (x1 + x2) / 2;
    const rate = edgeRates.get(`${edge.from}->${edge.to}`) ?? null;
    const lag = edge.lag ?? (edge.partitions ?? []).reduce((s, p) => s + p.lag, 0);
    const group = svg('g', { class: `edge${rate ? ' flowing' : ''}${edge.state === 'degraded' ? ' degraded' : ''}`, 'data-edge': `${edge.from}->${edge.to}` });
    group.append(svg('path', { d: `M ${x1} ${y1} C ${mx} ${y1}, ${mx} ${y2}, ${x2} ${y2}`, 'marker-end': 'url(#arrow)' }));
    group.append(
      lines(
        mx,
        (y1 + y2) / 2 - 22,
        [
          { text: edge.delivery, class: 'edge-delivery' },
          { text: `lag ${fmt(lag, 0)} · ${fmt(rate)}/s`, class: 'edge-lag' },
        ],
        'middle',
      ),
    );
    root.append(group);
  });
  const slo = info.spec.slo;
  for (const v of vertices.values()) {
    const group = svg('g', { class: `vertex ${v.kind}`, 'data-vertex': v.id, transform: `translate(${v.x} ${v.y})` });
    group.append(svg('rect', { width: v.w, height: v.h, rx: 6 }));
    if (v.kind !== 'node') {
      const extra = v.kind === 'sink' ? status.sinks[v.id] : undefined;
      const count = extra?.records ?? extra?.offsets;
      group.append(lines(10, 19, [{ text: v.id, class: 'title' }, { text: v.kind === 'sink' ? `sink · ${fmt(count ?? null, 0)} records` : 'source', class: 'muted' }]));
    } else {
      const n = status.nodes[v.id];
      const r = rates.get(v.id);
      const over = slo && n?.measuredLatencyMs !== null && n?.measuredLatencyMs !== undefined && n.measuredLatencyMs > slo.latencyMs;
      group.append(
        lines(10, 19, [
          { text: v.id, class: 'title' },
          { text: n?.function ?? '', class: 'muted' },
          { text: `replicas ${n?.replicas ?? '–'} (${n?.replicasRange.min ?? '–'}–${n?.replicasRange.max ?? '–'})`, class: 'replicas' },
          { text: `in ${fmt(r?.inPerS)}/s · out ${fmt(r?.outPerS)}/s · q ${fmt(n?.queueDepth ?? null, 0)}`, class: 'rates' },
          { text: `p${slo?.percentile ?? 99} ${fmt(n?.measuredLatencyMs)} / ${fmt(n?.predictedLatencyMs)} ms${slo ? ` (SLO ${slo.latencyMs})` : ''}`, class: over ? 'latency over' : 'latency' },
        ]),
      );
      if (n && n.deadLetters > 0) group.append(svg('text', { x: v.w - 10, y: 19, class: 'dead-badge', 'text-anchor': 'end' }, `☠ ${n.deadLetters}`));
    }
    root.append(group);
  }
  return root;
}
