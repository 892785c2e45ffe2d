/**
 * `tributary dev <file>`: deploys a function file, redeploys it on every save, and streams its
 * logs, like `wrangler dev` against a running platform. A failed deploy (a syntax error...) is
 * printed with its code and the last good version keeps serving; the watch goes on. Stops on
 * Ctrl-C (SIGINT) or SIGTERM.
 */
import { watch, readFileSync, type FSWatcher } from 'node:fs';
import { basename, dirname, extname } from 'node:path';
import { ApiError, getJson, request } from './client.ts';
import { client, intFlag, need, reading, type Command, type Values } from './command.ts';
import { followLogs, type LogLine } from './logs.ts';

/** Saves come as bursts of change events (editors write, rename, chmod): deploy once they settle. */
const DEBOUNCE_MS = 150;

async function deploy(values: Values, file: string, name: string): Promise<void> {
  const wasm = extname(file) === '.wasm';
  let body: Buffer;
  try {
    body = readFileSync(file);
  } catch (error) {
    console.log(`dev: cannot read ${file}: ${(error as Error).message}`);
    return;
  }
  if (body.length === 0) return; // an editor's truncate-then-write: the next event has the content
  try {
    const res = await request(client(values), 'PUT', `/v1/functions/${encodeURIComponent(name)}`, { body, contentType: wasm ? 'application/wasm' : 'application/javascript' });
    const v = (await res.json()) as { version: number; sha256: string };
    console.log(`dev: deployed ${name} v${v.version} (${v.sha256.slice(0, 12)})`);
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    console.log(`dev: deploy failed: ${error.code}: ${error.message}`);
  }
}

export const dev: Command = {
  usage: 'tributary dev <file.js|file.wasm> [--name NAME] [--interval-ms 500] [--json]',
  summary: 'deploy a function, redeploy it on every save, and stream its logs (--json: log lines as NDJSON)',
  options: { ...reading, name: { type: 'string' }, 'interval-ms': { type: 'string', default: '500' } },
  async run({ values, positionals }) {
    const file = need(positionals, 0, 'file');
    const name = typeof values.name === 'string' ? values.name : basename(file, extname(file));
    const intervalMs = intFlag(values, 'interval-ms', 100, 60_000)!;
    readFileSync(file); // a missing file is an error now, not a silent watch
    await deploy(values, file, name);
    let initial: LogLine[] = [];
    try {
      initial = (await getJson<{ logs: LogLine[] }>(client(values), `/v1/functions/${encodeURIComponent(name)}/logs?limit=1000`)).logs;
    } catch {}
    const stop = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let deploying = Promise.resolve();
    // Watch the directory, not the file: editors that save by rename replace the file's inode.
    const watcher: FSWatcher = watch(dirname(file), (_event, changed) => {
      if (changed !== null && changed !== basename(file)) return;
      clearTimeout(timer);
      timer = setTimeout(() => (deploying = deploying.then(() => deploy(values, file, name))), DEBOUNCE_MS);
    });
    const onSignal = () => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    console.log(`dev: watching ${file}; Ctrl-C to stop`);
    try {
      await followLogs(values, name, { intervalMs, initial, asJson: Boolean(values.json), signal: stop.signal });
    } finally {
      watcher.close();
      clearTimeout(timer);
      await deploying;
    }
  },
};
