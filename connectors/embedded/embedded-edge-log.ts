/**
 * The embedded log as an EdgeLog: one process owns every partition, a unit is one SQLite
 * transaction (outputs, sealed state entries and the consumer group's offset together), and an
 * idle partition waits on the append itself (`waitForAppend`: no timer, no polling).
 */
import type { EdgeCommit, EdgeLog, EdgePartitionLog, PartitionOffsets } from '../edge-log.ts';
import type { CommitSet, StoredRecord, Transport } from '../transport.ts';

export interface EmbeddedEdgeLogOptions {
  transport: Transport;
  topic: string;
  /** The consuming node's consumer group. */
  group: string;
}

export class EmbeddedEdgeLog implements EdgeLog {
  readonly topic: string;
  private readonly options: EmbeddedEdgeLogOptions;
  private readonly logs = new Map<number, EmbeddedPartitionLog>();

  constructor(options: EmbeddedEdgeLogOptions) {
    this.options = options;
    this.topic = options.topic;
  }

  start(onAssignment: (partitions: number[]) => void): void {
    onAssignment(this.assignment());
  }

  assignment(): number[] {
    return Array.from({ length: this.options.transport.partitions(this.topic) }, (_, p) => p);
  }

  partition(partition: number): EdgePartitionLog {
    let log = this.logs.get(partition);
    if (!log) this.logs.set(partition, (log = new EmbeddedPartitionLog(this.options, partition)));
    return log;
  }

  offsets(): PartitionOffsets[] {
    const { transport, group } = this.options;
    return this.assignment().map((partition) => {
      const head = transport.head(this.topic, partition);
      const committed = transport.committed(group, this.topic, partition);
      return { partition, head, committed, lag: head - committed, owned: true };
    });
  }

  stop(): Promise<void> {
    return Promise.resolve();
  }
}

class EmbeddedPartitionLog implements EdgePartitionLog {
  readonly topic: string;
  readonly partition: number;
  private readonly transport: Transport;
  private readonly group: string;

  constructor(options: EmbeddedEdgeLogOptions, partition: number) {
    this.transport = options.transport;
    this.topic = options.topic;
    this.group = options.group;
    this.partition = partition;
  }

  open(): Promise<number> {
    return Promise.resolve(this.committed());
  }

  read(from: number, max: number): Promise<StoredRecord[]> {
    return Promise.resolve(this.transport.read(this.topic, this.partition, from, max));
  }

  waitForData(from: number, signal: AbortSignal): Promise<void> {
    return this.transport.waitForAppend(this.topic, this.partition, from, signal);
  }

  commit(unit: EdgeCommit): Promise<void> {
    const set: CommitSet = { appends: unit.appends, offsets: [], state: [] };
    if (unit.next !== null) set.offsets.push({ group: this.group, topic: this.topic, partition: this.partition, next: unit.next });
    if (unit.durable) set.durable = true;
    try {
      // seal() right before the commit, with no await between: the store orders batches by it.
      if (unit.state) set.state.push(...unit.state.seal());
      this.transport.commit(set);
    } catch (error) {
      unit.state?.aborted();
      return Promise.reject(error);
    }
    unit.state?.committed();
    unit.onVisible?.();
    return Promise.resolve();
  }

  /** Every commit is immediate: nothing is deferred. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  lag(): number {
    return this.transport.head(this.topic, this.partition) - this.committed();
  }

  head(): number {
    return this.transport.head(this.topic, this.partition);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }

  private committed(): number {
    return this.transport.committed(this.group, this.topic, this.partition);
  }
}
