/**
 * Deployments shared through one bucket by control planes with different data directories: a
 * deploy or delete on one is served by the others within seconds; concurrent deploys never give a
 * version number out twice; graphs follow too, each control plane running them over its own log
 * with its own state. Ends with two real `tributary serve` processes.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Platform } from '../api/platform.ts';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { deploy, invoke, json, tempDir, waitFor, withPlatform } from './fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket } from './fixtures/s3.ts';
import { ServerProcess } from './fixtures/server-process.ts';
import { corpus, expectExactCounts, expectedCounts, functionSource, totalWords, wordCountGraph } from './fixtures/wordcount.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;
let a: TestPlatform;
let b: TestPlatform;
let s3: Awaited<ReturnType<typeof createBucket>>;

/** How long a deploy may take to reach the other control plane (it polls every second). */
const PROPAGATION_MS = 4000;

beforeAll(async () => {
  await ensureService('s3');
  s3 = await createBucket();
  [a, b] = await Promise.all([withPlatform({ s3, hosts: 1, autoscaleIntervalMs: 0 }), withPlatform({ s3, hosts: 1, autoscaleIntervalMs: 0 })]);
}, SERVICE_START_TIMEOUT_MS);
afterAll(async () => {
  await a?.cleanup();
  await b?.cleanup();
});

const greeter = (greeting: string) => `export default { fetch() { return new Response('${greeting}'); } };`;
const text = async (p: Platform, path: string) => {
  const res = await invoke(p, path);
  return `${res.status} ${await res.text()}`;
};

describe('functions', () => {
  it('a deploy on one control plane is served by the other; updates and deletes follow within seconds', async () => {
    expect((await deploy(a, 'greet', greeter('hello from v1'))).body.version).toBe(1);
    // Unknown on B: the invoke itself catches up with the deploy log.
    expect(await text(b, 'greet')).toBe('200 hello from v1');

    expect((await deploy(a, 'greet', greeter('hello from v2'))).body.version).toBe(2);
    const started = Date.now();
    await waitFor(async () => (await text(b, 'greet')) === '200 hello from v2', PROPAGATION_MS, 'B to serve v2');
    expect(Date.now() - started).toBeLessThan(PROPAGATION_MS);
    expect((await json(b.app.request('/v1/functions/greet'))).versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);

    expect((await b.app.request('/v1/functions/greet', { method: 'DELETE' })).status).toBe(204);
    await waitFor(async () => (await invoke(a, 'greet')).status === 404, PROPAGATION_MS, 'A to forget the deleted function');
    // Version numbers go on after a delete, as without S3.
    expect((await deploy(b, 'greet', greeter('back'))).body.version).toBe(3);
    await waitFor(async () => (await text(a, 'greet')) === '200 back', PROPAGATION_MS, 'A to serve v3');
  }, 30_000);

  it('never gives one version number to two concurrent deploys', async () => {
    const deploys = Array.from({ length: 12 }, (_, i) => deploy(i % 2 ? a : b, 'raced', greeter(`deploy ${i}`)));
    const versions = (await Promise.all(deploys)).map((r) => {
      expect(r.status).toBe(201);
      return r.body.version as number;
    });
    expect(versions.sort((x, y) => x - y)).toEqual(Array.from({ length: 12 }, (_, i) => i + 1));
    // Each keeps the newest MAX_VERSIONS_PER_FUNCTION (10): 3..12.
    const kept = async (p: Platform) => (await json(p.app.request('/v1/functions/raced'))).versions.map((v: { version: number }) => v.version).join(',');
    const newest10 = Array.from({ length: 10 }, (_, i) => i + 3).join(',');
    await waitFor(async () => (await kept(a)) === newest10, PROPAGATION_MS, 'A to keep versions 3..12');
    await waitFor(async () => (await kept(b)) === newest10, PROPAGATION_MS, 'B to keep versions 3..12');
    const shas = async (p: Platform) => (await json(p.app.request('/v1/functions/raced'))).versions.map((v: { sha256: string }) => v.sha256);
    expect(await shas(a)).toEqual(await shas(b));
    expect(await text(a, 'raced')).toBe(await text(b, 'raced'));
  }, 30_000);

  it("carries a version's cpuLimitMs to the other control plane", async () => {
    const { status, body } = await deploy(a, 'budgeted', greeter('cpu'), '?timeoutMs=500&cpuLimitMs=123');
    expect(status).toBe(201);
    expect(body.cpuLimitMs).toBe(123);
    await waitFor(async () => (await text(b, 'budgeted')) === '200 cpu', PROPAGATION_MS, 'B to serve it');
    expect((await json(b.app.request('/v1/functions/budgeted'))).cpuLimitMs).toBe(123);
  }, 30_000);

  it('a control plane started later replays every deploy before serving', async () => {
    const c = await withPlatform({ s3, hosts: 1, autoscaleIntervalMs: 0, dataDir: tempDir() });
    try {
      const names = (await json(c.app.request('/v1/functions'))).functions.map((f: { name: string; version: number }) => `${f.name}@${f.version}`);
      expect(names).toEqual(['budgeted@1', 'greet@3', 'raced@12']);
      expect(await text(c, 'greet')).toBe('200 back');
    } finally {
      await c.cleanup();
    }
  }, 30_000);
});

