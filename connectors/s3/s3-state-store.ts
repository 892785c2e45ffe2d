/**
 * `env.STATE` on S3: each key of a partition is one object, and a batch's writes reach those
 * objects only once its transaction committed — exactly-once with a store that has no
 * transactions of its own.
 *
 * Per batch (see connectors/state/state-store.ts for the protocol):
 *   1. stage      PUT the batch's writes as one staged object, `state/<scope>/staged/.../<epoch>-<id>.json`.
 *   2. seal       a manifest row `s3:<namespace>/<partition>/<commit seq> = <staged key>` joins the
 *                 batch's CommitSet: it commits in the same log transaction as the outputs and the
 *                 input offset, or not at all.
 *   3. publish    after the commit, in the background (PartitionPublisher): PUT/DELETE the live
 *                 keys, delete the manifest row, delete the staged object.
 * A crash before 2 leaves an orphan staged object (no row points at it: deleted at the next start);
 * a crash after 2 leaves a row, and the next start — or the next snapshot of that partition —
 * publishes it again from its staged object: same final values, so replay is idempotent. A batch
 * whose transaction did not commit is redone by its partition task under a new epoch and staged
 * anew; the old staged object is never published.
 *
 * S3 unavailable: staging (1) fails, so the batch fails before its transaction and is retried with
 * backoff by its partition task; pending publishes retry on their own and a snapshot waits for them.
 *
 * The scope: exactly-once ties a partition's state to the offsets it was computed up to, which live
 * in the log. So state is kept per log: `scope` is an id stored in the log itself (generated on
 * first use). Two platforms sharing a bucket but each running its own embedded log (the shared
 * deployments setup) run the same graphs over different records and never touch each other's
 * state; a platform whose log.db is deleted starts from empty state, as its offsets do.
 */
import { randomBytes } from 'node:crypto';
import type { StateWrite, Transport } from '../transport.ts';
import type { StagedState, StateBatch, StateStore } from '../state/state-store.ts';
import type { Guard } from '../../runtime/guard.ts';
import type { Bucket } from './bucket.ts';
import { PartitionPublisher, manifestNamespace } from './partition-publisher.ts';
import { encodeStaged, liveNamespacePrefix, parseStagedKey, stagedKey, stagedPrefix } from './state-objects.ts';

export interface S3StateStoreOptions {
  bucket: Bucket;
  /** The log whose transactions carry the manifest rows (and hold the scope id). */
  transport: Transport;
  /** Default: the log's own id (see above). Tests pass one to share a scope on purpose. */
  scope?: string;
  /** How long `close` keeps publishing pending batches before leaving them to the next start (default 5000). */
  closeTimeoutMs?: number;
  /** Reports errors caught in the publishers' timers (default: log only). */
  guard?: Guard;
}

const SCOPE_NAMESPACE = 'tributary:state-scope';

/** The log's id for S3 state, created in the log (one transaction) on first use. */
export function logScope(transport: Transport): string {
  const existing = transport.stateSnapshot(SCOPE_NAMESPACE, 0).find((w) => w.key === 'id');
  if (existing) return String(existing.value);
  const id = randomBytes(8).toString('hex');
  transport.commit({ appends: [], offsets: [], state: [{ namespace: SCOPE_NAMESPACE, partition: 0, writes: [{ key: 'id', value: id }] }] });
  return id;
}

export class S3StateStore implements StateStore {
  readonly kind = 's3';
  readonly scope: string;
  private readonly bucket: Bucket;
  private readonly transport: Transport;
  private readonly closeTimeoutMs: number;
  private readonly guard: Guard | undefined;
  private readonly publishers = new Map<string, PartitionPublisher>();
  /** Names staged objects uniquely within this process (with the epoch and a per-process salt). */
  private stageCount = 0;
  private readonly salt = randomBytes(3).toString('hex');

  constructor(options: S3StateStoreOptions) {
    this.bucket = options.bucket;
    this.transport = options.transport;
    this.scope = options.scope ?? logScope(options.transport);
    this.closeTimeoutMs = options.closeTimeoutMs ?? 5000;
    this.guard = options.guard;
  }

  /**
   * Opens the store and finishes what a previous process left: publishes batches that committed
   * without being published, and deletes staged objects no committed batch points at. Call before
   * any partition task runs (the platform does, before starting graphs).
   */
  static async open(options: S3StateStoreOptions): Promise<S3StateStore> {
    const store = new S3StateStore(options);
    await store.recover();
    return store;
  }

  private publisher(namespace: string, partition: number): PartitionPublisher {
    const id = `${namespace}\u0000${partition}`;
    let publisher = this.publishers.get(id);
    if (publisher === undefined) {
      publisher = new PartitionPublisher({ bucket: this.bucket, transport: this.transport, scope: this.scope, namespace, partition, guard: this.guard });
      this.publishers.set(id, publisher);
    }
    return publisher;
  }

  async recover(): Promise<void> {
    const staged = await this.bucket.list(stagedPrefix(this.scope));
    const orphans: string[] = [];
    for (const key of staged) {
      const where = parseStagedKey(this.scope, key);
      if (where === null) continue;
      if (!this.publisher(where.namespace, where.partition).referenced().has(key)) orphans.push(key);
    }
    // A row's staged object is deleted only after the row, so the listing found every partition
    // with committed batches left to publish.
    await Promise.all([...this.publishers.values()].map((p) => p.flush()));
    if (orphans.length > 0) await this.bucket.delete(orphans);
  }

  snapshot(namespace: string, partition: number): Promise<StateWrite[]> {
    return this.publisher(namespace, partition).snapshot();
  }

  async stage(batch: StateBatch): Promise<StagedState> {
    const publisher = this.publisher(batch.namespace, batch.partition);
    await publisher.backpressure();
    const key = stagedKey(this.scope, batch.namespace, batch.partition, `${batch.epoch}-${this.salt}${(++this.stageCount).toString(36)}`);
    await this.bucket.put(key, encodeStaged(batch.namespace, batch.partition, batch.epoch, batch.writes), 'application/json');
    let sealed: ReturnType<PartitionPublisher['seal']> | null = null;
    return {
      seal: () => {
        sealed = publisher.seal(key, batch.writes);
        return sealed.rows;
      },
      committed: () => {
        if (sealed !== null) publisher.committed(sealed.batch);
      },
      aborted: () => {
        // Best effort: an object left behind is an orphan, deleted at the next start.
        void this.bucket.delete([key]).catch(() => {});
      },
    };
  }

  async deleteNamespaces(prefix: string): Promise<void> {
    for (const [id, publisher] of this.publishers) {
      if (!id.startsWith(prefix)) continue;
      await publisher.discard();
      this.publishers.delete(id);
    }
    const keys = [...(await this.bucket.list(liveNamespacePrefix(this.scope, prefix))), ...(await this.bucket.list(stagedPrefix(this.scope, prefix)))];
    await this.bucket.delete(keys);
    this.transport.deleteState(manifestNamespace(prefix));
  }

  async close(): Promise<void> {
    await Promise.all([...this.publishers.values()].map((p) => p.close(this.closeTimeoutMs)));
  }
}
