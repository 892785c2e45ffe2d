/**
 * When each state partition of a node has its next timers due, per kind: two numbers per
 * partition, never the timers themselves (those live in the partition's state, in the isolate
 * that holds it; see runtime/stream-timers.ts). The worker that fires a partition's timers reads
 * it to know when to wake; every committed batch of the partition, from any input edge, sets it
 * from what the guest reported after the batch, and a partition opened afresh sets it from its
 * committed state. A later batch's value replaces an earlier one: batches of a partition never
 * overlap.
 */
export interface NextTimers {
  /** Earliest processing-time timer (ms since the epoch), null when none. */
  processing: number | null;
  /** Earliest event-time timer (fires once the partition's watermark reaches it), null when none. */
  event: number | null;
}

const NONE: NextTimers = { processing: null, event: null };

export class TimerSchedule {
  private readonly next = new Map<number, NextTimers>();
  private readonly watchers = new Map<number, () => void>();

  /** The partition's earliest timers. */
  of(partition: number): NextTimers {
    return this.next.get(partition) ?? NONE;
  }

  /** Sets what a committed batch reported; undefined (a module without onTimer) leaves it. */
  set(partition: number, next: NextTimers | undefined): void {
    if (next === undefined) return;
    const before = this.of(partition);
    if (next.processing === null && next.event === null) this.next.delete(partition);
    else this.next.set(partition, { processing: next.processing, event: next.event });
    const earlier = (now: number | null, then: number | null) => now !== null && (then === null || now < then);
    if (earlier(next.processing, before.processing) || earlier(next.event, before.event)) this.poke(partition);
  }

  /** Wakes the partition's firing worker: a due time moved earlier, or its watermark moved. */
  poke(partition: number): void {
    this.watchers.get(partition)?.();
  }

  /** Calls `wake` on every poke of the partition (the firing worker re-arms its wait). */
  watch(partition: number, wake: () => void): () => void {
    this.watchers.set(partition, wake);
    return () => {
      if (this.watchers.get(partition) === wake) this.watchers.delete(partition);
    };
  }

  /** Partitions with a timer pending, and the earliest due time of each kind: for status. */
  summary(): { partitions: number; nextDueAt: number | null; nextEventTimerAt: number | null } {
    let processing: number | null = null;
    let event: number | null = null;
    for (const next of this.next.values()) {
      if (next.processing !== null && (processing === null || next.processing < processing)) processing = next.processing;
      if (next.event !== null && (event === null || next.event < event)) event = next.event;
    }
    return { partitions: this.next.size, nextDueAt: processing, nextEventTimerAt: event };
  }
}
