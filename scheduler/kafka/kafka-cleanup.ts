/**
 * Removes what deleted graphs owned on Kafka ({@link kafkaOwned}: internal edge topics,
 * dead-letter topics, the groups Tributary named), and keeps at it until it is gone.
 *
 * A delete records what its graph owes in `graphs.db` before the graph is removed, then tries
 * once, waiting at most `waitMs` (default 10 s): per cluster, a probe (2 s), the groups, then the
 * topics. Whatever is left — brokers down or not answering, a group another process still commits
 * in — stays recorded and is retried in the background with backoff (1 s doubling to 60 s),
 * across restarts, until it is done. Each failed attempt is logged and counted
 * (`tributary_control_plane_errors_total{where="graph.kafka-cleanup"}`); the cleanups outstanding
 * are `tributary_kafka_cleanups_pending`.
 *
 * A deploy of the same name first settles the cleanups of what the new graph would own (same
 * bounded wait) and is refused while one is left: a redeployed graph never inherits its
 * predecessor's records or offsets, and a late cleanup never deletes a live graph's topics.
 */
import type { BrokerPool } from '../../connectors/kafka/broker-pool.ts';
import { clusterKey } from '../../connectors/kafka/brokers.ts';
import { translateKafkaError } from '../../connectors/kafka/kafka-errors.ts';
import { TributaryError } from '../../runtime/errors.ts';
import type { Guard } from '../../runtime/guard.ts';
import type { GraphSpec } from '../graph-spec.ts';
import type { GraphStore, PendingCleanup } from '../graph-store.ts';
import { kafkaOwned, type KafkaOwnedOnCluster, type OwnedGroup } from './kafka-owned.ts';

export const DEFAULT_CLEANUP_WAIT_MS = 10_000;
const PROBE_TIMEOUT_MS = 2000;
const MIN_BACKOFF_MS = 1000;
const MAX_BACKOFF_MS = 60_000;

export interface KafkaCleanupOptions {
  pool: BrokerPool;
  /** Where cleanups are recorded, so that a restart resumes them. */
  store: GraphStore;
  guard: Guard;
  /** Longest a delete (or a deploy of the same name) waits for the brokers (default 10000 ms). */
  waitMs?: number;
  /** Called with the number of cleanups outstanding whenever it changes. */
  onPending?(count: number): void;
}

/** What a delete tells its caller about the graph's Kafka topics and groups. */
export type KafkaCleanupOutcome =
  | { state: 'done'; topics: string[]; groups: string[] }
  | { state: 'pending'; topics: string[]; groups: string[]; reason: string; attempts: number; retryInMs: number | null };

/** A cluster's share of a cleanup, its brokers resolved (a later `--kafka-brokers` must not redirect it). */
type Owed = KafkaOwnedOnCluster & { brokers: string[] };

interface Cleanup {
  id: number;
  graph: string;
  owed: Owed[];
  /** Everything it started with, for the outcome of a delete. */
  initial: { topics: string[]; groups: string[] };
  /** False until the graph is really deleted: nothing is attempted before. */
  armed: boolean;
  attempts: number;
  lastError: TributaryError | null;
  retryAt: number | null;
  running: Promise<void> | null;
  timer: NodeJS.Timeout | null;
}

const names = (owed: Owed[]) => ({ topics: owed.flatMap((c) => c.topics), groups: owed.flatMap((c) => c.groups.map((g) => g.group)) });
const isEmpty = (owed: Owed[]) => owed.every((c) => c.topics.length === 0 && c.groups.length === 0);

export class KafkaCleanup {
  private readonly options: KafkaCleanupOptions;
  private readonly cleanups = new Map<number, Cleanup>();
  private stopped = false;

  constructor(options: KafkaCleanupOptions) {
    this.options = options;
  }

  private get waitMs(): number {
    return this.options.waitMs ?? DEFAULT_CLEANUP_WAIT_MS;
  }

  /**
   * Resumes the cleanups recorded by earlier runs (and by other processes on the same data
   * directory). One whose graph is still stored with the same incarnation was recorded by a
   * delete that never removed its graph (a crash, a failed S3 write): it is dropped.
   */
  resume(): void {
    for (const cleanup of this.adopt((row) => this.options.store.removeCleanup(row.id))) this.schedule(cleanup, 0);
    this.reportCount();
  }

