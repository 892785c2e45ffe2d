/**
 * env.STATE of fetch handlers on control planes sharing a bucket (issue 12): a value written
 * through one is read through the other; listing is in the keys' UTF-8 order with prefixes and
 * cursors whatever the characters; keys too long for S3 fail with a stable code; the objects sit
 * under fetch-state/<function>/ (checked with an independent S3 client) and leave with the function.
 */
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_S3_STATE_KEY_BYTES } from '../connectors/s3/s3-function-state.ts';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { deploy, invoke, json, waitFor, withPlatform } from './fixtures/platform.ts';
import { createBucket } from './fixtures/s3.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;
let a: TestPlatform;
let b: TestPlatform;
let s3: Awaited<ReturnType<typeof createBucket>>;
let client: S3Client;

const STATEFUL = `export default { async fetch(request, env) {
  const url = new URL(request.url);
  const body = request.method === 'POST' ? await request.json() : {};
  switch (url.pathname) {
    case '/bump': {
      const current = await env.STATE.get('count');
      const next = (current === null ? 0 : Number(await current.text())) + 1;
      await env.STATE.put('count', String(next));
      return Response.json({ count: next });
    }
    case '/put':
      for (const key of body.keys) await env.STATE.put(key, body.value ?? key);
      return Response.json({ ok: true });
    case '/get': {
      const got = await env.STATE.get(body.key);
      return Response.json(got === null ? null : { key: got.key, text: await got.text() });
    }
    case '/list': {
      const keys = [];
      let cursor;
      do {
        const page = await env.STATE.list({ prefix: body.prefix, limit: body.limit, cursor });
        keys.push(...page.objects.map((o) => o.key));
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
      return Response.json(keys);
    }
    case '/try':
      try {
        await env.STATE.put(body.key, 'x');
        return Response.json({ ok: true });
      } catch (error) {
        return Response.json({ name: error.name, message: error.message });
      }
  }
  return new Response('?', { status: 404 });
} };`;

const post = async (p: TestPlatform, path: string, body: unknown) =>
  json(invoke(p, `store/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }));

const byUtf8 = (x: string, y: string) => Buffer.compare(Buffer.from(x), Buffer.from(y));

beforeAll(async () => {
  await ensureService('s3');
  s3 = await createBucket();
  client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: s3.credentials });
  [a, b] = await Promise.all([withPlatform({ s3, hosts: 1, autoscaleIntervalMs: 0 }), withPlatform({ s3, hosts: 1, autoscaleIntervalMs: 0 })]);
  expect((await deploy(a, 'store', STATEFUL)).status).toBe(201);
  await waitFor(async () => (await invoke(b, 'store/none')).status === 404 && (await invoke(b, 'store/none').then((r) => r.text())) === '?', 10_000, 'B to serve the function');
}, SERVICE_START_TIMEOUT_MS);
afterAll(async () => {
  client?.destroy();
  await a?.cleanup();
  await b?.cleanup();
});

describe('env.STATE in fetch, kept in S3', () => {
  it('a write through one control plane is read through the other', async () => {
    expect(await json(invoke(a, 'store/bump'))).toEqual({ count: 1 });
    expect(await json(invoke(b, 'store/bump'))).toEqual({ count: 2 });
    expect(await json(invoke(a, 'store/bump'))).toEqual({ count: 3 });
    expect(await post(b, 'get', { key: 'count' })).toEqual({ key: 'count', text: '3' });
  });

  it('lists in UTF-8 order by prefix and cursor, whatever the characters', async () => {
    const keys = ['a', 'a/1', 'a/2', 'a\u0000', 'ab', 'b', 'é', 'éa', '日本', '日本語', '\u{1F600}', 'z'.repeat(300), 'zz/y', '~', 'a b', 'a%2F'];
    await post(a, 'put', { keys });
    const all = await post(b, 'list', { prefix: '', limit: 3 });
    expect(all).toEqual([...keys, 'count'].sort(byUtf8));
    expect(await post(b, 'list', { prefix: 'a' })).toEqual(keys.filter((k) => k.startsWith('a')).sort(byUtf8));
    expect(await post(a, 'list', { prefix: 'a/', limit: 1 })).toEqual(['a/1', 'a/2']);
    expect(await post(a, 'list', { prefix: 'é' })).toEqual(['é', 'éa']);
    expect(await post(a, 'list', { prefix: '日本' })).toEqual(['日本', '日本語']);
    expect(await post(a, 'list', { prefix: 'zz' })).toEqual(['z'.repeat(300), 'zz/y'].sort(byUtf8));
    expect(await post(a, 'get', { key: 'z'.repeat(300) })).toEqual({ key: 'z'.repeat(300), text: 'z'.repeat(300) });
  });

  it('keys longer than S3 can name fail with ERR_BAD_REQUEST; the longest allowed works', async () => {
    expect(await post(a, 'try', { key: 'k'.repeat(MAX_S3_STATE_KEY_BYTES) })).toEqual({ ok: true });
    const tooLong = await post(a, 'try', { key: 'k'.repeat(MAX_S3_STATE_KEY_BYTES + 1) });
    expect(tooLong.name).toBe('TypeError');
    expect(tooLong.message).toMatch(/^ERR_BAD_REQUEST: .*512 UTF-8 bytes/);
    expect((await post(a, 'try', { key: 'é'.repeat(MAX_S3_STATE_KEY_BYTES / 2 + 1) })).message).toMatch(/^ERR_BAD_REQUEST/);
  });

  it('the objects are in the bucket under fetch-state/<function>/ and leave with the function', async () => {
    const listed = async () => (await client.send(new ListObjectsV2Command({ Bucket: s3.bucket, Prefix: 'fetch-state/store/' }))).KeyCount ?? 0;
    expect(await listed()).toBeGreaterThan(10);
    expect((await a.app.request('/v1/functions/store', { method: 'DELETE' })).status).toBe(204);
    expect(await listed()).toBe(0);
  });
});
