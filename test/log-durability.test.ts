/**
 * What a commit costs in fsyncs under each durability setting of the embedded log, counted on a
 * real child process with strace: `'process-crash'` never fsyncs a commit, `'fsync'` (and the
 * older `fsync: true`) fsyncs every one, and a commit marked `durable` fsyncs that one only.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const CHILD = join(import.meta.dirname, 'fixtures/log-commits.ts');
const COMMITS = 20;

/** fsync/fdatasync calls made by a child process that opens a log, commits, and closes it. */
function fsyncsOf(options: object, commits: number, durable: boolean, plainAfter = 0): number {
  const dir = mkdtempSync(join(tmpdir(), 'tributary-durability-'));
  try {
    const trace = join(dir, 'strace.out');
    execFileSync('strace', ['-f', '-qq', '-e', 'trace=fsync,fdatasync', '-o', trace, process.execPath, '--no-node-snapshot', CHILD, join(dir, 'data'), JSON.stringify(options), String(commits), durable ? '1' : '0', String(plainAfter)], { stdio: 'pipe' });
    return readFileSync(trace, 'utf8').split('\n').filter((line) => /\b(fsync|fdatasync)\(/.test(line)).length;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('durability of embedded log commits', () => {
  it("never fsyncs a commit under 'process-crash' (the default)", () => {
    expect(fsyncsOf({}, 10 * COMMITS, false) - fsyncsOf({}, COMMITS, false)).toBeLessThan(COMMITS / 2);
  });

  it("fsyncs every commit under durability 'fsync'", () => {
    expect(fsyncsOf({ durability: 'fsync' }, COMMITS, false) - fsyncsOf({}, COMMITS, false)).toBeGreaterThanOrEqual(COMMITS);
  });

  it('keeps fsync: true meaning an fsync per commit', () => {
    expect(fsyncsOf({ fsync: true }, COMMITS, false) - fsyncsOf({}, COMMITS, false)).toBeGreaterThanOrEqual(COMMITS);
  });

  it('fsyncs a commit marked durable', () => {
    expect(fsyncsOf({}, COMMITS, true) - fsyncsOf({}, COMMITS, false)).toBeGreaterThanOrEqual(COMMITS);
  });

  it('goes back to no fsync for the commits after a durable one', () => {
    expect(fsyncsOf({}, 1, true, 10 * COMMITS) - fsyncsOf({}, 1, false, 10 * COMMITS)).toBeLessThan(COMMITS / 2);
  });
});