  /**
   * Tracks the recorded cleanups this process does not know yet, `graph`'s only if given; returns
   * them. A row whose graph is still stored with the same incarnation is handed to `live` instead.
   */
  private adopt(live: (row: PendingCleanup) => void, graph?: string): Cleanup[] {
    const { store } = this.options;
    const adopted: Cleanup[] = [];
    for (const row of store.cleanups()) {
      if (this.cleanups.has(row.id) || (graph !== undefined && row.graph !== graph)) continue;
      if (store.incarnation(row.graph) === row.incarnation) {
        live(row);
        continue;
      }
      const cleanup = this.track(row.id, row.graph, JSON.parse(row.owed) as Owed[]);
      cleanup.armed = true;
      adopted.push(cleanup);
    }
    return adopted;
  }

  /**
   * Records what `graph` (deployed as `spec`, incarnation `incarnation`) owes Kafka, before the
   * graph is removed; null when it owes nothing. Nothing runs before {@link settle}.
   */
  record(graph: string, incarnation: string, spec: GraphSpec): number | null {
    const owed = this.resolve(kafkaOwned(graph, spec));
    if (owed.length === 0) return null;
    const id = this.options.store.addCleanup(graph, incarnation, JSON.stringify(owed));
    this.track(id, graph, owed);
    this.reportCount();
    return id;
  }

  /** The delete failed before its graph was removed: the graph lives on and owes nothing. */
  cancel(id: number): void {
    this.drop(id);
  }

  /** Runs the recorded cleanup now, waiting at most `waitMs`; what is left goes on in the background. */
  async settle(id: number): Promise<KafkaCleanupOutcome> {
    const cleanup = this.cleanups.get(id);
    if (!cleanup) return { state: 'done', topics: [], groups: [] };
    cleanup.armed = true;
    await this.attemptWithin(cleanup);
    return this.outcome(cleanup);
  }

  /**
   * Before `graph` is deployed as `spec`: settles its pending cleanups of anything the new graph
   * would own (waiting at most `waitMs`), and throws ERR_KAFKA_UNAVAILABLE — nothing deployed —
   * while one of them is left.
   */
  async clearFor(graph: string, spec: GraphSpec): Promise<void> {
    // Cleanups recorded since this process started, by another one on the same data directory;
    // one whose graph is still stored is a delete in progress there: not a predecessor yet.
    if (this.adopt(() => {}, graph).length > 0) this.reportCount();
    const wanted = new Set<string>();
    for (const cluster of this.resolve(kafkaOwned(graph, spec))) {
      const key = clusterKey(cluster.brokers);
      for (const topic of cluster.topics) wanted.add(`${key}\u0000topic\u0000${topic}`);
      for (const { group } of cluster.groups) wanted.add(`${key}\u0000group\u0000${group}`);
    }
    const overlaps = (c: Cleanup) =>
      c.owed.some((cluster) => {
        const key = clusterKey(cluster.brokers);
        return cluster.topics.some((t) => wanted.has(`${key}\u0000topic\u0000${t}`)) || cluster.groups.some((g) => wanted.has(`${key}\u0000group\u0000${g.group}`));
      });
    const blocking = () => [...this.cleanups.values()].filter((c) => c.armed && c.graph === graph && overlaps(c));
    await Promise.all(blocking().map((c) => this.attemptWithin(c)));
    const left = blocking();
    if (left.length === 0) return;
    const owed = names(left.flatMap((c) => c.owed));
    const reason = left.map((c) => c.lastError?.message).find((m) => m) ?? `the brokers did not answer within ${this.waitMs} ms`;
    throw new TributaryError(
      'ERR_KAFKA_UNAVAILABLE',
      `graph '${graph}' not deployed: the Kafka topics and groups of its deleted predecessor are not removed yet (${[...owed.topics, ...owed.groups].join(', ')}), still retrying: ${reason}`,
    );
  }

  /** Stops the background retries for good (the next start resumes them from `graphs.db`). */
  stop(): void {
    this.stopped = true;
    for (const cleanup of this.cleanups.values()) if (cleanup.timer) clearTimeout(cleanup.timer);
  }

  private resolve(owned: KafkaOwnedOnCluster[]): Owed[] {
    return owned.map((c) => ({ ...c, brokers: c.brokers ?? [...this.options.pool.defaultBrokers] }));
  }

  private track(id: number, graph: string, owed: Owed[]): Cleanup {
    const cleanup: Cleanup = { id, graph, owed, initial: names(owed), armed: false, attempts: 0, lastError: null, retryAt: null, running: null, timer: null };
    this.cleanups.set(id, cleanup);
    return cleanup;
  }

