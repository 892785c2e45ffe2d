/**
 * `tributary deploy` as a user runs it (the real CLI, as a child process, against a started
 * server): a TypeScript entry with imports is bundled with esbuild, tributary.json supplies the
 * name, vars and limits, --var/--secret add bindings (a bare --secret NAME reads $NAME),
 * nodejs_compat provides node:buffer, and other node: imports fail with a clear message.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../api/server.ts';
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

async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, ['--no-node-snapshot', CLI, ...args, '--url', server.url], {
      cwd: project,
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
