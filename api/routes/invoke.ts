/**
 * ANY /v1/invoke/{name}[/{path}] on the control plane: in-process (`app.request`) and on
 * connections no host took (none is live). Connections handed to a host are served there
 * (runtime/host/http-plane.ts); both follow api/invoke-semantics.ts. Here a streamed response is
 * drained by the guest and sent when it ends (bounded by the body limit).
 *
 * The function is resolved before the body is read: an unknown name is a 404 whatever the caller
 * is still sending.
 */
import { Hono, type Context } from 'hono';
import type { FunctionService } from '../../runtime/function-service.ts';
import type { WireRequest, WireResponse } from '../../runtime/guest/wire.ts';
import { MAX_RESPONSE_HEADER_BYTES } from '../../runtime/limits.ts';
import { readBody, type BodyLimits } from '../body.ts';
import { checkResponseHead, invokeTarget, isForwarded, NO_BODY_METHODS, tokenMatcher, wireRequest, type TokenMatcher } from '../invoke-semantics.ts';

export interface InvokeRouteOptions {
  body: BodyLimits;
  /** The management token: never forwarded to a function. */
  token?: string;
  /** Bytes of response header names, values and status text (default MAX_RESPONSE_HEADER_BYTES). */
  maxResponseHeaderBytes?: number;
}

export function invokeRoutes(functions: FunctionService, options: InvokeRouteOptions): Hono {
  const app = new Hono();
  const maxHeaderBytes = options.maxResponseHeaderBytes ?? MAX_RESPONSE_HEADER_BYTES;
  const token = tokenMatcher(options.token);
  const handler = async (c: Context) => {
    const name = c.req.param('name')!;
    const version = await functions.resolve(name);
    const request = await toWire(c, name, options.body, token);
    return toResponse(await functions.invoke(version, request), maxHeaderBytes);
  };
  app.all('/:name', handler);
  app.all('/:name/*', handler);
  return app;
}

async function toWire(c: Context, name: string, limits: BodyLimits, token: TokenMatcher | null): Promise<WireRequest> {
  const url = new URL(c.req.url);
  const target = invokeTarget(url.pathname) ?? { name, rest: '/' };
  const method = c.req.method.toUpperCase();
  const headers: [string, string][] = [];
  c.req.raw.headers.forEach((value, key) => {
    if (isForwarded(key, value, token)) headers.push([key, value]);
  });
  const body = NO_BODY_METHODS.has(method) ? null : await readBody(c.req.raw, limits);
  return wireRequest(method, url.origin, target, url.search, headers, body);
}

function toResponse(wire: WireResponse, maxHeaderBytes: number): Response {
  const head = checkResponseHead(wire, maxHeaderBytes);
  return new Response(head.nullBody ? null : wire.body, { status: head.status, statusText: head.statusText, headers: head.headers });
}