  private drop(id: number): void {
    const cleanup = this.cleanups.get(id);
    if (cleanup?.timer) clearTimeout(cleanup.timer);
    this.cleanups.delete(id);
    this.options.store.removeCleanup(id);
    this.reportCount();
  }

  private reportCount(): void {
    this.options.onPending?.(this.cleanups.size);
  }

  private outcome(cleanup: Cleanup): KafkaCleanupOutcome {
    if (!this.cleanups.has(cleanup.id)) return { state: 'done', ...cleanup.initial };
    return {
      state: 'pending',
      ...names(cleanup.owed),
      reason: cleanup.lastError ? `${cleanup.lastError.code}: ${cleanup.lastError.message}` : `the brokers did not answer within ${this.waitMs} ms; still trying`,
      attempts: cleanup.attempts,
      retryInMs: cleanup.retryAt === null ? null : Math.max(0, cleanup.retryAt - Date.now()),
    };
  }

  /** An attempt now (or the one in flight), awaited for at most `waitMs`. */
  private async attemptWithin(cleanup: Cleanup): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.waitMs)));
    try {
      await Promise.race([this.attempt(cleanup), waited]);
    } finally {
      clearTimeout(timer);
    }
  }

  private schedule(cleanup: Cleanup, delayMs: number): void {
    if (this.stopped || !this.cleanups.has(cleanup.id)) return;
    if (cleanup.timer) clearTimeout(cleanup.timer);
    cleanup.retryAt = Date.now() + delayMs;
    cleanup.timer = setTimeout(this.options.guard.wrap('graph.kafka-cleanup', { graph: cleanup.graph }, () => this.attempt(cleanup)), delayMs);
    cleanup.timer.unref();
  }

  /** One attempt at a time per cleanup; a failed one schedules the next. Never rejects. */
  private attempt(cleanup: Cleanup): Promise<void> {
    if (cleanup.running) return cleanup.running;
    if (cleanup.timer) clearTimeout(cleanup.timer);
    cleanup.timer = null;
    cleanup.retryAt = null;
    cleanup.running = (async () => {
      try {
        const left: Owed[] = [];
        for (const cluster of cleanup.owed) left.push(await this.cleanCluster(cluster));
        cleanup.owed = left.filter((c) => c.topics.length > 0 || c.groups.length > 0);
        if (isEmpty(cleanup.owed)) {
          if (cleanup.attempts > 0) console.error(`tributary: Kafka topics and groups of deleted graph '${cleanup.graph}' removed after ${cleanup.attempts + 1} attempts`);
          this.drop(cleanup.id);
          return;
        }
        this.options.store.updateCleanup(cleanup.id, JSON.stringify(cleanup.owed));
        const groups = cleanup.owed.flatMap((c) => c.groups.map((g) => `'${g.group}'`));
        throw new TributaryError('ERR_KAFKA_UNAVAILABLE', `groups ${groups.join(', ')} still exist after their deletion (a process still consumes in them, or their coordinator is loading); the topics wait for them`);
      } catch (error) {
        cleanup.lastError = translateKafkaError(error, `removing Kafka topics and groups of deleted graph '${cleanup.graph}'`);
        cleanup.attempts++;
        if (this.stopped) return; // shutting down: the clients are closing; the next start resumes it
        this.options.guard.report('graph.kafka-cleanup', { graph: cleanup.graph }, cleanup.lastError);
        this.schedule(cleanup, Math.min(MAX_BACKOFF_MS, MIN_BACKOFF_MS * 2 ** (cleanup.attempts - 1)));
      } finally {
        cleanup.running = null;
      }
    })();
    return cleanup.running;
  }

  /**
   * Groups, then topics, on one cluster; returns what is left. A group still there after its
   * deletion (members in another process, a coordinator still loading after a restart) keeps the
   * topics waiting: deleting them first would leave the group behind, with offsets a new graph of
   * the same name would inherit.
   */
  private async cleanCluster(cluster: Owed): Promise<Owed> {
    const broker = this.options.pool.get(cluster.brokers);
    // Down brokers fail here in at most 2 s, rather than after the client's retries.
    await broker.probe(PROBE_TIMEOUT_MS);
    const remaining = new Set(await broker.deleteGroups(cluster.groups.map((g) => g.group)));
    const left: OwnedGroup[] = cluster.groups.filter((g) => remaining.has(g.group));
    if (left.length > 0) return { brokers: cluster.brokers, topics: cluster.topics, groups: left };
    await broker.deleteTopics(cluster.topics);
    return { brokers: cluster.brokers, topics: [], groups: [] };
  }
}
