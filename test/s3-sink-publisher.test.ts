/**
 * The S3 sink publisher's commit point on its own: two publishers racing over the same sink log
 * and stream (what a redeploy overlapping its predecessor, or a bug, would do) still give one
 * contiguous manifest in which every record is in exactly one file — the conditional create of
 * each manifest entry decides, and the loser adopts the winner's range and drops its own object.
 */
import { rmSync } from 'node:fs';
import { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SqliteLog } from '../connectors/embedded/sqlite-log.ts';
import { S3SinkPublisher, type S3SinkConfig } from '../connectors/s3/s3-sink.ts';
import { SERVICE_DEFAULTS, ensureService } from '../scripts/services.ts';
import { tempDir, waitFor } from './fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket } from './fixtures/s3.ts';
import { readPublished } from './fixtures/s3-sink-reader.ts';

const endpoint = SERVICE_DEFAULTS.s3.endpoint;
let dataDir: string;
let log: SqliteLog;
let bucket: string;
let client: S3Client;

beforeAll(async () => {
  await ensureService('s3');
  bucket = (await createBucket(endpoint, 'trib-race')).bucket;
  client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: TEST_CREDENTIALS });
  dataDir = tempDir();
  log = new SqliteLog({ dataDir });
}, 120_000);
afterAll(() => {
  log?.close();
  client?.destroy();
  rmSync(dataDir, { recursive: true, force: true });
});

it('two publishers on one stream: a contiguous manifest, each record in exactly one file, no orphan left', async () => {
  const topic = 'race/sink';
  log.ensureTopic(topic, 1);
  const total = 3000;
  for (let i = 0; i < total; i += 100) {
    log.commit({ appends: [{ topic, partition: 0, records: Array.from({ length: 100 }, (_, j) => ({ key: null, value: i + j, timestamp: Date.now() })) }], offsets: [], state: [] });
  }
  const make = (rollRecords: number) => {
    const config: S3SinkConfig = { bucket, prefix: 'race/', format: 'ndjson', rollBytes: 8 * 1024 * 1024, rollRecords, rollIntervalMs: 100 };
    return new S3SinkPublisher({ config, s3: { endpoint, region: 'us-east-1', credentials: TEST_CREDENTIALS }, transport: log, topic, stream: 'one' });
  };
  // Different roll sizes: the two cut different ranges, so their objects and entries collide.
  const a = make(70);
  const b = make(110);
  a.start();
  b.start();
  await waitFor(() => a.status().published >= total && b.status().published >= total, 60_000, 'both publishers to reach the head');
  await a.stop();
  await b.stop();
  const out = await readPublished(client, bucket, 'race/');
  const values = out.lines.map((l) => JSON.parse(l).value as number);
  expect(values.slice().sort((x, y) => x - y)).toEqual(Array.from({ length: total }, (_, i) => i));
  // Every entry was won by exactly one of them (the other adopted it).
  expect(a.status().files + b.status().files).toBe(out.entries.length);
  // A third publisher finds nothing to do, and no object a loser PUT is left beside the published ones.
  const c = make(100);
  c.start();
  await waitFor(() => c.status().published >= total, 30_000, 'recovery');
  await c.stop();
  const after = await readPublished(client, bucket, 'race/');
  const named = new Set(after.entries.map((e) => e.file));
  for (const key of after.objects) if (!key.includes('/_manifest/')) expect(named.has(key), key).toBe(true);
  expect(after.lines.length).toBe(total);
}, 120_000);
