/**
 * How long the embedded log keeps records. Two rules:
 *
 * - Edge logs (every topic read by consumer groups): a batch is deleted once every group with a
 *   committed offset on its partition has committed past it (`base + count <= min(next)`). A
 *   partition no group has committed on is never truncated by this rule, and a group that has
 *   never committed does not hold records back (as in Kafka, a group starts where the log starts).
 * - Sinks and dead letters (`<graph>/sink/…`, `<graph>/dlq/…`: read by people and tools, not by
 *   groups): by age and by size per topic partition, oldest batches first. Age counts from the
 *   batch's append; the size rule always keeps a partition's newest batch, and once a partition
 *   is over its limit it deletes down to 15/16 of it (deletions come in chunks, not one per append).
 *
 * - Source edges (the topics an HTTP source appends to, registered by `SqliteLog.keepConsumed`):
 *   kept for replay (`POST /v1/graphs/{name}/sources/{id}/seek`, docs/replay.md) by age and by
 *   size like sinks, but never a batch some group has not committed past: a batch goes once it
 *   is consumed AND (too old OR the partition is over its size). Unconsumed records are bounded
 *   by ingest's backpressure instead.
 *
 * Defaults below; `SqliteLog.setRetention(prefix, limits)` overrides them for the sink and
 * dead-letter topics under a prefix (graph-level settings), the longest matching prefix winning.
 */

export interface RetentionLimits {
  /** Batches appended longer ago than this are deleted. Infinity keeps them. */
  maxAgeMs: number;
  /** Oldest batches are deleted while a partition's stored payloads exceed this. Infinity: no bound. */
  maxBytes: number;
}

/** 7 days and 1 GiB per sink or dead-letter partition. */
export const DEFAULT_RETENTION: RetentionLimits = { maxAgeMs: 7 * 24 * 3600_000, maxBytes: 1024 * 1024 * 1024 };

/**
 * 24 hours and 256 MiB per source-edge partition: enough to replay a day after a bad deploy, small
 * next to a sink's 1 GiB because every consumed record of every source is kept (a source's own
 * `retention` changes it; `{"maxAgeMs": 0}` deletes consumed batches at the next maintenance step).
 */
export const DEFAULT_SOURCE_RETENTION: RetentionLimits = { maxAgeMs: 24 * 3600_000, maxBytes: 256 * 1024 * 1024 };

const RETAINED_TOPIC = /^[^/]+\/(sink|dlq)\//;

/** Sink and dead-letter topics: retained by age and size rather than by consumers. */
export function isRetainedTopic(topic: string): boolean {
  return RETAINED_TOPIC.test(topic);
}

/** Per-prefix overrides over a default, longest prefix first. */
export class RetentionRules {
  private readonly defaults: RetentionLimits;
  private readonly overrides = new Map<string, RetentionLimits>();
  /** Edge topics whose consumed batches are kept for replay, with their limits (exact topic names). */
  private readonly kept = new Map<string, RetentionLimits>();
  /** Resolved limits per topic, cleared whenever the overrides change. */
  private readonly resolved = new Map<string, RetentionLimits>();

  constructor(defaults: RetentionLimits) {
    this.defaults = defaults;
  }

  set(prefix: string, limits: Partial<RetentionLimits> | null): void {
    this.resolved.clear();
    if (limits === null) this.overrides.delete(prefix);
    else this.overrides.set(prefix, { maxAgeMs: limits.maxAgeMs ?? this.defaults.maxAgeMs, maxBytes: limits.maxBytes ?? this.defaults.maxBytes });
  }

  /** Keeps the consumed batches of edge topic `topic` under `limits` (unset ones from DEFAULT_SOURCE_RETENTION); null: truncated once consumed again. */
  keepConsumed(topic: string, limits: Partial<RetentionLimits> | null): void {
    this.resolved.clear();
    if (limits === null) this.kept.delete(topic);
    else this.kept.set(topic, { maxAgeMs: limits.maxAgeMs ?? DEFAULT_SOURCE_RETENTION.maxAgeMs, maxBytes: limits.maxBytes ?? DEFAULT_SOURCE_RETENTION.maxBytes });
  }

  /** An edge topic whose consumed batches are kept by age and size (a source edge). */
  keepsConsumed(topic: string): boolean {
    return this.kept.has(topic);
  }

  /** Topics registered with {@link keepConsumed}. */
  keptTopics(): IterableIterator<string> {
    return this.kept.keys();
  }

  /** Drops the overrides of prefixes starting with `prefix` (a deleted graph's). */
  forget(prefix: string): void {
    this.resolved.clear();
    for (const key of [...this.overrides.keys()]) if (key.startsWith(prefix)) this.overrides.delete(key);
    for (const key of [...this.kept.keys()]) if (key.startsWith(prefix)) this.kept.delete(key);
  }

  of(topic: string): RetentionLimits {
    const kept = this.kept.get(topic);
    if (kept !== undefined) return kept;
    const cached = this.resolved.get(topic);
    if (cached !== undefined) return cached;
    let best: string | null = null;
    for (const prefix of this.overrides.keys()) if (topic.startsWith(prefix) && (best === null || prefix.length > best.length)) best = prefix;
    const limits = best === null ? this.defaults : this.overrides.get(best)!;
    this.resolved.set(topic, limits);
    return limits;
  }
}
