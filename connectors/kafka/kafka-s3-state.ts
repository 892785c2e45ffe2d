/**
 * The state of Kafka-fed nodes on a platform with a bucket: in S3, shared by every process that
 * consumes the node's groups, and decided by Kafka's own commits — so a partition that moves to
 * another process (another data directory, another machine) resumes from Kafka's committed
 * offset over exactly the state as of that offset. It is the nodes' {@link KafkaStateLedger}, and
 * {@link KafkaS3State.store} their StateStore. Layout (see state-objects.ts for `<name>`), scope `kafka`:
 *
 *   state/kafka/live/<graph>/<node>/<p>/<name>                       a key's committed value
 *   state/kafka/txn/<graph>/<node>/<p>/<topic>/<end>-<id>.json       a transaction's writes, staged
 *   state/kafka/applied/<graph>/<node>/<p>/<topic>                   {end, txn}: the last one published
 *
 * Exactly-once, per input partition and commit interval:
 *   1. stage    PUT the transaction's writes (one final value per key) as a txn object;
 *   2. commit   the Kafka transaction; its offset commit carries the txn object's name as
 *               metadata, so Kafka alone decides whether those writes happened;
 *   3. publish  in the background: the live keys, the `applied` marker, then the txn object goes.
 * The next stage on the state partition waits for that publish, so at most one committed
 * transaction per input partition is ever unpublished, and the group's committed metadata names
 * it. Whoever opens the partition next, in any process, fences the producer, reads the committed
 * offset and metadata, publishes the named txn object unless the marker shows it published, and
 * deletes every other txn object of the partition (aborted transactions', or a fenced zombie's).
 *
 * At-most/at-least-once: a batch's writes are published at once (before its outputs at most once,
 * after them at least once), then the local ledger records its end offset.
 *
 * Owner tokens and the applied offsets that answer kafkajs's stale offset reads (no KIP-447
 * requireStable) stay in the local {@link KafkaCommitLedger}; transactions without writes touch
 * nothing else, so a stateless node costs no S3 request.
 *
 * A previous owner still running may be publishing the committed transaction right then (a
 * rebalance hands the partition over as soon as it committed): the new owner waits, up to
 * PREVIOUS_PUBLISH_WAIT_MS, for the marker to name it before publishing it itself, so that the
 * previous owner's late writes of those keys cannot land over the new owner's next transaction.
 *
 * Limit: S3 has no multi-key compare-and-set, so nothing fences a publish. A previous owner whose
 * publish takes longer than that wait (a pause longer than a rebalance and the wait) can still
 * overwrite the new owner's later values with its older ones.
 */
import { randomBytes } from 'node:crypto';
import { Backoff } from '../../runtime/backoff.ts';
import { TributaryError } from '../../runtime/errors.ts';
import type { Bucket } from '../s3/bucket.ts';
import { decodeStaged, encodeStaged, liveNamespacePrefix, readLive, writeLive } from '../s3/state-objects.ts';
import type { StagedState, StateBatch, StateStore } from '../state/state-store.ts';
import type { StateWrite } from '../transport.ts';
import type { KafkaCommitLedger, SealedEntries } from './kafka-commit-ledger.ts';
import type { CommittedOffset, KafkaStateLedger, PendingTransaction } from './kafka-state-ledger.ts';

const SCOPE = 'kafka';
/** Longest a stage, snapshot or recovery waits for the state partition's publish in flight. */
const PUBLISH_WAIT_MS = 5000;
const NOTHING_TO_DO = () => {};
/** Longest a new owner waits for the previous one's publish of the transaction Kafka committed (it may be dead). */
const PREVIOUS_PUBLISH_WAIT_MS = 2000;
const MARKER_POLL_MS = 50;

const txnRoot = (prefix: string) => `state/${SCOPE}/txn/${prefix}`;
const txnPrefix = (ns: string, partition: number, topic?: string) => `${txnRoot(ns)}/${partition}/${topic === undefined ? '' : `${topic}/`}`;
const markerRoot = (prefix: string) => `state/${SCOPE}/applied/${prefix}`;
const markerKey = (ns: string, partition: number, topic: string) => `${markerRoot(ns)}/${partition}/${topic}`;
/** `<end>-<id>.json`: the end offset, zero-padded, leads the name. */
const endOf = (name: string) => Number(name.slice(name.lastIndexOf('/') + 1).split('-')[0]);

interface Marker {
  end: number;
  txn: string | null;
}

export interface KafkaS3StateOptions {
  bucket: Bucket;
  /** Owner tokens and applied offsets (this process's view; the bucket holds the state). */
  local: KafkaCommitLedger;
}

