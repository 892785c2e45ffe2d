/**
 * {@link Broker} on kafkajs 2.2.4. What kafkajs gets wrong, and how this file works around it:
 *
 * - TxnOffsetCommit is sent at v0-v2, without the member id and generation of KIP-447: the
 *   group coordinator cannot fence a zombie's offsets. The scheduler therefore runs one
 *   transactional producer per input partition with a stable transactionalId, so the new owner's
 *   InitProducerId fences the old one (KIP-98 fencing).
 * - A failed `commit()`/`abort()` leaves the producer's state machine in COMMITTING/ABORTING for
 *   good (kafkajs #1355), and a broker loss can leave it "in a transaction" (kafkajs #1416): after
 *   any transactional error the caller discards the producer and connects a new one.
 * - AddOffsetsToTxn right after a commit may answer CONCURRENT_TRANSACTIONS while the previous
 *   transaction's markers are written; kafkajs retries it for InitProducerId only (#296):
 *   `sendOffsets` retries it here.
 * - `commitOffsetsIfNecessary()` does nothing with autoCommit off (kafkajs #1729): offsets are
 *   committed with explicit `commitOffsets` calls.
 * - Its read_committed filter misses aborted transactions when several producers write one
 *   partition: `kafkajs-patches.ts` replaces it (and its quadratic message grouping).
 * - OffsetFetch is sent without `requireStable` (KIP-447), so offsets read while a transaction is
 *   pending may be stale: the scheduler reads them again after its InitProducerId has completed
 *   any pending transaction of the partition.
 */
import { randomUUID } from 'node:crypto';
import './kafkajs-patches.ts'; // before kafkajs: replaces two of its modules
import kafkajs from 'kafkajs';
import type { Admin, Consumer, Kafka as KafkaClient, Message, PartitionAssigner, Producer, logLevel as LogLevel } from 'kafkajs';
import type {
  BatchControl, Broker, BrokerAppend, BrokerBatch, BrokerProducer, BrokerTransaction, GroupConsumer, GroupConsumerHandlers, GroupConsumerOptions,
} from '../broker.ts';
import type { StoredRecord } from '../transport.ts';
import { decodeRecord, encodeRecord, type FetchedMessage } from './codec.ts';
import { isConcurrentTransactions, translateKafkaError } from './kafka-errors.ts';
import { TributaryError } from '../../runtime/errors.ts';
import { MAX_BATCH_INPUT_BYTES } from '../../runtime/limits.ts';

const { Kafka, logLevel, Partitioners } = kafkajs;

export interface KafkaJsBrokerOptions {
  brokers: readonly string[];
  clientId?: string;
  /** TCP connect timeout per attempt (default 3000 ms). */
  connectionTimeoutMs?: number;
  /**
   * Names this process to the groups it joins (default: random per broker client); see
   * {@link coPartitioned}. One tag per process, so that its consumers of several groups line up.
   */
  memberTag?: string;
}

/**
 * The partition assignor of every group Tributary consumes in: partition p of every topic goes to
 * the (p mod n)-th of the n processes in the group, processes ordered by their member tag. Two
 * groups with the same processes thus give partition p to the same process — the input edges of a
 * node with several Kafka inputs, whose partition p shares state partition p, line up.
 */
