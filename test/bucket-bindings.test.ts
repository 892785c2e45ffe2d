/**
 * Bucket bindings (issue 16): `env.ASSETS` is R2's Workers API over a bucket and prefix the
 * operator allows, in fetch and in process, made by the control plane with the platform's S3
 * credentials. Checked against the real S3 server with an independent client (@aws-sdk/client-s3
 * directly): objects land under the binding's prefix with their metadata, and nothing a function
 * passes reaches outside it.
 */
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BucketCalls } from '../runtime/bucket-calls.ts';
import { SERVICE_DEFAULTS, ensureService } from '../scripts/services.ts';
import { json, tempDir, waitFor, withPlatform } from './fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket, freePort } from './fixtures/s3.ts';

const endpoint = SERVICE_DEFAULTS.s3.endpoint;
let platform: Awaited<ReturnType<typeof withPlatform>>;
let bucket: string;
let other: string;
let s3: S3Client;

/** A fetch handler that runs one scenario per path against env.ASSETS and answers JSON. */
const SCENARIOS = `
const ok = (v) => Response.json(v);
const caught = async (p) => { try { await p; return { ok: true }; } catch (e) { return { name: e.name, code: e.code, message: String(e.message).slice(0, 200) }; } };
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const q = (n) => url.searchParams.get(n);
    const A = env.ASSETS;
    switch (url.pathname) {
      case '/put': {
        const o = await A.put(q('key'), await request.text(), { httpMetadata: { contentType: 'text/plain' }, customMetadata: { owner: 'ada' } });
        return ok({ key: o.key, size: o.size, etag: o.etag, httpEtag: o.httpEtag, uploaded: o.uploaded instanceof Date });
      }
      case '/get': {
        const o = await A.get(q('key'));
        if (o === null) return ok(null);
        const reader = o.body.getReader();
        let text = ''; const d = new TextDecoder();
        for (;;) { const { value, done } = await reader.read(); if (done) break; text += d.decode(value, { stream: true }); }
        return ok({ text, size: o.size, etag: o.etag, httpMetadata: o.httpMetadata, customMetadata: o.customMetadata, bodyUsed: o.bodyUsed });
      }
      case '/methods': {
        const k = q('key');
        await A.put(k, new TextEncoder().encode(JSON.stringify({ n: 42 })));
        const asJson = await (await A.get(k)).json();
        const asBuf = new Uint8Array(await (await A.get(k)).arrayBuffer()).length;
        const asBlob = await (await A.get(k)).blob();
        const range = await (await A.get(k, { range: { offset: 1, length: 3 } })).text();
        const suffix = await (await A.get(k, { range: { suffix: 2 } })).text();
        RegExp.prototype.exec = () => null; // platform code must not care
        const viaHeader = await (await A.get(k, { range: new Headers({ range: 'bytes=0-1' }) })).text();
        const head = await A.head(k);
        const miss = await A.get(k + '-missing');
        const same = await A.get(k, { onlyIf: { etagDoesNotMatch: head.etag } });
        const headers = new Headers(); head.writeHttpMetadata(headers);
        const created = await A.put(k, 'again', { onlyIf: { etagDoesNotMatch: '*' } });
        const stream = await A.put(k + '-stream', new Blob(['from a blob']).stream());
        return ok({ asJson, asBuf, blobSize: asBlob.size, range, suffix, viaHeader, headSize: head.size, hasBody: 'body' in head, miss, sameHasBody: same !== null && 'body' in same, created, streamSize: stream.size });
      }
      case '/list': {
        for (const k of ['l/a', 'l/b', 'l/c/1', 'l/c/2', 'l/d']) await A.put(k, k);
        const page1 = await A.list({ prefix: 'l/', limit: 2 });
        const page2 = await A.list({ prefix: 'l/', limit: 10, cursor: page1.cursor });
        const delimited = await A.list({ prefix: 'l/', delimiter: '/' });
        await A.delete(['l/a', 'l/b']);
        await A.delete('l/d');
        const after = await A.list({ prefix: 'l/' });
        return ok({ page1: page1.objects.map((o) => o.key), truncated: page1.truncated, page2: page2.objects.map((o) => o.key),
          keys: delimited.objects.map((o) => o.key), prefixes: delimited.delimitedPrefixes, after: after.objects.map((o) => o.key) });
      }
      case '/multipart': {
        const k = q('key');
        const up = await A.createMultipartUpload(k, { httpMetadata: { contentType: 'application/octet-stream' } });
        const part1 = await up.uploadPart(1, new Uint8Array(5 * 1024 * 1024).fill(97));
        const resumed = A.resumeMultipartUpload(k, up.uploadId);
        const part2 = await resumed.uploadPart(2, 'tail');
        const done = await resumed.complete([part1, part2]);
        const tail = await (await A.get(k, { range: { suffix: 4 } })).text();
        return ok({ size: done.size, tail });
      }
      case '/hostile-keys': {
        const keys = ['../escape', 'a/../../b', '/abs', '\\\\win', 'a/./b', '%2e%2e/x', 'a%2Fb', 'nul\\u0000x', 'new\\nline', '\\uFF0E\\uFF0E/x',
          'cafe\\u0301', '\\uD800', '', 'x'.repeat(1100), '.', '..'];
        const out = [];
        for (const k of keys) out.push(await caught(A.put(k, 'x')));
        out.push(await caught(A.get('../x')));
        out.push(await caught(A.list({ prefix: '../' })));
        out.push(await caught(A.list({ cursor: '../../zzz' })));
        out.push(await caught(A.delete(['ok', '../x'])));
        out.push(await caught(A.put(42, 'x')));
        return ok(out.map((r) => r.code ?? 'ok'));
      }
      case '/huge': return ok(await caught(A.put('huge', new Uint8Array(11 * 1024 * 1024))));
      case '/budget': {
        const chunk = new Uint8Array(9 * 1024 * 1024);
        const out = [];
        for (let i = 0; i < 8; i++) out.push(await caught(A.put('budget-' + i, chunk)));
        return ok(out.map((r) => r.code ?? 'ok'));
      }
      case '/calls': {
        let n = 0, last;
        for (;;) { const r = await caught(A.head('k')); if (r.code) { last = r; break; } n++; if (n > 10000) break; }
        return ok({ n, last });
      }
      case '/probe': {
        const seen = [];
        const walk = (v, depth) => { if (depth > 3 || v === null || (typeof v !== 'object' && typeof v !== 'function')) return; for (const k of Reflect.ownKeys(v)) { seen.push(String(k)); try { walk(v[k], depth + 1); } catch {} } };
        walk(env, 0); walk(globalThis, 0);
        return ok({ keys: Object.keys(env).sort(), text: JSON.stringify(env) + seen.join(','), frozen: Object.isFrozen(A), proto: Object.getPrototypeOf(A) === Object.prototype });
      }
      case '/error': return ok(await caught(A.head('anything')));
    }
    return new Response('no scenario', { status: 404 });
  },
  async process(record, env, ctx) {
    await env.ASSETS.put('from-process/' + record.value, 'seen ' + record.value);
    ctx.emit(record.value);
  },
};`;

