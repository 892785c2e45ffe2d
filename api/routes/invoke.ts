/**
 * ANY /v1/invoke/{name}[/{path}]: the function's `fetch` sees the request with the route prefix
 * stripped (method, remaining path, query, headers, body) and its Response goes back as is.
 */
import { Hono, type Context } from 'hono';
import { TributaryError } from '../../runtime/errors.ts';
import type { FunctionService } from '../../runtime/function-service.ts';
import type { WireRequest, WireResponse } from '../../runtime/guest/wire.ts';

const NO_BODY_METHODS = new Set(['GET', 'HEAD']);
/** Hop-by-hop headers (RFC 9110 §7.6.1) are the connection's, not the function's. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer']);

export function invokeRoutes(functions: FunctionService): Hono {
  const app = new Hono();
  const handler = async (c: Context) => {
    const name = c.req.param('name')!;
    const request = await toWire(c, name);
    return toResponse(await functions.invoke(name, request));
  };
  app.all('/:name', handler);
  app.all('/:name/*', handler);
  return app;
}

async function toWire(c: Context, name: string): Promise<WireRequest> {
  const url = new URL(c.req.url);
  const prefix = `/v1/invoke/${encodeURIComponent(name)}`;
  const rest = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname;
  const method = c.req.method.toUpperCase();
  const headers: [string, string][] = [];
  c.req.raw.headers.forEach((value, key) => {
    if (!HOP_BY_HOP.has(key)) headers.push([key, value]);
  });
  const body = NO_BODY_METHODS.has(method) ? null : new Uint8Array(await c.req.arrayBuffer());
  return { method, url: `${url.origin}${rest.startsWith('/') ? rest : `/${rest}`}${url.search}`, headers, body: body?.length ? body : null };
}

/** The guest already built a valid Response; the host re-checks it, since guest output is untrusted. */
function toResponse(wire: WireResponse): Response {
  if (!Number.isInteger(wire.status) || wire.status < 200 || wire.status > 599) {
    throw new TributaryError('ERR_FN_BAD_RESPONSE', `function returned invalid status ${String(wire.status).slice(0, 20)}`);
  }
  const headers = new Headers();
  for (const [key, value] of wire.headers) {
    try {
      headers.append(key, value);
    } catch {
      throw new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned an invalid header');
    }
  }
  const nullBody = wire.status === 204 || wire.status === 205 || wire.status === 304;
  return new Response(nullBody ? null : wire.body, { status: wire.status, statusText: wire.statusText, headers });
}
