/**
 * Event-time watermarks of a node, per state partition. A graph has event time when one of its
 * sources says how to read it (`eventTime` in the source spec: a field of the value, else the
 * ingest or Kafka timestamp; and a bounded out-of-orderness). Then:
 *
 * - The consumer of a source edge's partition derives that partition's watermark from the
 *   records it reads: the highest event time seen minus `outOfOrdernessMs` (origin
 *   `<source>/<partition>`).
 * - Every record a node emits carries its partition's watermark in a header
 *   (`tributary-watermark: <node>/<partition>:<ms>`, never shown to functions), and a batch that
 *   moved it sends a marker (MARKER_HEADER) to each downstream partition it sent nothing to, so a
 *   consumer downstream learns the watermark of every upstream partition.
 * - A state partition's watermark is the minimum over its origins (every input edge and every
 *   upstream partition seen), leaving out origins silent for longer than the idle timeout (when
 *   every origin is silent, the highest of theirs: none holds the others back), and never moves
 *   back.
 * - The origins' watermarks are state: written to the partition's reserved key with the batch that
 *   moved them, so a restart resumes from them instead of from nothing.
 *
 * Event-time timers of a partition fire once its watermark reaches them; records older than the
 * watermark by more than a node's allowed lateness go to its dead letters (`ERR_LATE_RECORD`)
 * when the node asks for it (`late` in its spec).
 */
export const WATERMARK_HEADER = 'tributary-watermark';
/**
 * A marker: a record carrying only a watermark. After a batch that moved a node partition's
 * watermark, every partition of its outgoing edges that got no output from the batch gets one, so
 * downstream partitions hear from every upstream partition even when no data goes their way
 * (keyed edges, filters); consumers take the watermark and never run the marker.
 */
export const MARKER_HEADER = 'tributary-marker';
/**
 * When a record's timestamp is its event time rather than its arrival, the arrival (ms) rides
 * along in this header, so end-to-end latency stays arrival to sink (never shown to functions).
 */
export const INGESTED_HEADER = 'tributary-ingested';
/** How long an origin may stay silent before it stops holding its partitions back (default). */
export const DEFAULT_IDLE_TIMEOUT_MS = 10_000;
/** Origins kept per state partition: upstream partitions and sources, each at most 256 per edge. */
const MAX_ORIGINS = 4096;

interface Origin {
  watermark: number;
  seenAt: number;
}

interface PartitionMarks {
  origins: Map<string, Origin>;
  /** The partition's watermark so far (it never moves back); null before any origin. */
  current: number | null;
  /** Origins moved since the last `persisted`. */
  dirty: boolean;
  /** Origins to wait for, registered when the partition hears its first record (see `expect`). */
  expected: string[] | null;
}

export class NodeWatermarks {
  private readonly partitions = new Map<number, PartitionMarks>();
  private readonly idleTimeoutMs: number;

  constructor(idleTimeoutMs: number) {
    this.idleTimeoutMs = idleTimeoutMs;
  }

  private marks(partition: number): PartitionMarks {
    let marks = this.partitions.get(partition);
    if (marks === undefined) this.partitions.set(partition, (marks = { origins: new Map(), current: null, dirty: false, expected: null }));
    return marks;
  }

  /** The expected origins not heard yet hold the partition back from now, until the idle timeout. */
  private arm(marks: PartitionMarks, now: number): void {
    const expected = marks.expected;
    if (expected === null) return;
    marks.expected = null;
    for (const origin of expected) {
      if (marks.origins.size >= MAX_ORIGINS) return;
      if (!marks.origins.has(origin)) marks.origins.set(origin, { watermark: -Infinity, seenAt: now });
    }
  }

  /** An origin's watermark as a record showed it (only forward). */
  observe(partition: number, origin: string, watermark: number, now: number): void {
    if (!Number.isFinite(watermark)) return;
    const marks = this.marks(partition);
    this.arm(marks, now);
    const known = marks.origins.get(origin);
    if (known === undefined) {
      if (marks.origins.size >= MAX_ORIGINS) return;
      marks.origins.set(origin, { watermark, seenAt: now });
      marks.dirty = true;
    } else {
      known.seenAt = now;
      if (watermark > known.watermark) {
        known.watermark = watermark;
        marks.dirty = true;
      }
    }
  }

