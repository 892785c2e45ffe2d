/**
 * The `"type": "s3"` sink of a graph spec (connectors/s3/s3-sink.ts): its fields, defaults and
 * bounds. Whether the bucket is one the operator allows is checked at deploy (GraphService), where
 * the platform's configuration is known.
 *
 * @example
 * { "id": "archive", "type": "s3", "bucket": "exports", "prefix": "wordcount/", "format": "ndjson",
 *   "rollBytes": 8388608, "rollIntervalMs": 10000 }
 */
import { parseBucketBinding } from '../runtime/bucket-keys.ts';
import type { S3SinkConfig } from '../connectors/s3/s3-sink.ts';

/** Largest file the sink keeps in memory before publishing it; also what one file may reach. */
export const MAX_S3_SINK_ROLL_BYTES = 64 * 1024 * 1024;
export const MAX_S3_SINK_ROLL_RECORDS = 1_000_000;
export const MAX_S3_SINK_ROLL_INTERVAL_MS = 60 * 60 * 1000;
export const MIN_S3_SINK_ROLL_INTERVAL_MS = 100;
export const DEFAULT_S3_SINK = { rollBytes: 8 * 1024 * 1024, rollRecords: 100_000, rollIntervalMs: 10_000 } as const;
const MAX_COLUMNS = 256;
const COLUMN = /^[A-Za-z_][A-Za-z0-9_.-]{0,127}$/;
const FIELDS = new Set(['id', 'type', 'bucket', 'prefix', 'format', 'columns', 'rollBytes', 'rollRecords', 'rollIntervalMs']);

export interface S3SinkSpec extends S3SinkConfig {
  id: string;
  type: 's3';
}

type Raw = Record<string, unknown>;

export function checkS3Sink(sink: Raw, path: string, problem: (path: string, message: string) => void): void {
  for (const key of Object.keys(sink)) if (!FIELDS.has(key)) problem(`${path}.${key.slice(0, 40)}`, `unknown field of an s3 sink (use ${[...FIELDS].join(', ')})`);
  const place = parseBucketBinding({ bucket: sink.bucket, ...(sink.prefix !== undefined ? { prefix: sink.prefix } : {}) });
  if (typeof place === 'string') problem(`${path}.${/^prefix/.test(place) ? 'prefix' : 'bucket'}`, place);
  if (sink.format !== 'ndjson' && sink.format !== 'csv') problem(`${path}.format`, `format must be "ndjson" or "csv"`);
  if (sink.format === 'csv') {
    const columns = sink.columns;
    if (!Array.isArray(columns) || columns.length === 0 || columns.length > MAX_COLUMNS || !columns.every((c) => typeof c === 'string' && COLUMN.test(c))) {
      problem(`${path}.columns`, `a csv sink needs columns: 1-${MAX_COLUMNS} field names of the records' values ([A-Za-z_][A-Za-z0-9_.-]*); "value" is a non-object value itself, "key" the record's key`);
    } else if (new Set(columns).size !== columns.length) problem(`${path}.columns`, 'columns must be distinct');
  } else if (sink.columns !== undefined) problem(`${path}.columns`, 'columns are for csv sinks only');
  const within = (name: string, min: number, max: number, unit: string) => {
    const value = sink[name];
    if (value !== undefined && !(Number.isInteger(value) && (value as number) >= min && (value as number) <= max)) problem(`${path}.${name}`, `${name} must be an integer in [${min}, ${max}] (${unit})`);
  };
  within('rollBytes', 1024, MAX_S3_SINK_ROLL_BYTES, 'bytes');
  within('rollRecords', 1, MAX_S3_SINK_ROLL_RECORDS, 'records');
  within('rollIntervalMs', MIN_S3_SINK_ROLL_INTERVAL_MS, MAX_S3_SINK_ROLL_INTERVAL_MS, 'ms');
}

/** The stored form of a sink that passed checkS3Sink. */
export function s3SinkOf(sink: Raw): S3SinkSpec {
  const place = parseBucketBinding({ bucket: sink.bucket, ...(sink.prefix !== undefined ? { prefix: sink.prefix } : {}) });
  if (typeof place === 'string') throw new Error(place);
  return {
    id: sink.id as string,
    type: 's3',
    bucket: place.bucket,
    prefix: place.prefix,
    format: sink.format as S3SinkSpec['format'],
    ...(sink.format === 'csv' ? { columns: [...(sink.columns as string[])] } : {}),
    rollBytes: (sink.rollBytes as number | undefined) ?? DEFAULT_S3_SINK.rollBytes,
    rollRecords: (sink.rollRecords as number | undefined) ?? DEFAULT_S3_SINK.rollRecords,
    rollIntervalMs: (sink.rollIntervalMs as number | undefined) ?? DEFAULT_S3_SINK.rollIntervalMs,
  };
}
