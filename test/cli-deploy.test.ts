/**
 * `tributary deploy` as a user runs it (the real CLI, as a child process, against a started
 * server): a TypeScript entry with imports is bundled with esbuild, tributary.json supplies the
 * name, vars and limits, --var/--secret add bindings (a bare --secret NAME reads $NAME),
 * nodejs_compat provides node:buffer, and other node: imports fail with a clear message; a
 * wrangler.toml is read as wrangler reads it, or refused key by key.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../api/server.ts';
import { fromWrangler } from '../cli/project-config.ts';
import { tempDir } from './fixtures/platform.ts';

const CLI = join(import.meta.dirname, '..', 'cli', 'tributary.ts');
let server: Awaited<ReturnType<typeof startServer>>;
let dataDir: string;
let project: string;

beforeAll(async () => {
  dataDir = tempDir();
  project = tempDir('tributary-project-');
  // Bucket names only: deploys check bindings against them without calling S3.
  server = await startServer({ port: 0, dataDir, hosts: 1, userBuckets: { buckets: ['cli-assets', 'cli-exports'] } });
  mkdirSync(join(project, 'src'));
  writeFileSync(join(project, 'src', 'greet.ts'), `export function greet(name: string, greeting: string): string { return \`\${greeting}, \${name}!\`; }\n`);
  writeFileSync(
    join(project, 'src', 'index.ts'),
    `import { greet } from './greet';
interface Env { GREETING: string; TOKEN: string; EXTRA?: string }
export default {
  fetch(request: Request, env: Env): Response {
    const name = new URL(request.url).searchParams.get('name') ?? 'world';
    return Response.json({ text: greet(name, env.GREETING), tokenLength: env.TOKEN.length, extra: env.EXTRA ?? null });
  },
};
`,
  );
  writeFileSync(
    join(project, 'src', 'buffer.ts'),
    `import { Buffer } from 'node:buffer';
export default { fetch() { return new Response(Buffer.from('hello').toString('base64')); } };
`,
  );
  writeFileSync(join(project, 'src', 'fs.ts'), `import { readFileSync } from 'node:fs';\nexport default { fetch() { return new Response(String(readFileSync)); } };\n`);
  writeFileSync(join(project, 'tributary.json'), JSON.stringify({ name: 'greeter', main: 'src/index.ts', vars: { GREETING: 'Hello' }, timeoutMs: 2000 }));
}, 60_000);
afterAll(async () => {
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(project, { recursive: true, force: true });
});

async function cli(args: string[], env: Record<string, string> = {}, cwd = project) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--no-node-snapshot', CLI, ...args, '--url', server.url], {
      cwd,
      timeout: 60_000,
      env: { PATH: process.env.PATH ?? '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

describe('tributary deploy', () => {
  it('bundles the TypeScript entry from tributary.json with its vars, --var and --secret', async () => {
    const out = await cli(['deploy', '--var', 'EXTRA=flag', '--secret', 'TOKEN'], { TOKEN: 'from-the-environment' });
    expect(out.code, out.stderr).toBe(0);
    const deployed = JSON.parse(out.stdout);
    expect(deployed).toMatchObject({ name: 'greeter', timeoutMs: 2000, bindings: { vars: ['EXTRA', 'GREETING'], secrets: ['TOKEN'] } });
    expect(out.stdout).not.toContain('from-the-environment');
    const res = await fetch(`${server.url}/v1/invoke/greeter?name=Ada`);
    expect(await res.json()).toEqual({ text: 'Hello, Ada!', tokenLength: 'from-the-environment'.length, extra: 'flag' });
  });

  it('--nodejs-compat provides node:buffer; without it, or for other node: modules, deploy fails clearly', async () => {
    const without = await cli(['deploy', 'src/buffer.ts', '--name', 'buf']);
    expect(without.code).not.toBe(0);
    expect(without.stderr).toMatch(/cannot import 'node:buffer'.*--nodejs-compat/);
    const compat = await cli(['deploy', 'src/buffer.ts', '--name', 'buf', '--nodejs-compat']);
    expect(compat.code, compat.stderr).toBe(0);
    expect(await (await fetch(`${server.url}/v1/invoke/buf`)).text()).toBe('aGVsbG8=');
    const fs = await cli(['deploy', 'src/fs.ts', '--name', 'fs', '--nodejs-compat']);
    expect(fs.code).not.toBe(0);
    expect(fs.stderr).toMatch(/cannot import 'node:fs': only node:buffer is provided/);
  });

  it('refuses secrets in tributary.json and a --secret whose variable is unset', async () => {
    const config = join(project, 'with-secrets.json');
    writeFileSync(config, JSON.stringify({ main: 'src/index.ts', secrets: { TOKEN: 'x' } }));
    const inFile = await cli(['deploy', '--config', config]);
    expect(inFile.code).not.toBe(0);
    expect(inFile.stderr).toMatch(/secrets do not belong in the config file/);
    const unset = await cli(['deploy', '--secret', 'NOT_SET_ANYWHERE']);
    expect(unset.code).not.toBe(0);
    expect(unset.stderr).toMatch(/NOT_SET_ANYWHERE is not set/);
  });

  it('binds buckets from --bucket and the "bindings" of tributary.json; an unconfigured bucket is refused', async () => {
    const config = join(project, 'with-buckets.json');
    writeFileSync(config, JSON.stringify({ name: 'bound', main: 'src/index.ts', vars: { GREETING: 'Hi' }, bindings: { EXPORTS: { bucket: 'cli-exports' } } }));
    const out = await cli(['deploy', '--config', config, '--secret', 'TOKEN=t', '--bucket', 'ASSETS=cli-assets/tenant/a']);
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout).bindings.buckets).toEqual([
      { name: 'ASSETS', bucket: 'cli-assets', prefix: 'tenant/a/' },
      { name: 'EXPORTS', bucket: 'cli-exports', prefix: '' },
    ]);
    const refused = await cli(['deploy', '--config', config, '--secret', 'TOKEN=t', '--bucket', 'ASSETS=someone-elses']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/ERR_BAD_REQUEST: bindings.ASSETS: bucket 'someone-elses' is not configured/);
  });
});

describe('tributary deploy with a wrangler.toml', () => {
  it('maps name, main, [vars], compatibility_flags, [[r2_buckets]] and [limits]; secrets come from --secrets-file', async () => {
    const dir = join(project, 'workers-project');
    mkdirSync(join(dir, 'src'), { recursive: true });
    writeFileSync(
      join(dir, 'src', 'worker.ts'),
      `import { Buffer } from 'node:buffer';
export default { fetch(_req: Request, env: { GREETING: string; TOKEN: string; OTHER: string; ASSETS?: object }) {
  return Response.json({ greeting: env.GREETING, token: Buffer.from(env.TOKEN).toString('base64'), other: env.OTHER, assets: typeof env.ASSETS });
} };
`,
    );
    writeFileSync(
      join(dir, 'wrangler.toml'),
      `name = "from-wrangler"
main = "src/worker.ts"
compatibility_date = "2024-09-23"
compatibility_flags = ["nodejs_compat"]
workers_dev = true

[vars]
GREETING = "howdy"

[[r2_buckets]]
binding = "ASSETS"
bucket_name = "cli-assets"

[limits]
cpu_ms = 50
`,
    );
    writeFileSync(join(dir, '.secrets'), '# local secrets\nTOKEN="t0ken"\nexport OTHER=o\n');
    const out = await cli(['deploy', '--config', join(dir, 'wrangler.toml'), '--secrets-file', join(dir, '.secrets')]);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stderr).toContain('compatibility_date is ignored');
    expect(out.stderr).toContain('workers_dev is ignored');
    expect(out.stdout).not.toContain('t0ken');
    expect(JSON.parse(out.stdout)).toMatchObject({
      name: 'from-wrangler',
      cpuLimitMs: 50,
      bindings: { vars: ['GREETING'], secrets: ['OTHER', 'TOKEN'], buckets: [{ name: 'ASSETS', bucket: 'cli-assets', prefix: '' }] },
    });
    const res = await fetch(`${server.url}/v1/invoke/from-wrangler`);
    expect(await res.json()).toEqual({ greeting: 'howdy', token: Buffer.from('t0ken').toString('base64'), other: 'o', assets: 'object' });
  });

  it('finds wrangler.toml in the current directory, and refuses keys that would change behaviour', async () => {
    const dir = join(project, 'kv-project');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'index.js'), 'export default { fetch() { return new Response("kv"); } };\n');
    writeFileSync(join(dir, 'wrangler.toml'), 'name = "kv"\nmain = "index.js"\n\n[[kv_namespaces]]\nbinding = "KV"\nid = "abc"\n');
    const refused = await cli(['deploy'], {}, dir);
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/wrangler.toml: kv_namespaces: KV is not offered/);
    expect((await fetch(`${server.url}/v1/functions/kv`)).status).toBe(404);
    writeFileSync(join(dir, 'tributary.json'), '{}');
    const both = await cli(['deploy'], {}, dir);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/both tributary.json and wrangler.toml are here/);
  });
});

describe('wrangler.toml mapping', () => {
  const wrangler = (text: string) => fromWrangler('wrangler.toml', text);
  it('maps what it supports', () => {
    expect(wrangler('name = "a"\nmain = "b.ts"\nno_bundle = true\ncompatibility_flags = ["nodejs_compat_v2"]\n[vars]\nX = "1"\n')).toEqual({
      config: { name: 'a', main: 'b.ts', noBundle: true, compatibility_flags: ['nodejs_compat'], vars: { X: '1' } },
      warnings: [],
    });
    expect(wrangler('[env.production]\nname = "p"\n').warnings).toEqual(['wrangler.toml: env is ignored (environments: the top-level settings are deployed)']);
    expect(wrangler('[[r2_buckets]]\nbinding = "B"\nbucket_name = "b"\npreview_bucket_name = "p"\n')).toEqual({
      config: { bindings: { B: { bucket: 'b' } } },
      warnings: ['wrangler.toml: r2_buckets[0].preview_bucket_name is ignored (there is one bucket per binding)'],
    });
  });

  it('refuses what it cannot honour, naming the key', () => {
    const cases: Array<[string, RegExp]> = [
      ['name = "a"\nname = "b"\n', /wrangler.toml:2:\d+: not valid TOML/],
      ['[vars]\nN = 1\n', /vars.N: only string vars are supported/],
      ['compatibility_flags = ["streams_enable_constructors"]\n', /unsupported compatibility flag 'streams_enable_constructors'/],
      ['[[r2_buckets]]\nbinding = "B"\n', /r2_buckets\[0\].bucket_name: must be a non-empty string/],
      ['[[r2_buckets]]\nbinding = "B"\nbucket_name = "b"\njurisdiction = "eu"\n', /jurisdictions are not offered/],
      ['[limits]\nsubrequests = 10\n', /limits.subrequests: unsupported limit/],
      ['[secrets]\nTOKEN = "x"\n', /secrets never come from wrangler.toml/],
      ['[triggers]\ncrons = ["* * * * *"]\n', /triggers: cron triggers are not offered/],
      ['[build]\ncommand = "make"\n', /build: a custom build command is not run/],
      ['something_new = true\n', /something_new: unsupported key/],
    ];
    for (const [text, message] of cases) expect(() => wrangler(text), text).toThrow(message);
  });
});