export class KafkaS3State implements KafkaStateLedger {
  /** The StateStore of Kafka-fed nodes: snapshots read the live keys; the writes travel to {@link stage} in the sealed entries. */
  readonly store: StateStore;
  private readonly bucket: Bucket;
  private readonly local: KafkaCommitLedger;
  /** Staged and not yet promoted, per input partition. */
  private readonly staged = new Map<string, { name: string; end: number; writes: StateWrite[] }>();
  /** The publish in flight per state partition (a promote's retries while S3 fails; a recovery's or an apply's attempt). */
  private readonly publishing = new Map<string, Promise<void>>();
  private readonly salt = randomBytes(4).toString('hex');
  private count = 0;
  /** Cuts the retries of background publishes short on close (the partitions' next owners publish). */
  private readonly closing = new AbortController();

  constructor(options: KafkaS3StateOptions) {
    this.bucket = options.bucket;
    this.local = options.local;
    this.store = {
      kind: 's3',
      snapshot: async (namespace, partition) => {
        await this.published(namespace, partition);
        return readLive(this.bucket, SCOPE, namespace, partition);
      },
      stage: async (batch: StateBatch): Promise<StagedState> => {
        const entry = { namespace: batch.namespace, partition: batch.partition, writes: batch.writes };
        return { seal: () => [entry], committed: NOTHING_TO_DO, aborted: NOTHING_TO_DO };
      },
      deleteNamespaces: (prefix) => this.deleteNamespaces(prefix),
      close: () => this.close(),
    };
  }

  async deleteNamespaces(prefix: string): Promise<void> {
    for (const id of [...this.publishing.keys()]) {
      if (!id.startsWith(prefix)) continue;
      const [ns, partition] = id.split('\u0000');
      await this.published(ns, Number(partition)); // bounded: throws ERR_S3_UNAVAILABLE while S3 fails
    }
    const keys = [
      ...(await this.bucket.list(liveNamespacePrefix(SCOPE, prefix))),
      ...(await this.bucket.list(txnRoot(prefix))),
      ...(await this.bucket.list(markerRoot(prefix))),
    ];
    await this.bucket.delete(keys);
    this.local.deleteNamespace(prefix);
  }