  /**
   * Origins the partition must hear from before its watermark moves (every partition of an
   * upstream node, which may send to it any time): from the partition's first record on, one not
   * heard yet holds it back until the idle timeout.
   */
  expect(partition: number, origins: string[]): void {
    const marks = this.marks(partition);
    marks.expected = [...(marks.expected ?? []), ...origins];
  }

  /** The watermark carried by a record's header, parsed: `<origin>:<ms>`. */
  observeHeader(partition: number, header: string | undefined, now: number): void {
    if (header === undefined) return;
    const colon = header.lastIndexOf(':');
    if (colon <= 0) return;
    this.observe(partition, header.slice(0, colon), Number(header.slice(colon + 1)), now);
  }

  /**
   * The partition's watermark now: the minimum over origins heard within the idle timeout, the
   * highest of all when every one is idle; null before any.
   */
  of(partition: number, now: number): number | null {
    const marks = this.partitions.get(partition);
    if (marks === undefined) return null;
    let min = Infinity;
    let max = -Infinity;
    for (const origin of marks.origins.values()) {
      if (now - origin.seenAt <= this.idleTimeoutMs && origin.watermark < min) min = origin.watermark;
      if (origin.watermark > max) max = origin.watermark;
    }
    const watermark = min !== Infinity ? min : max;
    if (watermark !== -Infinity && (marks.current === null || watermark > marks.current)) marks.current = watermark;
    return marks.current;
  }

  /** The origins' watermarks to store with the batch, when they moved since the last call; else null. */
  persisted(partition: number): string | null {
    const marks = this.partitions.get(partition);
    if (marks === undefined || !marks.dirty) return null;
    marks.dirty = false;
    const out: Record<string, number> = {};
    for (const [origin, { watermark }] of marks.origins) if (watermark !== -Infinity) out[origin] = watermark;
    return JSON.stringify({ current: marks.current, origins: out });
  }

  /** Merges what the partition's committed state held (a restart: origins count as just heard). */
  load(partition: number, stored: string | Uint8Array | undefined, now: number): void {
    if (typeof stored !== 'string') return;
    let parsed: { current?: unknown; origins?: unknown };
    try {
      parsed = JSON.parse(stored);
    } catch {
      return;
    }
    const marks = this.marks(partition);
    if (typeof parsed.current === 'number' && (marks.current === null || parsed.current > marks.current)) marks.current = parsed.current;
    if (typeof parsed.origins !== 'object' || parsed.origins === null) return;
    for (const [origin, watermark] of Object.entries(parsed.origins)) if (typeof watermark === 'number') this.observe(partition, origin, watermark, now);
    marks.dirty = false;
  }

  /** The lowest watermark over the node's partitions, and how far it trails the clock: for status. */
  summary(now: number): { watermark: number | null; lagMs: number | null; partitions: number } {
    let min: number | null = null;
    for (const partition of this.partitions.keys()) {
      const watermark = this.of(partition, now);
      if (watermark !== null && (min === null || watermark < min)) min = watermark;
    }
    return { watermark: min, lagMs: min === null ? null : Math.max(0, now - min), partitions: this.partitions.size };
  }
}

/**
 * The event time a record's value holds at the dot path `field` (ms since the epoch, or an ISO
 * 8601 string), or null when it holds none. Own properties only. A string value holding a JSON
 * object (what most Kafka producers write, without Tributary's encoding header) is read as that
 * object; the function still gets the string.
 */
export function readEventTime(value: unknown, field: string): number | null {
  let at: unknown = typeof value === 'string' ? parsedObject(value) : value;
  for (const name of field.split('.')) {
    if (typeof at !== 'object' || at === null || !Object.hasOwn(at, name)) return null;
    at = (at as Record<string, unknown>)[name];
  }
  const ms = typeof at === 'number' ? at : typeof at === 'string' && at.length <= 64 ? Date.parse(at) : NaN;
  return Number.isFinite(ms) && ms >= 0 && ms <= 8.64e15 ? Math.floor(ms) : null;
}

function parsedObject(text: string): unknown {
  if (!text.trimStart().startsWith('{')) return null;
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
