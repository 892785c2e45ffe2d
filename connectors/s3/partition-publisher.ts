/**
 * The batches of one S3 state partition that committed but are not yet published to its live
 * keys, and the publishing of them, in commit order.
 *
 * Each committed batch left a manifest row in the log (namespace `s3:<namespace>`, key = its
 * commit sequence, value = its staged object's key), written by the batch's own transaction.
 * Publishing a round of batches = PUT/DELETE their merged final values on the live keys, then
 * delete their manifest rows (one small transaction), then their staged objects. Every step is
 * idempotent, so a crash anywhere is repaired by doing the round again: rows still present are
 * re-published from their staged objects, with the same final values. A staged object is deleted
 * only after its row, so a row always has its object.
 *
 * Publishing runs in the background and coalesces: while one round runs, later commits queue up
 * and the next round writes each key once for all of them. A batch's critical path is thus one
 * PUT (its staged object) whatever the publishing costs. `snapshot` publishes what is pending
 * first, so it reads exactly the committed state from the live keys.
 */
import { TributaryError } from '../../runtime/errors.ts';
import { defaultGuard, type Guard } from '../../runtime/guard.ts';
import type { CommitSet, StateWrite, Transport } from '../transport.ts';
import type { Bucket } from './bucket.ts';
import { mapLimit } from './map-limit.ts';
import { decodeStaged, readLive, sizeOfWrites, writeLive } from './state-objects.ts';

/** Manifest rows of namespace `ns` live in the log under `s3:<ns>` (graph names cannot contain ':'). */
export function manifestNamespace(namespace: string): string {
  return `s3:${namespace}`;
}

/** Batches published together at most (bounds a round's memory and its DeleteObjects). */
const MAX_ROUND_BATCHES = 64;
/** Committed batches waiting before `stage` makes the next one wait for publishing (backpressure). */
const MAX_PENDING_BATCHES = 64;
/** ... or bytes of writes waiting: the pending writes are held in memory until published. */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;
const MAX_RETRY_MS = 5000;
/**
 * Background rounds of a partition start at most this often. A round costs one PUT per distinct
 * key it publishes whatever the number of batches it covers, so pacing trades how long batches
 * stay staged (what recovery and the next snapshot would have to publish) for fewer requests.
 */
const ROUND_INTERVAL_MS = 500;

export interface PublisherContext {
  bucket: Bucket;
  transport: Transport;
  scope: string;
  namespace: string;
  partition: number;
  /** Reports a background round's timer or callback that throws (default: log only). */
  guard?: Guard;
}

export interface PendingBatch {
  /** Commit sequence: the manifest row's key, zero-padded so that key order is commit order. */
  seq: string;
  staged: string;
  /** Null for batches recovered from the log: read from the staged object when published. */
  writes: StateWrite[] | null;
  bytes: number;
}

export class PartitionPublisher {
  private readonly ctx: PublisherContext;
  private readonly manifest: string;
  private readonly queue: PendingBatch[] = [];
  private pendingBytes = 0;
  private lastSeq = 0;
  /** Rounds and snapshots of this partition run one at a time. */
  private lock: Promise<unknown> = Promise.resolve();
  private background: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryMs = 0;
  private lastRoundAt = 0;
  private closed = false;
  /** Why the last background round failed; cleared by the next success. */
  lastError: TributaryError | null = null;

