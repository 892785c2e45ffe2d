/**
 * When each state partition of a node has its next timer due: one number per partition, never
 * the timers themselves (those live in the partition's state, in the isolate that holds it; see
 * runtime/stream-timers.ts). The worker that fires a partition's timers reads it to know when to
 * wake; every committed batch of the partition, from any input edge, sets it from what the guest
 * reported after the batch, and a partition opened afresh sets it from its committed state. A
 * later batch's value replaces an earlier one: batches of a partition never overlap.
 */
export class TimerSchedule {
  private readonly due = new Map<number, number>();
  private readonly watchers = new Map<number, () => void>();

  /** The partition's earliest due timer (ms since the epoch), or undefined when it has none. */
  dueAt(partition: number): number | undefined {
    return this.due.get(partition);
  }

  /** Sets what a committed batch reported: null when the partition keeps no timer, undefined (not reported) leaves it. */
  set(partition: number, at: number | null | undefined): void {
    if (at === undefined) return;
    const before = this.due.get(partition);
    if (at === null) this.due.delete(partition);
    else this.due.set(partition, at);
    if (at !== null && (before === undefined || at < before)) this.watchers.get(partition)?.();
  }

  /** Calls `wake` whenever the partition's due time moves earlier (the firing worker re-arms its wait). */
  watch(partition: number, wake: () => void): () => void {
    this.watchers.set(partition, wake);
    return () => {
      if (this.watchers.get(partition) === wake) this.watchers.delete(partition);
    };
  }

  /** Partitions with a timer pending, and the earliest of them: for status. */
  summary(): { partitions: number; nextDueAt: number | null } {
    let next: number | null = null;
    for (const at of this.due.values()) if (next === null || at < next) next = at;
    return { partitions: this.due.size, nextDueAt: next };
  }
}
