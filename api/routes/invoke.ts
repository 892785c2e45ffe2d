/**
 * ANY /v1/invoke/{name}[/{path}]: the function's `fetch` sees the request with the route prefix
 * stripped (method, remaining path, query, headers, body) and its Response goes back as is.
 *
 * The function is resolved before the body is read: an unknown name is a 404 whatever the caller
 * is still sending. What is forwarded: every request header except hop-by-hop ones (RFC 9110
 * §7.6.1), `Proxy-Authorization` (addressed to us as the gateway, never to the function) and any
 * header whose value contains the management token (a client that sent it to a tenant's function
 * by mistake must not hand it over). A function's own `Authorization` values reach it.
 */
import { Hono, type Context } from 'hono';
import { TributaryError } from '../../runtime/errors.ts';
import type { FunctionService } from '../../runtime/function-service.ts';
import type { WireRequest, WireResponse } from '../../runtime/guest/wire.ts';
import { MAX_RESPONSE_HEADER_BYTES } from '../../runtime/limits.ts';
import { readBody, type BodyLimits } from '../body.ts';

const NO_BODY_METHODS = new Set(['GET', 'HEAD']);
/** Hop-by-hop headers (RFC 9110 §7.6.1) are the connection's; Proxy-Authorization is the gateway's (§11.7.2). */
const NOT_FORWARDED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'proxy-authorization']);
/**
 * Framing is the platform's: a function's Content-Length or Transfer-Encoding would sit next to
 * the server's own framing (a reply clients reject), and hop-by-hop headers describe a connection
 * the function does not have. Workers drops them the same way.
 */
const NOT_RETURNED = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'proxy-connection', 'te', 'trailer']);

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
  const handler = async (c: Context) => {
    const name = c.req.param('name')!;
    const version = await functions.resolve(name);
    const request = await toWire(c, name, options);
    return toResponse(await functions.invoke(version, request), maxHeaderBytes);
  };
  app.all('/:name', handler);
  app.all('/:name/*', handler);
  return app;
}

async function toWire(c: Context, name: string, options: InvokeRouteOptions): Promise<WireRequest> {
  const url = new URL(c.req.url);
  const prefix = `/v1/invoke/${encodeURIComponent(name)}`;
  const rest = url.pathname.startsWith(prefix) ? url.pathname.slice(prefix.length) : url.pathname;
  const method = c.req.method.toUpperCase();
  const headers: [string, string][] = [];
  c.req.raw.headers.forEach((value, key) => {
    if (NOT_FORWARDED.has(key)) return;
    if (options.token && value.includes(options.token)) return;
    headers.push([key, value]);
  });
  const body = NO_BODY_METHODS.has(method) ? null : await readBody(c.req.raw, options.body);
  return { method, url: `${url.origin}${rest.startsWith('/') ? rest : `/${rest}`}${url.search}`, headers, body: body?.length ? body : null };
}

/**
 * The guest already built a valid Response; the control plane re-checks it (status, header
 * syntax, header bytes), since guest output is untrusted.
 */
function toResponse(wire: WireResponse, maxHeaderBytes: number): Response {
  if (!Number.isInteger(wire.status) || wire.status < 200 || wire.status > 599) {
    throw new TributaryError('ERR_FN_BAD_RESPONSE', `function returned invalid status ${String(wire.status).slice(0, 20)}`);
  }
  if (!Array.isArray(wire.headers) || typeof wire.statusText !== 'string') {
    throw new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned a malformed response head');
  }
  let headerBytes = wire.statusText.length;
  const headers = new Headers();
  for (const [key, value] of wire.headers) {
    headerBytes += String(key).length + String(value).length;
    if (headerBytes > maxHeaderBytes) {
      throw new TributaryError('ERR_TOO_LARGE', `function response headers exceed ${maxHeaderBytes} bytes`);
    }
    if (typeof key === 'string' && NOT_RETURNED.has(key.toLowerCase())) continue;
    try {
      headers.append(key, value);
    } catch {
      throw new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned an invalid header');
    }
  }
  const nullBody = wire.status === 204 || wire.status === 205 || wire.status === 304;
  try {
    return new Response(nullBody ? null : wire.body, { status: wire.status, statusText: wire.statusText, headers });
  } catch {
    throw new TributaryError('ERR_FN_BAD_RESPONSE', 'function returned an invalid status text');
  }
}