function put(name: string, envelope: unknown, p = platform) {
  return p.app.request(`/v1/functions/${name}?timeoutMs=30000`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(envelope) });
}

async function call(path: string, init?: RequestInit, fn = 'assets', p = platform) {
  const res = await p.app.request(`/v1/invoke/${fn}${path}`, init);
  const text = await res.text();
  expect(res.status, text).toBe(200);
  return JSON.parse(text);
}

beforeAll(async () => {
  await ensureService('s3');
  bucket = (await createBucket(endpoint, 'trib-bind')).bucket;
  other = (await createBucket(endpoint, 'trib-bind-other')).bucket;
  s3 = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: TEST_CREDENTIALS });
  platform = await withPlatform({ userBuckets: { buckets: [bucket], endpoint, credentials: TEST_CREDENTIALS }, autoscaleIntervalMs: 0 });
  const res = await put('assets', { js: SCENARIOS, bindings: { ASSETS: { bucket, prefix: 'tenant-a/' } }});
  expect(res.status, await res.clone().text()).toBe(201);
}, 120_000);
afterAll(async () => {
  await platform?.cleanup();
  s3?.destroy();
});

const s3Text = async (key: string, b = bucket) => (await s3.send(new GetObjectCommand({ Bucket: b, Key: key })).then((o) => o.Body!.transformToString()));