  /** Waits (at most 5 s) for publishes in flight; what is left is published by the partitions' next owner. */
  async close(): Promise<void> {
    this.closing.abort();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, 5000)));
    await Promise.race([Promise.allSettled(this.publishing.values()), timeout]);
    clearTimeout(timer);
  }

  // ---- KafkaStateLedger

  claim(ns: string, partition: number, topic: string): Promise<string> {
    return this.local.claim(ns, partition, topic);
  }

  async applied(ns: string, partition: number, topic: string): Promise<number> {
    return Math.max(await this.local.applied(ns, partition, topic), (await this.marker(ns, partition, topic))?.end ?? -1);
  }

  async pending(ns: string, partition: number, topic: string): Promise<PendingTransaction | null> {
    // This process's row, else the latest txn object (staged by another process); the latest of their ends.
    let latest: PendingTransaction | null = await this.local.pending(ns, partition, topic);
    for (const name of await this.bucket.list(txnPrefix(ns, partition, topic))) {
      const end = endOf(name);
      if (latest === null || end > latest.end) latest = { end, txn: latest?.txn ?? name };
    }
    return latest;
  }

  async pendingTopics(ns: string, partition: number): Promise<string[]> {
    const prefix = txnPrefix(ns, partition);
    const topics = new Set(await this.local.pendingTopics(ns, partition));
    for (const key of await this.bucket.list(prefix)) topics.add(key.slice(prefix.length).split('/')[0]);
    return [...topics];
  }

  async recover(ns: string, partition: number, topic: string, committed: CommittedOffset): Promise<void> {
    await this.local.recover(ns, partition, topic, committed);
    this.staged.delete(inputId(ns, partition, topic));
    await this.published(ns, partition);
    await this.track(ns, partition, async () => {
      const names = await this.bucket.list(txnPrefix(ns, partition, topic));
      // The metadata names this partition's txn object only if this ledger wrote it (a group of
      // the user's may carry other metadata).
      const named = committed.metadata !== null && names.includes(committed.metadata) ? committed.metadata : null;
      if (named !== null && !(await this.markerNames(ns, partition, topic, named, PREVIOUS_PUBLISH_WAIT_MS))) {
        const body = await this.bucket.get(named);
        if (body !== null) await this.publish(ns, partition, topic, endOf(named), named, decodeStaged(body));
      }
      await this.bucket.delete(names);
    });
  }

  async stage(ns: string, partition: number, topic: string, end: number, entries: SealedEntries, owner: string): Promise<string> {
    // The previous transaction's publish first (one unpublished transaction at most); it throws if that failed.
    await this.published(ns, partition);
    // The txn object's name is the transaction's token (a transaction without writes puts none).
    const name = `${txnPrefix(ns, partition, topic)}${String(end).padStart(20, '0')}-${this.salt}${(++this.count).toString(36)}.json`;
    await this.local.stage(ns, partition, topic, end, [], owner, name);
    const writes = mergeWrites(entries);
    if (writes.length === 0) return name;
    await this.bucket.put(name, encodeStaged(ns, partition, 0, writes), 'application/json');
    this.staged.set(inputId(ns, partition, topic), { name, end, writes });
    return name;
  }

  async promote(ns: string, partition: number, topic: string): Promise<void> {
    await this.local.promote(ns, partition, topic);
    const staged = this.staged.get(inputId(ns, partition, topic));
    if (staged === undefined) return;
    this.staged.delete(inputId(ns, partition, topic));
    // In the background, retried while S3 fails: the next stage, snapshot or close of the state
    // partition waits for it (a worker meanwhile backs off on S3's error, and resumes after).
    const publish = async () => {
      const backoff = new Backoff(100, 5000);
      for (;;) {
        try {
          return await this.publish(ns, partition, topic, staged.end, staged.name, staged.writes);
        } catch (error) {
          if (this.closing.signal.aborted) throw error;
          await backoff.sleep(this.closing.signal);
        }
      }
    };
    void this.track(ns, partition, publish).catch(NOTHING_TO_DO);
  }

  async apply(ns: string, partition: number, topic: string, end: number | null, entries: SealedEntries): Promise<void> {
    await this.published(ns, partition);
    // In the state partition's publish order, whichever input edge applies.
    await this.track(ns, partition, async () => {
      if (end !== null && end <= (await this.local.applied(ns, partition, topic))) return;
      const writes = mergeWrites(entries);
      if (writes.length > 0) await writeLive(this.bucket, SCOPE, ns, partition, new Map(writes.map((w) => [w.key, w.value])));
      if (end !== null) await this.local.apply(ns, partition, topic, end, []);
    });
  }

  // ---- internals

  private async marker(ns: string, partition: number, topic: string): Promise<Marker | null> {
    const body = await this.bucket.get(markerKey(ns, partition, topic));
    return body === null ? null : (JSON.parse(new TextDecoder().decode(body)) as Marker);
  }

  /** Whether the marker names `txn` (its publish is done: the marker follows the live keys), waiting up to `waitMs` for it. */
  private async markerNames(ns: string, partition: number, topic: string, txn: string, waitMs: number): Promise<boolean> {
    const deadline = Date.now() + waitMs;
    for (;;) {
      if ((await this.marker(ns, partition, topic))?.txn === txn) return true;
      if (Date.now() >= deadline || this.closing.signal.aborted) return false;
      await new Promise((resolve) => setTimeout(resolve, MARKER_POLL_MS));
    }
  }

  /** Live keys, then the marker, then the txn object: each step idempotent, so redoing it after a crash is safe. */
  private async publish(ns: string, partition: number, topic: string, end: number, name: string, writes: StateWrite[]): Promise<void> {
    await writeLive(this.bucket, SCOPE, ns, partition, new Map(writes.map((w) => [w.key, w.value])));
    await this.bucket.put(markerKey(ns, partition, topic), JSON.stringify({ end, txn: name } satisfies Marker), 'application/json');
    await this.bucket.delete([name]);
  }

  /** Runs `work` after the state partition's publish in flight; later stages and snapshots wait for it. */
  private track(ns: string, partition: number, work: () => Promise<void>): Promise<void> {
    const id = stateId(ns, partition);
    const run = (this.publishing.get(id) ?? Promise.resolve()).catch(NOTHING_TO_DO).then(work);
    this.publishing.set(id, run);
    const forget = () => {
      if (this.publishing.get(id) === run) this.publishing.delete(id);
    };
    // A failed publish stays in the map: the next stage rejects with it, the partition reopens, and recovery redoes it.
    run.then(forget, NOTHING_TO_DO);
    return run;
  }

  /**
   * Resolves when the state partition's publishes are done. While one keeps failing (S3 down) it
   * rejects after PUBLISH_WAIT_MS with ERR_S3_UNAVAILABLE, so that a partition's lock is never
   * held for an outage: the caller fails, backs off and comes back; the publish goes on retrying.
   */
  private async published(ns: string, partition: number): Promise<void> {
    const run = this.publishing.get(stateId(ns, partition));
    if (run === undefined) return;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new TributaryError('ERR_S3_UNAVAILABLE', `the state of ${ns}/${partition} is not published yet (S3 is failing; still retrying)`)), PUBLISH_WAIT_MS);
    });
    try {
      await Promise.race([run, late]);
    } catch (error) {
      throw error instanceof TributaryError ? error : new TributaryError('ERR_S3_UNAVAILABLE', `publishing state of ${ns}/${partition}: ${String(error)}`, { cause: error });
    } finally {
      clearTimeout(timer);
    }
  }
}

const stateId = (ns: string, partition: number) => `${ns}\u0000${partition}`;
const inputId = (ns: string, partition: number, topic: string) => `${ns}\u0000${partition}\u0000${topic}`;

/** The final value per key of the entries, in commit order (later writes win). */
function mergeWrites(entries: SealedEntries): StateWrite[] {
  const merged = new Map<string, StateWrite['value']>();
  for (const entry of entries) for (const write of entry.writes) merged.set(write.key, write.value);
  return [...merged].map(([key, value]) => ({ key, value }));
}
