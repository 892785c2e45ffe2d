/**
 * Clients that stall on a real socket (startServer): headers or bodies that stop arriving are cut
 * off after the configured body-read timeout (1 s here, 30 s by default) with a 408 or a closed
 * connection, so they cannot pin memory; bodies nobody wants are never waited for.
 */
import { connect, type Socket } from 'node:net';
import { rmSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer, type RunningServer } from '../api/server.ts';
import { tempDir } from './fixtures/platform.ts';

const TOKEN = 'stall-token';
const BODY_READ_TIMEOUT_MS = 1000;
/** Far beyond the 1 s timeout, far below the 30 s default: an answer by then came from the timeout. */
const DEADLINE_MS = 10_000;
const NINE_MIB = 9 * 1024 * 1024;

const dataDir = tempDir();
let server: RunningServer;
let port: number;

beforeAll(async () => {
  server = await startServer({ port: 0, dataDir, hosts: 1, warmSlots: 1, token: TOKEN, bodyReadTimeoutMs: BODY_READ_TIMEOUT_MS });
  port = Number(new URL(server.url).port);
  await server.platform.functions.deploy({
    name: 'echo',
    kind: 'js',
    code: `export default { async fetch(r) { return new Response(await r.text()); } };`,
    memoryLimitMb: 64,
    timeoutMs: 1000,
  });
});
afterAll(async () => {
  await server?.close();
  rmSync(dataDir, { recursive: true, force: true });
});

interface Outcome {
  /** The status line's code, if the server answered at all. */
  status: number | null;
  closed: boolean;
}

/**
 * Opens a raw connection, writes `head` (and `bodyBytes` of body), then sends nothing more.
 * Resolves with what the server did once it answered with a status and closed, or at the deadline.
 */
function stall(head: string, bodyBytes = 0, settleOn: 'close' | 'status' = 'close'): Promise<Outcome> {
  return new Promise((resolve) => {
    const socket: Socket = connect(port, '127.0.0.1');
    let received = '';
    let closed = false;
    const status = () => {
      const match = /^HTTP\/1\.1 (\d{3})/.exec(received);
      return match ? Number(match[1]) : null;
    };
    const done = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: status(), closed });
    };
    const timer = setTimeout(done, DEADLINE_MS);
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      if (settleOn === 'status' && status() !== null) done();
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      closed = true;
      done();
    });
    socket.write(head);
    if (bodyBytes > 0) socket.write(Buffer.alloc(bodyBytes, 120));
  });
}

const upload = (name: string, auth = true) =>
  `PUT /v1/functions/${name} HTTP/1.1\r\nHost: 127.0.0.1\r\n${auth ? `Authorization: Bearer ${TOKEN}\r\n` : ''}` +
  `Content-Type: application/javascript\r\nContent-Length: ${NINE_MIB}\r\n\r\n`;

describe('stalled clients on a real socket', () => {
  it('an authenticated upload that stalls mid-body is answered 408 or closed after the body-read timeout', async () => {
    const outcome = await stall(upload('stalled'), 64 * 1024);
    expect(outcome.closed).toBe(true);
    if (outcome.status !== null) expect(outcome.status).toBe(408);
  });

  it('an invoke that stalls mid-body is answered 408 or closed after the body-read timeout', async () => {
    const outcome = await stall(`POST /v1/invoke/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${NINE_MIB}\r\n\r\n`, 1024);
    expect(outcome.closed).toBe(true);
    if (outcome.status !== null) expect(outcome.status).toBe(408);
  });

  it('a client that stalls in the middle of its headers is cut off', async () => {
    const outcome = await stall('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ');
    expect(outcome.closed).toBe(true);
    if (outcome.status !== null) expect(outcome.status).toBe(408);
  });

  it('30 stalled 9 MiB uploads are all cut off, and the server still answers', async () => {
    const outcomes = await Promise.all(Array.from({ length: 30 }, (_, i) => stall(upload(`many-${i}`), 256 * 1024)));
    expect(outcomes.every((o) => o.closed)).toBe(true);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('an invoke of an unknown function is answered 404 without waiting for its 9 MiB body', async () => {
    const outcome = await stall(`POST /v1/invoke/nobody HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${NINE_MIB}\r\n\r\n`, 0, 'status');
    expect(outcome.status).toBe(404);
  });

  it('an upload without the token is answered 401 without waiting for its 9 MiB body', async () => {
    const outcome = await stall(upload('anonymous', false), 0, 'status');
    expect(outcome.status).toBe(401);
  });

  it('a declared body over the ceiling is answered 413 without waiting for it', async () => {
    const outcome = await stall(
      `PUT /v1/functions/huge HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Type: application/javascript\r\nContent-Length: ${64 * 1024 * 1024}\r\n\r\n`,
      0,
      'status',
    );
    expect(outcome.status).toBe(413);
  });
});
