/**
 * Two kafkajs 2.2.4 modules replaced before kafkajs loads (`connectors/kafka/kafkajs-broker.ts`
 * imports this module first); kafkajs's last release is from 2023, so no upstream fix will come.
 *
 * 1. `consumer/filterAbortedMessages.js`, the read_committed filter. kafkajs's `consumer/filterAbortedMessages.js` moves at most ONE aborted transaction from the
 * fetch response's list into its "aborted producers" set per record (an `if` where Kafka's own
 * Fetcher loops). When several transactional producers write one partition and their aborted
 * transactions start before the first fetched record — exactly what one transactional producer
 * per input partition produces on an edge — all but the first are missed, and a read_committed
 * consumer receives aborted records. Found by test/kafka-crash-recovery.test.ts (duplicates on an
 * exactly-once edge after kill -9). The replacement is the algorithm of Kafka's Java Fetcher
 * (KIP-98): aborted transactions sorted by first offset; every one whose first offset is at or
 * before a record joins the set of aborted producers; a producer's ABORT marker takes it out
 * again; transactional records of producers in the set are dropped.
 *
 * 2. `producer/groupMessagesPerPartition.js` copies a partition's whole array for every message
 *    (`[...current, message]`): quadratic in the messages of a send, the top of a CPU profile of
 *    bench/kafka.ts. The replacement appends; same result.
 */
import { createRequire } from 'node:module';

interface FetchedMessage {
  offset: string;
  key: Buffer | null;
  isControlRecord?: boolean;
  batchContext: { producerId: string; inTransaction: boolean };
}

interface AbortedTransaction {
  producerId: string;
  firstOffset: string;
}

const ABORT_MARKER_KEY = Buffer.from([0, 0, 0, 0]); // control record: version 0, type 0 (ABORT)

function isAbortMarker(message: FetchedMessage): boolean {
  return message.key !== null && message.key !== undefined && Buffer.from(message.key).equals(ABORT_MARKER_KEY);
}

export function filterAbortedMessages({ messages, abortedTransactions }: { messages: FetchedMessage[]; abortedTransactions?: AbortedTransaction[] }): FetchedMessage[] {
  if (!abortedTransactions || abortedTransactions.length === 0) return messages;
  const pending = [...abortedTransactions].sort((a, b) => (BigInt(a.firstOffset) < BigInt(b.firstOffset) ? -1 : BigInt(a.firstOffset) > BigInt(b.firstOffset) ? 1 : 0));
  const aborted = new Set<string>();
  return messages.filter((message) => {
    const offset = BigInt(message.offset);
    while (pending.length > 0 && BigInt(pending[0].firstOffset) <= offset) aborted.add(String(pending.shift()!.producerId));
    const producerId = String(message.batchContext.producerId);
    if (message.isControlRecord && isAbortMarker(message)) {
      aborted.delete(producerId);
      return true; // control records are dropped by kafkajs's Batch after this filter
    }
    return !(message.batchContext.inTransaction && aborted.has(producerId));
  });
}

type Partitioner = (args: { topic: string; partitionMetadata: unknown[]; message: unknown }) => number;

export function groupMessagesPerPartition({ topic, partitionMetadata, messages, partitioner }: { topic: string; partitionMetadata: unknown[]; messages: unknown[]; partitioner: Partitioner }): Record<number, unknown[]> {
  if (partitionMetadata.length === 0) return {};
  const result: Record<number, unknown[]> = {};
  for (const message of messages) (result[partitioner({ topic, partitionMetadata, message })] ??= []).push(message);
  return result;
}

/**
 * Replaces a kafkajs module in the CommonJS cache before `user` (the module that captures it at
 * load) loads. Throws if `user` loaded first: import this module before anything imports kafkajs.
 */
function install(module: string, user: string, replacement: unknown): void {
  const require = createRequire(import.meta.url);
  if (require.cache[require.resolve(user)]) throw new Error(`kafkajs was loaded before connectors/kafka/kafkajs-patches.ts: import it first (${user} holds the unpatched ${module})`);
  const path = require.resolve(module);
  if (!require.cache[path]) require(path);
  require.cache[path]!.exports = replacement;
}

install('kafkajs/src/consumer/filterAbortedMessages.js', 'kafkajs/src/consumer/batch.js', filterAbortedMessages);
install('kafkajs/src/producer/groupMessagesPerPartition.js', 'kafkajs/src/producer/sendMessages.js', groupMessagesPerPartition);