describe('env.ASSETS', () => {
  it('puts and gets through the prefix, with R2 shapes and metadata, as an independent S3 client sees it', async () => {
    const put1 = await call('/put?key=docs/hello.txt', { method: 'POST', body: 'hello, bucket' });
    expect(put1).toMatchObject({ key: 'docs/hello.txt', size: 13, uploaded: true });
    expect(put1.httpEtag).toBe(`"${put1.etag}"`);
    expect(await s3Text('tenant-a/docs/hello.txt')).toBe('hello, bucket');
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'tenant-a/docs/hello.txt' }));
    expect(head.ContentType).toBe('text/plain');
    expect(head.Metadata).toEqual({ owner: 'ada' });
    // Written by another client: the binding reads it.
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'tenant-a/ref/data.csv', Body: 'a,b\n1,2\n', ContentType: 'text/csv' }));
    const got = await call('/get?key=ref/data.csv');
    expect(got).toMatchObject({ text: 'a,b\n1,2\n', size: 8, httpMetadata: { contentType: 'text/csv' }, customMetadata: {}, bodyUsed: true });
    expect(await call('/get?key=nothing-here')).toBeNull();
  });

  it('has json/arrayBuffer/blob, ranges, head, onlyIf and stream values', async () => {
    const out = await call('/methods?key=m/obj');
    expect(out).toEqual({
      asJson: { n: 42 }, asBuf: 8, blobSize: 8, range: '"n"', suffix: '2}', viaHeader: '{"', headSize: 8, hasBody: false, miss: null,
      sameHasBody: false, created: null, streamSize: 11,
    });
    expect(await s3Text('tenant-a/m/obj')).toBe('{"n":42}'); // the conditional put wrote nothing
  });

  it('lists with prefix, limit, cursor and delimiter, and deletes one or many keys', async () => {
    const out = await call('/list');
    expect(out.page1).toEqual(['l/a', 'l/b']);
    expect(out.truncated).toBe(true);
    expect(out.page2).toEqual(['l/c/1', 'l/c/2', 'l/d']);
    expect(out.keys).toEqual(['l/a', 'l/b', 'l/d']);
    expect(out.prefixes).toEqual(['l/c/']);
    expect(out.after).toEqual(['l/c/1', 'l/c/2']);
  });

  it('uploads large objects in parts, resumable by upload id', async () => {
    const out = await call('/multipart?key=big/blob.bin');
    expect(out).toEqual({ size: 5 * 1024 * 1024 + 4, tail: 'tail' });
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: 'tenant-a/big/blob.bin' }));
    expect(head.ContentLength).toBe(5 * 1024 * 1024 + 4);
  }, 60_000);

  it('is there in process too', async () => {
    await platform.graphs.deploy('g', {
      nodes: [{ id: 'n', function: 'assets' }],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [{ from: 'in', to: 'n', delivery: 'exactly-once' }, { from: 'n', to: 'out', delivery: 'exactly-once' }],
    });
    platform.graphs.ingest('g', 'in', [{ value: 'r1' }, { value: 'r2' }]);
    await waitFor(() => platform.graphs.runtime('g').readSink('out', 0, 10).length === 2, 30_000, 'both records processed');
    expect(await s3Text('tenant-a/from-process/r1')).toBe('seen r1');
    expect(await s3Text('tenant-a/from-process/r2')).toBe('seen r2');
  }, 60_000);
});

