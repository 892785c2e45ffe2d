/**
 * A project's deploy settings, from `tributary.json` or a Workers project's `wrangler.toml`
 * (in the current directory, or `--config FILE`; `.toml` files are read as wrangler.toml).
 *
 * wrangler.toml keys Tributary maps:
 *
 *   name, main                          the function's name and entry (relative to the file)
 *   [vars]                              env vars (strings only: Tributary's vars are strings)
 *   compatibility_flags                 "nodejs_compat" (or "nodejs_compat_v2") → --nodejs-compat
 *   [[r2_buckets]] binding, bucket_name a bucket binding (`--bucket BINDING=BUCKET`)
 *   [limits] cpu_ms                     cpuLimitMs
 *   no_bundle                           --no-bundle
 *
 * Keys that only matter to Cloudflare's dashboard, routing or tooling are ignored with a warning
 * (IGNORED); any other key — a KV namespace, a Durable Object, a build command, a cron — would
 * change what the function does, so deploying stops with an error naming it rather than deploy
 * something that behaves differently. Secrets never come from either file (it is usually
 * committed): `--secret NAME` or `--secrets-file FILE`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { parse as parseToml, TomlError } from 'smol-toml';
import { UsageError } from './command.ts';

export interface ProjectConfig {
  name?: string;
  main?: string;
  vars?: Record<string, string>;
  bindings?: Record<string, { bucket: string; prefix?: string }>;
  compatibility_flags?: string[];
  memoryLimitMb?: number;
  timeoutMs?: number;
  cpuLimitMs?: number;
  noBundle?: boolean;
}

export interface LoadedConfig {
  config: ProjectConfig;
  /** Directory `main` is relative to. */
  dir: string;
  /** What was ignored, to print as warnings. */
  warnings: string[];
}

/** Compatibility flags Tributary implements, and what each turns on. */
const NODEJS_COMPAT_FLAGS = new Set(['nodejs_compat', 'nodejs_compat_v2']);

/** wrangler.toml keys with no effect on what the function does here: ignored, with a warning. */
const IGNORED: Record<string, string> = {
  compatibility_date: 'Tributary implements one behaviour, described in docs/workers-compat.md',
  account_id: 'a Cloudflare account setting',
  workers_dev: 'Cloudflare routing: functions are served at /v1/invoke/<name>',
  preview_urls: 'Cloudflare routing',
  route: 'Cloudflare routing: functions are served at /v1/invoke/<name>',
  routes: 'Cloudflare routing: functions are served at /v1/invoke/<name>',
  send_metrics: 'wrangler telemetry',
  keep_vars: 'each deploy sets all its vars',
  observability: 'console output is in `tributary logs`',
  logpush: 'console output is in `tributary logs`',
  tail_consumers: 'console output is in `tributary logs`',
  upload_source_maps: 'not uploaded',
  minify: 'the bundle is not minified',
  placement: 'a Cloudflare placement hint',
  usage_model: 'a Cloudflare billing setting',
  env: 'environments: the top-level settings are deployed',
  dev: 'wrangler dev settings (use tributary dev)',
  $schema: '',
};

/** Keys wrangler knows that change behaviour and Tributary does not offer: refused with a reason. */
const REFUSED: Record<string, string> = {
  secrets: 'secrets never come from wrangler.toml: pass them with --secret NAME or --secrets-file FILE',
  node_compat: 'legacy Node polyfills are not supported: use compatibility_flags = ["nodejs_compat"]',
  kv_namespaces: 'KV is not offered: env.STATE is a per-function key-value namespace (docs/workers-compat.md)',
  durable_objects: 'Durable Objects are not offered',
  migrations: 'Durable Object migrations are not offered',
  d1_databases: 'D1 is not offered',
  services: 'service bindings are not offered',
  queues: 'Queues are not offered (graphs connect functions through logs)',
  triggers: 'cron triggers are not offered',
  build: 'a custom build command is not run: build first and point main at the output',
  rules: 'module rules are not applied: esbuild bundles JS and TS imports',
  find_additional_modules: 'additional modules are not uploaded: everything is bundled into one module',
  base_dir: 'additional modules are not uploaded',
  define: 'esbuild defines are not applied',
  alias: 'module aliases are not applied',
  tsconfig: 'a tsconfig other than the project\'s own is not applied',
  jsx_factory: 'JSX settings are not applied',
  jsx_fragment: 'JSX settings are not applied',
  site: 'Workers Sites are not offered: bind a bucket with [[r2_buckets]]',
  assets: 'static assets are not offered: bind a bucket with [[r2_buckets]]',
  analytics_engine_datasets: 'Analytics Engine is not offered',
  ai: 'Workers AI is not offered',
  vectorize: 'Vectorize is not offered',
  hyperdrive: 'Hyperdrive is not offered',
  browser: 'Browser Rendering is not offered',
  mtls_certificates: 'mTLS certificates are not offered',
  dispatch_namespaces: 'dispatch namespaces are not offered',
  workflows: 'Workflows are not offered',
  send_email: 'Email sending is not offered',
  version_metadata: 'version metadata is not offered',
  secrets_store_secrets: 'Secrets Store is not offered: pass secrets with --secret NAME',
  pipelines: 'Pipelines are not offered',
  containers: 'Containers are not offered',
  unsafe: 'unsafe bindings are not offered',
  wasm_modules: 'service-worker syntax is not supported: use an ES module',
  text_blobs: 'service-worker syntax is not supported: use an ES module',
  data_blobs: 'service-worker syntax is not supported: use an ES module',
};

