/**
 * kill -9 of the platform, and of its host process, while a replay runs: WordCount (exactly-once)
 * counts a corpus, is sought back to offset 0 with resetState, and is killed at random instants
 * while it reprocesses. The sink records the replay appended hold, for every word, the counts
 * 1..n exactly once — the first pass's results again, once per input offset.
 */
import { describe, expect, it } from 'vitest';
import { tempDir, waitFor } from './fixtures/platform.ts';
import { ServerProcess } from './fixtures/server-process.ts';
import { corpus, expectExactCounts, expectedCounts, functionSource, totalWords, wordCountGraph } from './fixtures/wordcount.ts';

const LINES = 10_000;
const CHUNK = 500;
const KILLS = 6;

async function call(server: ServerProcess, path: string, init?: RequestInit): Promise<Response | null> {
  try {
    // A connection handed to a host that was just killed may never be answered: give up on it.
    return await fetch(`${server.url}${path}`, { ...init, signal: AbortSignal.timeout(5000) });
  } catch {
    return null; // down: killed
  }
}

/** A GET answered with JSON, retried while connections die with the processes killed. */
async function getJson<T>(server: ServerProcess, path: string): Promise<T> {
  return waitFor(async () => {
    const res = await call(server, path);
    return res?.ok ? ((await res.json()) as T) : null;
  }, 60_000, `GET ${path}`);
}

async function drained(server: ServerProcess): Promise<void> {
  await waitFor(async () => {
    const res = await call(server, '/v1/graphs/wc');
    if (!res?.ok) return false;
    const { status } = (await res.json()) as { status: { state: string; edges: Array<{ lag: number }> } };
    return status.state === 'running' && status.edges.every((e) => e.lag === 0);
  }, 120_000, 'the graph to drain');
}

async function sinkFrom(server: ServerProcess, from: number): Promise<Array<{ word: string; count: number }>> {
  const out: Array<{ word: string; count: number }> = [];
  for (let at = from; ; ) {
    const { records } = await getJson<{ records: Array<{ offset: number; value: { word: string; count: number } }> }>(server, `/v1/graphs/wc/sinks/counts?from=${at}&limit=10000`);
    if (records.length === 0) return out;
    for (const [i, r] of records.entries()) {
      expect(r.offset).toBe(at + i);
      out.push(r.value);
    }
    at += records.length;
  }
}

describe('replay under kill -9', () => {
  it('exactly-once: the replay appends counts 1..n once per word, n exact, across platform and host kills', async () => {
    const server = new ServerProcess(tempDir(), ['--hosts', '1']);
    try {
      await server.start();
      for (const name of ['wordcount-split', 'wordcount-count']) {
        const res = await call(server, `/v1/functions/${name}`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: functionSource(name) });
        expect(res?.status).toBe(201);
      }
      expect((await call(server, '/v1/graphs/wc', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(wordCountGraph()) }))?.status).toBe(201);
      const lines = corpus(LINES, 7);
      for (let i = 0; i < lines.length; i += CHUNK) {
        const res = await call(server, '/v1/graphs/wc/sources/lines', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(lines.slice(i, i + CHUNK).map((value) => ({ value }))) });
        expect(res?.status).toBe(202);
      }
      await drained(server);
      const firstPass = await sinkFrom(server, 0);
      expect(firstPass.length).toBe(totalWords(lines));

      const seek = await call(server, '/v1/graphs/wc/sources/lines/seek', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ offset: 0, resetState: true }) });
      const body = (await seek!.json()) as { edges: Array<{ partitions: Array<{ from: number; to: number }> }> };
      expect(seek?.status, JSON.stringify(body)).toBe(200);
      expect(body.edges[0].partitions.reduce((n, p) => n + p.from - p.to, 0)).toBe(LINES);

      // Kill while it reprocesses: the platform (kill -9, restarted on the same data directory) and its host.
      let killedMidway = 0;
      for (let kill = 0; kill < KILLS; kill++) {
        await new Promise((r) => setTimeout(r, 20 + Math.random() * 100));
        const status = await call(server, '/v1/graphs/wc');
        const replaying = status?.ok && ((await status.json()) as { status: { edges: Array<{ lag: number }> } }).status.edges.some((e) => e.lag > 0);
        if (!replaying) break; // done: later kills would test nothing of the replay
        killedMidway++;
        if (kill % 3 === 2) {
          for (const pid of server.hostPids()) process.kill(pid, 'SIGKILL');
          continue;
        }
        await server.kill9();
        await server.start();
      }
      expect(killedMidway, 'kills while the replay was still running').toBeGreaterThanOrEqual(3);
      await drained(server);
      expectExactCounts(await sinkFrom(server, firstPass.length), expectedCounts(lines));
      const deadLetters = await getJson<{ records: unknown[] }>(server, '/v1/graphs/wc/nodes/count/dead-letters');
      expect(deadLetters.records).toHaveLength(0);
    } finally {
      await server.stop();
    }
  }, 300_000);
});