describe('hostile use', () => {
  it('refuses every key that could leave the prefix or mean two things, with stable codes', async () => {
    const codes = await call('/hostile-keys');
    expect(codes).toEqual([
      ...Array(13).fill('ERR_BUCKET_KEY_INVALID'), 'ERR_TOO_LARGE', 'ERR_BUCKET_KEY_INVALID', 'ERR_BUCKET_KEY_INVALID',
      'ERR_BUCKET_KEY_INVALID', 'ERR_BUCKET_KEY_INVALID', 'ERR_BUCKET_KEY_INVALID', 'ERR_BUCKET_KEY_INVALID', 'ERR_BAD_REQUEST',
    ]);
    // Nothing landed outside tenant-a/ (nor in the other bucket).
    const all = await s3.send(new ListObjectsV2Command({ Bucket: bucket }));
    for (const o of all.Contents ?? []) expect(o.Key!.startsWith('tenant-a/'), o.Key).toBe(true);
    expect((await s3.send(new ListObjectsV2Command({ Bucket: other }))).KeyCount ?? 0).toBe(0);
  });

  it('bounds a value, the bytes and the calls of an invocation', async () => {
    expect(await call('/huge')).toMatchObject({ name: 'RangeError', code: 'ERR_TOO_LARGE' });
    // 64 MiB per invocation: seven 9 MiB puts fit, the eighth does not.
    expect(await call('/budget')).toEqual([...Array(7).fill('ok'), 'ERR_TOO_LARGE']);
    const calls = await call('/calls');
    expect(calls.n).toBe(256);
    expect(calls.last).toMatchObject({ name: 'RangeError', code: 'ERR_BUCKET_CALL_LIMIT' });
  }, 120_000);

  it('refuses at deploy a bucket the operator did not configure, and the platform bucket, by name', async () => {
    for (const binding of [{ bucket: other }, { bucket: 'Not_A_Bucket' }, { bucket, prefix: '../up' }, { bucket, extra: 1 }, 'string']) {
      const res = await put('sneaky', { js: SCENARIOS, bindings: { ASSETS: binding } });
      const body = await json(res);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(body.error.code).toBe('ERR_BAD_REQUEST');
    }
    expect((await put('sneaky', { js: SCENARIOS, bindings: { STATE: { bucket } } })).status).toBe(400);
    expect((await platform.app.request('/v1/functions/sneaky')).status).toBe(404);
  });

  it('never lets the isolate see bucket, prefix or credentials; API reads show names and places only', async () => {
    const probe = await call('/probe');
    expect(probe.keys).toEqual(['ASSETS', 'STATE']);
    expect(probe.frozen).toBe(true);
    for (const secret of [TEST_CREDENTIALS.secretAccessKey, bucket, 'tenant-a']) expect(probe.text).not.toContain(secret);
    const read = await (await platform.app.request('/v1/functions/assets')).text();
    expect(read).not.toContain(TEST_CREDENTIALS.secretAccessKey);
    expect(JSON.parse(read).bindings.buckets).toEqual([{ name: 'ASSETS', bucket, prefix: 'tenant-a/' }]);
    const metrics = await (await platform.app.request('/metrics')).text();
    expect(metrics).not.toContain(TEST_CREDENTIALS.secretAccessKey);
  });
});

