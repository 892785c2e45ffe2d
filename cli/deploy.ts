/**
 * `tributary deploy`: what wrangler's deploy does, for Tributary. A `.wasm` file is uploaded as
 * is; any other entry (`src/index.ts`, a `.js` with imports) is bundled with esbuild first
 * (runtime/function-bundle.ts; `--no-bundle` uploads a single-module `.js` untouched). Settings
 * come from `tributary.json` or `wrangler.toml` in the current directory (or `--config FILE`;
 * cli/project-config.ts says which wrangler keys are mapped, ignored or refused), then flags:
 *
 * ```json
 * { "name": "my-fn", "main": "src/index.ts", "vars": { "GREETING": "hi" },
 *   "compatibility_flags": ["nodejs_compat"], "memoryLimitMb": 128, "timeoutMs": 1000, "cpuLimitMs": 1000 }
 * ```
 *
 * `"bindings": {"ASSETS": {"bucket": "b", "prefix": "p/"}}` in the file, or `--bucket ASSETS=b/p/`,
 * binds a bucket the operator allows (`serve --user-buckets`) as `env.ASSETS` (docs/buckets.md).
 *
 * `--var NAME=VALUE` adds a var; `--secret NAME=VALUE`, or `--secret NAME` to take the value from
 * the environment variable NAME (so it stays out of shell history); `--secrets-file FILE` reads
 * many, as a JSON object of strings (what `wrangler secret bulk` takes) or `.env` lines
 * (`NAME=VALUE`, `#` comments, optional quotes); `--secret` wins over the file. Secrets are never
 * read from the config file, which is usually committed.
 */
import { readFileSync } from 'node:fs';
import { basename, extname, resolve } from 'node:path';
import { bundleFunction, BundleError } from '../runtime/function-bundle.ts';
import { client, UsageError, type Values } from './command.ts';
import { ApiError, request } from './client.ts';
import { readProjectConfig } from './project-config.ts';

export const DEPLOY_USAGE =
  'tributary deploy [<entry.ts|entry.js|file.wasm>] [--name NAME] [--memory-limit-mb N] [--timeout-ms N] [--cpu-limit-ms N]\n' +
  '                 [--var NAME=VALUE]... [--secret NAME[=VALUE]]... [--secrets-file FILE] [--bucket NAME=BUCKET[/PREFIX]]...\n' +
  '                 [--config tributary.json|wrangler.toml] [--nodejs-compat] [--no-bundle]';

export const DEPLOY_OPTIONS = {
  name: { type: 'string' },
  'memory-limit-mb': { type: 'string' },
  'timeout-ms': { type: 'string' },
  'cpu-limit-ms': { type: 'string' },
  var: { type: 'string', multiple: true },
  secret: { type: 'string', multiple: true },
  'secrets-file': { type: 'string' },
  bucket: { type: 'string', multiple: true },
  config: { type: 'string' },
  'nodejs-compat': { type: 'boolean', default: false },
  'no-bundle': { type: 'boolean', default: false },
} as const;

/** `NAME=VALUE` pairs; for secrets a bare `NAME` reads $NAME. */
function pairs(list: unknown, what: string, fromEnv: boolean): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of (list as string[] | undefined) ?? []) {
    const eq = item.indexOf('=');
    if (eq > 0) out[item.slice(0, eq)] = item.slice(eq + 1);
    else if (fromEnv && eq < 0) {
      const value = process.env[item];
      if (value === undefined) throw new UsageError(`--secret ${item}: the environment variable ${item} is not set`);
      out[item] = value;
    } else throw new UsageError(`--${what} expects NAME=VALUE, got '${item}'`);
  }
  return out;
}

