/**
 * Vars, secrets and bucket bindings travel with a deploy through the shared bucket: every control
 * plane with the operator's secrets key serves the same `env`; the bucket never holds a secret in
 * plaintext (read back with an S3 client of the test's own); a control plane with another key or
 * none reports the version and refuses its invokes; without a key a deploy with secrets writes
 * nothing; pruned and deleted versions take their bindings objects with them. Ends with two real
 * `tributary serve` processes given --secrets-key-file.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPlatform, type Platform, type PlatformOptions } from '../api/platform.ts';
import { deploymentsDir } from '../connectors/s3/shared-deployments.ts';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { json, tempDir, waitFor, withPlatform } from './fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket } from './fixtures/s3.ts';
import { ServerProcess } from './fixtures/server-process.ts';

type TestPlatform = Awaited<ReturnType<typeof withPlatform>>;
let s3: Awaited<ReturnType<typeof createBucket>>;
let reader: S3Client;
let keyFile: string;
let a: TestPlatform;
let b: TestPlatform;
const dirs: string[] = [];

const PROPAGATION_MS = 4000;
const SECRET = `sk_live_${randomUUID()}`;
const envEcho = 'export default { fetch(req, env) { return Response.json({ GREETING: env.GREETING ?? null, API_KEY: env.API_KEY ?? null, has: typeof env.ASSETS }); } };';

function newKeyFile(): string {
  const dir = tempDir('tributary-key-');
  dirs.push(dir);
  const path = join(dir, 'secrets.key');
  writeFileSync(path, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 });
  return path;
}

function platformOn(options: PlatformOptions = {}): Promise<TestPlatform> {
  return withPlatform({ s3, hosts: 1, autoscaleIntervalMs: 0, ...options });
}

function deployEnvelope(p: Platform, name: string, envelope: Record<string, unknown>) {
  return p.app.request(`/v1/functions/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ js: envEcho, ...envelope }) });
}

async function env(p: Platform, name: string): Promise<string> {
  const res = await p.app.request(`/v1/invoke/${name}`);
  return `${res.status} ${await res.text()}`;
}

/** Every object in the bucket, read with the test's own client: key → text. */
async function bucketObjects(): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let token: string | undefined;
  do {
    const page = await reader.send(new ListObjectsV2Command({ Bucket: s3.bucket, ContinuationToken: token }));
    for (const { Key } of page.Contents ?? []) {
      const object = await reader.send(new GetObjectCommand({ Bucket: s3.bucket, Key }));
      out.set(Key!, await object.Body!.transformToString());
    }
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  return out;
}

const bindingKeys = async (name: string) => [...(await bucketObjects()).keys()].filter((key) => key.startsWith(`deploy/bindings/${name}/`));