describe('S3 failures reach the function as clear codes', () => {
  it('ERR_S3_ACCESS_DENIED for refused credentials, ERR_S3_UNAVAILABLE for a store that does not answer', async () => {
    const bad = await withPlatform({ userBuckets: { buckets: [bucket], endpoint, credentials: { accessKeyId: 'tributary', secretAccessKey: 'wrong-secret' } }, autoscaleIntervalMs: 0, hosts: 1 });
    const down = await withPlatform({ userBuckets: { buckets: [bucket], endpoint: `http://127.0.0.1:${await freePort()}`, credentials: TEST_CREDENTIALS }, autoscaleIntervalMs: 0, hosts: 1 });
    try {
      expect((await put('assets', { js: SCENARIOS, bindings: { ASSETS: { bucket } } }, bad)).status).toBe(201);
      expect((await put('assets', { js: SCENARIOS, bindings: { ASSETS: { bucket } } }, down)).status).toBe(201);
      const denied = await call('/error', undefined, 'assets', bad);
      expect(denied).toMatchObject({ name: 'TypeError', code: 'ERR_S3_ACCESS_DENIED' });
      expect(denied.message).not.toContain('wrong-secret');
      const unavailable = await call('/error', undefined, 'assets', down);
      expect(unavailable).toMatchObject({ name: 'TypeError', code: 'ERR_S3_UNAVAILABLE' });
    } finally {
      await bad.cleanup();
      await down.cleanup();
    }
  }, 120_000);

  it('a store that never answers: the S3 request is abandoned at the invocation deadline, not after the SDK timeout', async () => {
    const sockets: Socket[] = [];
    const closed: number[] = [];
    const hung = createServer((socket) => {
      sockets.push(socket);
      socket.resume(); // read (and drop) the request, so the client's FIN is seen
      socket.on('close', () => closed.push(Date.now()));
    });
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const port = (hung.address() as { port: number }).port;
    const p = await withPlatform({ userBuckets: { buckets: [bucket], endpoint: `http://127.0.0.1:${port}`, credentials: TEST_CREDENTIALS }, autoscaleIntervalMs: 0, hosts: 1 });
    try {
      const res = await p.app.request('/v1/functions/slowstore?timeoutMs=500', {
        method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ js: SCENARIOS, bindings: { ASSETS: { bucket } } }),
      });
      expect(res.status).toBe(201);
      const started = Date.now();
      const invoked = await p.app.request('/v1/invoke/slowstore/error');
      expect(invoked.status).toBe(504);
      expect((await json(invoked)).error.code).toBe('ERR_FN_TIMEOUT');
      // The control plane drops the request at the deadline; the SDK alone would wait 15 s.
      await waitFor(() => sockets.length > 0 && closed.length === sockets.length, 8_000, 'the S3 connection to be closed');
      expect(Math.max(...closed) - started).toBeLessThan(8_000);
    } finally {
      await p.cleanup();
      for (const socket of sockets) socket.destroy();
      hung.close();
    }
  }, 60_000);

  it('bytes in flight on the control plane are bounded: beyond, ERR_OVERLOADED', async () => {
    const sockets: Socket[] = [];
    const hung = createServer((socket) => {
      sockets.push(socket);
      socket.resume();
    });
    await new Promise<void>((r) => hung.listen(0, '127.0.0.1', r));
    const dir = tempDir();
    const id = '00000000-0000-4000-8000-000000000000';
    writeFileSync(join(dir, `${id}.json`), JSON.stringify({ vars: {}, secrets: {}, buckets: { A: { bucket, prefix: '' } } }));
    const calls = new BucketCalls({
      s3: { endpoint: `http://127.0.0.1:${(hung.address() as { port: number }).port}`, credentials: TEST_CREDENTIALS },
      allowed: [bucket], bindingsPath: (b) => join(dir, `${b}.json`), maxInflightBytes: 1024 * 1024,
    });
    try {
      const value = new Uint8Array(600 * 1024);
      const first = calls.call(id, 'A', 'put', ['a', value], { maxBytes: value.byteLength, timeoutMs: 1500 });
      const second = await calls.call(id, 'A', 'put', ['b', value], { maxBytes: value.byteLength, timeoutMs: 1500 });
      expect(second).toMatchObject({ ok: false, error: { code: 'ERR_OVERLOADED' } });
      expect(await first).toMatchObject({ ok: false, error: { code: 'ERR_FN_TIMEOUT' } });
      // Released once the first call ended.
      const third = await calls.call(id, 'A', 'put', ['c', value], { maxBytes: value.byteLength, timeoutMs: 300 });
      expect(third).toMatchObject({ ok: false, error: { code: 'ERR_FN_TIMEOUT' } });
    } finally {
      calls.close();
      for (const socket of sockets) socket.destroy();
      hung.close();
    }
  }, 30_000);
});
