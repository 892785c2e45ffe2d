import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPlatform } from '../api/platform.ts';
import { MAX_BODY_BYTES } from '../runtime/limits.ts';
import { deploy, tempDir, withPlatform, json } from './fixtures/platform.ts';

const HELLO = `export default { fetch(req) { return new Response('hi ' + new URL(req.url).searchParams.get('n')); } };`;

describe('function management API', () => {
  let platform: Awaited<ReturnType<typeof withPlatform>>;
  beforeAll(async () => {
    platform = await withPlatform();
  });
  afterAll(() => platform.cleanup());

  it('uploads a JS module and answers 201 with its identity', async () => {
    const { status, body } = await deploy(platform, 'hello', HELLO);
    expect(status).toBe(201);
    expect(body).toMatchObject({ name: 'hello', version: 1, kind: 'js', memoryLimitMb: 128, timeoutMs: 1000 });
    expect(body.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(Date.parse(body.createdAt)).not.toBeNaN();
  });

  it('makes a new version on re-upload and serves the newest', async () => {
    await deploy(platform, 'versioned', `export default { fetch() { return new Response('one'); } };`);
    const { body } = await deploy(platform, 'versioned', `export default { fetch() { return new Response('two'); } };`);
    expect(body.version).toBe(2);
    const res = await platform.app.request('/v1/invoke/versioned');
    expect(await res.text()).toBe('two');
    const show = await json(platform.app.request('/v1/functions/versioned'));
    expect(show.versions.map((v: { version: number }) => v.version)).toEqual([1, 2]);
  });

  it('accepts limits as query parameters and rejects out-of-range ones', async () => {
    const ok = await deploy(platform, 'limited', HELLO, '?memoryLimitMb=64&timeoutMs=250');
    expect(ok.body).toMatchObject({ memoryLimitMb: 64, timeoutMs: 250 });
    const bad = await deploy(platform, 'limited', HELLO, '?timeoutMs=-5');
    expect(bad.status).toBe(400);
    expect(bad.body.error.code).toBe('ERR_BAD_REQUEST');
  });

  it('lists, shows and deletes functions', async () => {
    await deploy(platform, 'doomed', HELLO);
    const list = await json(platform.app.request('/v1/functions'));
    expect(list.functions.map((f: { name: string }) => f.name)).toContain('doomed');
    expect((await platform.app.request('/v1/functions/doomed', { method: 'DELETE' })).status).toBe(204);
    const gone = await platform.app.request('/v1/functions/doomed');
    expect(gone.status).toBe(404);
    expect((await json(gone)).error.code).toBe('ERR_NOT_FOUND');
    const invoke = await platform.app.request('/v1/invoke/doomed');
    expect(invoke.status).toBe(404);
    expect((await platform.app.request('/v1/functions/doomed', { method: 'DELETE' })).status).toBe(404);
  });

  it('reports a syntax error as ERR_COMPILE with line and column', async () => {
    const { status, body } = await deploy(platform, 'broken', 'export default {\n  fetch() { return 1 +; }\n};');
    expect(status).toBe(400);
    expect(body.error.code).toBe('ERR_COMPILE');
    expect(body.error).toMatchObject({ line: 2, column: expect.any(Number) });
    expect(body.error.message).toMatch(/line 2/);
  });

  it('rejects modules with imports or without handlers', async () => {
    const imports = await deploy(platform, 'imports', `import fs from 'node:fs'; export default { fetch() {} };`);
    expect(imports.body.error.code).toBe('ERR_COMPILE');
    expect(imports.body.error.message).toMatch(/node:fs/);
    const empty = await deploy(platform, 'empty', `export default {};`);
    expect(empty.body.error.code).toBe('ERR_COMPILE');
    const throws = await deploy(platform, 'throws', `throw new Error('top level boom'); export default { fetch() {} };`);
    expect(throws.body.error).toMatchObject({ code: 'ERR_COMPILE' });
    expect(throws.body.error.message).toMatch(/top level boom/);
  });

  it('accepts a module with only a process handler', async () => {
    const { status, body } = await deploy(platform, 'streamonly', `export default { process(r) { return r.value; } };`);
    expect(status).toBe(201);
    expect(body.kind).toBe('js');
  });

  it('rejects invalid WASM with ERR_WASM_INVALID', async () => {
    const res = await platform.app.request('/v1/functions/badwasm', {
      method: 'PUT',
      headers: { 'content-type': 'application/wasm' },
      body: new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 99, 1, 2]),
    });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe('ERR_WASM_INVALID');
  });

  it('rejects a WASM module without the byte ABI', async () => {
    const { compileWat } = await import('../scripts/build-wasm.ts');
    const res = await platform.app.request('/v1/functions/noabi', {
      method: 'PUT',
      headers: { 'content-type': 'application/wasm' },
      body: await compileWat('(module (func (export "f")))'),
    });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe('ERR_WASM_INVALID');
  });

  it('answers 413 ERR_TOO_LARGE for an upload over the body limit', async () => {
    const res = await platform.app.request('/v1/functions/huge', {
      method: 'PUT',
      headers: { 'content-type': 'application/javascript', 'content-length': String(MAX_BODY_BYTES + 1) },
      body: 'x'.repeat(MAX_BODY_BYTES + 1),
    });
    expect(res.status).toBe(413);
    expect((await json(res)).error.code).toBe('ERR_TOO_LARGE');
  });

  it('rejects unsupported content types and bad names', async () => {
    const type = await platform.app.request('/v1/functions/x', { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: HELLO });
    expect(type.status).toBe(400);
    expect((await json(type)).error.code).toBe('ERR_BAD_REQUEST');
    const name = await deploy(platform, '-bad', HELLO);
    expect(name.body.error.code).toBe('ERR_BAD_REQUEST');
  });

  it('answers unknown routes with a JSON 404', async () => {
    const res = await platform.app.request('/nope');
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe('ERR_NOT_FOUND');
  });
});

