/**
 * Graph pages: the list of graphs, and one graph live — its DAG, per-node numbers with
 * sparklines, the autoscaler's decisions as a timeline, dead letters and a sink tail. Polls the
 * status once a second; dead letters and the sink every other second, at most TAIL records each.
 */
import { getJson } from './api.ts';
import { drawDag, type NodeRates } from './dag.ts';
import { fill, fmt, h, preview } from './dom.ts';
import { SeriesBook, sparkline } from './sparkline.ts';
import type { GraphInfo, GraphStatus, StoredRecord } from './types.ts';
import { poll, type View, type ViewContext } from './view.ts';

const STATUS_INTERVAL_MS = 1000;
/** Records read from a dead-letter log or a sink per poll. */
export const TAIL = 20;
/** Decisions kept in the timeline. */
const TIMELINE = 50;

const enc = encodeURIComponent;

export function graphListView(ctx: ViewContext): View {
  const table = h('tbody');
  fill(
    ctx.root,
    h('h1', {}, 'Graphs'),
    h('table', { class: 'list', id: 'graph-list' }, h('thead', {}, h('tr', {}, h('th', {}, 'name'), h('th', {}, 'version'), h('th', {}, 'state'), h('th', {}, 'updated'))), table),
  );
  return poll(ctx, 3000, async () => {
    const { graphs } = await getJson<{ graphs: Array<{ name: string; version: number; updatedAt: string }> }>('/v1/graphs');
    const rows = await Promise.all(
      graphs.map(async (g) => {
        let state = '';
        try {
          state = (await getJson<GraphInfo>(`/v1/graphs/${enc(g.name)}`)).status.state;
        } catch (error) {
          state = (error as { code?: string }).code ?? 'error';
        }
        return h('tr', {}, h('td', {}, h('a', { href: `#/graphs/${enc(g.name)}` }, g.name)), h('td', {}, `v${g.version}`), h('td', { class: `state ${state}` }, state), h('td', {}, g.updatedAt));
      }),
    );
    fill(table, ...(rows.length ? rows : [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No graphs deployed. tributary graph apply <file.json> deploys one.'))]));
  });
}

interface Snapshot {
  at: number;
  edgeHeads: Map<string, number>;
}

interface TimelineEntry {
  at: string;
  node: string;
  action: string;
  from: number;
  to: number;
  reason: string;
}

function edgeHead(edge: GraphInfo['status']['edges'][number]): number {
  return (edge.partitions ?? []).reduce((s, p) => s + p.head, 0);
}

function recordRows(records: StoredRecord[], empty: string, render: (r: StoredRecord) => HTMLElement[]): HTMLElement[] {
  if (records.length === 0) return [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, empty))];
  return records
    .slice()
    .reverse()
    .map((r) => h('tr', {}, h('td', { class: 'num' }, r.offset), h('td', {}, new Date(r.timestamp).toISOString().slice(11, 23)), ...render(r)));
}

/** A dead letter's value is `{record, error}` when the platform wrote it; anything else is shown as is. */
function deadLetterParts(value: unknown): { error: string; record: unknown } {
  if (value && typeof value === 'object' && 'error' in value) {
    const v = value as { error: unknown; record?: unknown; value?: unknown };
    return { error: preview(v.error, 500), record: v.record ?? v.value ?? value };
  }
  return { error: '', record: value };
}

/** The autoscaler's view of the SLO: predicted and measured, the resources it sized for, and why the SLO is unreachable when it says so ("… on this machine" when cores or memory bind). */
function sloLine(slo: GraphStatus['slo'] | null): HTMLElement | null {
  if (!slo) return null;
  const { resources } = slo;
  const memory = resources.memoryBudgetMb !== null ? ` · isolate memory ${fmt(resources.memoryUsedMb)} of ${fmt(resources.memoryBudgetMb)} MB` : '';
  return h(
    'p',
    { id: 'slo', class: slo.reachable ? 'muted' : 'error-text' },
    `autoscaler: predicted p${slo.percentile} ${fmt(slo.predictedMs)} ms · measured ${fmt(slo.measuredMs)} ms · ${resources.cores} core(s), ${resources.readyHosts} ready host(s)${memory}`,
    slo.reachable ? null : h('br'),
    slo.reachable ? null : (slo.reason ?? 'SLO unreachable'),
  );
}

export function graphView(ctx: ViewContext, name: string): View {
  const series = new SeriesBook();
  const holds: TimelineEntry[] = [];
  const lastReason = new Map<string, string>();
  const seenAt = new Map<string, string>();
  let previous: Snapshot | null = null;
  let ticks = 0;
  let sink: string | null = null;

  const header = h('div', { class: 'graph-header' });
  const dag = h('div', { class: 'dag-box', id: 'dag' });
  const nodes = h('tbody');
  const decisions = h('ol', { class: 'timeline', id: 'decisions' });
  const dead = h('tbody');
  const tail = h('tbody');
  const sinkPicker = h('select', { id: 'sink-picker', on: { change: () => (sink = sinkPicker.value) } });
  fill(
    ctx.root,
    h('p', {}, h('a', { href: '#/graphs' }, '← graphs')),
    header,
    dag,
    h('h2', {}, 'Nodes'),
    h(
      'table',
      { class: 'list', id: 'nodes' },
      h(
        'thead',
        {},
        h('tr', {}, ...['node', 'function', 'replicas (min–max)', 'in/s', 'out/s', 'queue', 'p99 measured', 'predicted', 'processed', 'failed', 'dead letters', 'last decision'].map((t) => h('th', {}, t))),
      ),
      nodes,
    ),
    h('div', { class: 'columns' }, h('section', {}, h('h2', {}, 'Autoscaler decisions'), decisions), h('section', {}, h('h2', {}, 'Sink tail ', sinkPicker), h('table', { class: 'list', id: 'sink-tail' }, h('thead', {}, h('tr', {}, h('th', {}, 'offset'), h('th', {}, 'time'), h('th', {}, 'key'), h('th', {}, 'value'))), tail))),
    h('h2', {}, 'Dead letters'),
    h('table', { class: 'list', id: 'dead-letters' }, h('thead', {}, h('tr', {}, h('th', {}, 'offset'), h('th', {}, 'time'), h('th', {}, 'node'), h('th', {}, 'error'), h('th', {}, 'record'))), dead),
  );

  return poll(ctx, STATUS_INTERVAL_MS, async () => {
    const info = await getJson<GraphInfo>(`/v1/graphs/${enc(name)}`);
    const { status, spec } = info;
    const now = performance.now();
    const heads = new Map(status.edges.map((e) => [`${e.from}->${e.to}`, edgeHead(e)]));
    const dt = previous ? (now - previous.at) / 1000 : 0;
    const edgeRates = new Map<string, number | null>();
    for (const [key, head] of heads) {
      const before = previous?.edgeHeads.get(key);
      edgeRates.set(key, before === undefined || dt <= 0 ? null : Math.max(0, head - before) / dt);
    }
    previous = { at: now, edgeHeads: heads };
    const rates = new Map<string, NodeRates>();
    for (const node of spec.nodes) {
      const sum = (keys: string[]) => (keys.some((k) => edgeRates.get(k) === null) ? null : keys.reduce((s, k) => s + (edgeRates.get(k) ?? 0), 0));
      const ins = spec.edges.filter((e) => e.to === node.id).map((e) => `${e.from}->${e.to}`);
      const outs = spec.edges.filter((e) => e.from === node.id).map((e) => `${e.from}->${e.to}`);
      rates.set(node.id, { inPerS: sum(ins), outPerS: sum(outs) });
    }

    const slo = spec.slo;
    series.push('e2e', status.endToEndLatency.p99Ms);
    fill(
      header,
      h('h1', {}, info.name, h('span', { class: 'muted' }, ` v${info.version}`), ' ', h('span', { class: `state ${status.state}`, id: 'graph-state' }, status.state)),
      status.reason ? h('p', { class: 'error-text' }, status.reason) : null,
      h(
        'p',
        { id: 'e2e' },
        `end-to-end p50 ${fmt(status.endToEndLatency.p50Ms)} ms · p99 ${fmt(status.endToEndLatency.p99Ms)} ms`,
        slo ? ` · SLO p${slo.percentile} ≤ ${slo.latencyMs} ms ` : ' ',
        sparkline(series.get('e2e'), { title: 'end-to-end p99 (ms), last 5 minutes', limit: slo?.latencyMs }),
      ),
      sloLine(status.slo ?? null),
      status.errors.count > 0 && status.errors.last ? h('p', { class: 'error-text' }, `${status.errors.count} control-plane error(s); last: ${status.errors.last.code}: ${status.errors.last.message}`) : null,
      status.transitions?.length ? h('p', { class: 'muted' }, 'lifecycle: ', status.transitions.slice(-4).map((t) => `${t.at.slice(11, 19)} ${t.from}→${t.to}${t.reason ? ` (${t.reason})` : ''}`).join(' · ')) : null,
    );
    fill(dag, drawDag(info, rates, edgeRates));

    const rows: HTMLElement[] = [];
    for (const node of spec.nodes) {
      const n = status.nodes[node.id];
      if (!n) continue;
      const r = rates.get(node.id)!;
      series.push(`out:${node.id}`, r.outPerS);
      series.push(`q:${node.id}`, n.queueDepth);
      series.push(`p99:${node.id}`, n.measuredLatencyMs);
      const d = n.lastDecision;
      // Replica changes come from the platform (status.decisions); holds seen while the page is
      // open are added when their kind of reason changes (their numbers move every second).
      const kind = d ? `${d.from}→${d.to} ${d.reason.split(':')[0]}` : '';
      if (d && d.action === 'hold' && lastReason.get(node.id) !== kind && seenAt.get(node.id) !== d.at) {
        seenAt.set(node.id, d.at);
        lastReason.set(node.id, kind);
        holds.unshift({ at: d.at, node: node.id, action: d.action, from: d.from, to: d.to, reason: d.reason });
        if (holds.length > TIMELINE) holds.length = TIMELINE;
      }
      const over = slo && n.measuredLatencyMs !== null && n.measuredLatencyMs > slo.latencyMs;
      rows.push(
        h(
          'tr',
          { 'data-node': node.id },
          h('td', {}, node.id),
          h('td', {}, n.function),
          h('td', { class: 'num replicas' }, `${n.replicas} (${n.replicasRange.min}–${n.replicasRange.max})`),
          h('td', { class: 'num rate-in' }, fmt(r.inPerS)),
          h('td', { class: 'num rate-out' }, fmt(r.outPerS), ' ', sparkline(series.get(`out:${node.id}`), { title: `${node.id} records/s out` })),
          h('td', { class: 'num queue' }, fmt(n.queueDepth, 0), ' ', sparkline(series.get(`q:${node.id}`), { title: `${node.id} queue depth` })),
          h('td', { class: `num latency${over ? ' over' : ''}` }, `${fmt(n.measuredLatencyMs)} ms`, ' ', sparkline(series.get(`p99:${node.id}`), { title: `${node.id} measured p99 (ms)`, limit: slo?.latencyMs })),
          h('td', { class: 'num' }, `${fmt(n.predictedLatencyMs)} ms`),
          h('td', { class: 'num processed' }, fmt(n.processed, 0)),
          h('td', { class: 'num' }, fmt(n.failed, 0)),
          h('td', { class: 'num dead' }, fmt(n.deadLetters, 0)),
          h('td', { class: 'decision' }, d ? `${d.action} ${d.from}→${d.to}: ${d.reason}` : '–'),
        ),
      );
    }
    fill(nodes, ...rows);
    const timeline = [...(status.decisions ?? []), ...holds].sort((a, b) => b.at.localeCompare(a.at)).slice(0, TIMELINE);
    fill(
      decisions,
      ...(timeline.length
        ? timeline.map((t) => h('li', { class: `decision ${t.action}` }, h('time', {}, t.at.slice(11, 19)), ' ', h('strong', {}, `${t.node} ${t.action} ${t.from}→${t.to}`), ' ', t.reason))
        : [h('li', { class: 'muted' }, 'No decisions yet (a graph without an SLO is not autoscaled).')]),
    );

    if (ticks++ % 2 === 0) {
      // Dead letters: the last TAIL of every node that has any.
      const letters: Array<{ node: string; record: StoredRecord }> = [];
      await Promise.all(
        spec.nodes
          .filter((n) => (status.nodes[n.id]?.deadLetters ?? 0) > 0)
          .map(async (n) => {
            const count = status.nodes[n.id].deadLetters;
            const { records } = await getJson<{ records: StoredRecord[] }>(`/v1/graphs/${enc(name)}/nodes/${enc(n.id)}/dead-letters?from=${Math.max(0, count - TAIL)}&limit=${TAIL}`);
            for (const record of records) letters.push({ node: n.id, record });
          }),
      );
      letters.sort((a, b) => a.record.timestamp - b.record.timestamp);
      fill(
        dead,
        ...(letters.length
          ? letters
              .slice(-TAIL)
              .reverse()
              .map(({ node, record }) => {
                const parts = deadLetterParts(record.value);
                return h('tr', { class: 'dead-letter' }, h('td', { class: 'num' }, record.offset), h('td', {}, new Date(record.timestamp).toISOString().slice(11, 23)), h('td', {}, node), h('td', { class: 'error-text' }, parts.error), h('td', { class: 'value' }, preview(parts.record)));
              })
          : [h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No dead letters.'))]),
      );

      const logSinks = spec.sinks.map((s) => s.id);
      if (sinkPicker.options.length !== logSinks.length) fill(sinkPicker, ...logSinks.map((id) => h('option', { value: id }, id)));
      sink ??= logSinks[0] ?? null;
      sinkPicker.value = sink ?? '';
      if (sink) {
        const head = status.sinks[sink]?.records ?? status.sinks[sink]?.offsets ?? 0;
        const { records } = await getJson<{ records: StoredRecord[] }>(`/v1/graphs/${enc(name)}/sinks/${enc(sink)}?from=${Math.max(0, head - TAIL)}&limit=${TAIL}`);
        fill(tail, ...recordRows(records, 'Nothing in this sink yet.', (r) => [h('td', {}, r.key ?? ''), h('td', { class: 'value' }, preview(r.value))]));
      }
    }
  });
}
