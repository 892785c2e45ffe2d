/**
 * Records on Kafka topics are bytes; a node's records are structured values. The encoding keeps
 * topics readable by any Kafka client:
 *
 *   string value       UTF-8 bytes, no header (what a foreign producer usually writes)
 *   bytes value        the bytes, header `tributary-encoding: bytes`
 *   any other value    JSON, header `tributary-encoding: json`
 *
 * A record without the header decodes to a string. The key is a UTF-8 string or null; headers are
 * strings. A record whose bytes do not decode (a `json` header on bytes that are not JSON) is
 * returned with `decodeError` set so the scheduler dead-letters it instead of stopping the stream.
 */
import type { LogRecord } from '../transport.ts';
import type { BrokerRecord } from '../broker.ts';

export const ENCODING_HEADER = 'tributary-encoding';

export interface KafkaMessage {
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  headers?: Record<string, Buffer | string>;
}

export interface FetchedMessage {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  timestamp: string;
  headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined>;
}

export function encodeRecord(record: LogRecord): KafkaMessage {
  const headers: Record<string, string> = { ...(record.headers ?? {}) };
  let value: Buffer | null;
  if (typeof record.value === 'string') value = Buffer.from(record.value, 'utf8');
  else if (record.value instanceof Uint8Array) {
    value = Buffer.from(record.value.buffer, record.value.byteOffset, record.value.byteLength);
    headers[ENCODING_HEADER] = 'bytes';
  } else if (record.value === undefined || record.value === null) value = null;
  else {
    value = Buffer.from(JSON.stringify(record.value), 'utf8');
    headers[ENCODING_HEADER] = 'json';
  }
  return { key: record.key === null ? null : Buffer.from(record.key, 'utf8'), value, timestamp: String(record.timestamp), headers };
}

export function decodeRecord(message: FetchedMessage): BrokerRecord {
  const headers: Record<string, string> = {};
  for (const [name, raw] of Object.entries(message.headers ?? {})) {
    if (raw === undefined) continue;
    const first = Array.isArray(raw) ? raw[0] : raw;
    headers[name] = typeof first === 'string' ? first : first.toString('utf8');
  }
  const encoding = headers[ENCODING_HEADER];
  delete headers[ENCODING_HEADER];
  const record: BrokerRecord = {
    offset: Number(message.offset),
    key: message.key === null ? null : message.key.toString('utf8'),
    value: null,
    timestamp: Number(message.timestamp),
    headers,
    bytes: (message.value?.length ?? 0) + (message.key?.length ?? 0),
  };
  if (message.value === null) return record;
  if (encoding === 'bytes') record.value = new Uint8Array(message.value);
  else if (encoding === 'json') {
    const text = message.value.toString('utf8');
    try {
      record.value = JSON.parse(text);
    } catch (error) {
      record.value = text;
      record.decodeError = `value is not the JSON its ${ENCODING_HEADER} header announces: ${(error as Error).message}`;
    }
  } else record.value = message.value.toString('utf8');
  return record;
}
