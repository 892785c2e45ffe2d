/**
 * WordCount over a real Kafka broker, scaled out over two `tributary serve` processes sharing a
 * data directory, while the test kill -9s one of them at a time (≥ 10 times, mid-transaction: the
 * exactly-once edges commit every 200 ms under a steady input) and restarts the broker once
 * mid-stream. One graph runs the three semantics side by side, each on its own branch:
 *
 *   lines ─┬─ split_eo  ─(kafka)─ count_eo  ─ counts_eo     exactly-once
 *          ├─ split_alo ─(kafka)─ count_alo ─ counts_alo    at-least-once
 *          └─ split_amo ─(kafka)─ count_amo ─ counts_amo    at-most-once
 *
 * The sink topics are then read with kcat (librdkafka, read_committed): an independent client.
 *   exactly-once   every word's counts are 1..n exactly once, n exact;
 *   at-least-once  every occurrence of every word produced output (nothing lost);
 *   at-most-once   no (word, count) appears twice.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_START_TIMEOUT_MS, ensureService, restartService, stopService } from '../scripts/services.ts';
import { createTopic, inputProducer, privateBroker, randomName, readCommitted, type ReadRecord } from './fixtures/kafka.ts';
import { tempDir, waitFor } from './fixtures/platform.ts';
import { ServerProcess } from './fixtures/server-process.ts';

const ROOT = join(import.meta.dirname, '..');
const LINES = 4000;
const CHUNK = 40;
const FEED_PAUSE_MS = 450;
const KILLS = 10;
const KILL_EVERY_MS = 5500;
const VOCABULARY = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot', 'golf', 'hotel', 'india', 'juliet', 'kilo', 'lima', 'mike', 'november', 'oscar', 'papa'];
const BRANCHES = { eo: 'exactly-once', alo: 'at-least-once', amo: 'at-most-once' } as const;

/** A deterministic corpus (mulberry32): line i has 3-5 words of a 16-word vocabulary. */
function corpus(): string[] {
  let seed = 7;
  const next = () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return (t ^ (t >>> 14)) >>> 0;
  };
  return Array.from({ length: LINES }, () => Array.from({ length: 3 + (next() % 3) }, () => VOCABULARY[next() % VOCABULARY.length]).join(' '));
}

function expectedCounts(lines: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const line of lines) for (const word of line.split(' ')) counts.set(word, (counts.get(word) ?? 0) + 1);
  return counts;
}

function byWord(records: ReadRecord[]): Map<string, number[]> {
  const map = new Map<string, number[]>();
  for (const r of records) {
    const { word, count } = JSON.parse(r.value) as { word: string; count: number };
    map.set(word, [...(map.get(word) ?? []), count]);
  }
  return map;
}

async function put(server: ServerProcess, path: string, body: string, type: string): Promise<Response> {
  return fetch(`${server.url}${path}`, { method: 'PUT', headers: { 'content-type': type }, body });
}

