/**
 * kill -9 at random instants while WordCount keeps its counts in S3, exactly-once: each crash may
 * land between staging and the log transaction, between the transaction and publishing, or in the
 * middle of publishing. After every restart on the same data directory and bucket, and in the end,
 * every word counts 1..n exactly once, n exact; no staged object or manifest row is left over.
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { beforeAll, expect, it } from 'vitest';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { tempDir, waitFor } from './fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket } from './fixtures/s3.ts';
import { ServerProcess } from './fixtures/server-process.ts';
import { corpus, expectExactCounts, expectedCounts, functionSource, wordCountGraph } from './fixtures/wordcount.ts';

const LINES = 4000;
const CHUNK = 100;
const KILLS = 8;

beforeAll(() => ensureService('s3'), SERVICE_START_TIMEOUT_MS);

async function request(server: ServerProcess, path: string, init?: RequestInit): Promise<Response | null> {
  try {
    return await fetch(`${server.url}${path}`, init);
  } catch {
    return null; // killed: the caller retries
  }
}

it('exactly-once with S3 state survives repeated kill -9', async () => {
  const s3 = await createBucket();
  Object.assign(process.env, { AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_REGION: s3.region });
  const server = new ServerProcess(tempDir(), ['--hosts', '1', '--s3-endpoint', s3.endpoint, '--s3-bucket', s3.bucket]);
  await server.start();
  for (const name of ['wordcount-split', 'wordcount-count']) {
    const res = await request(server, `/v1/functions/${name}`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: functionSource(name) });
    expect(res?.status).toBe(201);
  }
  const graph = await request(server, '/v1/graphs/wc', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(wordCountGraph()) });
  expect(graph?.status).toBe(201);

  // Many distinct words: each publishing round writes hundreds of keys, so kills often land
  // between a batch's commit and the end of its publishing.
  const lines = corpus(LINES, 11, 1500);
  const feeding = { done: false };
  const feed = (async () => {
    for (let i = 0; i < lines.length; i += CHUNK) {
      const body = JSON.stringify(lines.slice(i, i + CHUNK).map((value) => ({ value })));
      for (;;) {
        const res = await request(server, '/v1/graphs/wc/sources/lines', { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': `chunk-${i}` }, body });
        if (res?.status === 202) break;
        await new Promise((r) => setTimeout(r, 25));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    feeding.done = true;
  })();
  let kills = 0;
  while (kills < KILLS || !feeding.done) {
    await new Promise((r) => setTimeout(r, 100 + Math.random() * 500));
    await server.kill9();
    kills++;
    await server.start();
  }
  await feed;

  await waitFor(async () => {
    const res = await request(server, '/v1/graphs/wc');
    if (!res?.ok) return false;
    const { status } = (await res.json()) as { status: { edges: Array<{ lag: number }> } };
    return status.edges.every((e) => e.lag === 0);
  }, 120_000, 'the graph to drain');
  const sink: Array<{ word: string; count: number }> = [];
  for (;;) {
    const page = await fetch(`${server.url}/v1/graphs/wc/sinks/counts?from=${sink.length}&limit=10000`);
    const { records } = (await page.json()) as { records: Array<{ value: { word: string; count: number } }> };
    if (records.length === 0) break;
    sink.push(...records.map((r) => r.value));
  }
  expectExactCounts(sink, expectedCounts(lines));
  expect(((await (await fetch(`${server.url}/v1/graphs/wc/nodes/count/dead-letters`)).json()) as { records: unknown[] }).records).toEqual([]);

  // Publishing caught up: no batch is left staged.
  const client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: TEST_CREDENTIALS });
  await waitFor(async () => {
    const staged = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'state/' }));
    return (staged.Contents ?? []).every((o) => !o.Key!.includes('/staged/'));
  }, 15_000, 'every staged batch to be published');
  client.destroy();
  await server.stop();
  expect(kills).toBeGreaterThanOrEqual(KILLS);
}, 300_000);
