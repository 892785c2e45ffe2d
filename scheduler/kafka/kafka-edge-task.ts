/**
 * One member of a node's consumer group on one Kafka input edge. Kafka decides which partitions
 * this member owns (every `tributary serve` process running the graph is a member of the same
 * group, so partitions spread over processes and move to the survivors when one dies); this task
 * runs a {@link KafkaPartition} for each owned partition.
 *
 * Lifecycle: starting → running, or degraded when the brokers cannot be reached or the consumer
 * crashed; a degraded task retries with exponential backoff (0.5 s doubling to 30 s) and reports
 * the reason in the graph's status until it runs again.
 */
import type { Broker, BrokerProducer, GroupConsumer } from '../../connectors/broker.ts';
import type { KafkaStateStore } from '../../connectors/kafka/kafka-state-store.ts';
import { translateKafkaError } from '../../connectors/kafka/kafka-errors.ts';
import type { EdgeSpec } from '../graph-spec.ts';
import type { KafkaTaskContext as TaskContext } from './kafka-partition.ts';
import type { CommitInterval } from './commit-interval.ts';
import { KafkaPartition, type KafkaOutput } from './kafka-partition.ts';

export type KafkaEdgeState = 'starting' | 'running' | 'degraded' | 'stopped';

export interface KafkaEdgeTaskOptions {
  task: TaskContext;
  edge: EdgeSpec;
  topic: string;
  group: string;
  broker: Broker;
  outputs: KafkaOutput[];
  deadLetterTopic: string;
  producerFor(broker: Broker): Promise<BrokerProducer>;
  dropProducer(broker: Broker): void;
  state: KafkaStateStore;
  interval: CommitInterval;
  /** Stable per input partition: the fencing identity of exactly-once. */
  transactionalId(partition: number): string;
  /** Other input edges of the node share its state partitions (see KafkaPartitionContext). */
  sharedState: boolean;
}

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

export class KafkaEdgeTask {
  readonly edge: EdgeSpec;
  state: KafkaEdgeState = 'starting';
  reason: string | null = null;
  attempts = 0;
  retryAt: number | null = null;
  private readonly options: KafkaEdgeTaskOptions;
  private readonly partitions = new Map<number, KafkaPartition>();
  /** The partitions of the last join. */
  private assigned = new Set<number>();
  private consumer: GroupConsumer | null = null;
  private stopped = false;
  private backoffMs = 0;
  private restartTimer: NodeJS.Timeout | null = null;

  constructor(options: KafkaEdgeTaskOptions) {
    this.options = options;
    this.edge = options.edge;
  }

  /** The commit interval in force (for "auto": the current choice). */
  get commitIntervalMs(): number {
    return this.options.interval.ms;
  }

  get owned(): number[] {
    return [...this.partitions.keys()].sort((a, b) => a - b);
  }

  partition(partition: number): KafkaPartition | undefined {
    return this.partitions.get(partition);
  }

  private get faults() {
    return this.options.task.faults;
  }

  private get context(): Record<string, string> {
    return { node: this.options.task.node.id, topic: this.options.topic };
  }

  start(): void {
    this.faults.run('kafka.connect', this.context, () => this.connect());
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const { broker, group, topic } = this.options;
    const consumer = broker.consumer({ group, topic, readCommitted: true });
    this.consumer = consumer;
    try {
      await consumer.start({
        onBatch: async (batch, control) => {
          // Batches of a stopped or replaced consumer, or of a partition no longer ours, are not processed.
          if (this.stopped || this.consumer !== consumer || !this.assigned.has(batch.partition)) return;
          await this.partitionOf(batch.partition).handle(batch, control);
        },
        onAssignment: this.faults.wrap('kafka.assignment', this.context, (partitions: number[]) => {
          if (!this.stopped && this.consumer === consumer) this.assign(partitions);
        }),
        onCrash: this.faults.wrap('kafka.crash', this.context, (error: unknown) => this.crashed(consumer, error)),
      });
      if (this.consumer !== consumer) return;
      this.state = 'running';
      this.reason = null;
      this.attempts = 0;
      this.retryAt = null;
      this.backoffMs = 0;
    } catch (error) {
      this.crashed(consumer, error);
    }
  }

  private crashed(consumer: GroupConsumer, error: unknown): void {
    if (this.stopped || this.consumer !== consumer) return;
    const known = translateKafkaError(error, `edge ${this.edge.from} -> ${this.edge.to}`);
    this.consumer = null;
    this.state = 'degraded';
    this.reason = `${known.code}: ${known.message}`;
    this.attempts++;
    this.backoffMs = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, this.backoffMs * 2));
    this.retryAt = Date.now() + this.backoffMs;
    this.options.task.stats.recordError(this.reason);
    const restart = this.faults.wrap('kafka.connect', this.context, () => {
      this.restartTimer = null;
      return this.connect();
    });
    this.faults.run('kafka.restart', this.context, async () => {
      try {
        await consumer.stop();
        await this.releaseAll(false);
      } finally {
        // Reconnect even when stopping the crashed consumer failed (that failure is reported).
        if (!this.stopped) this.restartTimer = setTimeout(restart, this.backoffMs);
      }
    });
  }

  /** After a join: partitions no longer ours are released, each owned one (re)activated. */
  private assign(partitions: number[]): void {
    const wanted = new Set(partitions);
    this.assigned = wanted;
    for (const [p, work] of this.partitions) {
      if (!wanted.has(p)) {
        this.partitions.delete(p);
        this.faults.run('kafka.release', { ...this.context, partition: String(p) }, () => work.release(false));
      }
    }
    for (const p of partitions) this.faults.run('kafka.assign', { ...this.context, partition: String(p) }, () => this.partitionOf(p).assign());
  }

  private partitionOf(partition: number): KafkaPartition {
    let work = this.partitions.get(partition);
    if (!work) {
      const o = this.options;
      work = new KafkaPartition(
        {
          task: o.task,
          edge: o.edge,
          topic: o.topic,
          group: o.group,
          broker: o.broker,
          consumer: () => this.consumer,
          outputs: o.outputs,
          deadLetterTopic: o.deadLetterTopic,
          producerFor: o.producerFor,
          dropProducer: o.dropProducer,
          state: o.state,
          interval: o.interval,
          transactionalId: o.transactionalId,
          sharedState: o.sharedState,
        },
        partition,
      );
      this.partitions.set(partition, work);
    }
    return work;
  }

  private async releaseAll(commit: boolean): Promise<void> {
    this.assigned = new Set();
    const works = [...this.partitions.values()];
    this.partitions.clear();
    await Promise.all(works.map((w) => w.release(commit)));
  }

  /** Commits what the owned partitions processed (or aborts it after `graceMs`), then leaves the group. */
  async stop(graceMs = 2000): Promise<void> {
    this.stopped = true;
    this.state = 'stopped';
    if (this.restartTimer) clearTimeout(this.restartTimer);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.releaseAll(true), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
    const consumer = this.consumer;
    this.consumer = null;
    await consumer?.stop();
  }
}
