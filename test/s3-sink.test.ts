/**
 * The exactly-once S3 sink (issue 16): files rolled by size, count and interval, in NDJSON or
 * CSV, published atomically behind a manifest — read back by an independent S3 client — each
 * record in exactly one published file across redeploys and an S3 outage mid-write (a private
 * S3Proxy stopped and restarted); refused credentials give ERR_S3_ACCESS_DENIED in the sink's
 * status; bad sink configs are refused with their JSON paths.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_DEFAULTS, SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';
import { PrivateS3, TEST_CREDENTIALS, createBucket } from './fixtures/s3.ts';
import { readPublished } from './fixtures/s3-sink-reader.ts';

const endpoint = SERVICE_DEFAULTS.s3.endpoint;
const PASS = 'export default { process(record) { return record.value; } };';
let platform: Awaited<ReturnType<typeof withPlatform>>;
let bucket: string;
let s3: S3Client;

function graph(sink: Record<string, unknown>) {
  return {
    nodes: [{ id: 'pass', function: 'pass' }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 's3', ...sink }],
    edges: [{ from: 'in', to: 'pass', delivery: 'exactly-once' }, { from: 'pass', to: 'out', delivery: 'exactly-once' }],
  };
}

async function sinkStatus(p: typeof platform, g: string) {
  return (await json(p.app.request(`/v1/graphs/${g}`))).status.sinks.out.s3;
}

beforeAll(async () => {
  await ensureService('s3');
  bucket = (await createBucket(endpoint, 'trib-sink')).bucket;
  s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: TEST_CREDENTIALS });
  platform = await withPlatform({ userBuckets: { buckets: [bucket], endpoint, credentials: TEST_CREDENTIALS }, autoscaleIntervalMs: 0 });
  expect((await deploy(platform, 'pass', PASS)).status).toBe(201);
}, 120_000);
afterAll(async () => {
  await platform?.cleanup();
  s3?.destroy();
});

describe('spec validation', () => {
  it('refuses bad s3 sink configs with the JSON path of each problem', async () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ format: 'ndjson' }, '$.sinks[0].bucket'],
      [{ bucket, format: 'parquet' }, '$.sinks[0].format'],
      [{ bucket, format: 'csv' }, '$.sinks[0].columns'],
      [{ bucket, format: 'ndjson', columns: ['a'] }, '$.sinks[0].columns'],
      [{ bucket, format: 'ndjson', rollBytes: 10 }, '$.sinks[0].rollBytes'],
      [{ bucket, format: 'ndjson', rollBytes: 1024 ** 3 }, '$.sinks[0].rollBytes'],
      [{ bucket, format: 'ndjson', rollIntervalMs: 0 }, '$.sinks[0].rollIntervalMs'],
      [{ bucket, format: 'ndjson', rollRecords: 1.5 }, '$.sinks[0].rollRecords'],
      [{ bucket, format: 'ndjson', prefix: '../x' }, '$.sinks[0].prefix'],
      [{ bucket, format: 'ndjson', endpoint: 'http://evil' }, '$.sinks[0].endpoint'],
      [{ bucket: 'not-configured-bucket', format: 'ndjson' }, '$.sinks[0].bucket'],
    ];
    for (const [sink, path] of cases) {
      const res = await platform.app.request('/v1/graphs/bad', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(graph(sink)) });
      const body = await json(res);
      expect(res.status, JSON.stringify(sink)).toBe(400);
      expect(body.error.code).toBe('ERR_GRAPH_INVALID');
      expect(body.error.problems.map((p: { path: string }) => p.path), JSON.stringify(body)).toContain(path);
    }
    expect((await platform.app.request('/v1/graphs/bad')).status).toBe(404);
  });
});

describe('publishing', () => {
  it('rolls NDJSON files by record count and interval; the manifest names each record once', async () => {
    await platform.graphs.deploy('nd', graph({ bucket, prefix: 'nd/', format: 'ndjson', rollRecords: 300, rollIntervalMs: 200 }));
    for (let i = 0; i < 1000; i += 100) platform.graphs.ingest('nd', 'in', Array.from({ length: 100 }, (_, j) => ({ key: `k${i + j}`, value: { id: i + j } })));
    await waitFor(async () => (await sinkStatus(platform, 'nd')).published >= 1000, 30_000, 'all published');
    const out = await readPublished(s3, bucket, 'nd/');
    expect(out.streams.length).toBe(1);
    const records = out.lines.map((l) => JSON.parse(l));
    expect(records.map((r) => r.value.id).sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(records.map((r) => r.offset)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(out.entries.length).toBeGreaterThanOrEqual(4);
    for (const entry of out.entries) expect(entry.records).toBeLessThanOrEqual(300);
    // Nothing but manifest entries and the files they name.
    expect(out.objects.sort()).toEqual([...out.entries.map((e) => e.file), ...out.objects.filter((k) => k.includes('_manifest/'))].sort());
    const status = await sinkStatus(platform, 'nd');
    expect(status).toMatchObject({ bucket, prefix: 'nd/', state: 'publishing', files: out.entries.length, lastError: null });
  }, 60_000);

  it('rolls by bytes, and writes CSV with a header and RFC 4180 quoting', async () => {
    await platform.graphs.deploy('csv', graph({ bucket, prefix: 'csv/', format: 'csv', columns: ['id', 'name'], rollBytes: 1024, rollIntervalMs: 200 }));
    platform.graphs.ingest('csv', 'in', Array.from({ length: 500 }, (_, i) => ({ value: { id: i, name: i === 7 ? 'a "quoted", name' : `n${i}` } })));
    await waitFor(async () => (await sinkStatus(platform, 'csv')).published >= 500, 30_000, 'all published');
    const out = await readPublished(s3, bucket, 'csv/');
    expect(out.lines.length).toBe(500);
    // Records reach the sink in partition order, not ingest order.
    expect(out.lines.filter((l) => l.startsWith('7,'))).toEqual(['7,"a ""quoted"", name"']);
    expect(out.lines.filter((l) => l.startsWith('8,'))).toEqual(['8,n8']);
    expect(new Set(out.lines.map((l) => Number(l.split(',')[0]))).size).toBe(500);
    for (const entry of out.entries) expect(entry.bytes).toBeLessThanOrEqual(1024);
    expect(out.entries.length).toBeGreaterThan(2);
  }, 60_000);

  it('keeps each record in exactly one file across redeploys mid-stream', async () => {
    const spec = graph({ bucket, prefix: 'redeploy/', format: 'ndjson', rollRecords: 50, rollIntervalMs: 100 });
    await platform.graphs.deploy('re', spec);
    let next = 0;
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 4; i++, next += 50) platform.graphs.ingest('re', 'in', Array.from({ length: 50 }, (_, j) => ({ value: next + j })));
      await platform.graphs.deploy('re', { ...spec, sinks: [{ ...spec.sinks[0], rollRecords: 30 + round * 10 }] });
    }
    await waitFor(async () => (await sinkStatus(platform, 're')).published >= next, 30_000, 'all published');
    const out = await readPublished(s3, bucket, 'redeploy/');
    expect(out.lines.map((l) => JSON.parse(l).value).sort((a, b) => a - b)).toEqual(Array.from({ length: next }, (_, i) => i));
  }, 60_000);
});

describe('failures', () => {
  it('S3 down mid-write: the sink retries with ERR_S3_UNAVAILABLE in its status, the graph runs on, and after the outage each record is published once', async () => {
    const priv = await PrivateS3.start();
    const own = await createBucket(priv.endpoint, 'trib-sink-outage');
    const p = await withPlatform({ userBuckets: { buckets: [own.bucket], endpoint: priv.endpoint, credentials: TEST_CREDENTIALS }, autoscaleIntervalMs: 0, hosts: 1 });
    const client = new S3Client({ endpoint: priv.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: TEST_CREDENTIALS });
    try {
      expect((await deploy(p, 'pass', PASS)).status).toBe(201);
      await p.graphs.deploy('o', graph({ bucket: own.bucket, prefix: 'o/', format: 'ndjson', rollRecords: 100, rollIntervalMs: 100 }));
      let fed = 0;
      const feed = (n: number) => {
        p.graphs.ingest('o', 'in', Array.from({ length: n }, (_, i) => ({ value: fed + i })));
        fed += n;
      };
      for (let i = 0; i < 5; i++) feed(100);
      await waitFor(async () => (await sinkStatus(p, 'o')).published >= 200, 30_000, 'publishing before the outage');
      await priv.stop();
      for (let i = 0; i < 5; i++) feed(100);
      const down = await waitFor(async () => {
        const s = await sinkStatus(p, 'o');
        return s.state === 'retrying' && s.lastError?.startsWith('ERR_S3_UNAVAILABLE') ? s : null;
      }, 60_000, 'the sink to report ERR_S3_UNAVAILABLE');
      expect(down.lastError).toMatch(/^ERR_S3_UNAVAILABLE: S3 \w+/);
      // The graph itself keeps committing into the sink log meanwhile.
      await waitFor(() => p.log.head(p.graphs.runtime('o').topology.sinkTopic('out'), 0) >= 1000, 30_000, 'the graph to run on');
      await priv.start();
      await waitFor(async () => (await sinkStatus(p, 'o')).published >= 1000, 90_000, 'publishing to catch up');
      const out = await readPublished(client, own.bucket, 'o/');
      expect(out.lines.map((l) => JSON.parse(l).value).sort((a, b) => a - b)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
      expect((await sinkStatus(p, 'o')).state).toBe('publishing');
    } finally {
      client.destroy();
      await p.cleanup();
      await priv.destroy();
    }
  }, SERVICE_START_TIMEOUT_MS * 2 + 180_000);

  it('refused credentials: ERR_S3_ACCESS_DENIED in the sink status, nothing published, no secret shown', async () => {
    const p = await withPlatform({ userBuckets: { buckets: [bucket], endpoint, credentials: { accessKeyId: 'tributary', secretAccessKey: 'not-the-secret' } }, autoscaleIntervalMs: 0, hosts: 1 });
    try {
      expect((await deploy(p, 'pass', PASS)).status).toBe(201);
      await p.graphs.deploy('denied', graph({ bucket, prefix: 'denied/', format: 'ndjson', rollIntervalMs: 100 }));
      p.graphs.ingest('denied', 'in', [{ value: 1 }]);
      const s = await waitFor(async () => {
        const status = await sinkStatus(p, 'denied');
        return status.lastError ? status : null;
      }, 30_000, 'the sink to fail');
      expect(s.lastError).toMatch(/^ERR_S3_ACCESS_DENIED: /);
      expect(s.state).toBe('retrying');
      expect(JSON.stringify(await json(p.app.request('/v1/graphs/denied')))).not.toContain('not-the-secret');
      expect((await readPublished(s3, bucket, 'denied/')).entries).toEqual([]);
    } finally {
      await p.cleanup();
    }
  }, 60_000);
});
