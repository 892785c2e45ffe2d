/**
 * S3 unavailable mid-stream: the S3 server (a private one: scripts/s3.sh with its own run
 * directory and port) is stopped while WordCount keeps its counts in it. Batches of the counting
 * node fail and are retried with backoff, the graph status says why, and once the server is back
 * every word's counts are still exactly 1..n.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Platform } from '../api/platform.ts';
import { SERVICE_START_TIMEOUT_MS } from '../scripts/services.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';
import { PrivateS3, createBucket } from './fixtures/s3.ts';
import { corpus, expectExactCounts, expectedCounts, functionSource, totalWords, wordCountGraph } from './fixtures/wordcount.ts';

let s3: PrivateS3;
let platform: Awaited<ReturnType<typeof withPlatform>>;

beforeAll(async () => {
  s3 = await PrivateS3.start();
  platform = await withPlatform({ s3: await createBucket(s3.endpoint), autoscaleIntervalMs: 0 });
}, SERVICE_START_TIMEOUT_MS);
afterAll(async () => {
  await platform?.cleanup();
  await s3?.destroy();
}, 120_000);

const sinkHead = (p: Platform) => p.log.head(p.graphs.runtime('wc').topology.sinkTopic('counts'), 0);

async function countNode(p: Platform): Promise<{ lastError: string | null; processed: number }> {
  const body = await json(p.app.request('/v1/graphs/wc'));
  return body.status.nodes.count;
}

it('fails and retries batches while S3 is down, says so in the graph status, and stays exact', async () => {
  expect((await deploy(platform, 'wordcount-split', functionSource('wordcount-split'))).status).toBe(201);
  expect((await deploy(platform, 'wordcount-count', functionSource('wordcount-count'))).status).toBe(201);
  await platform.graphs.deploy('wc', wordCountGraph('exactly-once', { min: 2, max: 2 }));

  const lines = corpus(3000, 9);
  const fed = { lines: 0 };
  let outageSeen = false;
  const feeding = (async () => {
    for (let i = 0; i < lines.length; i += 20) {
      // The second half is fed only once the outage shows, however long that takes on a busy machine.
      if (i === lines.length / 2) await waitFor(() => outageSeen, 60_000, 'the outage to show');
      platform.graphs.ingest('wc', 'lines', lines.slice(i, i + 20).map((value) => ({ value })));
      fed.lines = i + 20;
      await new Promise((r) => setTimeout(r, 15));
    }
  })();

  await waitFor(() => sinkHead(platform) > 200, 30_000, 'counts flowing before the outage');
  await s3.stop();
  const down = await waitFor(async () => {
    const node = await countNode(platform);
    return node.lastError?.startsWith('ERR_S3_UNAVAILABLE') ? node : null;
  }, 30_000, 'the count node to report ERR_S3_UNAVAILABLE');
  expect(down.lastError).toMatch(/^ERR_S3_UNAVAILABLE: S3 \w+.* failed/);
  // While S3 is down, counting stalls (nothing reaches the sink without its state committed)...
  const stalledAt = sinkHead(platform);
  const fedAtOutage = fed.lines;
  outageSeen = true;
  await new Promise((r) => setTimeout(r, 1000));
  expect(sinkHead(platform)).toBe(stalledAt);
  expect(fed.lines).toBeGreaterThan(fedAtOutage); // ...while ingest goes on: the log is local

  await s3.start();
  await feeding;
  const total = totalWords(lines);
  await waitFor(() => sinkHead(platform) >= total, 90_000, 'the graph to catch up after S3 came back');
  await new Promise((r) => setTimeout(r, 500)); // anything more would be a duplicate
  const sink = platform.graphs.runtime('wc').readSink('counts', 0, 100_000).map((r) => r.value as { word: string; count: number });
  expect(sink.length).toBe(total);
  expectExactCounts(sink, expectedCounts(lines));
  expect((await json(platform.app.request('/v1/graphs/wc/nodes/count/dead-letters'))).records).toEqual([]);
}, 240_000);