function coPartitioned(tag: string): PartitionAssigner {
  const { MemberAssignment, MemberMetadata } = kafkajs.AssignerProtocol;
  return ({ cluster }) => ({
    name: 'TributaryCoPartitioned',
    version: 1,
    async assign({ members, topics }) {
      const byTag = new Map<string, string>();
      for (const { memberId, memberMetadata } of [...members].sort((a, b) => (a.memberId < b.memberId ? -1 : 1))) {
        const memberTag = MemberMetadata.decode(memberMetadata)?.userData.toString() || memberId;
        if (!byTag.has(memberTag)) byTag.set(memberTag, memberId);
      }
      const owners = [...byTag.keys()].sort().map((t) => byTag.get(t)!);
      const assignment = new Map<string, Record<string, number[]>>(members.map((m) => [m.memberId, {}]));
      for (const topic of topics) {
        for (const { partitionId } of cluster.findTopicPartitionMetadata(topic)) {
          const mine = assignment.get(owners[partitionId % owners.length])!;
          (mine[topic] ??= []).push(partitionId);
        }
      }
      return [...assignment].map(([memberId, topicPartitions]) => ({
        memberId,
        memberAssignment: MemberAssignment.encode({ version: 1, assignment: topicPartitions, userData: Buffer.alloc(0) }),
      }));
    },
    protocol({ topics }) {
      return { name: 'TributaryCoPartitioned', metadata: MemberMetadata.encode({ version: 1, topics, userData: Buffer.from(tag) }) };
    },
  });
}

/** kafkajs logs nothing unless TRIBUTARY_KAFKA_LOG is error, warn, info or debug: errors surface as edge status instead. */
function kafkaLogLevel(): LogLevel {
  const wanted = (process.env.TRIBUTARY_KAFKA_LOG ?? '').toUpperCase();
  return (logLevel as unknown as Record<string, LogLevel>)[wanted] ?? logLevel.NOTHING;
}

/**
 * Produce requests of at most this many bytes of keys and values: kafkajs puts a partition's
 * messages of one request in one record batch, and the broker refuses a batch over
 * `message.max.bytes` (1 MiB by default) instead of splitting it.
 */
const MAX_REQUEST_BYTES = 512 * 1024;

type TopicMessages = Array<{ topic: string; messages: Message[] }>;

/** The appends as produce requests, each under MAX_REQUEST_BYTES (a larger single record goes alone). */
function produceRequests(appends: BrokerAppend[]): TopicMessages[] {
  const requests: TopicMessages[] = [];
  let current = new Map<string, Message[]>();
  let bytes = 0;
  const flush = () => {
    if (current.size > 0) requests.push([...current].map(([topic, messages]) => ({ topic, messages })));
    current = new Map();
    bytes = 0;
  };
  for (const append of appends) {
    for (const record of append.records) {
      const message: Message = { ...encodeRecord(record), partition: append.partition };
      const size = (message.value?.length ?? 0) + ((message.key as Buffer | null)?.length ?? 0) + 64;
      if (bytes + size > MAX_REQUEST_BYTES && bytes > 0) flush();
      const list = current.get(append.topic) ?? [];
      list.push(message);
      current.set(append.topic, list);
      bytes += size;
    }
  }
  flush();
  return requests;
}

export class KafkaJsBroker implements Broker {
  readonly brokers: readonly string[];
  private readonly kafka: KafkaClient;
  private readonly options: KafkaJsBrokerOptions;
  private admin: Promise<Admin> | null = null;

  private readonly assigner: PartitionAssigner;

  constructor(options: KafkaJsBrokerOptions) {
    this.options = options;
    this.brokers = options.brokers;
    this.assigner = coPartitioned(options.memberTag ?? randomUUID());
    this.kafka = this.client(5);
  }

