/**
 * Binds a Platform to its one public port (127.0.0.1 unless told otherwise).
 *
 * The data plane: the control plane accepts each connection paused (`pauseOnConnect`) and hands
 * it to a live host over the Node IPC channel (HostSupervisor.handOver: fewest connections,
 * skipping hosts that restart), as Node's cluster round-robin does. The host serves invokes on it
 * itself (runtime/host/http-plane.ts) — no control-plane hop — and proxies every other request
 * to this process's internal listener, a unix socket beside the data, so every route works on
 * every connection. When no host can take a connection, this process serves it (the hono app,
 * invokes through the host channel; a streamed response is then sent once it ends).
 *
 * Every HTTP server facing clients has the timeouts of api/http-options.ts; routes also bound
 * their own body reads (api/body.ts), so the in-process app and the sockets agree.
 */
import { createAdaptorServer } from '@hono/node-server';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import type { Server } from 'node:http';
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HttpPlaneConfig } from '../runtime/host-protocol.ts';
import { BODY_READ_TIMEOUT_MS, MAX_BODY_BYTES, MAX_INFLIGHT_BODY_BYTES, MAX_RESPONSE_HEADER_BYTES } from '../runtime/limits.ts';
import { httpServerOptions } from './http-options.ts';
import { fingerprintToken } from './invoke-semantics.ts';
import { startPlatform, type Platform, type PlatformOptions } from './platform.ts';

/** Longest unix socket path Linux accepts (sun_path is 108 bytes, with its NUL). */
const MAX_SOCKET_PATH = 100;
/** On close, requests in flight on connections this process serves get this long to finish. */
const CLOSE_GRACE_MS = 3000;

export interface ServerOptions extends PlatformOptions {
  port?: number;
  host?: string;
  /**
   * Who serves client connections: 'hosts' (default: handed to host processes, invokes served
   * there) or 'control-plane' (every request served by this process, invokes over the host
   * channel; the path used while no host is live, kept selectable for benchmarks and profiles).
   */
  dataPlane?: 'hosts' | 'control-plane';
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
  const app = createAdaptorServer({ fetch: platform.app.fetch, serverOptions: httpServerOptions(bodyReadTimeoutMs) }) as Server;
  const handOver = options.dataPlane !== 'control-plane';
  const served = { host: platform.metrics.connections.labels({ served_by: 'host' }), controlPlane: platform.metrics.connections.labels({ served_by: 'control-plane' }) };
  // noDelay as node:http sets it on its own sockets (this option lives on the socket: it survives the hand-over).
  const front = createServer({ pauseOnConnect: true, noDelay: true }, (socket: Socket) => {
    if (handOver && platform.supervisor.handOver(socket)) return served.host.inc();
    served.controlPlane.inc();
    app.emit('connection', socket);
    socket.resume();
  });
  const controlSocket = internalSocketPath(platform.dataDir);
  const token = options.token ?? process.env.TRIBUTARY_TOKEN;
  const config: HttpPlaneConfig = {
    controlSocket,
    ...(token ? { token: fingerprintToken(token) } : {}),
    maxBodyBytes: options.maxBodyBytes ?? MAX_BODY_BYTES,
    bodyReadTimeoutMs,
    maxInflightBodyBytes: Math.floor((options.maxInflightBodyBytes ?? MAX_INFLIGHT_BODY_BYTES) / platform.supervisor.size),
    maxResponseHeaderBytes: MAX_RESPONSE_HEADER_BYTES,
  };
  const { supervisor, functions } = platform;
  try {
    rmSync(controlSocket, { force: true }); // a previous run that was killed left it
    await listen(app, () => app.listen(controlSocket));
    if (handOver) {
      await supervisor.serveConnections(async (index) => {
        await supervisor.callHost(index, { op: 'plane', config });
        await supervisor.callHost(index, { op: 'routes', replace: true, routes: functions.routeTable() });
      });
    }
    // The public port opens last: its first connection already finds hosts that can take it.
    await listen(front, () => front.listen(options.port ?? 8787, hostname));
  } catch (error) {
    front.close();
    app.close();
    await platform.close();
    throw error;
  }
  const { port } = front.address() as AddressInfo;
  return {
    platform,
    url: `http://${hostname.includes(':') ? `[${hostname}]` : hostname}:${port}`,
    async close() {
      front.close();
      const closed = new Promise<void>((resolve) => app.close(() => resolve()));
      app.closeIdleConnections();
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, CLOSE_GRACE_MS).unref())]);
      app.closeAllConnections();
      await platform.close();
      rmSync(controlSocket, { force: true });
    },
  };
}

function listen(server: NetServer | Server, start: () => void): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
    start();
  });
}

/** The internal listener's path: in the data directory, or in the temporary one when that path is too long for a socket. */
function internalSocketPath(dataDir: string): string {
  const inData = join(dataDir, 'control.sock');
  return inData.length <= MAX_SOCKET_PATH ? inData : join(tmpdir(), `tributary-${process.pid}-${randomBytes(4).toString('hex')}.sock`);
}
