/**
 * env.STATE on S3 through the whole platform (real S3 server): WordCount keeps its counts in the
 * bucket, exactly; state survives a restart from the bucket alone; graphs and nodes never see
 * each other's keys; deleting a graph deletes its objects.
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Platform } from '../api/platform.ts';
import { SERVICE_DEFAULTS, SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { deploy, tempDir, waitFor, withPlatform } from './fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket } from './fixtures/s3.ts';
import { corpus, expectExactCounts, expectedCounts, functionSource, totalWords, wordCountGraph } from './fixtures/wordcount.ts';

type S3Config = Awaited<ReturnType<typeof createBucket>>;
/** A fresh bucket per test: the bucket's deploy log is shared by every platform using it. */
let s3: S3Config;
let client: S3Client;

beforeAll(async () => {
  await ensureService('s3');
  client = new S3Client({ endpoint: SERVICE_DEFAULTS.s3.endpoint, region: SERVICE_DEFAULTS.s3.region, forcePathStyle: true, credentials: TEST_CREDENTIALS });
}, SERVICE_START_TIMEOUT_MS);
beforeEach(async () => {
  s3 = await createBucket();
});
afterAll(() => client?.destroy());

async function keys(prefix: string): Promise<string[]> {
  const out: string[] = [];
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: prefix, ContinuationToken: token }));
    for (const o of page.Contents ?? []) out.push(o.Key!);
    token = page.NextContinuationToken;
  } while (token);
  return out;
}

async function ingest(platform: Platform, graph: string, lines: string[]): Promise<void> {
  for (let i = 0; i < lines.length; i += 100) platform.graphs.ingest(graph, 'lines', lines.slice(i, i + 100).map((value) => ({ value })));
}

async function sinkCounts(platform: Platform, graph: string, expectedRecords: number) {
  const runtime = platform.graphs.runtime(graph);
  await waitFor(() => platform.log.head(runtime.topology.sinkTopic('counts'), 0) >= expectedRecords, 60_000, `${graph}: ${expectedRecords} counts in the sink`);
  return runtime.readSink('counts', 0, 100_000).map((r) => r.value as { word: string; count: number });
}

async function deployWordCount(platform: Platform) {
  expect((await deploy(platform, 'wordcount-split', functionSource('wordcount-split'))).status).toBe(201);
  expect((await deploy(platform, 'wordcount-count', functionSource('wordcount-count'))).status).toBe(201);
}

