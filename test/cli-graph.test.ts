/**
 * The CLI's graph commands, `logs --follow` and `dev`, driven as real child processes against a
 * real `tributary serve` that wants a management token (given by --token, $TRIBUTARY_TOKEN, and
 * the URL by --url or $TRIBUTARY_URL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir, waitFor } from './fixtures/platform.ts';

const CLI = join(import.meta.dirname, '..', 'cli', 'tributary.ts');
const TOKEN = `cli-test-${Math.random().toString(36).slice(2)}`;
const dataDir = tempDir();
const port = 20000 + Math.floor(Math.random() * 20000);
const url = `http://127.0.0.1:${port}`;
let server: ChildProcess;
const running: ChildProcess[] = [];

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion; `env` replaces the default --url/--token flags when given. */
function cli(args: string[], options: { stdin?: string; env?: Record<string, string>; flags?: boolean } = {}): Promise<Run> {
  const flags = options.flags === false ? [] : ['--url', url, '--token', TOKEN];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--no-node-snapshot', CLI, ...args, ...flags], { env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.stdin.end(options.stdin ?? '');
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts a long-running CLI command (--follow, dev); its output accumulates in `out()`. */
function start(args: string[]): { child: ChildProcess; out(): string } {
  const child = spawn(process.execPath, ['--no-node-snapshot', CLI, ...args, '--url', url, '--token', TOKEN], { stdio: ['ignore', 'pipe', 'pipe'] });
  running.push(child);
  let output = '';
  child.stdout!.on('data', (c) => (output += c));
  child.stderr!.on('data', (c) => (output += c));
  return { child, out: () => output };
}

async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  child.kill(signal);
  return exited;
}

