/**
 * kill -9 of the platform (a `tributary serve` child process) and S3's two kinds of writes:
 *   - the S3 sink: killed repeatedly while records flow and files are being published; after the
 *     last restart every record is in exactly one published file (read by an independent client).
 *   - a bucket binding's put on an exactly-once edge: a side effect outside the delivery
 *     transaction. Killed after the put reached S3 but before the batch committed, the record is
 *     processed again after the restart: the put is made twice (two attempt objects), the
 *     idempotent key holds one object, and the sink holds the record once (docs/buckets.md).
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { SERVICE_DEFAULTS, ensureService } from '../scripts/services.ts';
import { tempDir, waitFor } from './fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket } from './fixtures/s3.ts';
import { readPublished } from './fixtures/s3-sink-reader.ts';
import { ServerProcess } from './fixtures/server-process.ts';

const endpoint = SERVICE_DEFAULTS.s3.endpoint;
let bucket: string;
let s3: S3Client;
let server: ServerProcess;

async function request(path: string, init?: RequestInit): Promise<Response | null> {
  try {
    return await fetch(`${server.url}${path}`, init);
  } catch {
    return null; // down (killed): the caller retries
  }
}

async function put(path: string, body: string, contentType: string): Promise<void> {
  const res = await request(path, { method: 'PUT', headers: { 'content-type': contentType }, body });
  expect(res?.status, await res?.text()).toBeLessThan(300);
}

/** Ingests with an Idempotency-Key, retrying across crashes until accepted. */
async function ingest(graph: string, key: string, records: unknown[]): Promise<void> {
  await waitFor(async () => {
    const res = await request(`/v1/graphs/${graph}/sources/in`, { method: 'POST', headers: { 'content-type': 'application/json', 'idempotency-key': key }, body: JSON.stringify(records) });
    return res?.status === 202;
  }, 60_000, `ingest ${key}`);
}

async function status(graph: string): Promise<any> {
  const res = await request(`/v1/graphs/${graph}`);
  return res?.ok ? ((await res.json()) as any).status : null;
}

async function listKeys(prefix: string): Promise<string[]> {
  const out = await s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }));
  return (out.Contents ?? []).map((o) => o.Key!);
}

beforeAll(async () => {
  await ensureService('s3');
  bucket = (await createBucket(endpoint, 'trib-crash')).bucket;
  s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: TEST_CREDENTIALS });
  // The server process takes the platform's S3 credentials from the usual AWS variables.
  process.env.AWS_ACCESS_KEY_ID = TEST_CREDENTIALS.accessKeyId;
  process.env.AWS_SECRET_ACCESS_KEY = TEST_CREDENTIALS.secretAccessKey;
  process.env.AWS_REGION = 'us-east-1';
  server = new ServerProcess(tempDir('tributary-s3crash-'), ['--hosts', '1', '--user-buckets', bucket, '--s3-endpoint', endpoint]);
  await server.start(60_000);
}, 120_000);
afterAll(async () => {
  await server?.kill9();
  s3?.destroy();
});

it('S3 sink: every record in exactly one published file after repeated kill -9', async () => {
  await put('/v1/functions/pass', 'export default { process(record) { return record.value; } };', 'application/javascript');
  await put('/v1/graphs/g', JSON.stringify({
    nodes: [{ id: 'pass', function: 'pass' }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 's3', bucket, prefix: 'crash/', format: 'ndjson', rollRecords: 40, rollIntervalMs: 100 }],
    edges: [{ from: 'in', to: 'pass', delivery: 'exactly-once' }, { from: 'pass', to: 'out', delivery: 'exactly-once' }],
  }), 'application/json');
  const CHUNKS = 30;
  const PER = 100;
  for (let c = 0; c < CHUNKS; c++) {
    await ingest('g', `chunk-${c}`, Array.from({ length: PER }, (_, i) => ({ value: c * PER + i })));
    if (c % 6 === 5) {
      // Let publishing get going, then crash in the middle of it.
      await waitFor(async () => ((await status('g'))?.sinks.out.s3?.published ?? 0) > (c - 3) * PER, 60_000, 'publishing to progress');
      await server.kill9();
      await server.start(60_000);
    }
  }
  const total = CHUNKS * PER;
  await waitFor(async () => ((await status('g'))?.sinks.out.s3?.published ?? 0) >= total, 120_000, 'everything published');
  const out = await readPublished(s3, bucket, 'crash/');
  const values = out.lines.map((l) => JSON.parse(l).value as number).sort((a, b) => a - b);
  expect(values.length).toBe(total);
  expect(values).toEqual(Array.from({ length: total }, (_, i) => i));
  // No orphan of a crashed publish is left beside the published files once the last publisher recovered.
  const named = new Set(out.entries.map((e) => e.file));
  for (const key of out.objects) if (!key.includes('/_manifest/')) expect(named.has(key), key).toBe(true);
}, 600_000);

it('a binding put on an exactly-once edge repeats after kill -9; the idempotent key and the sink do not', async () => {
  const fn = `export default { async process(record, env) {
    const id = record.value.id;
    await env.ASSETS.put('attempts/' + id + '/' + crypto.randomUUID(), 'attempt');
    await env.ASSETS.put('results/' + id + '.json', JSON.stringify({ id }));
    if (record.value.slow) await new Promise((r) => setTimeout(r, 4000));
    return id;
  } };`;
  const res = await request('/v1/functions/effects?timeoutMs=15000', {
    method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ js: fn, bindings: { ASSETS: { bucket, prefix: 'effects/' } } }),
  });
  expect(res?.status, await res?.text()).toBe(201);
  await put('/v1/graphs/fx', JSON.stringify({
    nodes: [{ id: 'fx', function: 'effects' }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [{ from: 'in', to: 'fx', delivery: 'exactly-once' }, { from: 'fx', to: 'out', delivery: 'exactly-once' }],
  }), 'application/json');
  await ingest('fx', 'slow', [{ value: { id: 'slow-1', slow: true } }]);
  // The put reached S3 (seen by our own client) while the batch is still running, uncommitted.
  await waitFor(async () => (await listKeys('effects/results/')).length === 1, 30_000, 'the first attempt to write');
  expect((await status('fx'))?.sinks.out.records).toBe(0);
  await server.kill9();
  await server.start(60_000);
  await waitFor(async () => (await status('fx'))?.sinks.out.records === 1, 60_000, 'the record to be redone and committed');
  const attempts = await listKeys('effects/attempts/slow-1/');
  expect(attempts.length).toBe(2); // the side effect happened twice
  expect(await listKeys('effects/results/')).toEqual(['effects/results/slow-1.json']); // the idempotent key: once
  const sink = (await (await request('/v1/graphs/fx/sinks/out?from=0&limit=10'))!.json()) as any;
  expect(sink.records.map((r: { value: unknown }) => r.value)).toEqual(['slow-1']); // the delivery: once
}, 180_000);
