/**
 * dashboards/tributary.json asks only for what the platform exports: every metric name in every
 * panel's query is in a real platform's /metrics (scraped on its socket, WordCount running and a
 * function invoked), and every label a query groups or filters by is a label of those series.
 */
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../api/server.ts';
import { deployExamples, startWordCountDemo } from '../cli/examples.ts';
import { tempDir, waitFor } from './fixtures/platform.ts';

const DASHBOARD = join(import.meta.dirname, '..', 'dashboards', 'tributary.json');
/** Counters prom-client shows without series until they first count (a host restart, a straggler): their labels cannot be seen in a scrape. */
const UNSAMPLED_HERE = new Set(['tributary_host_restarts_total', 'tributary_stragglers_total']);

const dataDir = tempDir();
let server: RunningServer;
let stopDemo: () => void;

interface Exposition {
  types: Map<string, string>;
  /** Label names seen on each sample name. */
  labels: Map<string, Set<string>>;
}

function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const labels = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    const type = /^# TYPE (\S+) (\S+)/.exec(line);
    if (type) types.set(type[1], type[2]);
    const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    if (!sample || line.startsWith('#')) continue;
    const names = labels.get(sample[1]) ?? new Set<string>();
    for (const [, key] of (sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) names.add(key);
    labels.set(sample[1], names);
  }
  return { types, labels };
}

/** The exported family of a sample name: itself, or the histogram/summary it is the _bucket, _sum or _count of. */
function familyOf(name: string, types: Map<string, string>): string | null {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count)$/, '');
  return base !== name && (types.get(base) === 'histogram' || types.get(base) === 'summary') ? base : null;
}

function queries(): string[] {
  const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Array<{ targets?: Array<{ expr?: string }> }> };
  return dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr).filter((e): e is string => typeof e === 'string'));
}

async function scrape(): Promise<Exposition> {
  const res = await fetch(`${server.url}/metrics`);
  expect(res.status).toBe(200);
  return parseExposition(await res.text());
}

beforeAll(async () => {
  server = await startServer({ port: 0, dataDir, hosts: 1 });
  await deployExamples(server.platform.functions);
  stopDemo = await startWordCountDemo(server.platform.graphs);
  expect(await (await fetch(`${server.url}/v1/invoke/hello?name=Ada`)).text()).toBe('Hello, Ada!\n');
  // Until every series the dashboard asks for (but the two that need a fault) shows up: the
  // autoscaler has decided, records crossed the graph, latencies were measured.
  const wanted = new Set(queries().flatMap((q) => [...q.matchAll(/\btributary_[a-z0-9_]+\b/g)].map((m) => m[0])).filter((n) => !UNSAMPLED_HERE.has(n)));
  await waitFor(async () => {
    const { labels } = await scrape();
    return [...wanted].every((n) => labels.has(n));
  }, 60_000, `series of ${[...wanted].join(', ')} in /metrics`);
}, 120_000);

afterAll(async () => {
  stopDemo?.();
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

describe('dashboards/tributary.json', () => {
  it('has queries', () => {
    expect(queries().length).toBeGreaterThanOrEqual(10);
  });

  it('names only metrics the platform exports', async () => {
    const { types } = await scrape();
    const missing: string[] = [];
    for (const expr of queries()) for (const [name] of expr.matchAll(/\btributary_[a-z0-9_]+\b/g)) if (!familyOf(name, types)) missing.push(`${name} (in ${expr})`);
    expect(missing).toEqual([]);
  });

  it('groups and filters only by labels those series carry', async () => {
    const { labels } = await scrape();
    const wrong: string[] = [];
    let checked = 0;
    for (const expr of queries()) {
      const names = [...expr.matchAll(/\btributary_[a-z0-9_]+\b/g)].map((m) => m[0]);
      if (names.some((n) => UNSAMPLED_HERE.has(n))) continue;
      const used = new Set<string>();
      for (const [, list] of expr.matchAll(/\bby \(([^)]*)\)/g)) for (const l of list.split(',')) used.add(l.trim());
      for (const [, matchers] of expr.matchAll(/tributary_[a-z0-9_]+\{([^}]*)\}/g)) for (const [, l] of matchers.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=|!=|=~|!~)/g)) used.add(l);
      const carried = new Set(names.flatMap((n) => [...(labels.get(n) ?? [])]));
      for (const name of names) if (!labels.has(name)) wrong.push(`${name} has no series to check (in ${expr})`);
      for (const label of used) if (!carried.has(label)) wrong.push(`label '${label}' is on none of ${names.join(', ')} (in ${expr})`);
      checked++;
    }
    expect(wrong).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(queries().length - UNSAMPLED_HERE.size);
  });
});