describe('graphs', () => {
  it('a graph deployed on one control plane runs on the other, over its own log and state; deletes follow', async () => {
    await deploy(a, 'wordcount-split', functionSource('wordcount-split'));
    await deploy(a, 'wordcount-count', functionSource('wordcount-count'));
    expect((await a.app.request('/v1/graphs/wc', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(wordCountGraph()) })).status).toBe(201);
    await waitFor(async () => (await b.app.request('/v1/graphs/wc')).status === 200, PROPAGATION_MS, 'B to run the graph');

    // Each counts what was ingested into it, from 1: same graph, separate logs, separate state.
    const onA = corpus(200, 3);
    const onB = corpus(300, 4);
    const feed = async (p: Platform, lines: string[]) => {
      const res = await p.app.request('/v1/graphs/wc/sources/lines', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(lines.map((value) => ({ value }))) });
      expect(res.status).toBe(202);
    };
    await feed(a, onA);
    await feed(b, onB);
    for (const [p, lines] of [[a, onA], [b, onB]] as const) {
      const runtime = p.graphs.runtime('wc');
      await waitFor(() => p.log.head(runtime.topology.sinkTopic('counts'), 0) >= totalWords(lines), 30_000, 'counts');
      expectExactCounts(runtime.readSink('counts', 0, 100_000).map((r) => r.value as { word: string; count: number }), expectedCounts(lines));
    }

    // An update on B (a new version of the spec) reaches A.
    const updated = wordCountGraph('at-least-once');
    expect((await b.app.request('/v1/graphs/wc', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(updated) })).body).toBeTruthy();
    await waitFor(async () => {
      const res = await a.app.request('/v1/graphs/wc');
      if (res.status !== 200) return false; // between the old runtime's stop and the new one's launch
      const graph = (await res.json()) as { version: number; status: { edges: Array<{ delivery: string }> } };
      return graph.version === 2 && graph.status.edges[0].delivery === 'at-least-once';
    }, PROPAGATION_MS, 'A to run version 2');

    expect((await a.app.request('/v1/graphs/wc', { method: 'DELETE' })).status).toBe(204);
    await waitFor(async () => (await b.app.request('/v1/graphs/wc')).status === 404, PROPAGATION_MS, 'B to delete the graph');
    expect((await json(b.app.request('/v1/graphs'))).graphs).toEqual([]);
  }, 60_000);
});

describe('two tributary serve processes', () => {
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const server of servers) await server.stop();
  });

  it('serves on one what was deployed on the other', async () => {
    const bucket = await createBucket();
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' });
    for (let i = 0; i < 2; i++) servers.push(new ServerProcess(tempDir(), ['--hosts', '1', '--s3-endpoint', bucket.endpoint, '--s3-bucket', bucket.bucket]));
    await Promise.all(servers.map((s) => s.start()));
    const [first, second] = servers;
    const put = await fetch(`${first.url}/v1/functions/shared-hello`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: greeter('served by either') });
    expect(put.status).toBe(201);
    const res = await fetch(`${second.url}/v1/invoke/shared-hello`);
    expect(`${res.status} ${await res.text()}`).toBe('200 served by either');
    expect(second.output).toContain(`state and deployments in s3://${bucket.bucket}`);
  }, 60_000);
});