  private client(retries: number, connectionTimeout = this.options.connectionTimeoutMs ?? 3000): KafkaClient {
    return new Kafka({
      clientId: this.options.clientId ?? 'tributary',
      brokers: [...this.brokers],
      logLevel: kafkaLogLevel(),
      connectionTimeout,
      requestTimeout: 30_000,
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries },
    });
  }

  /** One admin client per broker, reconnected after a failure. */
  private async withAdmin<T>(context: string, work: (admin: Admin) => Promise<T>): Promise<T> {
    try {
      this.admin ??= (async () => {
        const admin = this.kafka.admin();
        await admin.connect();
        return admin;
      })();
      return await work(await this.admin);
    } catch (error) {
      const failed = this.admin;
      this.admin = null;
      void failed?.then((a) => a.disconnect()).catch(() => {});
      throw translateKafkaError(error, context);
    }
  }

  async probe(timeoutMs: number): Promise<void> {
    const admin = this.client(0, Math.max(100, timeoutMs)).admin();
    const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`Connection timeout after ${timeoutMs} ms`)), timeoutMs).unref());
    try {
      await Promise.race([(async () => {
        await admin.connect();
        await admin.describeCluster();
      })(), timer]);
    } catch (error) {
      throw translateKafkaError(error, `Kafka brokers ${this.brokers.join(',')} unreachable`);
    } finally {
      void admin.disconnect().catch(() => {});
    }
  }

  /**
   * A broker that just started may answer "unknown topic" or "no leader" for a while after
   * accepting connections: those answers are retried here for up to ~5 s.
   */
  async ensureTopic(topic: string, partitions: number): Promise<number> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.withAdmin(`creating topic '${topic}' on ${this.brokers.join(',')}`, async (admin) => {
          const existing = await this.partitionCount(admin, topic);
          if (existing > 0) return existing;
          await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
          return (await this.partitionCount(admin, topic)) || partitions;
        });
      } catch (error) {
        if ((error as TributaryError).code !== 'ERR_KAFKA_UNAVAILABLE' || attempt >= 16) throw error;
        await new Promise((resolve) => setTimeout(resolve, 300));
      }
    }
  }

  private async partitionCount(admin: Admin, topic: string): Promise<number> {
    try {
      const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
      return topics[0]?.partitions.length ?? 0;
    } catch (error) {
      if ((error as { type?: string }).type === 'UNKNOWN_TOPIC_OR_PARTITION') return 0;
      throw error;
    }
  }

  async committed(group: string, topic: string): Promise<number[]> {
    return this.withAdmin(`reading offsets of group '${group}'`, async (admin) => {
      const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const out: number[] = [];
      for (const { partition, offset } of entry?.partitions ?? []) out[partition] = Number(offset);
      return Array.from(out, (o) => (o === undefined || Number.isNaN(o) ? -1 : o));
    });
  }

  async committedEntry(group: string, topic: string, partition: number): Promise<{ offset: number; metadata: string | null }> {
    return this.withAdmin(`reading offsets of group '${group}'`, async (admin) => {
      const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
      const found = entry?.partitions.find((p) => p.partition === partition);
      const offset = Number(found?.offset ?? -1);
      return { offset: Number.isNaN(offset) ? -1 : offset, metadata: found?.metadata ?? null };
    });
  }

  async highWatermarks(topic: string): Promise<number[]> {
    return this.withAdmin(`reading offsets of topic '${topic}'`, async (admin) => {
      const out: number[] = [];
      for (const { partition, high } of await admin.fetchTopicOffsets(topic)) out[partition] = Number(high);
      return Array.from(out, (o) => o ?? 0);
    });
  }

  async lowWatermarks(topic: string): Promise<number[]> {
    return this.withAdmin(`reading offsets of topic '${topic}'`, async (admin) => {
      const out: number[] = [];
      for (const { partition, low } of await admin.fetchTopicOffsets(topic)) out[partition] = Number(low);
      return Array.from(out, (o) => o ?? 0);
    });
  }

  async offsetsAtTime(topic: string, at: number): Promise<number[]> {
    const heads = await this.highWatermarks(topic);
    return this.withAdmin(`finding offsets of topic '${topic}' at ${new Date(at).toISOString()}`, async (admin) => {
      const out = heads.slice();
      for (const { partition, offset } of await admin.fetchTopicOffsetsByTimestamp(topic, at)) {
        const found = Number(offset);
        if (found >= 0) out[partition] = found; // -1: no record that recent, the head stays
      }
      return out;
    });
  }

  /**
   * A group whose last member just left may still be settling (PreparingRebalance): it is asked
   * again for up to ~3 s before the seek is refused as a conflict.
   */
  async setCommitted(group: string, topic: string, offsets: Array<{ partition: number; offset: number }>): Promise<void> {
    await this.withAdmin(`setting offsets of group '${group}' on '${topic}'`, async (admin) => {
      for (let attempt = 0; ; attempt++) {
        const { groups } = await admin.describeGroups([group]);
        const described = groups.find((g) => g.groupId === group);
        const busy = described !== undefined && described.members.length > 0;
        if (!busy && (described === undefined || described.state === 'Empty' || described.state === 'Dead')) break;
        if (attempt >= 30) {
          throw new TributaryError('ERR_SEEK_CONFLICT', `consumer group '${group}' has ${described?.members.length ?? 0} members (${described?.state}): another process consumes it; stop it before seeking`);
        }
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      await admin.setOffsets({ groupId: group, topic, partitions: offsets.map(({ partition, offset }) => ({ partition, offset: String(offset) })) });
    });
  }

  /**
   * Reads committed records with a throwaway consumer group (kafkajs has no group-less fetch).
   * Costs a group join, a few hundred ms: for the HTTP API's dead-letter and sink reads. At most
   * MAX_BATCH_INPUT_BYTES of records (at least one), like every read from a log.
   */
  async read(topic: string, partition: number, from: number, limit: number): Promise<StoredRecord[]> {
    const head = (await this.highWatermarks(topic))[partition] ?? 0;
    if (from >= head || limit <= 0) return [];
    const groupId = `tributary-reader-${randomUUID()}`;
    const consumer = this.kafka.consumer({ groupId, maxWaitTimeInMs: 100, sessionTimeout: 6000, heartbeatInterval: 1000 });
    const out: StoredRecord[] = [];
    let wanted = limit;
    let bytes = 0;
    let done!: () => void;
    const finished = new Promise<void>((resolve) => (done = resolve));
    consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
      if (payload.partition === partition && Number(payload.lastOffset) >= head - 1) done();
    });
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic] });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          if (batch.partition !== partition) return;
          for (const message of batch.messages) {
            const record = decodeRecord(message as FetchedMessage);
            if (record.offset < from || out.length >= wanted) continue;
            // As many bytes as a batch may read (at least one record), however many were asked for.
            if (out.length > 0 && bytes + (record.bytes ?? 0) > MAX_BATCH_INPUT_BYTES) wanted = out.length;
            else out.push(record);
            bytes += record.bytes ?? 0;
          }
          if (out.length >= wanted) done();
        },
      });
      consumer.seek({ topic, partition, offset: String(from) });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([finished, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
      clearTimeout(timer);
    } catch (error) {
      throw translateKafkaError(error, `reading topic '${topic}'`);
    } finally {
      await consumer.disconnect().catch(() => {});
      void this.deleteGroups([groupId]).catch(() => {});
    }
    return out.map(({ offset, key, value, timestamp, headers }) => ({ offset, key, value, timestamp, headers }));
  }

  consumer(options: GroupConsumerOptions): GroupConsumer {
    return new KafkaJsGroupConsumer(this.kafka, options, this.assigner);
  }

  producer(options: { transactionalId?: string; transactionTimeoutMs?: number } = {}): BrokerProducer {
    return new KafkaJsProducer(this.kafka, options);
  }

  async deleteGroups(groups: string[]): Promise<string[]> {
    if (groups.length === 0) return [];
    return this.withAdmin(`deleting groups ${groups.join(', ')}`, async (admin) => {
      // Per-group refusals (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, COORDINATOR_LOAD_IN_PROGRESS) come
      // back as one error; what counts is whether each group exists afterwards.
      await admin.deleteGroups(groups).catch(() => {});
      const { groups: described } = await admin.describeGroups(groups);
      return described.filter((g) => g.state !== 'Dead').map((g) => g.groupId);
    });
  }

  async deleteTopics(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    const wanted = new Set(topics);
    const timeoutMs = 10_000;
    // kafkajs's UNKNOWN_TOPIC_OR_PARTITION, possibly inside its retries-exhausted wrapper.
    const unknownTopic = (error: unknown): boolean => {
      for (let e = error as { type?: string; cause?: unknown; originalError?: unknown } | undefined, depth = 0; e && depth < 8; depth++) {
        if (e.type === 'UNKNOWN_TOPIC_OR_PARTITION') return true;
        e = (e.cause ?? e.originalError) as typeof e;
      }
      return false;
    };
    await this.withAdmin(`deleting topics ${topics.join(', ')}`, async (admin) => {
      const deadline = Date.now() + timeoutMs;
      const requested = new Set<string>();
      for (;;) {
        const left = (await admin.listTopics()).filter((t) => wanted.has(t));
        if (left.length === 0) return;
        // Only topics listed a moment ago, once each: DeleteTopics of a missing topic fails (and kafkajs retries it).
        const unasked = left.filter((t) => !requested.has(t));
        if (unasked.length > 0) {
          try {
            await admin.deleteTopics({ topics: unasked, timeout: timeoutMs });
          } catch (error) {
            // One was deleted meanwhile by someone else; the broker deleted the others (DeleteTopics is per topic).
            if (!unknownTopic(error)) throw error;
          }
          for (const t of unasked) requested.add(t);
        } else if (Date.now() > deadline) {
          throw Object.assign(new Error(`topics ${left.join(', ')} still listed ${timeoutMs} ms after their deletion`), { name: 'KafkaJSTimeout' });
        } else {
          // Deleted by the controller; the brokers drop them from their metadata a moment later.
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    });
  }

  async close(): Promise<void> {
    const admin = this.admin;
    this.admin = null;
    await admin?.then((a) => a.disconnect()).catch(() => {});
  }
}

class KafkaJsGroupConsumer implements GroupConsumer {
  private readonly kafka: KafkaClient;
  private readonly options: GroupConsumerOptions;
  private consumer: Consumer | null = null;

  private readonly assigner: PartitionAssigner;

  constructor(kafka: KafkaClient, options: GroupConsumerOptions, assigner: PartitionAssigner) {
    this.kafka = kafka;
    this.options = options;
    this.assigner = assigner;
  }

  async start(handlers: GroupConsumerHandlers): Promise<void> {
    const { topic, group } = this.options;
    const consumer = this.kafka.consumer({
      groupId: group,
      partitionAssigners: [this.assigner],
      sessionTimeout: this.options.sessionTimeoutMs ?? 6000,
      // A joining member waits for every other member to rejoin, and they notice on their next heartbeat.
      heartbeatInterval: 1000,
      rebalanceTimeout: 20_000,
      maxWaitTimeInMs: this.options.maxWaitMs ?? 20,
      maxBytesPerPartition: 1024 * 1024,
      readUncommitted: this.options.readCommitted === false,
      allowAutoTopicCreation: false,
      // Restarts are the scheduler's (with its backoff and edge status), not kafkajs's.
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: 5, restartOnFailure: async () => false },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => handlers.onAssignment([...(payload.memberAssignment[topic] ?? [])].sort((a, b) => a - b)));
    consumer.on(consumer.events.CRASH, ({ payload }) => handlers.onCrash(payload.error));
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: this.options.concurrency ?? 64,
        eachBatch: async ({ batch, resolveOffset, heartbeat, isStale }) => {
          const decoded: BrokerBatch = {
            topic: batch.topic,
            partition: batch.partition,
            fetchedOffset: Number((batch as unknown as { fetchedOffset: string }).fetchedOffset),
            records: batch.messages.map((m) => decodeRecord(m as FetchedMessage)),
            highWatermark: Number(batch.highWatermark),
          };
          const control: BatchControl = {
            resolve: (offset) => resolveOffset(String(offset)),
            isStale,
            heartbeat: async () => {
              try {
                await heartbeat();
              } catch {
                // A rebalance: kafkajs rejoins after this batch; the scheduler learns it from onAssignment.
              }
            },
          };
          await handlers.onBatch(decoded, control);
        },
      });
    } catch (error) {
      await consumer.disconnect().catch(() => {});
      this.consumer = null;
      throw translateKafkaError(error, `joining group '${group}' on topic '${topic}'`);
    }
  }

  seek(partition: number, offset: number): void {
    this.consumer?.seek({ topic: this.options.topic, partition, offset: String(offset) });
  }

  async commit(partition: number, next: number): Promise<void> {
    if (!this.consumer) throw translateKafkaError(new Error('consumer not running'), 'committing offsets');
    try {
      await this.consumer.commitOffsets([{ topic: this.options.topic, partition, offset: String(next) }]);
    } catch (error) {
      throw translateKafkaError(error, `committing offset ${next} of ${this.options.topic}/${partition}`);
    }
  }

  async stop(): Promise<void> {
    const consumer = this.consumer;
    this.consumer = null;
    await consumer?.disconnect().catch(() => {});
  }
}

