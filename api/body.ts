/**
 * Request bodies, read only once a route has decided it wants them (the function exists, the
 * upload's name, content type, limits and quota are fine) and never without bounds: at most
 * `maxBytes` (413 ERR_TOO_LARGE, counted while streaming, so a body without Content-Length cannot
 * grow past it either) and within `timeoutMs` of starting to read (408 ERR_BODY_TIMEOUT, so a
 * client that stalls mid-body cannot pin what it sent so far), and within a budget shared by all
 * requests being read (503 ERR_OVERLOADED, so many slow clients cannot add up either).
 *
 * @example
 *   const bytes = await readBody(c.req.raw, { maxBytes: MAX_BODY_BYTES, timeoutMs: BODY_READ_TIMEOUT_MS });
 */
import type { Readable } from 'node:stream';
import { TributaryError } from '../runtime/errors.ts';

export interface BodyLimits {
  /** Largest body accepted, in bytes (default MAX_BODY_BYTES). */
  maxBytes: number;
  /** Time the whole body may take to arrive once reading starts (default BODY_READ_TIMEOUT_MS). */
  timeoutMs: number;
  /** Bytes all bodies being read may hold together (one per app; default MAX_INFLIGHT_BODY_BYTES). */
  budget?: BodyBudget;
}

/** Bytes held by bodies being read right now, over every request sharing this budget. */
export class BodyBudget {
  readonly maxBytes: number;
  private held = 0;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get heldBytes(): number {
    return this.held;
  }

  /** Takes `bytes` or throws ERR_OVERLOADED (nothing taken) when the budget would be exceeded. */
  take(bytes: number): void {
    if (this.held + bytes > this.maxBytes) {
      throw new TributaryError('ERR_OVERLOADED', `too many request bodies are being received (${this.maxBytes} bytes at once); retry shortly`, {
        details: { retryAfterS: 1 },
      });
    }
    this.held += bytes;
  }

  give(bytes: number): void {
    this.held -= bytes;
  }
}

/** The body's bytes (empty when there is none); the stream is cancelled on any failure. */
export async function readBody(request: Request, limits: BodyLimits): Promise<Uint8Array> {
  const declared = request.headers.get('content-length');
  if (request.body === null) {
    checkDeclared(declared, limits.maxBytes);
    return new Uint8Array(0);
  }
  const reader = request.body.getReader();
  return readChunks({ next: () => reader.read(), cancel: () => void reader.cancel().catch(() => {}) }, declared, limits);
}

/** Where body bytes come from: a web stream's reader, or a Node stream's async iterator (the hosts' HTTP plane). */
export interface BodySource {
  next(): Promise<IteratorResult<Uint8Array, unknown>>;
  /** Stops reading (the client's remaining bytes are not wanted). */
  cancel(): void;
}

/**
 * A Node request (IncomingMessage) as a BodySource. Cancelling stops reading without destroying
 * the socket: the error answer (413, 408) must still reach the client, on a connection then closed.
 */
export function nodeBodySource(stream: Readable): BodySource {
  const iterator = stream.iterator({ destroyOnReturn: false }) as AsyncIterator<Uint8Array>;
  return { next: () => iterator.next(), cancel: () => void iterator.return?.()?.catch(() => {}) };
}

/**
 * The one body reader behind every route and the hosts' invokes: `declared` (Content-Length) over
 * the limit is refused unread, then bytes are counted as they arrive, within the timeout and the budget.
 */
export async function readChunks(source: BodySource, declared: string | null, limits: BodyLimits): Promise<Uint8Array> {
  checkDeclared(declared, limits.maxBytes);
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new TributaryError('ERR_BODY_TIMEOUT', `request body did not arrive within ${limits.timeoutMs} ms`)),
      limits.timeoutMs,
    );
  });
  expired.catch(() => {});
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await Promise.race([source.next(), expired]);
      if (done) break;
      const chunk = value as Uint8Array;
      if (total + chunk.byteLength > limits.maxBytes) throw tooLarge(limits.maxBytes);
      limits.budget?.take(chunk.byteLength);
      total += chunk.byteLength;
      chunks.push(chunk);
    }
  } catch (error) {
    source.cancel();
    if (error instanceof TributaryError) throw error;
    // The client went away mid-body (reset, aborted): nothing to answer it, nothing to log.
    throw new TributaryError('ERR_BAD_REQUEST', 'request body could not be read (connection closed mid-body)');
  } finally {
    clearTimeout(timer);
    // Once read, a body is the call's: the host queue's byte limit (MAX_QUEUED_BYTES_PER_HOST) takes over.
    limits.budget?.give(total);
  }
  return concat(chunks, total);
}

function checkDeclared(declared: string | null, maxBytes: number): void {
  if (declared !== null && /^\d+$/.test(declared) && Number(declared) > maxBytes) throw tooLarge(maxBytes);
}

/** The body as UTF-8 text (invalid sequences replaced: JSON parsing reports them). */
export async function readText(request: Request, limits: BodyLimits): Promise<string> {
  return new TextDecoder().decode(await readBody(request, limits));
}

function tooLarge(maxBytes: number): TributaryError {
  return new TributaryError('ERR_TOO_LARGE', `request body exceeds ${maxBytes} bytes`);
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (chunks.length === 1) return chunks[0];
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}
