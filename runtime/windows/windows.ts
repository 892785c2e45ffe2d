/**
 * `tributary:windows`: tumbling, sliding and session windows and a windowed join, for stream
 * functions, built on `ctx.timers` and `env.STATE` alone (so they are exactly-once wherever those
 * are). Import it unbundled or bundled (`tributary deploy` keeps the import):
 *
 *   import { tumbling } from 'tributary:windows';
 *   export default tumbling(60_000, { init: () => 0, add: (n) => n + 1 });   // counts per key per minute
 *
 * Each helper returns `{ process, onTimer }` handlers (spread them next to a `fetch` if you like).
 * A window [start, end) of a key keeps its accumulator in `env.STATE` (JSON) and a timer at `end`:
 * on event time (the default) it closes once the partition's watermark reaches `end`, on
 * processing time once the clock does; then `emit` runs (default: `ctx.emit({key, start, end,
 * value}, {key})`) and the window's state is deleted. Records are assigned by their `timestamp`
 * (event time) or by the clock when they are processed (processing time).
 *
 * Keys are the record's key unless `key(record)` says otherwise; state and timers are per state
 * partition, so partition the node's input by the same key (`partitionBy: "key"`).
 */

export type TimeKind = 'event' | 'processing';

export interface StreamRecord {
  key: string | null;
  value: unknown;
  timestamp: number;
}

export interface Window {
  start: number;
  end: number;
}

export interface Closed<A> extends Window {
  key: string;
  value: A;
}

interface Ctx {
  emit(value: unknown, options?: { key?: string }): void;
  timers: { set(key: string, at: number, options?: { kind?: TimeKind }): void; delete(key: string): void };
}

interface Env {
  STATE: {
    get(key: string): Promise<{ text(): Promise<string> } | null>;
    put(key: string, value: string): Promise<unknown>;
    delete(key: string | string[]): Promise<unknown>;
  };
}

export interface Handlers {
  process(record: StreamRecord, env: Env, ctx: Ctx): Promise<void>;
  onTimer(timer: { key: string; at: number }, env: Env, ctx: Ctx): Promise<void>;
}

export interface AggregateOptions<A> {
  /** The accumulator of a new window (JSON-serializable). */
  init: () => A;
  /** Folds a record into a window's accumulator. */
  add: (acc: A, record: StreamRecord) => A;
  /** Sessions only: combines the accumulators of two sessions a record bridges (default: keeps the first). */
  merge?: (a: A, b: A) => A;
  /** What a closed window emits (default: `ctx.emit({key, start, end, value}, {key})`). */
  emit?: (closed: Closed<A>, ctx: Ctx) => void;
  /** 'event' (default) or 'processing'. */
  time?: TimeKind;
  /** The record's grouping key (default: its key, '' when it has none). */
  key?: (record: StreamRecord) => string;
}

/** Keys in timer names: longer ones are refused (a timer key holds at most 256 characters). */
const MAX_KEY_CHARS = 160;
/** Windows one record may fall into (sliding): size / slide. */
const MAX_WINDOWS_PER_RECORD = 100;
/** Sessions kept per key. */
const MAX_SESSIONS_PER_KEY = 1000;
/** Records a join buffers per side of a window. */
const MAX_JOIN_RECORDS = 10_000;

function keyOf(record: StreamRecord, key?: (record: StreamRecord) => string): string {
  const k = key ? key(record) : (record.key ?? '');
  const encoded = encodeURIComponent(String(k));
  if (encoded.length > MAX_KEY_CHARS) throw new RangeError(`tributary:windows: keys are limited to ${MAX_KEY_CHARS} characters once URI-encoded`);
  return encoded;
}

function positive(ms: number, what: string): number {
  if (!Number.isInteger(ms) || ms <= 0) throw new TypeError(`tributary:windows: ${what} must be a positive integer of ms`);
  return ms;
}

const timeOf = (record: StreamRecord, time: TimeKind) => (time === 'event' ? record.timestamp : Date.now());

async function readJson<T>(env: Env, key: string): Promise<T | null> {
  const stored = await env.STATE.get(key);
  return stored === null ? null : (JSON.parse(await stored.text()) as T);
}

const defaultEmit = <A>(closed: Closed<A>, ctx: Ctx) => ctx.emit(closed, { key: closed.key });

/** Windows of fixed size whose starts are `slideMs` apart, a record in every one covering its time. */
function fixedWindows<A>(sizeMs: number, slideMs: number, options: AggregateOptions<A>): Handlers {
  const time = options.time ?? 'event';
  const emit = options.emit ?? defaultEmit;
  return {
    async process(record, env, ctx) {
      const key = keyOf(record, options.key);
      const at = timeOf(record, time);
      const last = at - (((at % slideMs) + slideMs) % slideMs);
      for (let start = last; start > at - sizeMs; start -= slideMs) {
        const name = `w/${key}/${start}/${start + sizeMs}`;
        const acc = (await readJson<A>(env, name)) ?? options.init();
        await env.STATE.put(name, JSON.stringify(options.add(acc, record)));
        ctx.timers.set(name, start + sizeMs, { kind: time });
      }
    },
    async onTimer(timer, env, ctx) {
      const [, key, start, end] = timer.key.split('/');
      const value = await readJson<A>(env, timer.key);
      await env.STATE.delete(timer.key);
      if (value !== null) emit({ key: decodeURIComponent(key), start: Number(start), end: Number(end), value }, ctx);
    },
  };
}

