export { BrokerPool } from './broker-pool.ts';
export { DEFAULT_KAFKA_BROKERS, clusterKey, parseBrokers, platformBrokers } from './brokers.ts';
export { decodeRecord, encodeRecord, ENCODING_HEADER } from './codec.ts';
export { translateKafkaError } from './kafka-errors.ts';
export { KafkaJsBroker, type KafkaJsBrokerOptions } from './kafkajs-broker.ts';
export { KafkaCommitLedger, type SealedEntries } from './kafka-commit-ledger.ts';