/** A secrets file: a JSON object of strings, or `.env` lines. */
function secretsFile(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`--secrets-file ${path}: cannot read it (${(error as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  const out: Record<string, string> = {};
  if (text.trimStart().startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      throw new UsageError(`--secrets-file ${path}: not valid JSON`); // the parser's message may quote a value
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new UsageError(`--secrets-file ${path}: must hold a JSON object of NAME: "value"`);
    for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
      if (typeof value !== 'string') throw new UsageError(`--secrets-file ${path}: ${name} must be a string`);
      out[name] = value;
    }
    return out;
  }
  for (const [index, raw] of text.split(/\r?\n/).entries()) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    if (!match) throw new UsageError(`--secrets-file ${path}:${index + 1}: expected NAME=VALUE`);
    const value = match[2];
    const quoted = value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.at(-1) === value[0];
    out[match[1]] = quoted ? value.slice(1, -1) : value;
  }
  return out;
}

export async function deployCommand(values: Values, positionals: string[]): Promise<void> {
  const { config, dir, warnings } = readProjectConfig(values.config as string | undefined);
  for (const warning of warnings) console.error(`warning: ${warning}`);
  const entry = positionals[0] ?? (config.main ? resolve(dir, config.main) : undefined);
  if (entry === undefined) throw new UsageError('missing <file>: name the entry to deploy, or set "main" in tributary.json or wrangler.toml');
  const wasm = extname(entry) === '.wasm';
  const name = String(values.name ?? config.name ?? basename(entry, extname(entry)));
  const query = new URLSearchParams();
  const limit = (flag: string, param: string, fromConfig: number | undefined) => {
    const value = values[flag] ?? (fromConfig === undefined ? undefined : String(fromConfig));
    if (value !== undefined) query.set(param, String(value));
  };
  limit('memory-limit-mb', 'memoryLimitMb', config.memoryLimitMb);
  limit('timeout-ms', 'timeoutMs', config.timeoutMs);
  limit('cpu-limit-ms', 'cpuLimitMs', config.cpuLimitMs);
  const vars = { ...(config.vars ?? {}), ...pairs(values.var, 'var', false) };
  const secrets = { ...(values['secrets-file'] === undefined ? {} : secretsFile(String(values['secrets-file']))), ...pairs(values.secret, 'secret', true) };
  const buckets: Record<string, { bucket: string; prefix?: string }> = { ...(config.bindings ?? {}) };
  for (const [binding, where] of Object.entries(pairs(values.bucket, 'bucket', false))) {
    const slash = where.indexOf('/');
    buckets[binding] = slash < 0 ? { bucket: where } : { bucket: where.slice(0, slash), prefix: where.slice(slash + 1) };
  }
  const nodejsCompat = values['nodejs-compat'] === true || (config.compatibility_flags ?? []).includes('nodejs_compat');

  let code: string | Uint8Array;
  if (wasm) code = readFileSync(entry);
  else if (values['no-bundle'] === true || config.noBundle === true) code = readFileSync(entry, 'utf8');
  else {
    try {
      const bundle = await bundleFunction({ entry, nodejsCompat });
      for (const warning of bundle.warnings) console.error(`warning: ${warning}`);
      code = bundle.code;
    } catch (error) {
      // As the server reports invalid code: a stable code, exit status 1.
      if (error instanceof BundleError) throw new ApiError(0, 'ERR_COMPILE', error.message);
      throw error;
    }
  }
  const hasBindings = Object.keys(vars).length > 0 || Object.keys(secrets).length > 0 || Object.keys(buckets).length > 0;
  const bound = Object.keys(buckets).length > 0 ? { bindings: buckets } : {};
  const path = `/v1/functions/${encodeURIComponent(name)}?${query}`;
  const res = hasBindings
    ? await request(client(values), 'PUT', path, {
        body: JSON.stringify(wasm ? { wasm: Buffer.from(code).toString('base64'), vars, secrets, ...bound } : { js: code, vars, secrets, ...bound }),
        contentType: 'application/json',
      })
    : await request(client(values), 'PUT', path, { body: code, contentType: wasm ? 'application/wasm' : 'application/javascript' });
  console.log(JSON.stringify(await res.json(), null, 2));
}
