/**
 * The profile behind docs/performance.md's "HTTP invoke": a trivial function under autocannon
 * (32 connections) with every process profiled (`--cpu-prof`): the control plane (this process)
 * and each host (TRIBUTARY_HOST_NODE_FLAGS). Summarize with bench/cpu-profile.ts.
 *
 *   PROFILE_DIR=/tmp/prof PLANE=hosts npm run -s bench:profile-invoke
 *   node bench/cpu-profile.ts /tmp/prof/cp/*.cpuprofile /tmp/prof/host/*.cpuprofile --last 8
 *
 * PLANE=control-plane profiles the fallback path (every request through the control plane and the host channel).
 */
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../api/server.ts';

const DURATION_S = Number(process.env.BENCH_DURATION_S ?? 8);
const PLANE = process.env.PLANE === 'control-plane' ? 'control-plane' : 'hosts';
const AUTOCANNON = fileURLToPath(new URL('../node_modules/autocannon/autocannon.js', import.meta.url));

const dataDir = mkdtempSync(join(tmpdir(), 'tributary-profile-'));
const server = await startServer({ port: 0, dataDir, dataPlane: PLANE });
try {
  await fetch(`${server.url}/v1/functions/trivial`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: `export default { fetch() { return new Response('ok'); } };` });
  await Promise.all(Array.from({ length: 8 }, async () => (await fetch(`${server.url}/v1/invoke/trivial`, { headers: { connection: 'close' } })).text()));
  // The load generator runs without the profiler (execArgv cleared).
  const child = fork(AUTOCANNON, ['-c', '32', '-d', String(DURATION_S), `${server.url}/v1/invoke/trivial`], { stdio: 'inherit', execArgv: [] });
  await new Promise((resolve) => child.on('exit', resolve));
} finally {
  await server.close();
  rmSync(dataDir, { recursive: true, force: true });
}
