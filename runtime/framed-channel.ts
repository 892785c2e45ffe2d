/**
 * Message channel between the control plane and a host process over a socketpair (the child's
 * fd 3): V8-serialized messages, length-prefixed, coalesced into one write per event-loop turn.
 * Node's built-in IPC channel pays a write syscall per message; under load that was the single
 * largest cost of an invoke.
 */
import type { Duplex } from 'node:stream';
import { deserialize, serialize } from 'node:v8';

const HEADER_BYTES = 4;
/** Same ceiling for every message: bodies are capped at 10 MiB, records batches below this. */
const MAX_FRAME_BYTES = 256 * 1024 * 1024;

export class FramedChannel<Out, In> {
  private readonly stream: Duplex;
  private outgoing: Buffer[] = [];
  private flushScheduled = false;
  private pending: Buffer = Buffer.alloc(0);
  private closed = false;

  constructor(stream: Duplex, onMessage: (message: In) => void, onClose: () => void) {
    this.stream = stream;
    stream.on('data', (chunk: Buffer) => {
      this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
      let offset = 0;
      while (this.pending.length - offset >= HEADER_BYTES) {
        const length = this.pending.readUInt32LE(offset);
        if (length > MAX_FRAME_BYTES) {
          stream.destroy(new Error(`frame of ${length} bytes exceeds ${MAX_FRAME_BYTES}`));
          return;
        }
        if (this.pending.length - offset - HEADER_BYTES < length) break;
        const frame = this.pending.subarray(offset + HEADER_BYTES, offset + HEADER_BYTES + length);
        offset += HEADER_BYTES + length;
        onMessage(deserialize(frame) as In);
      }
      this.pending = offset === this.pending.length ? Buffer.alloc(0) : this.pending.subarray(offset);
    });
    const close = () => {
      if (this.closed) return;
      this.closed = true;
      onClose();
    };
    stream.on('close', close);
    stream.on('end', close);
    stream.on('error', close);
  }

  send(message: Out): void {
    if (this.closed) throw new Error('channel closed');
    const body = serialize(message);
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt32LE(body.length, 0);
    // An idle socket gets the frame at once (latency); while earlier bytes are still queued in
    // the socket, frames gather and leave together at the end of the event-loop turn (throughput).
    if (!this.flushScheduled && this.stream.writableLength === 0) {
      this.stream.write(Buffer.concat([header, body]));
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
    this.stream.write(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    this.flush();
    this.stream.end();
  }
}
