/**
 * Message channel between the control plane and a host process over a socketpair (the child's
 * fd 3): V8-serialized messages, length-prefixed, coalesced into one write per event-loop turn.
 * Node's built-in IPC channel pays a write syscall per message; under load that was the single
 * largest cost of an invoke.
 *
 * No frame above MAX_CHANNEL_MESSAGE_BYTES is ever written: `send` serializes once, checks the
 * length and throws ERR_TOO_LARGE instead, so an oversized result fails its own call and the
 * channel (and the host behind it) lives on. A receiver that meets a longer frame anyway skips
 * its bytes and keeps reading.
 */
import type { Duplex } from 'node:stream';
import { deserialize, serialize } from 'node:v8';
import { TributaryError } from './errors.ts';
import { MAX_CHANNEL_MESSAGE_BYTES } from './limits.ts';

const HEADER_BYTES = 4;
/** Bodies up to this size are copied next to their header (one small write); longer ones are written as they are. */
const COPY_BELOW_BYTES = 64 * 1024;

export interface FramedChannelOptions {
  /** Largest frame sent or accepted (default MAX_CHANNEL_MESSAGE_BYTES). */
  maxMessageBytes?: number;
  /** A frame that was skipped: longer than the limit, or not a V8-serialized value. */
  onRefused?(bytes: number, reason: string): void;
}

export class FramedChannel<Out, In> {
  private readonly stream: Duplex;
  private readonly maxMessageBytes: number;
  private readonly onRefused: (bytes: number, reason: string) => void;
  private outgoing: Buffer[] = [];
  private flushScheduled = false;
  /** Received bytes not yet framed, oldest first. */
  private chunks: Buffer[] = [];
  private buffered = 0;
  /** Length of the frame being received, once its header has arrived. */
  private frameBytes = -1;
  /** Bytes of a refused frame still to be thrown away. */
  private skipBytes = 0;
  private closed = false;

  /** `onMessage` also gets the frame's size in bytes (the host accounts queued payload with it). */
  constructor(stream: Duplex, onMessage: (message: In, bytes: number) => void, onClose: () => void, options: FramedChannelOptions = {}) {
    this.stream = stream;
    this.maxMessageBytes = options.maxMessageBytes ?? MAX_CHANNEL_MESSAGE_BYTES;
    this.onRefused = options.onRefused ?? ((bytes, reason) => console.error(`tributary: dropped a ${bytes}-byte channel frame: ${reason}`));
    stream.on('data', (chunk: Buffer) => this.receive(chunk, onMessage));
    const close = () => {
      if (this.closed) return;
      this.closed = true;
      onClose();
    };
    stream.on('close', close);
    stream.on('end', close);
    stream.on('error', close);
  }

  /** Sends one message; throws ERR_TOO_LARGE (nothing written) when it serializes above the limit. */
  send(message: Out): void {
    if (this.closed) throw new Error('channel closed');
    const body = serialize(message);
    if (body.length > this.maxMessageBytes) {
      throw new TributaryError('ERR_TOO_LARGE', `message of ${body.length} bytes exceeds the host channel limit of ${this.maxMessageBytes} bytes`);
    }
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt32LE(body.length, 0);
    // An idle socket gets the frame at once (latency); while earlier bytes are still queued in
    // the socket, frames gather and leave together at the end of the event-loop turn (throughput).
    if (!this.flushScheduled && this.stream.writableLength === 0) {
      if (body.length < COPY_BELOW_BYTES) this.stream.write(Buffer.concat([header, body]));
      else this.writeAll([header, body]);
      return;
    }
    this.outgoing.push(header, body);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.closed || this.outgoing.length === 0) return;
    const chunks = this.outgoing;
    this.outgoing = [];
    this.writeAll(chunks);
  }

  /** One writev of several buffers, none of them copied (large results are not buffered twice). */
  private writeAll(chunks: Buffer[]): void {
    this.stream.cork();
    for (const chunk of chunks) this.stream.write(chunk);
    this.stream.uncork();
  }

  private receive(chunk: Buffer, onMessage: (message: In, bytes: number) => void): void {
    if (this.skipBytes > 0) {
      const skipped = Math.min(this.skipBytes, chunk.length);
      this.skipBytes -= skipped;
      if (skipped === chunk.length) return;
      chunk = chunk.subarray(skipped);
    }
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.frameBytes < 0) {
        if (this.buffered < HEADER_BYTES) return;
        this.frameBytes = this.take(HEADER_BYTES).readUInt32LE(0);
        if (this.frameBytes > this.maxMessageBytes) {
          const length = this.frameBytes;
          this.frameBytes = -1;
          this.skip(length);
          this.onRefused(length, `longer than the limit of ${this.maxMessageBytes} bytes`);
          if (this.skipBytes > 0) return;
          continue;
        }
      }
      if (this.buffered < this.frameBytes) return;
      const length = this.frameBytes;
      const frame = this.take(length);
      this.frameBytes = -1;
      let message: In;
      try {
        message = deserialize(frame) as In;
      } catch (error) {
        this.onRefused(length, `not a V8-serialized value (${(error as Error).message})`);
        continue;
      }
      onMessage(message, length);
    }
  }

  /** The next `bytes` received bytes as one buffer: a view when they lie in one chunk, else one copy. */
  private take(bytes: number): Buffer {
    this.buffered -= bytes;
    const first = this.chunks[0];
    if (first.length >= bytes) {
      if (first.length === bytes) this.chunks.shift();
      else this.chunks[0] = first.subarray(bytes);
      return first.subarray(0, bytes);
    }
    const out = Buffer.allocUnsafe(bytes);
    let filled = 0;
    while (filled < bytes) {
      const next = this.chunks[0];
      const used = Math.min(next.length, bytes - filled);
      next.copy(out, filled, 0, used);
      filled += used;
      if (used === next.length) this.chunks.shift();
      else this.chunks[0] = next.subarray(used);
    }
    return out;
  }

  /** Throws away `bytes` bytes: what is buffered now, the rest as it arrives. */
  private skip(bytes: number): void {
    const now = Math.min(bytes, this.buffered);
    let left = now;
    while (left > 0) {
      const next = this.chunks[0];
      if (next.length <= left) {
        left -= next.length;
        this.chunks.shift();
      } else {
        this.chunks[0] = next.subarray(left);
        left = 0;
      }
    }
    this.buffered -= now;
    this.skipBytes = bytes - now;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.flush();
    this.stream.end();
  }
}
