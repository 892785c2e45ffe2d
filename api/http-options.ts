/**
 * Timeouts of every HTTP server that faces clients — the control plane's and each host's HTTP
 * plane — so that a client that stalls cannot pin a connection and what it sent: headers must
 * arrive within HEADERS_TIMEOUT_MS, the whole request (headers and body) within that plus
 * `bodyReadTimeoutMs` (Node answers 408 and closes the connection), and an idle keep-alive
 * connection is closed after KEEP_ALIVE_TIMEOUT_MS. Routes also bound their own body reads
 * (api/body.ts), so the in-process app and the sockets agree.
 */
import type { ServerOptions } from 'node:http';

/** Time a client has to send the request line and headers. */
const HEADERS_TIMEOUT_MS = 10_000;
/** An idle keep-alive connection is closed after this long (Node's default). */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How often Node checks connections against the timeouts above; at most a second late. */
const MAX_CHECK_INTERVAL_MS = 1_000;

export function httpServerOptions(bodyReadTimeoutMs: number): ServerOptions {
  const headersTimeout = Math.min(HEADERS_TIMEOUT_MS, bodyReadTimeoutMs);
  return {
    headersTimeout,
    requestTimeout: headersTimeout + bodyReadTimeoutMs,
    keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
    connectionsCheckingInterval: Math.min(MAX_CHECK_INTERVAL_MS, headersTimeout),
  };
}
