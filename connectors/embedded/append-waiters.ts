/**
 * Consumers waiting for records to be appended to a partition: one set of waiters per partition,
 * woken by the commit that moves its head. Waiting costs a set entry and a promise — no timer and
 * no polling — so an idle partition costs nothing; a waiter whose signal aborts is removed at once.
 */

interface Waiter {
  /** Woken once the head exceeds this offset. */
  after: number;
  wake(): void;
}

export class AppendWaiters {
  private readonly byPartition = new Map<string, Set<Waiter>>();

  /** Waiters currently registered, over all partitions (for tests and diagnostics). */
  get size(): number {
    let n = 0;
    for (const set of this.byPartition.values()) n += set.size;
    return n;
  }

  /**
   * Resolves once `wake(id, head)` reports a head beyond `after`, when `signal` aborts, or after
   * `timeoutMs` (finite values only: Infinity arms no timer). Never rejects.
   */
  wait(id: string, after: number, signal?: AbortSignal, timeoutMs = Infinity): Promise<void> {
    if (signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = { after, wake: () => finish() };
      const onAbort = () => finish();
      const finish = () => {
        const set = this.byPartition.get(id);
        if (set !== undefined && set.delete(waiter) && set.size === 0) this.byPartition.delete(id);
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      let set = this.byPartition.get(id);
      if (set === undefined) this.byPartition.set(id, (set = new Set()));
      set.add(waiter);
      signal?.addEventListener('abort', onAbort, { once: true });
      if (Number.isFinite(timeoutMs)) timer = setTimeout(finish, Math.max(0, timeoutMs));
    });
  }

  /** The head of partition `id` moved to `head`. */
  wake(id: string, head: number): void {
    const set = this.byPartition.get(id);
    if (set === undefined) return;
    for (const waiter of [...set]) if (waiter.after < head) waiter.wake();
  }

  /** Wakes every waiter of partitions whose id starts with `prefix` (their topics were deleted). */
  wakePrefix(prefix: string): void {
    for (const [id, set] of [...this.byPartition]) if (id.startsWith(prefix)) for (const waiter of [...set]) waiter.wake();
  }

  wakeAll(): void {
    this.wakePrefix('');
  }
}
