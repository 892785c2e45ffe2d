/**
 * The host channel over a real socket pair: a message too large is refused at the sender with
 * ERR_TOO_LARGE (nothing written, the channel stays usable); a receiver meeting an oversized frame
 * skips it instead of destroying the channel; large frames split over many chunks arrive whole.
 */
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FramedChannel } from '../runtime/framed-channel.ts';
import { tempDir } from './fixtures/platform.ts';

interface Pair {
  left: Socket;
  right: Socket;
  server: Server;
}

let pair: Pair | null = null;

async function socketPair(): Promise<Pair> {
  const path = join(tempDir('tributary-channel-'), 'pair.sock');
  const server = createServer();
  server.listen(path);
  await once(server, 'listening');
  const accepted = once(server, 'connection');
  const left = connect(path);
  await once(left, 'connect');
  const [right] = (await accepted) as [Socket];
  return { left, right, server };
}

afterEach(() => {
  pair?.left.destroy();
  pair?.right.destroy();
  pair?.server.close();
  pair = null;
});

function receiver(socket: Socket, options?: ConstructorParameters<typeof FramedChannel>[3]) {
  const received: unknown[] = [];
  const refused: number[] = [];
  let closed = false;
  const channel = new FramedChannel<unknown, unknown>(socket, (message) => received.push(message), () => (closed = true), {
    ...options,
    onRefused: (bytes) => refused.push(bytes),
  });
  return { channel, received, refused, isClosed: () => closed };
}

async function until(check: () => boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe('FramedChannel', () => {
  it('refuses to send a message over its limit with ERR_TOO_LARGE, and the next message still goes through', async () => {
    pair = await socketPair();
    const sender = new FramedChannel<unknown, unknown>(pair.left, () => {}, () => {}, { maxMessageBytes: 1024 * 1024 });
    const { received, refused, isClosed } = receiver(pair.right, { maxMessageBytes: 1024 * 1024 });
    expect(() => sender.send({ blob: 'x'.repeat(2 * 1024 * 1024) })).toThrow(expect.objectContaining({ code: 'ERR_TOO_LARGE' }));
    sender.send({ after: true });
    await until(() => received.length === 1);
    expect(received).toEqual([{ after: true }]);
    expect(refused).toEqual([]);
    expect(sender.isClosed || isClosed()).toBe(false);
  });

  it('a receiver skips a frame longer than its own limit and keeps reading the frames after it', async () => {
    pair = await socketPair();
    const sender = new FramedChannel<unknown, unknown>(pair.left, () => {}, () => {}, { maxMessageBytes: 8 * 1024 * 1024 });
    const { received, refused, isClosed } = receiver(pair.right, { maxMessageBytes: 64 * 1024 });
    sender.send({ n: 1 });
    sender.send({ blob: 'y'.repeat(4 * 1024 * 1024) });
    sender.send({ n: 2 });
    await until(() => received.length === 2);
    expect(received).toEqual([{ n: 1 }, { n: 2 }]);
    expect(refused).toHaveLength(1);
    expect(refused[0]).toBeGreaterThan(4 * 1024 * 1024);
    expect(isClosed()).toBe(false);
  });

  it('a frame that is not a V8-serialized value is dropped; the channel goes on', async () => {
    pair = await socketPair();
    const { received, refused, isClosed } = receiver(pair.right);
    const garbage = Buffer.from([0xff, 0x0f, 0x99, 0x01, 0x02]);
    const header = Buffer.alloc(4);
    header.writeUInt32LE(garbage.length, 0);
    pair.left.write(Buffer.concat([header, garbage]));
    const sender = new FramedChannel<unknown, unknown>(pair.left, () => {}, () => {});
    sender.send('fine');
    await until(() => received.length === 1);
    expect(received).toEqual(['fine']);
    expect(refused).toEqual([garbage.length]);
    expect(isClosed()).toBe(false);
  });

  it('large frames split over many chunks, and many small frames in one chunk, arrive whole and in order', async () => {
    pair = await socketPair();
    const sender = new FramedChannel<unknown, unknown>(pair.left, () => {}, () => {});
    const { received } = receiver(pair.right);
    const big = new Uint8Array(32 * 1024 * 1024).fill(7);
    sender.send({ big });
    for (let i = 0; i < 1000; i++) sender.send(i);
    await until(() => received.length === 1001);
    expect(Buffer.compare((received[0] as { big: Uint8Array }).big, big)).toBe(0);
    expect(received.slice(1)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
  });
});
