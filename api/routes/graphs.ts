/** /v1/graphs: deploy (PUT), show, list, delete, ingest into sources, read sinks and dead letters. */
import { Hono } from 'hono';
import { TributaryError } from '../../runtime/errors.ts';
import { assertFunctionName } from '../../runtime/function-registry.ts';
import { MAX_JSON_DEPTH } from '../../runtime/limits.ts';
import type { IngestRecord } from '../../scheduler/graph-runtime.ts';
import type { GraphService } from '../../scheduler/graph-service.ts';
import { readText, type BodyLimits } from '../body.ts';
import { parseJson } from '../json.ts';
import { integerParam } from '../query.ts';

const MAX_READ = 10_000;

export interface RecordOptions {
  /** Nesting a record's `value` may have (default MAX_JSON_DEPTH); the record object and the array around it are not counted. */
  maxValueDepth?: number;
}

/**
 * A JSON array, or NDJSON (one record per line), of `{"key"?, "value", "timestamp"?}`. Depth is checked before
 * parsing: a record's value nests at most `maxValueDepth` arrays/objects (ERR_TOO_DEEP beyond).
 */
export function parseRecords(text: string, contentType: string | undefined, options: RecordOptions = {}): IngestRecord[] {
  const maxValueDepth = options.maxValueDepth ?? MAX_JSON_DEPTH;
  const mime = (contentType ?? '').split(';')[0].trim().toLowerCase();
  let items: unknown[];
  if (mime === 'application/x-ndjson' || mime === 'application/ndjson' || (mime !== 'application/json' && !text.trimStart().startsWith('['))) {
    items = [];
    let line = 0;
    for (const raw of text.split('\n')) {
      line++;
      if (raw.trim() !== '') items.push(parseJson(raw, { maxDepth: maxValueDepth + 1, what: `NDJSON line ${line}` }));
    }
  } else {
    const parsed = parseJson(text, { maxDepth: maxValueDepth + 2, what: 'body' });
    if (!Array.isArray(parsed)) throw new TributaryError('ERR_BAD_REQUEST', 'body must be a JSON array of {"key"?, "value"} (or NDJSON)');
    items = parsed;
  }
  return items.map((item, index) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item) || !('value' in item)) {
      throw new TributaryError('ERR_BAD_REQUEST', `record ${index} must be an object with a "value"`);
    }
    const { key, value, timestamp } = item as { key?: unknown; value: unknown; timestamp?: unknown };
    if (key !== undefined && key !== null && typeof key !== 'string') throw new TributaryError('ERR_BAD_REQUEST', `record ${index}: "key" must be a string`);
    if (timestamp === undefined || timestamp === null) return { key: (key as string | undefined) ?? null, value };
    const at = typeof timestamp === 'number' ? timestamp : typeof timestamp === 'string' && timestamp.length <= 64 ? Date.parse(timestamp) : NaN;
    if (!Number.isFinite(at) || at < 0 || at > 8.64e15) throw new TributaryError('ERR_BAD_REQUEST', `record ${index}: "timestamp" must be ms since the epoch or an ISO 8601 string`);
    return { key: (key as string | undefined) ?? null, value, timestamp: Math.floor(at) };
  });
}

export function graphRoutes(graphs: GraphService, body: BodyLimits): Hono {
  const app = new Hono();

  app.put('/:name', async (c) => {
    const name = c.req.param('name');
    assertFunctionName(name); // graph names follow function names' rules; checked before the body is read
    const spec = parseJson(await readText(c.req.raw, body), { maxDepth: MAX_JSON_DEPTH, what: 'graph spec' });
    const stored = await graphs.deploy(name, spec);
    return c.json(stored, 201);
  });

  app.get('/', (c) => c.json({ graphs: graphs.list().map(({ name, version, updatedAt }) => ({ name, version, updatedAt })) }));
  app.get('/:name', (c) => c.json(graphs.describe(c.req.param('name'))));
  app.delete('/:name', async (c) => {
    const name = c.req.param('name');
    const { kafka } = await graphs.delete(name);
    // Deleted; its Kafka topics and groups are still being removed, in the background.
    if (kafka?.state === 'pending') return c.json({ name, deleted: true, kafka }, 202);
    return c.body(null, 204);
  });

  app.post('/:name/sources/:id', async (c) => {
    // Idempotency-Key: a retry after a lost response is answered without appending again.
    const key = c.req.header('idempotency-key');
    if (key !== undefined && (key.length === 0 || key.length > 200)) throw new TributaryError('ERR_BAD_REQUEST', 'Idempotency-Key must be 1-200 characters');
    const name = c.req.param('name');
    graphs.runtime(name); // an unknown graph is a 404 before its body is read
    const records = parseRecords(await readText(c.req.raw, body), c.req.header('content-type'));
    // ERR_BACKPRESSURE renders as 429 with Retry-After (api/errors.ts).
    const { accepted, duplicate } = graphs.ingest(name, c.req.param('id'), records, key);
    return c.json({ accepted, duplicate }, 202);
  });

  // Replay: rewind the source's consumers to an offset or a time, optionally resetting downstream state (docs/replay.md).
  app.post('/:name/sources/:id/seek', async (c) => {
    const name = c.req.param('name');
    graphs.runtime(name); // an unknown graph is a 404 before its body is read
    const request = parseJson(await readText(c.req.raw, body), { maxDepth: 4, what: 'seek request' });
    return c.json(await graphs.seek(name, c.req.param('id'), request));
  });

  app.get('/:name/sinks/:id', async (c) => {
    const from = integerParam(c.req.query('from'), 'from', { fallback: 0, min: 0, max: Number.MAX_SAFE_INTEGER });
    const limit = integerParam(c.req.query('limit'), 'limit', { fallback: 100, min: 0, max: MAX_READ });
    return c.json({ records: await graphs.runtime(c.req.param('name')).readSinkRecords(c.req.param('id'), from, limit) });
  });

  app.get('/:name/nodes/:id/dead-letters', async (c) => {
    const from = integerParam(c.req.query('from'), 'from', { fallback: 0, min: 0, max: Number.MAX_SAFE_INTEGER });
    const limit = integerParam(c.req.query('limit'), 'limit', { fallback: 100, min: 0, max: MAX_READ });
    return c.json({ records: await graphs.runtime(c.req.param('name')).readDeadLetterRecords(c.req.param('id'), from, limit) });
  });

  return app;
}
