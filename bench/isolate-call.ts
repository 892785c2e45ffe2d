/**
 * The isolate path of one invoke without sockets: `IsolatePool.run` of a fetch handler in a loop,
 * measured as CPU time of the host's main thread per call (`process.threadCpuUsage`, which a
 * loaded machine distorts far less than wall time). Three handlers: synchronous with one request
 * header, the same with six, and `async fetch`. The baseline is the first handler, in the same run.
 *
 *   BENCH_CALLS=20000 BENCH_ROUNDS=8 npm run bench:isolate-call
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IsolatePool } from '../runtime/host/isolate-pool.ts';
import type { FunctionSpec } from '../runtime/function-spec.ts';
import type { WireRequest } from '../runtime/guest/wire.ts';
import { printJson, printTable, round } from './report.ts';

const CALLS = Number(process.env.BENCH_CALLS ?? 20_000);
const ROUNDS = Math.max(1, Number(process.env.BENCH_ROUNDS ?? 8));
const SIX_HEADERS: [string, string][] = [
  ['host', 'localhost:3000'],
  ['user-agent', 'autocannon/8'],
  ['accept', '*/*'],
  ['accept-encoding', 'gzip, deflate'],
  ['x-request-id', 'abcdef0123456789'],
  ['cookie', 'a=b; c=d'],
];
const CASES = [
  { name: 'sync handler, 1 header', code: `export default { fetch() { return new Response('ok'); } };`, headers: SIX_HEADERS.slice(0, 1) },
  { name: 'sync handler, 6 headers', code: `export default { fetch() { return new Response('ok'); } };`, headers: SIX_HEADERS },
  { name: 'async handler, 1 header', code: `export default { async fetch() { return new Response('ok'); } };`, headers: SIX_HEADERS.slice(0, 1) },
];

const dir = mkdtempSync(join(tmpdir(), 'tributary-isolate-call-'));
const pool = new IsolatePool({ warmSlots: 1 });
try {
  await pool.start();
  const rows = [];
  for (let c = 0; c < CASES.length; c++) {
    const { name, code, headers } = CASES[c];
    const codePath = join(dir, `f${c}.js`);
    writeFileSync(codePath, code);
    const spec: FunctionSpec = { name: `f${c}`, version: 1, kind: 'js', sha256: String(c).padStart(64, '0'), codePath, memoryLimitMb: 128, timeoutMs: 1000 };
    await pool.validate(spec, code);
    const perCallUs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const started = process.threadCpuUsage();
      for (let i = 0; i < CALLS; i++) {
        const wire: WireRequest = { method: 'GET', url: 'http://localhost:3000/hello?x=1', headers, body: null, stream: true };
        await pool.run(spec, 'fetch', wire, [], 0);
      }
      const used = process.threadCpuUsage(started);
      perCallUs.push((used.user + used.system) / CALLS);
    }
    perCallUs.sort((a, b) => a - b);
    rows.push({ handler: name, 'min µs/call': round(perCallUs[0], 2), 'median µs/call': round(perCallUs[perCallUs.length >> 1], 2) });
  }
  printTable(`Isolate path, host main-thread CPU per call (${CALLS} calls × ${ROUNDS} rounds)`, rows);
  printJson('isolate-call', { calls: CALLS, rounds: ROUNDS, results: rows, baseline: rows[0]['min µs/call'] });
} finally {
  pool.close();
  rmSync(dir, { recursive: true, force: true });
}
