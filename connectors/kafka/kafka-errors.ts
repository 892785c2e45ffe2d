/**
 * kafkajs errors become TributaryErrors here and nowhere else. The table is read top to bottom;
 * a retries-exhausted error is classified by its innermost cause.
 */
import { TributaryError, type ErrorCode } from '../../runtime/errors.ts';

/** kafkajs error class names (and protocol error types) → our code. */
const BY_NAME: Record<string, ErrorCode> = {
  KafkaJSConnectionError: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSConnectionClosedError: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSRequestTimeoutError: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSBrokerNotFound: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSNoBrokerAvailableError: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSMetadataNotLoaded: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSTopicMetadataNotLoaded: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSGroupCoordinatorNotFound: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSTimeout: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSLockTimeout: 'ERR_KAFKA_UNAVAILABLE',
  KafkaJSSASLAuthenticationError: 'ERR_KAFKA_REJECTED',
  KafkaJSServerDoesNotSupportApiKey: 'ERR_KAFKA_REJECTED',
};

const BY_PROTOCOL_TYPE: Record<string, ErrorCode> = {
  // A newer producer registered the same transactionalId (KIP-98 zombie fencing).
  INVALID_PRODUCER_EPOCH: 'ERR_KAFKA_FENCED',
  PRODUCER_FENCED: 'ERR_KAFKA_FENCED',
  INVALID_PRODUCER_ID_MAPPING: 'ERR_KAFKA_FENCED',
  TRANSACTIONAL_ID_AUTHORIZATION_FAILED: 'ERR_KAFKA_REJECTED',
  TOPIC_AUTHORIZATION_FAILED: 'ERR_KAFKA_REJECTED',
  GROUP_AUTHORIZATION_FAILED: 'ERR_KAFKA_REJECTED',
  INVALID_TOPIC_EXCEPTION: 'ERR_KAFKA_REJECTED',
  MESSAGE_TOO_LARGE: 'ERR_KAFKA_REJECTED',
  RECORD_LIST_TOO_LARGE: 'ERR_KAFKA_REJECTED',
  INVALID_TRANSACTION_TIMEOUT: 'ERR_KAFKA_REJECTED',
  NOT_COORDINATOR: 'ERR_KAFKA_UNAVAILABLE',
  COORDINATOR_NOT_AVAILABLE: 'ERR_KAFKA_UNAVAILABLE',
  COORDINATOR_LOAD_IN_PROGRESS: 'ERR_KAFKA_UNAVAILABLE',
  LEADER_NOT_AVAILABLE: 'ERR_KAFKA_UNAVAILABLE',
  NOT_LEADER_FOR_PARTITION: 'ERR_KAFKA_UNAVAILABLE',
  NOT_ENOUGH_REPLICAS: 'ERR_KAFKA_UNAVAILABLE',
  REQUEST_TIMED_OUT: 'ERR_KAFKA_UNAVAILABLE',
  // A freshly started broker answers this for a topic whose metadata it has not loaded yet.
  UNKNOWN_TOPIC_OR_PARTITION: 'ERR_KAFKA_UNAVAILABLE',
};

interface KafkaJsLike {
  name?: string;
  type?: string;
  message?: string;
  cause?: unknown;
  originalError?: unknown;
  retriable?: boolean;
}

/** The innermost kafkajs error of a chain of retries. */
function innermost(error: KafkaJsLike): KafkaJsLike {
  let current = error;
  for (let depth = 0; depth < 8; depth++) {
    const inner = (current.name === 'KafkaJSNumberOfRetriesExceeded' || current.name === 'KafkaJSNonRetriableError') ? (current.cause ?? current.originalError) : undefined;
    if (typeof inner !== 'object' || inner === null || inner === current) break;
    current = inner as KafkaJsLike;
  }
  return current;
}


/** Classifies anything a kafkajs call threw. TributaryErrors pass through. */
export function translateKafkaError(error: unknown, context: string): TributaryError {
  if (error instanceof TributaryError) return error;
  const raw = (typeof error === 'object' && error !== null ? error : { message: String(error) }) as KafkaJsLike;
  const inner = innermost(raw);
  const code: ErrorCode =
    (inner.type !== undefined ? BY_PROTOCOL_TYPE[inner.type] : undefined) ??
    (inner.name !== undefined ? BY_NAME[inner.name] : undefined) ??
    (raw.name !== undefined ? BY_NAME[raw.name] : undefined) ??
    (/ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ETIMEDOUT|Connection timeout|socket hang up/i.test(`${inner.message} ${raw.message}`) ? 'ERR_KAFKA_UNAVAILABLE' : 'ERR_KAFKA_REJECTED');
  const detail = inner.message && inner.message !== raw.message ? `${raw.message}: ${inner.message}` : raw.message;
  return new TributaryError(code, `${context}: ${detail ?? 'unknown Kafka error'}`, { cause: error });
}

/** True when kafkajs reports CONCURRENT_TRANSACTIONS: the previous transaction's markers are still being written (kafkajs #296). */
export function isConcurrentTransactions(error: unknown): boolean {
  const inner = innermost((error ?? {}) as KafkaJsLike);
  return inner.type === 'CONCURRENT_TRANSACTIONS' || (error as KafkaJsLike)?.type === 'CONCURRENT_TRANSACTIONS';
}
