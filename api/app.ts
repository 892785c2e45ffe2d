/**
 * The HTTP surface of the control plane (hono). Built around injected services so tests can call
 * `app.request()` in-process and the server can bind it to a socket.
 *
 * @example
 *   const platform = await startPlatform({ dataDir: './.tributary' });
 *   const res = await platform.app.request('/v1/functions');
 */
import { Hono } from 'hono';
import type { FunctionService } from '../runtime/function-service.ts';
import type { HostSupervisor } from '../runtime/host-supervisor.ts';
import { BODY_READ_TIMEOUT_MS, MAX_BODY_BYTES, MAX_INFLIGHT_BODY_BYTES } from '../runtime/limits.ts';
import type { RuntimeMetrics } from '../runtime/metrics.ts';
import { requireToken } from './auth.ts';
import { BodyBudget, type BodyLimits } from './body.ts';
import { errorBody, errorResponse } from './errors.ts';
import { consoleRoutes } from './routes/console.ts';
import { functionRoutes } from './routes/functions.ts';
import { graphRoutes } from './routes/graphs.ts';
import { invokeRoutes } from './routes/invoke.ts';
import type { GraphService } from '../scheduler/graph-service.ts';

export interface AppServices {
  functions: FunctionService;
  graphs: GraphService;
  supervisor: HostSupervisor;
  metrics: RuntimeMetrics;
  /**
   * When set, /v1/functions*, /v1/graphs* and /metrics require `Authorization: Bearer <token>`;
   * the invoke route never forwards it to a function.
   */
  token?: string;
  /** Largest request body (default MAX_BODY_BYTES): 413 ERR_TOO_LARGE beyond. */
  maxBodyBytes?: number;
  /** Time a request body may take to arrive once a route reads it (default BODY_READ_TIMEOUT_MS): 408 ERR_BODY_TIMEOUT. */
  bodyReadTimeoutMs?: number;
  /** Bytes of all bodies being read at once (default MAX_INFLIGHT_BODY_BYTES): 503 ERR_OVERLOADED beyond. */
  maxInflightBodyBytes?: number;
}

export function createApp(services: AppServices): Hono {
  const app = new Hono();
  const auth = requireToken(services.token);
  // Bodies are read by the routes, after routing, through readBody (api/body.ts).
  const body: BodyLimits = {
    maxBytes: services.maxBodyBytes ?? MAX_BODY_BYTES,
    timeoutMs: services.bodyReadTimeoutMs ?? BODY_READ_TIMEOUT_MS,
    budget: new BodyBudget(services.maxInflightBodyBytes ?? MAX_INFLIGHT_BODY_BYTES),
  };

  app.onError((error, c) => errorResponse(c, error));
  app.notFound((c) => c.json(errorBody('ERR_NOT_FOUND', `no route for ${c.req.method} ${new URL(c.req.url).pathname.slice(0, 200)}`), 404));

  app.route('/', consoleRoutes({ auth: Boolean(services.token) }));
  app.get('/healthz', (c) => c.json({ status: 'ok', hosts: services.supervisor.pids() }));
  app.use('/metrics', auth);
  app.get('/metrics', async (c) => {
    const { registry } = services.metrics;
    return c.body(await registry.metrics(), 200, { 'content-type': registry.contentType });
  });

  app.use('/v1/functions', auth);
  app.use('/v1/functions/*', auth);
  app.use('/v1/graphs', auth);
  app.use('/v1/graphs/*', auth);
  app.route('/v1/functions', functionRoutes(services.functions, body));
  app.route('/v1/invoke', invokeRoutes(services.functions, { body, token: services.token }));
  app.route('/v1/graphs', graphRoutes(services.graphs, body));
  return app;
}