describe('WordCount with its counts in S3', () => {
  it('counts exactly once, keeps the counts as objects, and resumes from the bucket after a restart', async () => {
    const dataDir = tempDir();
    let platform = await withPlatform({ dataDir, s3, autoscaleIntervalMs: 0 });
    await deployWordCount(platform);
    await platform.graphs.deploy('wc', wordCountGraph('exactly-once', { min: 2, max: 2 }));
    const first = corpus(600, 1);
    await ingest(platform, 'wc', first);
    expectExactCounts(await sinkCounts(platform, 'wc', totalWords(first)), expectedCounts(first));

    // The counts are objects under the log's scope, one per word, in the word's partition.
    const live = await waitFor(async () => {
      const found = (await keys('state/')).filter((k) => k.includes('/live/wc/count/'));
      return found.length === expectedCounts(first).size ? found : null;
    }, 10_000, 'every word published to its live key');
    expect(live.every((k) => /^state\/[0-9a-f]{16}\/live\/wc\/count\/[0-3]\/[a-z]+$/.test(k))).toBe(true);
    // Published: no staged object or manifest row is left once publishing caught up.
    await waitFor(async () => (await keys('state/')).every((k) => !k.includes('/staged/')), 10_000, 'staged objects to be deleted');
    for (let p = 0; p < 4; p++) {
      expect(platform.log.stateSnapshot('s3:wc/count', p)).toEqual([]);
      expect(platform.log.stateSnapshot('wc/count', p)).toEqual([]); // nothing in the embedded store
    }
    await platform.close();

    // A new process on the same data directory: the isolates start empty, the counts come from S3.
    platform = await withPlatform({ dataDir, s3, autoscaleIntervalMs: 0 });
    const second = corpus(200, 2);
    await ingest(platform, 'wc', second);
    const all = [...first, ...second];
    expectExactCounts(await sinkCounts(platform, 'wc', totalWords(all)), expectedCounts(all));
    await platform.cleanup();
  }, 120_000);

  it('keeps graphs and nodes apart: the same function and keys in two graphs count separately', async () => {
    const platform = await withPlatform({ s3, autoscaleIntervalMs: 0 });
    await deployWordCount(platform);
    // A reader that emits every key it can see in env.STATE: it must see only its own node's keys.
    await deploy(platform, 'state-lister', `export default { async process(r, env, ctx) {
      await env.STATE.put('mine-' + r.value, '1');
      const { objects } = await env.STATE.list();
      ctx.emit(objects.map((o) => o.key).join(','), { key: r.key });
    } };`);
    await platform.graphs.deploy('g1', wordCountGraph());
    await platform.graphs.deploy('g2', wordCountGraph());
    await platform.graphs.deploy('g3', {
      nodes: [{ id: 'count', function: 'state-lister', replicas: { min: 1, max: 1 } }],
      sources: [{ id: 'lines', type: 'http' }],
      sinks: [{ id: 'counts', type: 'log' }],
      edges: [
        { from: 'lines', to: 'count', delivery: 'exactly-once', partitionBy: 'key', partitions: 1 },
        { from: 'count', to: 'counts', delivery: 'exactly-once' },
      ],
    });
    const a = ['alpha alpha alpha', 'bravo'];
    const b = ['alpha alpha', 'alpha alpha alpha', 'charlie'];
    await ingest(platform, 'g1', a);
    await ingest(platform, 'g2', b);
    expectExactCounts(await sinkCounts(platform, 'g1', totalWords(a)), expectedCounts(a));
    expectExactCounts(await sinkCounts(platform, 'g2', totalWords(b)), expectedCounts(b));
    platform.graphs.ingest('g3', 'lines', [{ key: 'k', value: 'x' }]);
    platform.graphs.ingest('g3', 'lines', [{ key: 'k', value: 'y' }]);
    const listed = (await waitFor(() => {
      const records = platform.graphs.runtime('g3').readSink('counts', 0, 10);
      return records.length === 2 ? records : null;
    }, 20_000, 'the lister to run twice')).map((r) => r.value);
    // Same graph-node namespace name 'count' as g1/g2, and their words are 'alpha', 'bravo'...: invisible here.
    expect(listed).toEqual(['mine-x', 'mine-x,mine-y']);
    await platform.cleanup();
  }, 120_000);

  it('deletes a graph’s state objects with the graph', async () => {
    const platform = await withPlatform({ s3, autoscaleIntervalMs: 0 });
    await deployWordCount(platform);
    await platform.graphs.deploy('doomed', wordCountGraph());
    await platform.graphs.deploy('doomed-not', wordCountGraph());
    await ingest(platform, 'doomed', ['golf hotel']);
    await ingest(platform, 'doomed-not', ['golf']);
    await sinkCounts(platform, 'doomed', 2);
    await sinkCounts(platform, 'doomed-not', 1);
    await waitFor(async () => (await keys('state/')).filter((k) => k.includes('/live/doomed/')).length === 2, 10_000, 'doomed state published');
    await platform.graphs.delete('doomed');
    const left = await keys('state/');
    expect(left.filter((k) => k.includes('/doomed/'))).toEqual([]);
    expect(left.filter((k) => k.includes('/live/doomed-not/count/')).length).toBe(1);
    // Re-created under the same name, it starts from empty state.
    await platform.graphs.deploy('doomed', wordCountGraph());
    await ingest(platform, 'doomed', ['golf']);
    expect(await sinkCounts(platform, 'doomed', 1)).toEqual([{ word: 'golf', count: 1 }]);
    await platform.cleanup();
  }, 120_000);
});
