/**
 * Binds a Platform's hono app to a TCP socket (127.0.0.1 unless told otherwise), with HTTP server
 * timeouts so that a client that stalls cannot pin a connection and what it sent: headers must
 * arrive within HEADERS_TIMEOUT_MS, the whole request (headers and body) within that plus
 * `bodyReadTimeoutMs` (Node answers 408 and closes the connection), and an idle keep-alive
 * connection is closed after KEEP_ALIVE_TIMEOUT_MS. Routes also bound their own body reads
 * (api/body.ts), so the in-process app and the socket agree.
 */
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { BODY_READ_TIMEOUT_MS } from '../runtime/limits.ts';
import { startPlatform, type Platform, type PlatformOptions } from './platform.ts';

/** Time a client has to send the request line and headers. */
const HEADERS_TIMEOUT_MS = 10_000;
/** An idle keep-alive connection is closed after this long (Node's default). */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How often Node checks connections against the timeouts above; at most a second late. */
const MAX_CHECK_INTERVAL_MS = 1_000;

export interface ServerOptions extends PlatformOptions {
  port?: number;
  host?: string;
}

export interface RunningServer {
  platform: Platform;
  url: string;
  close(): Promise<void>;
}

export async function startServer(options: ServerOptions = {}): Promise<RunningServer> {
  const platform = await startPlatform(options);
  const hostname = options.host ?? '127.0.0.1';
  const bodyReadTimeoutMs = options.bodyReadTimeoutMs ?? BODY_READ_TIMEOUT_MS;
  const headersTimeout = Math.min(HEADERS_TIMEOUT_MS, bodyReadTimeoutMs);
  let server: ServerType;
  try {
    server = await new Promise<ServerType>((resolve, reject) => {
      const s = serve(
        {
          fetch: platform.app.fetch,
          port: options.port ?? 8787,
          hostname,
          serverOptions: {
            headersTimeout,
            requestTimeout: headersTimeout + bodyReadTimeoutMs,
            keepAliveTimeout: KEEP_ALIVE_TIMEOUT_MS,
            connectionsCheckingInterval: Math.min(MAX_CHECK_INTERVAL_MS, headersTimeout),
          },
        },
        () => resolve(s),
      );
      s.once('error', reject);
    });
  } catch (error) {
    await platform.close();
    throw error;
  }
  const { port } = server.address() as AddressInfo;
  return {
    platform,
    url: `http://${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`,
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await platform.close();
    },
  };
}