class KafkaJsProducer implements BrokerProducer {
  private readonly producer: Producer;
  private readonly transactionalId: string | undefined;

  constructor(kafka: KafkaClient, options: { transactionalId?: string; transactionTimeoutMs?: number }) {
    this.transactionalId = options.transactionalId;
    this.producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      transactionalId: options.transactionalId,
      transactionTimeout: options.transactionTimeoutMs ?? 30_000,
      allowAutoTopicCreation: false,
      createPartitioner: Partitioners.DefaultPartitioner, // unused: every message names its partition
      // Short first retries: right after a commit, AddPartitionsToTxn answers CONCURRENT_TRANSACTIONS
      // until the previous transaction's markers are written (a few ms), and kafkajs retries it.
      retry: { initialRetryTime: 10, maxRetryTime: 2000, retries: 10 },
    });
  }

  private get what(): string {
    return this.transactionalId ? `transactional producer '${this.transactionalId}'` : 'producer';
  }

  async connect(): Promise<void> {
    try {
      await this.producer.connect();
    } catch (error) {
      throw translateKafkaError(error, `connecting ${this.what}`);
    }
  }

  async send(appends: BrokerAppend[]): Promise<void> {
    try {
      for (const topicMessages of produceRequests(appends)) await this.producer.sendBatch({ acks: -1, topicMessages });
    } catch (error) {
      throw translateKafkaError(error, `producing with ${this.what}`);
    }
  }

  async begin(): Promise<BrokerTransaction> {
    const what = this.what;
    let tx: Awaited<ReturnType<Producer['transaction']>>;
    try {
      tx = await this.producer.transaction();
    } catch (error) {
      throw translateKafkaError(error, `beginning a transaction of ${what}`);
    }
    return {
      async send(appends) {
        try {
          for (const topicMessages of produceRequests(appends)) await tx.sendBatch({ acks: -1, topicMessages });
        } catch (error) {
          throw translateKafkaError(error, `producing in a transaction of ${what}`);
        }
      },
      async sendOffsets(group, topic, partition, next, metadata = null) {
        for (let attempt = 0; ; attempt++) {
          try {
            // kafkajs's types omit `metadata`; its TxnOffsetCommit request encodes it.
            const partitions = [{ partition, offset: String(next), metadata }] as unknown as Array<{ partition: number; offset: string }>;
            await tx.sendOffsets({ consumerGroupId: group, topics: [{ topic, partitions }] });
            return;
          } catch (error) {
            // kafkajs #296: the previous transaction's markers are still being written; retry.
            if (isConcurrentTransactions(error) && attempt < 20) {
              await new Promise((resolve) => setTimeout(resolve, 5 * (attempt + 1)));
              continue;
            }
            throw translateKafkaError(error, `adding offsets to a transaction of ${what}`);
          }
        }
      },
      async commit() {
        try {
          await tx.commit();
        } catch (error) {
          throw translateKafkaError(error, `committing a transaction of ${what}`);
        }
      },
      async abort() {
        try {
          await tx.abort();
        } catch (error) {
          throw translateKafkaError(error, `aborting a transaction of ${what}`);
        }
      },
    };
  }

  async disconnect(): Promise<void> {
    await this.producer.disconnect().catch(() => {});
  }
}