/** Windows of `sizeMs` one after another: each record in exactly one. */
export function tumbling<A>(sizeMs: number, options: AggregateOptions<A>): Handlers {
  positive(sizeMs, 'the window size');
  return fixedWindows(sizeMs, sizeMs, options);
}

/** Windows of `sizeMs` starting every `slideMs`: each record in sizeMs / slideMs of them (at most 100). */
export function sliding<A>(sizeMs: number, slideMs: number, options: AggregateOptions<A>): Handlers {
  positive(sizeMs, 'the window size');
  positive(slideMs, 'the slide');
  if (sizeMs % slideMs !== 0 || sizeMs / slideMs > MAX_WINDOWS_PER_RECORD) {
    throw new RangeError(`tributary:windows: the size must be a multiple of the slide, at most ${MAX_WINDOWS_PER_RECORD} times it`);
  }
  return fixedWindows(sizeMs, slideMs, options);
}

interface Session<A> {
  start: number;
  end: number;
  acc: A;
}

/**
 * Sessions per key: a record opens [t, t + gapMs) or extends the sessions it falls into (merging
 * those it bridges); a session closes when nothing has extended it for `gapMs`.
 */
export function session<A>(gapMs: number, options: AggregateOptions<A>): Handlers {
  positive(gapMs, 'the gap');
  const time = options.time ?? 'event';
  const emit = options.emit ?? defaultEmit;
  const merge = options.merge ?? ((a: A) => a);
  const timerOf = (key: string, start: number) => `s/${key}/${start}`;
  return {
    async process(record, env, ctx) {
      const key = keyOf(record, options.key);
      const at = timeOf(record, time);
      const name = `s/${key}`;
      const sessions = (await readJson<Session<A>[]>(env, name)) ?? [];
      let merged: Session<A> = { start: at, end: at + gapMs, acc: options.add(options.init(), record) };
      const kept: Session<A>[] = [];
      for (const s of sessions) {
        if (s.start <= merged.end && merged.start <= s.end) {
          ctx.timers.delete(timerOf(key, s.start));
          const [first, second] = s.start <= merged.start ? [s, merged] : [merged, s];
          merged = { start: Math.min(s.start, merged.start), end: Math.max(s.end, merged.end), acc: merge(first.acc, second.acc) };
        } else kept.push(s);
      }
      if (kept.length >= MAX_SESSIONS_PER_KEY) throw new RangeError(`tributary:windows: more than ${MAX_SESSIONS_PER_KEY} open sessions for one key`);
      kept.push(merged);
      kept.sort((a, b) => a.start - b.start);
      await env.STATE.put(name, JSON.stringify(kept));
      ctx.timers.set(timerOf(key, merged.start), merged.end, { kind: time });
    },
    async onTimer(timer, env, ctx) {
      const [, key, startText] = timer.key.split('/');
      const start = Number(startText);
      const name = `s/${key}`;
      const sessions = (await readJson<Session<A>[]>(env, name)) ?? [];
      const closing = sessions.find((s) => s.start === start);
      const rest = sessions.filter((s) => s !== closing);
      if (rest.length > 0) await env.STATE.put(name, JSON.stringify(rest));
      else await env.STATE.delete(name);
      if (closing !== undefined) emit({ key: decodeURIComponent(key), start: closing.start, end: closing.end, value: closing.acc }, ctx);
    },
  };
}

export interface JoinOptions<L, R> {
  /** Which input a record belongs to (a node with two input edges cannot tell them apart otherwise). */
  side: (record: StreamRecord) => 'left' | 'right';
  /** The outputs of one key's window: by default every left × right pair as `{key, start, end, left, right}`. */
  join?: (left: L[], right: R[], window: Window & { key: string }) => unknown[];
  time?: TimeKind;
  key?: (record: StreamRecord) => string;
}

/**
 * A windowed join: records of both sides with the same key in the same tumbling window of
 * `sizeMs` meet when the window closes (values buffered in `env.STATE`, at most 10,000 per side).
 */
export function windowJoin<L = unknown, R = unknown>(sizeMs: number, options: JoinOptions<L, R>): Handlers {
  positive(sizeMs, 'the window size');
  const time = options.time ?? 'event';
  const join = options.join ?? ((left: L[], right: R[], w: Window & { key: string }) => left.flatMap((l) => right.map((r) => ({ ...w, left: l, right: r }))));
  return {
    async process(record, env, ctx) {
      const key = keyOf(record, options.key);
      const at = timeOf(record, time);
      const start = at - (((at % sizeMs) + sizeMs) % sizeMs);
      const name = `j/${key}/${start}/${start + sizeMs}`;
      const sides = (await readJson<{ left: L[]; right: R[] }>(env, name)) ?? { left: [], right: [] };
      const list = options.side(record) === 'left' ? sides.left : sides.right;
      if (list.length >= MAX_JOIN_RECORDS) throw new RangeError(`tributary:windows: more than ${MAX_JOIN_RECORDS} records on one side of a join window`);
      (list as unknown[]).push(record.value);
      await env.STATE.put(name, JSON.stringify(sides));
      ctx.timers.set(name, start + sizeMs, { kind: time });
    },
    async onTimer(timer, env, ctx) {
      const [, key, start, end] = timer.key.split('/');
      const sides = await readJson<{ left: L[]; right: R[] }>(env, timer.key);
      await env.STATE.delete(timer.key);
      if (sides === null) return;
      const decoded = decodeURIComponent(key);
      for (const out of join(sides.left, sides.right, { key: decoded, start: Number(start), end: Number(end) })) ctx.emit(out, { key: decoded });
    },
  };
}
