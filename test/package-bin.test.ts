/** package.json's bin runs as a program: executable in git, its shebang finds the project's Node. */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');
const run = promisify(execFile);

describe('the tributary bin', () => {
  const bin = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { bin: Record<string, string> }).bin.tributary;

  it('is committed with the executable bit', async () => {
    const { stdout } = await run('git', ['ls-files', '-s', '--', bin], { cwd: ROOT });
    expect(stdout).toMatch(/^100755 /);
  });

  it('runs directly, as npm links it, on the Node 24 of node_modules/.bin', async () => {
    const env = { ...process.env, PATH: `${join(ROOT, 'node_modules', '.bin')}:${process.env.PATH}` };
    const { stdout } = await run(join(ROOT, bin), ['--help'], { env, timeout: 20_000 });
    expect(stdout).toMatch(/^usage: tributary <command>/);
    expect(stdout).toMatch(/graph {9}process graphs/);
  });
});
