/**
 * Which Kafka cluster a source, sink or edge talks to: its own `brokers` if the spec names them,
 * else the platform's (`--kafka-brokers`, else TRIBUTARY_KAFKA_BROKERS, else 127.0.0.1:9092).
 */

export const DEFAULT_KAFKA_BROKERS: readonly string[] = ['127.0.0.1:9092'];

const BROKER_PATTERN = /^[A-Za-z0-9._-]+:\d{1,5}$|^\[[0-9A-Fa-f:.]+\]:\d{1,5}$/;

/** `host:port` list from a comma-separated string or an array; null when any entry is malformed or none is given. */
export function parseBrokers(value: unknown): string[] | null {
  const list = typeof value === 'string' ? value.split(',') : Array.isArray(value) ? value : null;
  if (list === null) return null;
  const brokers = list.map((b) => (typeof b === 'string' ? b.trim() : '')).filter((b) => b !== '');
  if (brokers.length === 0 || !brokers.every((b) => BROKER_PATTERN.test(b))) return null;
  return brokers;
}

/** The platform's brokers: the option, else TRIBUTARY_KAFKA_BROKERS, else 127.0.0.1:9092. */
export function platformBrokers(option?: string | readonly string[]): string[] {
  const configured = option ?? process.env.TRIBUTARY_KAFKA_BROKERS;
  if (configured === undefined || configured === '') return [...DEFAULT_KAFKA_BROKERS];
  const parsed = parseBrokers(configured);
  if (parsed === null) throw new Error(`invalid Kafka brokers '${String(configured)}': expected host:port[,host:port...]`);
  return parsed;
}

/** Same cluster ⇔ same set of bootstrap brokers. */
export function clusterKey(brokers: readonly string[]): string {
  return [...brokers].sort().join(',');
}