  /** Loads the batches a previous process committed and did not finish publishing. */
  constructor(ctx: PublisherContext) {
    this.ctx = ctx;
    this.manifest = manifestNamespace(ctx.namespace);
    const rows = ctx.transport.stateSnapshot(this.manifest, ctx.partition).sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    for (const row of rows) {
      this.queue.push({ seq: row.key, staged: String(row.value), writes: null, bytes: 0 });
      this.lastSeq = Math.max(this.lastSeq, Number(row.key));
    }
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Staged objects that committed batches still point at (not garbage). */
  referenced(): Set<string> {
    return new Set(this.queue.map((b) => b.staged));
  }

  /** Waits for publishing when too much is pending; rejects when S3 fails. */
  async backpressure(): Promise<void> {
    if (this.queue.length >= MAX_PENDING_BATCHES || this.pendingBytes >= MAX_PENDING_BYTES) await this.flush();
  }

  /**
   * The manifest row for a staged batch, to commit with it. Sequences grow within a process and
   * start above any row left by a previous one, so row order is commit order across restarts.
   */
  seal(staged: string, writes: StateWrite[]): { batch: PendingBatch; rows: CommitSet['state'] } {
    const seq = Math.max(this.lastSeq + 1, Date.now() * 1000);
    this.lastSeq = seq;
    const batch = { seq: String(seq).padStart(20, '0'), staged, writes, bytes: sizeOfWrites(writes) };
    return { batch, rows: [{ namespace: this.manifest, partition: this.ctx.partition, writes: [{ key: batch.seq, value: staged }] }] };
  }

  /** The batch's transaction committed: publish it in the background. */
  committed(batch: PendingBatch): void {
    if (this.closed) return; // its row is in the log: the next start publishes it
    this.queue.push(batch);
    this.pendingBytes += batch.bytes;
    this.kick();
  }

  /** Publishes every batch committed so far; rejects with ERR_S3_UNAVAILABLE (they stay pending). */
  flush(): Promise<void> {
    return this.exclusive(() => this.publishPending());
  }

  /** The committed state: what is pending is published first, then the live keys are read. */
  snapshot(): Promise<StateWrite[]> {
    return this.exclusive(async () => {
      await this.publishPending();
      const { bucket, scope, namespace, partition } = this.ctx;
      return readLive(bucket, scope, namespace, partition);
    });
  }

  /** Stops publishing and forgets pending batches (their namespace is being deleted). */
  discard(): Promise<void> {
    this.closed = true;
    this.clearRetry();
    return this.exclusive(async () => {
      this.queue.length = 0;
      this.pendingBytes = 0;
    });
  }

  /** Publishes what it can within `timeoutMs`, then stops; what is left is published at the next start. */
  async close(timeoutMs: number): Promise<void> {
    this.clearRetry();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.flush().catch(() => {}), timeout]);
    clearTimeout(timer);
    this.closed = true;
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.lock.then(work, work);
    this.lock = run.catch(() => {});
    return run;
  }

  private kick(): void {
    if (this.background !== null || this.retryTimer !== null || this.closed) return;
    const wait = this.lastRoundAt + ROUND_INTERVAL_MS - Date.now();
    if (wait > 0) {
      this.retryTimer = setTimeout(
        this.guarded('publisher.round', () => {
          this.retryTimer = null;
          this.kick();
        }),
        wait,
      );
      this.retryTimer.unref();
      return;
    }
    this.lastRoundAt = Date.now();
    this.background = this.flush().then(
      () => {
        this.retryMs = 0;
        this.lastError = null;
      },
      (error: unknown) => {
        this.lastError = error instanceof TributaryError ? error : new TributaryError('ERR_INTERNAL', String(error), { cause: error });
        // S3 is down or the log closed: try again later; the rows keep the batches safe meanwhile.
        this.retryMs = Math.min(MAX_RETRY_MS, Math.max(100, this.retryMs * 2));
        this.retryTimer = setTimeout(
          this.guarded('publisher.retry', () => {
            this.retryTimer = null;
            this.kick();
          }),
          this.retryMs,
        );
        this.retryTimer.unref();
      },
    );
    const settled = this.guarded('publisher.round', () => {
      this.background = null;
      if (this.queue.length > 0) this.kick();
    });
    void this.background.then(settled, settled);
  }

  /** A timer or promise callback whose failure is reported instead of escaping (an uncaught one ends the process). */
  private guarded(where: string, fn: () => void): () => void {
    const { guard = defaultGuard, namespace, partition } = this.ctx;
    return guard.wrap(where, { namespace, partition: String(partition) }, fn);
  }

  private clearRetry(): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
  }

  /** Publishes the batches queued when it starts, in rounds; only rounds remove batches. */
  private async publishPending(): Promise<void> {
    let remaining = this.queue.length;
    while (remaining > 0 && !this.closed) {
      const round = this.queue.slice(0, Math.min(remaining, MAX_ROUND_BATCHES));
      await this.publish(round);
      this.queue.splice(0, round.length);
      for (const batch of round) this.pendingBytes -= batch.bytes;
      remaining -= round.length;
    }
  }

  private async publish(round: PendingBatch[]): Promise<void> {
    const { bucket, transport, scope, namespace, partition } = this.ctx;
    await mapLimit(
      round.filter((b) => b.writes === null),
      8,
      async (batch) => {
        const body = await bucket.get(batch.staged);
        if (body === null) {
          // Cannot happen through Tributary (objects go after their rows); someone deleted it.
          console.error(`tributary: staged state s3://${bucket.name}/${batch.staged} is missing; its batch's writes are lost`);
        }
        batch.writes = body === null ? [] : decodeStaged(body);
      },
    );
    // Later batches win: one write per key for the whole round.
    const merged = new Map<string, string | Uint8Array | null>();
    for (const batch of round) for (const write of batch.writes!) merged.set(write.key, write.value);
    await writeLive(bucket, scope, namespace, partition, merged);
    transport.commit({
      appends: [],
      offsets: [],
      state: [{ namespace: this.manifest, partition, writes: round.map((b) => ({ key: b.seq, value: null })) }],
    });
    // Garbage from here on: if this fails, the next start collects it.
    await bucket.delete(round.map((b) => b.staged)).catch(() => {});
  }
}
