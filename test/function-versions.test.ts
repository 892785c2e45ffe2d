/**
 * Versions of a function: at most MAX_VERSIONS_PER_FUNCTION kept (older rows pruned, their code
 * files deleted once no remaining version uses the bytes), and the `cpuLimitMs` budget persisted
 * with each version, including in databases written before the column existed.
 */
import { existsSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPlatform } from '../api/platform.ts';
import { FunctionRegistry } from '../runtime/function-registry.ts';
import { MAX_CPU_LIMIT_MS, MAX_VERSIONS_PER_FUNCTION } from '../runtime/limits.ts';
import { deploy, json, tempDir, withPlatform } from './fixtures/platform.ts';

const says = (text: string) => `export default { fetch() { return new Response(${JSON.stringify(text)}); } };`;

let platform: Awaited<ReturnType<typeof withPlatform>>;
beforeAll(async () => {
  platform = await withPlatform({ hosts: 1, warmSlots: 2 });
});
afterAll(() => platform.cleanup());

describe('version pruning', () => {
  const deployed: Array<{ version: number; sha256: string }> = [];
  beforeAll(async () => {
    // v2's code is also another function's: it must survive v2's pruning.
    expect((await deploy(platform, 'sharer', says('v2'))).status).toBe(201);
    for (let i = 1; i <= MAX_VERSIONS_PER_FUNCTION + 2; i++) {
      const { status, body } = await deploy(platform, 'many', says(`v${i}`));
      expect(status).toBe(201);
      deployed.push({ version: body.version, sha256: body.sha256 });
    }
  });

  it(`keeps the newest ${MAX_VERSIONS_PER_FUNCTION} of ${MAX_VERSIONS_PER_FUNCTION + 2} versions`, async () => {
    const show = await json(platform.app.request('/v1/functions/many'));
    expect(show.versions.map((v: { version: number }) => v.version)).toEqual(Array.from({ length: MAX_VERSIONS_PER_FUNCTION }, (_, i) => i + 3));
  });

  it('serves the latest version', async () => {
    expect(await (await platform.app.request('/v1/invoke/many')).text()).toBe(`v${MAX_VERSIONS_PER_FUNCTION + 2}`);
  });

  it("deletes a pruned version's code file when nothing else uses it", () => {
    expect(existsSync(platform.functions.registry.codePath(deployed[0].sha256, 'js'))).toBe(false);
  });

  it("keeps a pruned version's code file while another version uses the same bytes", async () => {
    expect(existsSync(platform.functions.registry.codePath(deployed[1].sha256, 'js'))).toBe(true);
    expect(await (await platform.app.request('/v1/invoke/sharer')).text()).toBe('v2');
  });

  it('keeps the code files of the kept versions', () => {
    for (const { sha256 } of deployed.slice(2)) expect(existsSync(platform.functions.registry.codePath(sha256, 'js'))).toBe(true);
  });

  it('numbers the next version after the newest, never reusing a pruned number', async () => {
    const { body } = await deploy(platform, 'many', says('next'));
    expect(body.version).toBe(MAX_VERSIONS_PER_FUNCTION + 3);
  });

  it('prunes per maxVersionsPerFunction when the platform sets it', async () => {
    const small = await withPlatform({ hosts: 1, warmSlots: 1, maxVersionsPerFunction: 2 });
    try {
      for (const text of ['a', 'b', 'c']) await deploy(small, 'two', says(text));
      const show = await json(small.app.request('/v1/functions/two'));
      expect(show.versions.map((v: { version: number }) => v.version)).toEqual([2, 3]);
    } finally {
      await small.cleanup();
    }
  });
});

describe('cpuLimitMs', () => {
  it('defaults to the timeout, shown in the version JSON', async () => {
    const { body } = await deploy(platform, 'cpu-default', says('x'), '?timeoutMs=500');
    expect(body).toMatchObject({ timeoutMs: 500, cpuLimitMs: 500 });
  });

  it(`defaults to MAX_CPU_LIMIT_MS (${MAX_CPU_LIMIT_MS}) for longer timeouts`, async () => {
    const { body } = await deploy(platform, 'cpu-long', says('x'), '?timeoutMs=60000');
    expect(body.cpuLimitMs).toBe(MAX_CPU_LIMIT_MS);
  });

  it('is taken from the query', async () => {
    const { status, body } = await deploy(platform, 'cpu-set', says('x'), '?timeoutMs=500&cpuLimitMs=120');
    expect(status).toBe(201);
    expect(body.cpuLimitMs).toBe(120);
    expect((await json(platform.app.request('/v1/functions/cpu-set'))).versions[0].cpuLimitMs).toBe(120);
  });

  for (const [query, why] of [
    ['?timeoutMs=500&cpuLimitMs=501', 'over the timeout'],
    ['?timeoutMs=60000&cpuLimitMs=30001', 'over MAX_CPU_LIMIT_MS'],
    ['?cpuLimitMs=0', 'zero'],
    ['?cpuLimitMs=1e2', 'not plain digits'],
  ]) {
    it(`is refused with 400 ERR_BAD_REQUEST when ${why}`, async () => {
      const { status, body } = await deploy(platform, 'cpu-bad', says('x'), query);
      expect(status).toBe(400);
      expect(body.error.code).toBe('ERR_BAD_REQUEST');
    });
  }

  it('persists across a restart', async () => {
    const dataDir = tempDir();
    try {
      const first = await startPlatform({ dataDir, hosts: 1, warmSlots: 1 });
      await deploy(first, 'kept', says('x'), '?timeoutMs=800&cpuLimitMs=77');
      await first.close();
      const second = await startPlatform({ dataDir, hosts: 1, warmSlots: 1 });
      try {
        expect((await json(second.app.request('/v1/functions/kept'))).cpuLimitMs).toBe(77);
      } finally {
        await second.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('is added to a functions.db written before it existed; old rows read as cpuLimitOf()', () => {
    const dataDir = tempDir();
    try {
      const old = new DatabaseSync(join(dataDir, 'functions.db'));
      old.exec(`CREATE TABLE function_versions (
        name TEXT NOT NULL, version INTEGER NOT NULL, kind TEXT NOT NULL, sha256 TEXT NOT NULL, created_at TEXT NOT NULL,
        memory_limit_mb INTEGER NOT NULL, timeout_ms INTEGER NOT NULL, deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (name, version));
        INSERT INTO function_versions VALUES ('legacy', 1, 'js', '${'0'.repeat(64)}', '2024-01-01T00:00:00.000Z', 64, 45000, 0);`);
      old.close();
      const registry = new FunctionRegistry(dataDir);
      try {
        expect(registry.get('legacy')).toMatchObject({ timeoutMs: 45000, cpuLimitMs: MAX_CPU_LIMIT_MS });
        const next = registry.addVersion('legacy', 'js', '1'.repeat(64), { memoryLimitMb: 64, timeoutMs: 1000, cpuLimitMs: 10 });
        expect(next).toMatchObject({ version: 2, cpuLimitMs: 10 });
        expect(registry.get('legacy')?.cpuLimitMs).toBe(10);
      } finally {
        registry.close();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