async function api(path: string, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${TOKEN}`);
  return fetch(`${url}${path}`, { ...init, headers });
}

const PICKY = `export default { process(record) { console.log('saw ' + record.value); if (String(record.value).startsWith('poison')) throw new Error('refused ' + record.value); return String(record.value).toUpperCase(); } };`;
const YAML_SPEC = `# a one-node pipe, in YAML
nodes:
  - id: shout
    function: picky
    replicas: { min: 1, max: 2 }
sources:
  - id: in
    type: http
sinks:
  - id: out
    type: log
edges:
  - { from: in, to: shout, delivery: at-least-once }
  - { from: shout, to: out, delivery: exactly-once }
slo: { latencyMs: 200, percentile: 99 }
`;

beforeAll(async () => {
  server = spawn(process.execPath, ['--no-node-snapshot', CLI, 'serve', '--port', String(port), '--data-dir', dataDir, '--hosts', '1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TRIBUTARY_TOKEN: TOKEN },
  });
  let output = '';
  server.stdout!.on('data', (chunk) => (output += chunk));
  server.stderr!.on('data', (chunk) => (output += chunk));
  await waitFor(() => output.includes('listening on'), 60_000, `server start (output: ${output})`);
  expect((await api('/v1/functions/picky', { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: PICKY })).status).toBe(201);
}, 90_000);

afterAll(async () => {
  for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  await stop(server);
  rmSync(dataDir, { recursive: true, force: true });
}, 60_000);

describe('tributary graph', () => {
  it('apply (YAML), ls, ingest from a file and stdin with Idempotency-Key, tail, status', async () => {
    const specFile = join(dataDir, 'pipe.yaml');
    writeFileSync(specFile, YAML_SPEC);
    const applied = await cli(['graph', 'apply', specFile]);
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toBe('applied graph pipe v1\n');

    // URL and token from the environment this time.
    const ls = await cli(['graph', 'ls'], { flags: false, env: { TRIBUTARY_URL: url, TRIBUTARY_TOKEN: TOKEN } });
    expect(ls.code, ls.stderr).toBe(0);
    expect(ls.stdout).toMatch(/^NAME\s+VERSION\s+STATE\s+UPDATED\npipe\s+v1\s+(starting|running|rescaling)/);
    expect(JSON.parse((await cli(['graph', 'ls', '--json'])).stdout).graphs).toEqual([expect.objectContaining({ name: 'pipe', version: 1 })]);

    const ndjson = join(dataDir, 'records.ndjson');
    writeFileSync(ndjson, '{"value":"a"}\n{"key":"k","value":"b"}\n');
    const fromFile = await cli(['graph', 'ingest', 'pipe', 'in', ndjson, '--json']);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(JSON.parse(fromFile.stdout)).toMatchObject({ accepted: 2, requests: [{ accepted: 2, duplicate: false }] });

    const first = await cli(['graph', 'ingest', 'pipe', 'in', '-', '--idempotency-key', 'batch-1'], { stdin: '[{"value":"c"}]' });
    expect(first.stdout).toMatch(/^accepted 1 record\(s\) in 1 request\(s\); Idempotency-Key batch-1/);
    const again = await cli(['graph', 'ingest', 'pipe', 'in', '--idempotency-key', 'batch-1'], { stdin: '[{"value":"c"}]' });
    expect(again.stdout).toMatch(/1 already ingested \(duplicate\)/);

    const sink = await waitFor(async () => {
      const tail = await cli(['graph', 'tail', 'pipe', 'out', '--json']);
      const { records } = JSON.parse(tail.stdout) as { records: Array<{ value: string }> };
      return records.length === 3 ? records : null;
    }, 30_000, 'three records in the sink');
    expect(sink.map((r) => r.value).sort()).toEqual(['A', 'B', 'C']);
    const text = await cli(['graph', 'tail', 'pipe', 'out', '--limit', '2']);
    expect(text.stdout.trim().split('\n')).toHaveLength(2);
    expect(text.stdout).toMatch(/^2\t\S+Z\t-\tC$/m); // strings print as they are, other values as JSON

    const status = await cli(['graph', 'status', 'pipe', '--sample-ms', '300']);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^graph pipe v1 {2}(running|rescaling)/);
    expect(status.stdout).toMatch(/SLO p99 <= 200 ms/);
    expect(status.stdout).toMatch(/NODE\s+FUNCTION\s+REPLICAS\s+IN\/S\s+OUT\/S\s+QUEUE\s+LAG\s+P99 MS\s+PREDICTED\s+PROCESSED\s+FAILED\s+DEAD\s+LAST DECISION/);
    expect(status.stdout).toMatch(/^shout\s+picky\s+\d \(1-2\)\s+[0-9.]+\s+[0-9.]+\s+0\s+0\s+\S+\s+\S+\s+3\s+0\s+0\s+/m);
    expect(status.stdout).toMatch(/^in -> shout\s+at-least-once\s+0\s+3/m);
    const asJson = JSON.parse((await cli(['graph', 'status', 'pipe', '--json', '--sample-ms', '0'])).stdout);
    expect(asJson.status.nodes.shout).toMatchObject({ function: 'picky', processed: 3 });
    expect(asJson.rates.nodes.shout).toEqual({ inPerS: null, outPerS: null });
  }, 120_000);

  it('tail --follow prints records as they arrive', async () => {
    const follow = start(['graph', 'tail', 'pipe', 'out', '--follow', '--interval-ms', '100']);
    await waitFor(() => /\tC\n/.test(follow.out()), 30_000, 'the existing tail');
    await cli(['graph', 'ingest', 'pipe', 'in'], { stdin: '{"value":"later"}\n' });
    await waitFor(() => /\tLATER\n/.test(follow.out()), 30_000, 'the new record');
    expect(follow.out().match(/\tLATER\n/g)).toHaveLength(1);
    await stop(follow.child);
  }, 90_000);

  it('dead-letters shows a poison record with its error', async () => {
    // With a terminal escape (clear screen) in it: printed escaped, never sent to the terminal.
    await cli(['graph', 'ingest', 'pipe', 'in'], { stdin: '{"value":"poison pill \\u001b[2J"}\n' });
    const letters = await waitFor(async () => {
      const r = await cli(['graph', 'dead-letters', 'pipe', 'shout']);
      return r.stdout.includes('refused poison pill') ? r : null;
    }, 60_000, 'the dead letter');
    expect(letters.stdout).toMatch(/^OFFSET\s+TIME\s+ERROR\s+RECORD\n0\s+\S+Z\s+"?Error: refused poison pill/);
    const asJson = JSON.parse((await cli(['graph', 'dead-letters', 'pipe', 'shout', '--json'])).stdout);
    expect(letters.stdout).toContain('\\x1b[2J');
    expect(letters.stdout).not.toContain('\u001b');
    expect(asJson.records[0].value.record.value).toBe('poison pill \u001b[2J');
  }, 90_000);

  it('logs --follow streams new lines of a function', async () => {
    const follow = start(['logs', 'picky', '--follow', '--interval-ms', '200']);
    await waitFor(() => follow.out().includes('saw poison pill'), 30_000, 'existing lines');
    await cli(['graph', 'ingest', 'pipe', 'in'], { stdin: '{"value":"fresh line"}\n' });
    await waitFor(() => follow.out().includes('saw fresh line'), 30_000, 'the new line');
    expect(follow.out().match(/saw fresh line/g)).toHaveLength(1);
    await stop(follow.child);
    const asJson = JSON.parse((await cli(['logs', 'picky', '--json', '--limit', '5'])).stdout);
    expect(asJson.logs.length).toBeGreaterThan(0);
    expect(asJson.logs[0]).toMatchObject({ level: 'log', version: 1 });
  }, 90_000);

  it('seek rewinds a source: the sink gets the results again; bad flags are usage errors', async () => {
    const before = JSON.parse((await cli(['graph', 'status', 'pipe', '--json', '--sample-ms', '0'])).stdout).status.sinks.out.records as number;
    const seek = await cli(['graph', 'seek', 'pipe', 'in', '--offset', '0']);
    expect(seek.code, seek.stderr).toBe(0);
    expect(seek.stdout).toMatch(/^EDGE\s+PARTITION\s+FROM\s+TO\s+REPLAYS\s+KEPT\n/);
    expect(seek.stdout).toMatch(/^in -> shout\s+0\s+\d+\s+0\s+\d+\s+0-\d+$/m);
    const replayed = [...seek.stdout.matchAll(/^in -> shout\s+\d+\s+\d+\s+0\s+(\d+)/gm)].reduce((n, m) => n + Number(m[1]), 0);
    expect(replayed).toBeGreaterThan(0);
    await waitFor(async () => JSON.parse((await cli(['graph', 'status', 'pipe', '--json', '--sample-ms', '0'])).stdout).status.sinks.out.records > before, 30_000, 'replayed records in the sink');
    const byTime = JSON.parse((await cli(['graph', 'seek', 'pipe', 'in', '--timestamp', new Date(Date.now() + 60_000).toISOString(), '--reset-state', '--json'])).stdout);
    expect(byTime).toMatchObject({ source: 'in', resetState: true, reset: { nodes: ['shout'] } });
    for (const p of byTime.edges[0].partitions) expect(p.to).toBe(p.head); // nothing that recent: to the head
    const both = await cli(['graph', 'seek', 'pipe', 'in', '--offset', '0', '--timestamp', '0']);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/exactly one of --offset and --timestamp/);
    expect((await cli(['graph', 'seek', 'pipe', 'in', '--offset', 'x=1'])).code).toBe(2);
    const range = await cli(['graph', 'seek', 'pipe', 'in', '--offset', '0=999']);
    expect(range.code).toBe(1);
    expect(range.stderr).toMatch(/^tributary: ERR_OFFSET_OUT_OF_RANGE: seek: partition 0 of in -> shout: 999 is outside \[0, \d+\]/);
  }, 90_000);

  it('rm deletes the graph; status then fails with its code and exit 1', async () => {
    const rm = await cli(['graph', 'rm', 'pipe']);
    expect(rm.code, rm.stderr).toBe(0);
    expect(rm.stdout).toBe('deleted graph pipe\n');
    const gone = await cli(['graph', 'status', 'pipe']);
    expect(gone.code).toBe(1);
    expect(gone.stderr).toBe("tributary: ERR_NOT_FOUND: no graph named 'pipe'\n");
  }, 60_000);

  it('help, usage errors (exit 2) and a missing token (exit 1)', async () => {
    for (const sub of ['apply', 'ls', 'status', 'rm', 'ingest', 'seek', 'tail', 'dead-letters']) {
      const help = await cli(['graph', sub, '--help']);
      expect(help.code, sub).toBe(0);
      expect(help.stdout).toMatch(new RegExp(`^usage: tributary graph ${sub}`));
    }
    for (const command of ['dev', 'logs', 'list']) expect((await cli([command, '--help'])).stdout).toMatch(new RegExp(`^usage: tributary ${command}`));
    expect((await cli(['graph', '--help'])).stdout).toMatch(/subcommands:\n {2}apply/);
    expect((await cli(['graph', 'frobnicate'])).code).toBe(2);
    const missing = await cli(['graph', 'tail', 'pipe']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing <sink>/);
    expect((await cli(['graph', 'tail', 'pipe', 'out', '--limit', 'lots'])).code).toBe(2);
    const noToken = await cli(['graph', 'ls', '--url', url], { flags: false, env: { TRIBUTARY_TOKEN: '' } });
    expect(noToken.code).toBe(1);
    expect(noToken.stderr).toMatch(/^tributary: ERR_UNAUTHORIZED: /);
  }, 90_000);
});

describe('tributary dev', () => {
  it('deploys, redeploys on save, reports a broken save and streams logs', async () => {
    const file = join(dataDir, 'greeter.js');
    const version = (word: string) => `export default { fetch(req) { console.log('${word} served'); return new Response('${word}'); } };`;
    writeFileSync(file, version('one'));
    const dev = start(['dev', file, '--interval-ms', '200']);
    await waitFor(() => dev.out().includes('dev: watching'), 30_000, 'dev start');
    expect(dev.out()).toMatch(/dev: deployed greeter v1/);
    expect(await (await fetch(`${url}/v1/invoke/greeter`)).text()).toBe('one');
    await waitFor(() => dev.out().includes('one served'), 30_000, 'the log line');

    writeFileSync(file, version('two'));
    await waitFor(() => dev.out().includes('dev: deployed greeter v2'), 30_000, 'the redeploy');
    expect(await (await fetch(`${url}/v1/invoke/greeter`)).text()).toBe('two');
    await waitFor(() => dev.out().includes('two served'), 30_000, "the new version's log line");

    writeFileSync(file, 'export default {');
    await waitFor(() => dev.out().includes('dev: deploy failed: ERR_COMPILE'), 30_000, 'the compile error');
    expect(await (await fetch(`${url}/v1/invoke/greeter`)).text()).toBe('two');

    expect(await stop(dev.child, 'SIGINT')).toBe(0);
  }, 120_000);
});
