/**
 * kill -9 at random instants while WordCount runs: after every crash the platform restarts on the
 * same data directory, and in the end
 *   at-most-once   no (word, count) appears twice in the sink;
 *   at-least-once  every occurrence of every word produced output (nothing lost);
 *   exactly-once   the sink holds counts 1..n exactly once for every word, n exact.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Delivery } from '../scheduler/graph-spec.ts';
import { tempDir, waitFor } from './fixtures/platform.ts';
import { ServerProcess } from './fixtures/server-process.ts';

const ROOT = join(import.meta.dirname, '..');
const LINES = 10_000;
const CHUNK = 200;
const KILLS = 20;
const VOCABULARY = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa'];

/** A deterministic corpus: line i has 3-5 words drawn from a small vocabulary. */
function corpus(): string[] {
  let seed = 42;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  return Array.from({ length: LINES }, () => Array.from({ length: 3 + (next() % 3) }, () => VOCABULARY[next() % VOCABULARY.length]).join(' '));
}

function expectedCounts(lines: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of lines) for (const word of line.split(' ')) counts.set(word, (counts.get(word) ?? 0) + 1);
  return counts;
}

async function request(server: ServerProcess, path: string, init?: RequestInit): Promise<Response | null> {
  try {
    return await fetch(`${server.url}${path}`, init);
  } catch {
    return null; // the server is down (killed): the caller retries
  }
}

async function setup(server: ServerProcess, delivery: Delivery): Promise<void> {
  for (const name of ['wordcount-split', 'wordcount-count']) {
    const res = await request(server, `/v1/functions/${name}`, {
      method: 'PUT',
      headers: { 'content-type': 'application/javascript' },
      body: readFileSync(join(ROOT, 'functions', `${name}.js`), 'utf8'),
    });
    expect(res?.status).toBe(201);
  }
  const graph = JSON.parse(readFileSync(join(ROOT, 'functions', 'wordcount.graph.json'), 'utf8'));
  for (const edge of graph.edges) edge.delivery = delivery;
  const res = await request(server, '/v1/graphs/wc', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(graph) });
  expect(res?.status, await res?.text()).toBe(201);
}

/** Sends every chunk with an Idempotency-Key, retrying until the server accepts it. */
async function ingest(server: ServerProcess, lines: string[], stop: { done: boolean }): Promise<void> {
  for (let i = 0; i < lines.length; i += CHUNK) {
    const body = JSON.stringify(lines.slice(i, i + CHUNK).map((value) => ({ value })));
    for (;;) {
      const res = await request(server, '/v1/graphs/wc/sources/lines', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': `chunk-${i}` },
        body,
      });
      if (res?.status === 202) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    await new Promise((r) => setTimeout(r, 15));
  }
  stop.done = true;
}

async function drainedSink(server: ServerProcess): Promise<Array<{ word: string; count: number }>> {
  await waitFor(async () => {
    const res = await request(server, '/v1/graphs/wc');
    if (!res?.ok) return false;
    const { status } = (await res.json()) as { status: { edges: Array<{ lag: number }> } };
    return status.edges.every((e) => e.lag === 0);
  }, 120_000, 'the graph to drain');
  const out: Array<{ word: string; count: number }> = [];
  for (let from = 0; ; ) {
    const { records } = (await (await fetch(`${server.url}/v1/graphs/wc/sinks/counts?from=${from}&limit=10000`)).json()) as {
      records: Array<{ offset: number; value: { word: string; count: number } }>;
    };
    if (records.length === 0) return out;
    for (const [i, r] of records.entries()) {
      expect(r.offset).toBe(from + i); // contiguous offsets from 0
      out.push(r.value);
    }
    from += records.length;
  }
}

async function runWithKills(delivery: Delivery) {
  const server = new ServerProcess(tempDir(), ['--hosts', '1']);
  await server.start();
  await setup(server, delivery);
  const lines = corpus();
  const stop = { done: false };
  const feeding = ingest(server, lines, stop);
  let kills = 0;
  while (kills < KILLS || !stop.done) {
    await new Promise((r) => setTimeout(r, 50 + Math.random() * 350));
    await server.kill9();
    kills++;
    await server.start();
  }
  await feeding;
  const sink = await drainedSink(server);
  const deadLetters = (await (await fetch(`${server.url}/v1/graphs/wc/nodes/count/dead-letters`)).json()) as { records: unknown[] };
  await server.stop();
  return { sink, expected: expectedCounts(lines), kills, deadLetters: deadLetters.records.length };
}

function byWord(sink: Array<{ word: string; count: number }>): Map<string, number[]> {
  const map = new Map<string, number[]>();
  for (const { word, count } of sink) map.set(word, [...(map.get(word) ?? []), count]);
  return map;
}

describe('WordCount under repeated kill -9', () => {
  it('exactly-once: every word counts 1..n exactly once, n exact', async () => {
    const { sink, expected, kills, deadLetters } = await runWithKills('exactly-once');
    expect(kills).toBeGreaterThanOrEqual(KILLS);
    expect(deadLetters).toBe(0);
    const seen = byWord(sink);
    expect(new Set(seen.keys())).toEqual(new Set(expected.keys()));
    for (const [word, n] of expected) {
      const counts = seen.get(word)!;
      expect(counts.length, word).toBe(n);
      // Per-key order holds too: partitionBy key keeps a word on one partition.
      expect(counts, word).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    }
  }, 300_000);

  it('at-least-once: nothing is lost', async () => {
    const { sink, expected, kills } = await runWithKills('at-least-once');
    expect(kills).toBeGreaterThanOrEqual(KILLS);
    const seen = byWord(sink);
    for (const [word, n] of expected) {
      expect(seen.get(word)?.length ?? 0, word).toBeGreaterThanOrEqual(n);
      expect(Math.max(...(seen.get(word) ?? [0])), word).toBeGreaterThanOrEqual(n);
    }
  }, 300_000);

  it('at-most-once: nothing is duplicated', async () => {
    const { sink, expected, kills } = await runWithKills('at-most-once');
    expect(kills).toBeGreaterThanOrEqual(KILLS);
    const seen = byWord(sink);
    for (const [word, counts] of seen) {
      expect(new Set(counts).size, word).toBe(counts.length);
      expect(counts.length, word).toBeLessThanOrEqual(expected.get(word)!);
    }
  }, 300_000);
});