describe('persistence and auth', () => {
  it('keeps functions and versions across a restart of the platform', async () => {
    const dataDir = tempDir();
    const first = await startPlatform({ dataDir, hosts: 1, warmSlots: 1 });
    await deploy(first, 'durable', HELLO);
    await deploy(first, 'durable', HELLO.replace('hi ', 'hello '));
    await first.close();
    const second = await startPlatform({ dataDir, hosts: 1, warmSlots: 1 });
    try {
      const show = await json(second.app.request('/v1/functions/durable'));
      expect(show.version).toBe(2);
      const res = await second.app.request('/v1/invoke/durable?n=again');
      expect(await res.text()).toBe('hello again');
    } finally {
      await second.close();
    }
  });

  it('requires the bearer token on /v1/functions when one is set, but not on invoke', async () => {
    const platform = await withPlatform({ hosts: 1, warmSlots: 1, token: 's3cret' });
    try {
      const missing = await platform.app.request('/v1/functions');
      expect(missing.status).toBe(401);
      expect((await json(missing)).error.code).toBe('ERR_UNAUTHORIZED');
      const wrong = await platform.app.request('/v1/functions', { headers: { authorization: 'Bearer nope' } });
      expect(wrong.status).toBe(401);
      const put = await platform.app.request('/v1/functions/authed', {
        method: 'PUT',
        headers: { authorization: 'Bearer s3cret', 'content-type': 'text/javascript' },
        body: HELLO,
      });
      expect(put.status).toBe(201);
      expect((await platform.app.request('/v1/invoke/authed?n=x')).status).toBe(200);
    } finally {
      await platform.cleanup();
    }
  });

  it('serves the example WASM function compiled from its WAT source', async () => {
    const platform = await withPlatform({ hosts: 1, warmSlots: 1 });
    try {
      const wasm = readFileSync(new URL('../functions/build/reverse.wasm', import.meta.url));
      const put = await platform.app.request('/v1/functions/reverse', { method: 'PUT', headers: { 'content-type': 'application/wasm' }, body: wasm });
      expect(put.status).toBe(201);
      expect((await json(put)).kind).toBe('wasm');
      const res = await platform.app.request('/v1/invoke/reverse', { method: 'POST', body: 'stressed' });
      expect(res.status).toBe(200);
      expect(await res.text()).toBe('desserts');
    } finally {
      await platform.cleanup();
    }
  });
});
