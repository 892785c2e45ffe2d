/**
 * The Nexmark queries the benchmark runs, in plain JavaScript over the whole event list, as the
 * ground truth the platform's results are checked against in the same run. Semantics follow the
 * Flink SQL versions of the queries (github.com/nexmark/nexmark, queries/q*.sql), with event-time
 * windows [start, start + size):
 *
 *   q0  pass-through of bids
 *   q1  bids with the price in euros (0.908 × dollars)
 *   q2  bids of auctions whose id is a multiple of 123: {auction, price}
 *   q5  hot items: per sliding window (10 s, every 2 s) the auctions with the most bids
 *   q7  highest bid: per tumbling 10 s window the bids at that window's highest price
 *   q8  new users: persons who opened an auction in the tumbling 10 s window they joined in
 *
 * Results are lists of plain objects; `canonical` sorts them so two implementations compare equal
 * exactly when they produced the same multiset.
 */
import type { Auction, Bid, NexmarkEvent, Person } from './generator.ts';

export const Q5_SIZE_MS = 10_000;
export const Q5_SLIDE_MS = 2_000;
export const Q7_SIZE_MS = 10_000;
export const Q8_SIZE_MS = 10_000;
export const Q2_MODULUS = 123;
export const DOLLAR_TO_EURO = 0.908;

export type Row = Record<string, string | number>;

const bids = (events: NexmarkEvent[]) => events.filter((e): e is Bid => e.type === 'bid');

export function q0(events: NexmarkEvent[]): Row[] {
  return bids(events).map((b) => ({ auction: b.auction, bidder: b.bidder, price: b.price, dateTime: b.dateTime, extra: b.extra }));
}

export function q1(events: NexmarkEvent[]): Row[] {
  return bids(events).map((b) => ({ auction: b.auction, bidder: b.bidder, price: DOLLAR_TO_EURO * b.price, dateTime: b.dateTime, extra: b.extra }));
}

export function q2(events: NexmarkEvent[]): Row[] {
  return bids(events).filter((b) => b.auction % Q2_MODULUS === 0).map((b) => ({ auction: b.auction, price: b.price }));
}

/** Starts of the sliding windows [start, start + size) holding event time `t`. */
export function slidingStarts(t: number, size: number, slide: number): number[] {
  const starts: number[] = [];
  for (let start = Math.floor(t / slide) * slide; start > t - size; start -= slide) starts.push(start);
  return starts;
}

export function tumblingStart(t: number, size: number): number {
  return Math.floor(t / size) * size;
}

export function q5(events: NexmarkEvent[]): Row[] {
  const counts = new Map<number, Map<number, number>>();
  for (const b of bids(events)) {
    for (const start of slidingStarts(b.dateTime, Q5_SIZE_MS, Q5_SLIDE_MS)) {
      let window = counts.get(start);
      if (!window) counts.set(start, (window = new Map()));
      window.set(b.auction, (window.get(b.auction) ?? 0) + 1);
    }
  }
  const rows: Row[] = [];
  for (const [start, window] of counts) {
    let max = 0;
    for (const n of window.values()) max = Math.max(max, n);
    for (const [auction, num] of window) if (num === max) rows.push({ auction, num, starttime: start });
  }
  return rows;
}

export function q7(events: NexmarkEvent[]): Row[] {
  const windows = new Map<number, Bid[]>();
  for (const b of bids(events)) {
    const start = tumblingStart(b.dateTime, Q7_SIZE_MS);
    let top = windows.get(start);
    if (!top || top[0].price < b.price) windows.set(start, (top = []));
    if (top.length === 0 || top[0].price === b.price) top.push(b);
  }
  return [...windows.values()].flat().map((b) => ({ auction: b.auction, price: b.price, bidder: b.bidder, dateTime: b.dateTime, extra: b.extra }));
}

export function q8(events: NexmarkEvent[]): Row[] {
  const persons = new Map<string, Person>();
  const sellers = new Set<string>();
  for (const e of events) {
    if (e.type === 'person') persons.set(`${tumblingStart(e.dateTime, Q8_SIZE_MS)}/${e.id}`, e);
    else if (e.type === 'auction') sellers.add(`${tumblingStart((e as Auction).dateTime, Q8_SIZE_MS)}/${(e as Auction).seller}`);
  }
  const rows: Row[] = [];
  for (const [window, p] of persons) if (sellers.has(window)) rows.push({ id: p.id, name: p.name, starttime: tumblingStart(p.dateTime, Q8_SIZE_MS) });
  return rows;
}

export const REFERENCE = { q0, q1, q2, q5, q7, q8 } as const;
export type QueryName = keyof typeof REFERENCE;

/** The rows as one sorted list of canonical JSON strings (key order fixed by the row's own keys, sorted). */
export function canonical(rows: Row[]): string[] {
  return rows.map((row) => JSON.stringify(Object.keys(row).sort().map((k) => [k, row[k]]))).sort();
}