describe('Kafka WordCount under kill -9 of scaled-out hosts and a broker restart', () => {
  // A broker of its own: restarting it mid-stream must not disturb other test files.
  const broker = privateBroker(19392);
  const dataDir = tempDir('tributary-kafka-crash-');
  const args = ['--hosts', '1', '--kafka-brokers', broker.brokers.join(',')];
  const servers = [new ServerProcess(dataDir, args), new ServerProcess(dataDir, args)];
  const input = randomName('lines');
  const graphName = randomName('wc');
  const sinks = Object.fromEntries(Object.keys(BRANCHES).map((b) => [b, randomName(`counts-${b}`)])) as Record<keyof typeof BRANCHES, string>;

  beforeAll(() => ensureService('kafka', broker.env), SERVICE_START_TIMEOUT_MS);
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await stopService('kafka', broker.env);
  }, 120_000);

  it('exactly-once is exact, at-least-once loses nothing, at-most-once repeats nothing', async () => {
    await createTopic(input, 8, broker.brokers);
    await servers[0].start();
    for (const name of ['wordcount-split', 'wordcount-count']) {
      const res = await put(servers[0], `/v1/functions/${name}`, readFileSync(join(ROOT, 'functions', `${name}.js`), 'utf8'), 'application/javascript');
      expect(res.status).toBe(201);
    }
    const graph = {
      nodes: Object.keys(BRANCHES).flatMap((b) => [
        { id: `split_${b}`, function: 'wordcount-split' },
        { id: `count_${b}`, function: 'wordcount-count' },
      ]),
      sources: [{ id: 'lines', type: 'kafka', topic: input }],
      sinks: Object.entries(sinks).map(([b, topic]) => ({ id: `counts_${b}`, type: 'kafka', topic })),
      edges: Object.entries(BRANCHES).flatMap(([b, delivery]) => [
        { from: 'lines', to: `split_${b}`, delivery, ...(delivery === 'exactly-once' ? { commitIntervalMs: 200 } : {}) },
        { from: `split_${b}`, to: `count_${b}`, delivery, transport: 'kafka', partitionBy: 'key', partitions: 8, ...(delivery === 'exactly-once' ? { commitIntervalMs: 200 } : {}) },
        { from: `count_${b}`, to: `counts_${b}`, delivery },
      ]),
    };
    const deployed = await put(servers[0], `/v1/graphs/${graphName}`, JSON.stringify(graph), 'application/json');
    expect(deployed.status, await deployed.text()).toBe(201);
    // The second process reads the graph from the shared data directory and joins the same groups.
    await servers[1].start();

    const lines = corpus();
    const producer = await inputProducer(broker.brokers);
    const feeding = (async () => {
      for (let i = 0; i < lines.length; i += CHUNK) {
        await producer.send(input, lines.slice(i, i + CHUNK).map((value) => ({ value })));
        await new Promise((r) => setTimeout(r, FEED_PAUSE_MS)); // the input spans every kill
      }
    })();

    let kills = 0;
    let brokerRestarted = false;
    while (kills < KILLS) {
      await new Promise((r) => setTimeout(r, KILL_EVERY_MS * (0.6 + Math.random() * 0.4)));
      const victim = servers[kills % 2];
      await victim.kill9();
      kills++;
      await victim.start();
      if (kills === KILLS / 2 && !brokerRestarted) {
        await restartService('kafka', broker.env);
        brokerRestarted = true;
      }
    }
    await feeding;
    await producer.close();

    const expected = expectedCounts(lines);
    const total = [...expected.values()].reduce((a, b) => a + b, 0);
    let eoSoFar = 0;
    const eo = await waitFor(async () => {
      const records = await readCommitted(sinks.eo, broker.brokers);
      eoSoFar = records.length;
      return records.length >= total ? records : null;
    }, 90_000, 'the exactly-once sink to hold every count').catch(async (error: Error) => {
      // What the processes report, for the failure message.
      const status = await Promise.all(servers.map(async (s) => ((await fetch(`${s.url}/v1/graphs/${graphName}`).then((r) => r.json()).catch(() => null)) as any)?.status));
      const brief = status.map((st) => st && { edges: st.edges.map((e: any) => [e.from, e.to, e.state, e.reason, e.lag, e.partitions.map((p: any) => [p.committed, p.head, p.owned ? 'own' : ''])]), nodes: Object.fromEntries(Object.entries(st.nodes).map(([k, n]: [string, any]) => [k, [n.processed, n.lastError]])) });
      throw new Error(`${error.message}: ${eoSoFar} of ${total}; status ${JSON.stringify(brief)}`);
    });
    const alo = await waitFor(async () => {
      const seen = byWord(await readCommitted(sinks.alo, broker.brokers));
      return [...expected].every(([word, n]) => Math.max(0, ...(seen.get(word) ?? [])) >= n) ? seen : null;
    }, 60_000, 'the at-least-once sink to cover every count');
    // at-most-once may lose records: wait until its sink stops growing.
    let amo = await readCommitted(sinks.amo, broker.brokers);
    for (let stable = 0; stable < 3; ) {
      await new Promise((r) => setTimeout(r, 1000));
      const again = await readCommitted(sinks.amo, broker.brokers);
      stable = again.length === amo.length ? stable + 1 : 0;
      amo = again;
    }

    expect(kills).toBeGreaterThanOrEqual(KILLS);
    expect(brokerRestarted).toBe(true);

    const eoSeen = byWord(eo);
    expect(eo.length).toBe(total);
    expect(new Set(eoSeen.keys())).toEqual(new Set(expected.keys()));
    for (const [word, n] of expected) {
      // partitionBy key keeps a word on one partition: its counts arrive in order.
      expect(eoSeen.get(word), word).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    }

    for (const [word, n] of expected) {
      const counts = alo.get(word) ?? [];
      expect(counts.length, word).toBeGreaterThanOrEqual(n);
      for (let c = 1; c <= n; c++) expect(counts.includes(c), `${word} count ${c}`).toBe(true);
    }

    for (const [word, counts] of byWord(amo)) {
      expect(new Set(counts).size, word).toBe(counts.length);
      expect(counts.length, word).toBeLessThanOrEqual(expected.get(word)!);
    }
  }, 240_000);
});
