/**
 * /v1/functions: upload (PUT), list, show, delete, logs. An upload checks everything it can
 * without the body first (name, content type, query limits, the functions quota), then reads it.
 * An upload is the raw module (JS or WASM), or an `application/json` envelope that also carries
 * the function's `vars` and `secrets` (runtime/function-bindings.ts): reads show their names only.
 */
import { Hono } from 'hono';
import { TributaryError } from '../../runtime/errors.ts';
import { assertFunctionName } from '../../runtime/function-registry.ts';
import { cpuLimitOf, type FunctionKind, type FunctionLimits } from '../../runtime/function-spec.ts';
import type { FunctionService } from '../../runtime/function-service.ts';
import {
  DEFAULT_MEMORY_LIMIT_MB, DEFAULT_TIMEOUT_MS, MAX_CPU_LIMIT_MS, MAX_MEMORY_LIMIT_MB, MAX_TIMEOUT_MS, MIN_MEMORY_LIMIT_MB, MIN_TIMEOUT_MS,
  LOG_LINES_PER_FUNCTION,
} from '../../runtime/limits.ts';
import { readBody, type BodyLimits } from '../body.ts';
import { parseJson } from '../json.ts';
import { parseBindings, type Bindings } from '../../runtime/function-bindings.ts';
import { integerParam } from '../query.ts';

const JS_TYPES = new Set(['application/javascript', 'text/javascript', 'application/x-javascript']);

/** `json`: a deploy envelope, `{"js": source} | {"wasm": base64}` with optional `vars` and `secrets`. */
function kindOf(contentType: string | undefined): FunctionKind | 'json' {
  const mime = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (JS_TYPES.has(mime)) return 'js';
  if (mime === 'application/wasm') return 'wasm';
  if (mime === 'application/json') return 'json';
  throw new TributaryError('ERR_BAD_REQUEST', `unsupported Content-Type '${mime.slice(0, 80)}': use application/javascript, text/javascript, application/wasm or application/json (a deploy envelope)`);
}

function utf8(bytes: Uint8Array): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    throw new TributaryError('ERR_COMPILE', 'module source is not valid UTF-8');
  }
}

/** A deploy envelope: the code (JS source or base64 WASM) with the function's vars and secrets. */
function fromEnvelope(bytes: Uint8Array): { kind: FunctionKind; code: string | Uint8Array; bindings?: Bindings } {
  const body = parseJson(utf8(bytes), { maxDepth: 4, what: 'deploy envelope' });
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw new TributaryError('ERR_BAD_REQUEST', 'deploy envelope must be an object');
  const { js, wasm, vars, secrets, bindings: buckets } = body as Record<string, unknown>;
  const bindings = parseBindings(vars, secrets, buckets);
  if (typeof js === 'string' && wasm === undefined) {
    if (js.length === 0) throw new TributaryError('ERR_BAD_REQUEST', 'empty module source');
    return { kind: 'js', code: js, bindings };
  }
  if (typeof wasm === 'string' && js === undefined) {
    const code = new Uint8Array(Buffer.from(wasm, 'base64'));
    if (code.length === 0) throw new TributaryError('ERR_BAD_REQUEST', 'empty WASM module');
    return { kind: 'wasm', code, bindings };
  }
  throw new TributaryError('ERR_BAD_REQUEST', 'deploy envelope needs exactly one of "js" (module source) or "wasm" (base64 bytes)');
}

/** `memoryLimitMb`, `timeoutMs` and `cpuLimitMs` (at most the timeout and MAX_CPU_LIMIT_MS; default cpuLimitOf). */
export function limitsFromQuery(query: Record<string, string | undefined>): Required<FunctionLimits> {
  const memoryLimitMb = integerParam(query.memoryLimitMb, 'memoryLimitMb', { fallback: DEFAULT_MEMORY_LIMIT_MB, min: MIN_MEMORY_LIMIT_MB, max: MAX_MEMORY_LIMIT_MB });
  const timeoutMs = integerParam(query.timeoutMs, 'timeoutMs', { fallback: DEFAULT_TIMEOUT_MS, min: MIN_TIMEOUT_MS, max: MAX_TIMEOUT_MS });
  const cpuLimitMs = integerParam(query.cpuLimitMs, 'cpuLimitMs', { fallback: cpuLimitOf({ memoryLimitMb, timeoutMs }), min: 1, max: Math.min(timeoutMs, MAX_CPU_LIMIT_MS) });
  return { memoryLimitMb, timeoutMs, cpuLimitMs };
}

export function functionRoutes(functions: FunctionService, body: BodyLimits): Hono {
  const app = new Hono();

  app.put('/:name', async (c) => {
    const name = c.req.param('name');
    assertFunctionName(name);
    const kind = kindOf(c.req.header('content-type'));
    const limits = limitsFromQuery(c.req.query());
    functions.assertQuota(name);
    const bytes = await readBody(c.req.raw, body);
    if (bytes.length === 0) throw new TributaryError('ERR_BAD_REQUEST', 'empty body: send the module source or WASM bytes');
    const upload = kind === 'json' ? fromEnvelope(bytes) : { kind, code: kind === 'js' ? utf8(bytes) : bytes, bindings: undefined };
    const version = await functions.deploy({ name, ...upload, ...limits });
    return c.json(version, 201);
  });

  app.get('/', (c) => c.json({ functions: functions.registry.list() }));

  app.get('/:name', (c) => {
    const latest = functions.registry.require(c.req.param('name'));
    return c.json({ ...latest, versions: functions.registry.versions(latest.name) });
  });

  app.delete('/:name', async (c) => {
    await functions.delete(c.req.param('name'));
    return c.body(null, 204);
  });

  app.get('/:name/logs', (c) => {
    const name = c.req.param('name');
    functions.registry.require(name);
    const limit = integerParam(c.req.query('limit'), 'limit', { fallback: LOG_LINES_PER_FUNCTION, min: 1, max: LOG_LINES_PER_FUNCTION });
    return c.json({ logs: functions.logs.read(name, limit) });
  });

  return app;
}