beforeAll(async () => {
  await ensureService('s3');
  s3 = await createBucket();
  reader = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: TEST_CREDENTIALS });
  keyFile = newKeyFile();
  [a, b] = await Promise.all([platformOn({ secretsKeyFile: keyFile }), platformOn({ secretsKeyFile: keyFile })]);
}, SERVICE_START_TIMEOUT_MS);
afterAll(async () => {
  await a?.cleanup();
  await b?.cleanup();
  reader?.destroy();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('bindings through the shared bucket', () => {
  it('a version deployed with vars and secrets on one control plane has the same env on the other', async () => {
    const res = await deployEnvelope(a, 'greeter', { vars: { GREETING: 'hello' }, secrets: { API_KEY: SECRET } });
    expect(res.status).toBe(201);
    const expected = `200 ${JSON.stringify({ GREETING: 'hello', API_KEY: SECRET, has: 'undefined' })}`;
    expect(await env(a, 'greeter')).toBe(expected);
    expect(await env(b, 'greeter')).toBe(expected);

    // Reads on either show names only.
    for (const p of [a, b]) {
      const read = await json(p.app.request('/v1/functions/greeter'));
      expect(read.bindings).toEqual({ vars: ['GREETING'], secrets: ['API_KEY'] });
      expect(JSON.stringify(read)).not.toContain(SECRET);
      expect(JSON.stringify(await json(p.app.request('/v1/functions')))).not.toContain(SECRET);
    }

    // B's local copy of the bindings is a file of its own, readable by its user only.
    const bindingsDir = join(deploymentsDir(b.dataDir, { name: s3.bucket, where: s3.endpoint } as never), 'bindings');
    const files = readdirSync(bindingsDir);
    expect(files.length).toBe(1);
    expect(statSync(join(bindingsDir, files[0])).mode & 0o777).toBe(0o600);
  }, 30_000);

  it('never holds a secret in plaintext in the bucket', async () => {
    const objects = await bucketObjects();
    const [key] = [...objects.keys()].filter((k) => k.startsWith('deploy/bindings/greeter/'));
    expect(key).toMatch(/^deploy\/bindings\/greeter\/000000000001-[0-9a-f-]{36}\.json$/);
    for (const [, text] of objects) {
      expect(text).not.toContain(SECRET);
      expect(text).not.toContain(Buffer.from(SECRET).toString('base64'));
      expect(text).not.toContain(Buffer.from(SECRET).toString('hex'));
    }
    const stored = JSON.parse(objects.get(key)!);
    expect(stored.vars).toEqual({ GREETING: 'hello' });
    expect(stored.secrets).toMatchObject({ alg: 'AES-256-GCM', keyId: expect.stringMatching(/^[0-9a-f]{16}$/) });
    expect(Buffer.from(stored.secrets.iv, 'base64').length).toBe(12);
    // The event names the object and the binding names, nothing more.
    const event = [...objects].find(([k, text]) => k.startsWith('deploy/log/') && text.includes('"greeter"'))![1];
    expect(JSON.parse(event).bindings).toEqual({ key, names: { vars: ['GREETING'], secrets: ['API_KEY'] } });
  }, 30_000);

  it('bucket bindings travel too', async () => {
    // Only the names and where they point travel; the binding needs the bucket allowed on each control plane.
    const c = await platformOn({ secretsKeyFile: keyFile, userBuckets: { buckets: ['tenant-assets'], endpoint: s3.endpoint, credentials: s3.credentials, region: s3.region } });
    try {
      const res = await deployEnvelope(c, 'with-bucket', { vars: { GREETING: 'b' }, bindings: { ASSETS: { bucket: 'tenant-assets', prefix: 'p/' } } });
      expect(res.status).toBe(201);
      await waitFor(async () => (await a.app.request('/v1/functions/with-bucket')).status === 200, PROPAGATION_MS, 'A to apply it');
      expect((await json(a.app.request('/v1/functions/with-bucket'))).bindings).toEqual({ vars: ['GREETING'], secrets: [], buckets: [{ name: 'ASSETS', bucket: 'tenant-assets', prefix: 'p/' }] });
      expect(await env(a, 'with-bucket')).toBe(`200 ${JSON.stringify({ GREETING: 'b', API_KEY: null, has: 'object' })}`);
    } finally {
      await c.cleanup();
    }
  }, 30_000);

  it('a control plane with another key reports the version and refuses its invokes; with the right key after a restart it serves it', async () => {
    const dataDir = tempDir();
    dirs.push(dataDir);
    const otherKey = newKeyFile();
    const wrong = await startPlatform({ s3, hosts: 1, autoscaleIntervalMs: 0, dataDir, secretsKeyFile: otherKey });
    try {
      const read = await json(wrong.app.request('/v1/functions/greeter'));
      expect(read.version).toBe(1);
      expect(read.bindings).toEqual({ vars: ['GREETING'], secrets: ['API_KEY'] });
      expect(read.bindingsError.code).toBe('ERR_SECRETS_UNAVAILABLE');
      expect(read.bindingsError.message).toMatch(/sealed with key [0-9a-f]{16}, this control plane has key [0-9a-f]{16}/);
      const res = await wrong.app.request('/v1/invoke/greeter');
      expect(res.status).toBe(503);
      const body = await res.text();
      expect(JSON.parse(body).error.code).toBe('ERR_SECRETS_UNAVAILABLE');
      expect(body).not.toContain(SECRET);
      // Hosts do not serve it themselves: their routing table leaves it to the control plane, which answers the error.
      expect(wrong.functions.routeTable().map(([name]) => name)).not.toContain('greeter');
      // What needs no key is served as everywhere.
      expect(await env(wrong, 'with-bucket')).toBe(`200 ${JSON.stringify({ GREETING: 'b', API_KEY: null, has: 'object' })}`);
    } finally {
      await wrong.close();
    }
    const fixed = await startPlatform({ s3, hosts: 1, autoscaleIntervalMs: 0, dataDir, secretsKeyFile: keyFile });
    try {
      expect((await json(fixed.app.request('/v1/functions/greeter'))).bindingsError).toBeUndefined();
      expect(await env(fixed, 'greeter')).toBe(`200 ${JSON.stringify({ GREETING: 'hello', API_KEY: SECRET, has: 'undefined' })}`);
    } finally {
      await fixed.close();
    }
  }, 60_000);

  it('without a key, a deploy with secrets is refused with ERR_SECRETS_KEY_REQUIRED and writes nothing; vars still travel', async () => {
    const keyless = await platformOn({});
    try {
      const before = [...(await bucketObjects()).keys()].sort();
      const localBindings = join(deploymentsDir(keyless.dataDir, { name: s3.bucket, where: s3.endpoint } as never), 'bindings');
      const localBefore = readdirSync(localBindings).sort();
      const res = await deployEnvelope(keyless, 'keyless', { vars: { GREETING: 'x' }, secrets: { API_KEY: SECRET } });
      expect(res.status).toBe(500);
      expect((await json(res)).error.code).toBe('ERR_SECRETS_KEY_REQUIRED');
      expect([...(await bucketObjects()).keys()].sort()).toEqual(before);
      expect((await keyless.app.request('/v1/functions/keyless')).status).toBe(404);
      expect(readdirSync(localBindings).sort()).toEqual(localBefore);

      // A version with secrets from elsewhere: reported, refused here.
      const refused = await keyless.app.request('/v1/invoke/greeter');
      expect(refused.status).toBe(503);
      expect((await json(refused)).error.message).toContain('has no secrets key');

      expect((await deployEnvelope(keyless, 'keyless', { vars: { GREETING: 'vars need no key' } })).status).toBe(201);
      await waitFor(async () => (await env(a, 'keyless')).includes('vars need no key'), PROPAGATION_MS, 'A to serve it');
    } finally {
      await keyless.cleanup();
    }
  }, 30_000);

  it('pruned versions and deleted functions take their bindings objects with them', async () => {
    for (let i = 1; i <= 12; i++) expect((await deployEnvelope(a, 'churn', { secrets: { API_KEY: `${SECRET}-${i}` } })).status).toBe(201);
    // The newest 10 versions are kept, and only their objects.
    const versions = (await bindingKeys('churn')).map((key) => Number(/\/(\d{12})-/.exec(key)![1]));
    expect(versions.sort((x, y) => x - y)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    await waitFor(async () => (await env(b, 'churn')).includes(`${SECRET}-12`), PROPAGATION_MS, 'B to serve v12');

    expect((await b.app.request('/v1/functions/churn', { method: 'DELETE' })).status).toBe(204);
    expect(await bindingKeys('churn')).toEqual([]);
    await waitFor(async () => (await a.app.request('/v1/invoke/churn')).status === 404, PROPAGATION_MS, 'A to forget it');
    // A redeploy after the delete numbers on, with an object of its own.
    expect((await deployEnvelope(a, 'churn', { secrets: { API_KEY: 'again' } })).status).toBe(201);
    expect((await bindingKeys('churn')).map((key) => /\/(\d{12})-/.exec(key)![1])).toEqual(['000000000013']);
    await waitFor(async () => (await env(b, 'churn')).includes('again'), PROPAGATION_MS, 'B to serve v13');
  }, 60_000);
});

describe('concurrent deploys with bindings', () => {
  it('seal each version for the number it got; a lost race leaves no object behind', async () => {
    const deploys = Array.from({ length: 8 }, (_, i) => deployEnvelope(i % 2 ? a : b, 'raced-secrets', { secrets: { API_KEY: `${SECRET}-r${i}` } }));
    const versions = await Promise.all(deploys.map(async (res) => (await json(res)).version as number));
    expect(versions.sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const keys = await bindingKeys('raced-secrets');
    expect(keys.map((key) => Number(/\/(\d{12})-/.exec(key)![1])).sort((x, y) => x - y)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await waitFor(async () => (await env(a, 'raced-secrets')) === (await env(b, 'raced-secrets')), PROPAGATION_MS, 'A and B to serve the same latest version');
    expect(await env(a, 'raced-secrets')).toMatch(new RegExp(`^200 .*${SECRET}-r\\d`));
  }, 60_000);
});

describe('two tributary serve processes with --secrets-key-file', () => {
  const servers: ServerProcess[] = [];
  afterAll(async () => {
    for (const server of servers) await server.stop();
  });

  it('a secret deployed on one is served by the other, and neither prints it', async () => {
    const bucket = await createBucket();
    Object.assign(process.env, { AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' });
    for (let i = 0; i < 2; i++) {
      const dir = tempDir();
      dirs.push(dir);
      servers.push(new ServerProcess(dir, ['--hosts', '1', '--s3-endpoint', bucket.endpoint, '--s3-bucket', bucket.bucket, '--secrets-key-file', keyFile]));
    }
    await Promise.all(servers.map((s) => s.start()));
    const [first, second] = servers;
    const put = await fetch(`${first.url}/v1/functions/shared-secret`, {
      method: 'PUT',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ js: envEcho, vars: { GREETING: 'hi' }, secrets: { API_KEY: SECRET } }),
    });
    expect(put.status).toBe(201);
    const res = await fetch(`${second.url}/v1/invoke/shared-secret`);
    expect(`${res.status} ${await res.text()}`).toBe(`200 ${JSON.stringify({ GREETING: 'hi', API_KEY: SECRET, has: 'undefined' })}`);
    // Served again once hosts route it themselves (the routing table reached them).
    const again = await fetch(`${second.url}/v1/invoke/shared-secret`);
    expect(await again.text()).toContain(SECRET);
    for (const server of servers) expect(server.output).not.toContain(SECRET);
  }, 60_000);
});
