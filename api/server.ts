/** Binds a Platform's hono app to a TCP socket (127.0.0.1 unless told otherwise). */
import { serve, type ServerType } from '@hono/node-server';
import type { AddressInfo } from 'node:net';
import { startPlatform, type Platform, type PlatformOptions } from './platform.ts';

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
  const server = await new Promise<ServerType>((resolve, reject) => {
    const s = serve({ fetch: platform.app.fetch, port: options.port ?? 8787, hostname }, () => resolve(s));
    s.once('error', reject);
  });
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