function isTable(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Date);
}

/** Reads `path` (or finds tributary.json / wrangler.toml in the current directory). */
export function readProjectConfig(path: string | undefined): LoadedConfig {
  let file = path;
  if (file === undefined) {
    const json = existsSync('tributary.json');
    const toml = existsSync('wrangler.toml');
    if (json && toml) throw new UsageError('both tributary.json and wrangler.toml are here: name the one to use with --config');
    if (!json && !toml) return { config: {}, dir: process.cwd(), warnings: [] };
    file = json ? 'tributary.json' : 'wrangler.toml';
  } else if (!existsSync(file)) throw new UsageError(`--config ${file}: no such file`);
  const dir = dirname(resolve(file));
  const text = readFileSync(file, 'utf8');
  return extname(file) === '.toml' ? { ...fromWrangler(file, text), dir } : { config: fromJson(file, text), dir, warnings: [] };
}

function fromJson(file: string, text: string): ProjectConfig {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  if (!isTable(parsed)) throw new UsageError(`${file} must hold a JSON object`);
  if ('secrets' in parsed) throw new UsageError(`${file}: secrets do not belong in the config file; pass them with --secret NAME`);
  return parsed as ProjectConfig;
}

/** wrangler.toml → the same settings (see the table above). */
export function fromWrangler(file: string, text: string): { config: ProjectConfig; warnings: string[] } {
  let parsed: Record<string, unknown>;
  try {
    parsed = parseToml(text) as Record<string, unknown>;
  } catch (error) {
    if (error instanceof TomlError) throw new UsageError(`${file}:${error.line}:${error.column}: not valid TOML: ${error.message.split('\n')[0]}`);
    throw error;
  }
  const config: ProjectConfig = {};
  const warnings: string[] = [];
  const fail = (key: string, message: string) => new UsageError(`${file}: ${key}: ${message}`);
  const string = (key: string, value: unknown): string => {
    if (typeof value !== 'string' || value === '') throw fail(key, 'must be a non-empty string');
    return value;
  };
  for (const [key, value] of Object.entries(parsed)) {
    switch (key) {
      case 'name':
        config.name = string(key, value);
        break;
      case 'main':
        config.main = string(key, value);
        break;
      case 'no_bundle':
        if (typeof value !== 'boolean') throw fail(key, 'must be true or false');
        config.noBundle = value;
        break;
      case 'vars': {
        if (!isTable(value)) throw fail(key, 'must be a table ([vars])');
        config.vars = {};
        for (const [name, item] of Object.entries(value)) {
          if (typeof item !== 'string') throw fail(`vars.${name}`, 'only string vars are supported (env vars are strings here; JSON-typed vars are not)');
          config.vars[name] = item;
        }
        break;
      }
      case 'compatibility_flags': {
        if (!Array.isArray(value) || value.some((flag) => typeof flag !== 'string')) throw fail(key, 'must be an array of strings');
        const unknown = (value as string[]).filter((flag) => !NODEJS_COMPAT_FLAGS.has(flag));
        if (unknown.length > 0) throw fail(key, `unsupported compatibility flag '${unknown[0]}' (supported: nodejs_compat, nodejs_compat_v2, both providing node:buffer)`);
        if (value.length > 0) config.compatibility_flags = ['nodejs_compat'];
        break;
      }
      case 'r2_buckets': {
        if (!Array.isArray(value)) throw fail(key, 'must be an array of tables ([[r2_buckets]])');
        config.bindings = {};
        for (const [index, entry] of value.entries()) {
          const where = `r2_buckets[${index}]`;
          if (!isTable(entry)) throw fail(where, 'must be a table with binding and bucket_name');
          for (const field of Object.keys(entry)) {
            if (field === 'preview_bucket_name') warnings.push(`${file}: ${where}.preview_bucket_name is ignored (there is one bucket per binding)`);
            else if (field !== 'binding' && field !== 'bucket_name') throw fail(`${where}.${field}`, field === 'jurisdiction' ? 'R2 jurisdictions are not offered' : 'unsupported key');
          }
          const binding = string(`${where}.binding`, entry.binding);
          if (binding in config.bindings) throw fail(`${where}.binding`, `'${binding}' is bound twice`);
          config.bindings[binding] = { bucket: string(`${where}.bucket_name`, entry.bucket_name) };
        }
        break;
      }
      case 'limits': {
        if (!isTable(value)) throw fail(key, 'must be a table ([limits])');
        for (const [field, item] of Object.entries(value)) {
          if (field !== 'cpu_ms') throw fail(`limits.${field}`, 'unsupported limit (supported: cpu_ms; memory and timeout are --memory-limit-mb and --timeout-ms)');
          if (typeof item !== 'number' || !Number.isInteger(item)) throw fail('limits.cpu_ms', 'must be an integer');
          config.cpuLimitMs = item;
        }
        break;
      }
      default:
        if (key in REFUSED) throw fail(key, REFUSED[key]);
        if (key in IGNORED) {
          if (IGNORED[key] !== '') warnings.push(`${file}: ${key} is ignored (${IGNORED[key]})`);
          break;
        }
        throw fail(key, 'unsupported key (it may change what the function does, so nothing was deployed)');
    }
  }
  return { config, warnings };
}
