/**
 * The contract between the scheduler and an external broker (Kafka): partitioned topics whose
 * partitions a consumer group spreads over its members, idempotent producers, and transactions
 * that make produced records and a consumer group's offsets visible together or not at all.
 *
 * Unlike {@link Transport} (the embedded log, synchronous, one process), everything here is
 * asynchronous and shared by processes: partitions move between members when one joins or dies.
 * `connectors/kafka/kafkajs-broker.ts` implements it with kafkajs; another client (e.g.
 * @platformatic/kafka, which has KIP-447) would implement the same interface.
 *
 * Offsets are Kafka's: per (topic, partition), not contiguous for a reader (transaction markers
 * and aborted records take offsets too). A committed offset is the next offset to read.
 */
import type { LogRecord, StoredRecord } from './transport.ts';

/** A record as fetched. `decodeError` is set when its bytes could not be decoded (it goes to the dead-letter topic). */
export interface BrokerRecord extends StoredRecord {
  decodeError?: string;
  /** Bytes of its key and value as fetched. */
  bytes?: number;
}

export interface BrokerBatch {
  topic: string;
  partition: number;
  /** The offset the client asked for: records from it on, with gaps for markers and aborted records. */
  fetchedOffset: number;
  records: BrokerRecord[];
  highWatermark: number;
}

export interface BrokerAppend {
  topic: string;
  partition: number;
  records: LogRecord[];
}

/** What a consumer's batch handler can do with the batch it was given. */
export interface BatchControl {
  /** Marks records up to `offset` (inclusive) as processed: the next fetch starts after it. */
  resolve(offset: number): void;
  /** True once the batch is stale: the partition was sought or the group rebalanced. */
  isStale(): boolean;
  heartbeat(): Promise<void>;
}

export interface GroupConsumerHandlers {
  onBatch(batch: BrokerBatch, control: BatchControl): Promise<void>;
  /** After every join of the group: the partitions of the topic this member now owns. */
  onAssignment(partitions: number[]): void;
  /** The consumer stopped on an error it could not recover from; the caller restarts it. */
  onCrash(error: Error): void;
}

export interface GroupConsumerOptions {
  group: string;
  topic: string;
  /** Only records of committed transactions (read_committed). Default true. */
  readCommitted?: boolean;
  /** Partitions processed at the same time (default: all of them). */
  concurrency?: number;
  /** Longest wait of one fetch for new data (default 20 ms: an idle consumer sends ~50 fetches/s; a busy one is not slowed). */
  maxWaitMs?: number;
  /** A member silent for this long is removed from the group (default 6000, the broker's minimum). */
  sessionTimeoutMs?: number;
}

export interface GroupConsumer {
  /** Joins the group and starts fetching; resolves once running (throws when the brokers are unreachable). */
  start(handlers: GroupConsumerHandlers): Promise<void>;
  /** The next fetch of `partition` starts at `offset`. */
  seek(partition: number, offset: number): void;
  /** Commits `next` as the group's offset with this member's generation (non-transactional). */
  commit(partition: number, next: number): Promise<void>;
  stop(): Promise<void>;
}

export interface BrokerTransaction {
  send(appends: BrokerAppend[]): Promise<void>;
  /**
   * Adds the consumer group's offset to the transaction: committed with it, or not at all. Its
   * `metadata` (at most 4 KiB, the broker's offset.metadata.max.bytes) is read back with it.
   */
  sendOffsets(group: string, topic: string, partition: number, next: number, metadata?: string | null): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface BrokerProducer {
  /** Connects; a transactional producer also registers its transactionalId, fencing older producers with it. */
  connect(): Promise<void>;
  /** Idempotent send, acknowledged by all in-sync replicas (acks=-1). */
  send(appends: BrokerAppend[]): Promise<void>;
  /** Starts a transaction (transactional producers only). */
  begin(): Promise<BrokerTransaction>;
  disconnect(): Promise<void>;
}

export interface Broker {
  /** `host:port` of the bootstrap brokers. */
  readonly brokers: readonly string[];
  /** Resolves when the brokers answer a metadata request within `timeoutMs`; throws ERR_KAFKA_UNAVAILABLE. */
  probe(timeoutMs: number): Promise<void>;
  /** Creates the topic if missing; returns its partition count (an existing topic keeps its own). */
  ensureTopic(topic: string, partitions: number): Promise<number>;
  /** The group's committed next offset per partition; -1 where it has none. */
  committed(group: string, topic: string): Promise<number[]>;
  /** One partition's committed next offset (-1: none) and the metadata committed with it. */
  committedEntry(group: string, topic: string, partition: number): Promise<{ offset: number; metadata: string | null }>;
  /** The next offset to be written, per partition. */
  highWatermarks(topic: string): Promise<number[]>;
  /** The earliest offset still in the log, per partition: where a group without a committed offset starts. */
  lowWatermarks(topic: string): Promise<number[]>;
  /**
   * Per partition, the first offset whose record timestamp is at or after `at` (ms since the
   * epoch: the producer's CreateTime, or the broker's LogAppendTime as the topic says); the high
   * watermark where no record is that recent (ListOffsets, KIP-79).
   */
  offsetsAtTime(topic: string, at: number): Promise<number[]>;
  /**
   * Sets the group's committed offsets of the partitions named (a seek). The group must have no
   * members: ERR_SEEK_CONFLICT when some are still in it (another process consuming it).
   */
  setCommitted(group: string, topic: string, offsets: Array<{ partition: number; offset: number }>): Promise<void>;
  /** Up to `limit` committed records of a partition from `from`, for the HTTP API and tests. */
  read(topic: string, partition: number, from: number, limit: number): Promise<StoredRecord[]>;
  consumer(options: GroupConsumerOptions): GroupConsumer;
  /** A producer; with `transactionalId`, a transactional one (one per input partition: see the scheduler). */
  producer(options?: { transactionalId?: string; transactionTimeoutMs?: number }): BrokerProducer;
  /**
   * Deletes the groups (with their committed offsets); resolves with those that still exist
   * afterwards (members in another process, a coordinator still loading). Throws
   * ERR_KAFKA_UNAVAILABLE when the brokers cannot tell.
   */
  deleteGroups(groups: string[]): Promise<string[]>;
  /**
   * Deletes the topics and resolves once the brokers no longer list them; a topic that does not
   * exist is not an error. Throws ERR_KAFKA_UNAVAILABLE (or the broker's refusal) otherwise.
   */
  deleteTopics(topics: string[]): Promise<void>;
  close(): Promise<void>;
}
