/**
 * Cold start: time from "upload completed" to "first invoke response" for many fresh functions,
 * in-process (hono app.request, no sockets) and over HTTP, next to a warm invoke of the same
 * functions measured in the same run as the baseline.
 *
 * A deploy loads the function on its home host while validating it, so "upload → first invoke"
 * finds it loaded. The bench therefore also reports a true cold load: the first call of each
 * function on the *other* host, which has never seen it (pre-warmed slot, compile, link,
 * evaluate, call; over IPC, without hono).
 *
 * Targets (issue 2): in-process p50 ≤ 2 ms and p99 ≤ 10 ms; over HTTP p50 ≤ 10 ms.
 */
import { rmSync } from 'node:fs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../api/server.ts';
import { printJson, printTable, summarize } from './report.ts';

const FUNCTIONS = Number(process.env.BENCH_FUNCTIONS ?? 250);

function source(i: number): string {
  // Distinct code per function: no code-cache hit from a sibling.
  return `const id = ${i};\nexport default { fetch(request) { return new Response('fn ' + id + ' ' + new URL(request.url).pathname); } };`;
}

type Call = (path: string, init?: RequestInit) => Promise<Response>;

async function measure(call: Call, prefix: string, server: Awaited<ReturnType<typeof startServer>>, coldLoads: boolean) {
  const cold: number[] = [];
  const warm: number[] = [];
  const coldLoad: number[] = [];
  const { supervisor, functions } = server.platform;
  for (let i = 0; i < FUNCTIONS; i++) {
    const name = `${prefix}${i}`;
    const put = await call(`/v1/functions/${name}`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: source(i) });
    if (put.status !== 201) throw new Error(`upload failed: ${put.status} ${await put.text()}`);
    let started = performance.now();
    let res = await call(`/v1/invoke/${name}`);
    await res.text();
    cold.push(performance.now() - started);
    if (res.status !== 200) throw new Error(`invoke failed: ${res.status}`);
    started = performance.now();
    res = await call(`/v1/invoke/${name}`);
    await res.text();
    warm.push(performance.now() - started);
    if (coldLoads && supervisor.size > 1) {
      const other = (supervisor.homeOf(name) + 1) % supervisor.size;
      const spec = functions.registry.specOf(functions.registry.require(name));
      started = performance.now();
      const loaded = await supervisor.callHost(other, { op: 'fetch', spec, request: { method: 'GET', url: 'http://bench/', headers: [], body: null } });
      coldLoad.push(performance.now() - started);
      if (!loaded.coldStart) throw new Error('expected a cold load on the other host');
    }
  }
  return { cold: summarize(cold), warm: summarize(warm), coldLoad: summarize(coldLoad) };
}

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-bench-'));
const server = await startServer({ port: 0, dataDir });
try {
  const { app } = server.platform;
  // Let the warm pools fill before measuring.
  await new Promise((r) => setTimeout(r, 500));
  const inProcess = await measure((path, init) => Promise.resolve(app.request(path, init)), 'inproc', server, true);
  // Over HTTP a connection is served by whichever host took it, so the first invoke may itself be
  // the cold load (on the host the deploy did not validate on): no separate cold-load column there.
  const http = await measure((path, init) => fetch(`${server.url}${path}`, init), 'http', server, false);
  const rows = [
    { path: 'in-process', kind: 'upload → first invoke', ...inProcess.cold },
    { path: 'in-process', kind: 'cold load, host never saw it', ...inProcess.coldLoad },
    { path: 'in-process', kind: 'warm (baseline)', ...inProcess.warm },
    { path: 'HTTP', kind: 'upload → first invoke', ...http.cold },
    { path: 'HTTP', kind: 'warm (baseline)', ...http.warm },
  ];
  printTable(`Cold start, ${FUNCTIONS} fresh functions per path, latency in ms (targets: in-process p50 ≤ 2, p99 ≤ 10; HTTP p50 ≤ 10)`, rows);
  const verdict = {
    inProcessP50: inProcess.cold.p50 <= 2,
    inProcessP99: inProcess.cold.p99 <= 10,
    httpP50: http.cold.p50 <= 10,
  };
  console.log(`\ntargets met: ${JSON.stringify(verdict)}`);
  printJson('coldstart', { functions: FUNCTIONS, inProcess, http, targetsMet: verdict });
} finally {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
