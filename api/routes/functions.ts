/** /v1/functions: upload (PUT), list, show, delete, logs. */
import { Hono } from 'hono';
import { TributaryError } from '../../runtime/errors.ts';
import type { FunctionKind, FunctionLimits } from '../../runtime/function-spec.ts';
import type { FunctionService } from '../../runtime/function-service.ts';
import {
  DEFAULT_MEMORY_LIMIT_MB, DEFAULT_TIMEOUT_MS, MAX_MEMORY_LIMIT_MB, MAX_TIMEOUT_MS, MIN_MEMORY_LIMIT_MB, MIN_TIMEOUT_MS,
  LOG_LINES_PER_FUNCTION,
} from '../../runtime/limits.ts';

const JS_TYPES = new Set(['application/javascript', 'text/javascript', 'application/x-javascript']);

function kindOf(contentType: string | undefined): FunctionKind {
  const mime = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (JS_TYPES.has(mime)) return 'js';
  if (mime === 'application/wasm') return 'wasm';
  throw new TributaryError('ERR_BAD_REQUEST', `unsupported Content-Type '${mime}': use application/javascript, text/javascript or application/wasm`);
}

function intParam(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < min || parsed > max) {
    throw new TributaryError('ERR_BAD_REQUEST', `${name} must be an integer in [${min}, ${max}], got '${value.slice(0, 40)}'`);
  }
  return parsed;
}

export function limitsFromQuery(query: Record<string, string | undefined>): FunctionLimits {
  return {
    memoryLimitMb: intParam(query.memoryLimitMb, 'memoryLimitMb', DEFAULT_MEMORY_LIMIT_MB, MIN_MEMORY_LIMIT_MB, MAX_MEMORY_LIMIT_MB),
    timeoutMs: intParam(query.timeoutMs, 'timeoutMs', DEFAULT_TIMEOUT_MS, MIN_TIMEOUT_MS, MAX_TIMEOUT_MS),
  };
}

export function functionRoutes(functions: FunctionService): Hono {
  const app = new Hono();

  app.put('/:name', async (c) => {
    const kind = kindOf(c.req.header('content-type'));
    const limits = limitsFromQuery(c.req.query());
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    if (bytes.length === 0) throw new TributaryError('ERR_BAD_REQUEST', 'empty body: send the module source or WASM bytes');
    let code: string | Uint8Array = bytes;
    if (kind === 'js') {
      try {
        code = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
      } catch {
        throw new TributaryError('ERR_COMPILE', 'module source is not valid UTF-8');
      }
    }
    const version = await functions.deploy({ name: c.req.param('name'), kind, code, ...limits });
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
    const limit = intParam(c.req.query('limit'), 'limit', LOG_LINES_PER_FUNCTION, 1, LOG_LINES_PER_FUNCTION);
    return c.json({ logs: functions.logs.read(name, limit) });
  });

  return app;
}
