/** /v1/graphs: deploy (PUT), show, list, delete, ingest into sources, read sinks and dead letters. */
import { Hono } from 'hono';
import { TributaryError } from '../../runtime/errors.ts';
import type { IngestRecord } from '../../scheduler/graph-runtime.ts';
import type { GraphService } from '../../scheduler/graph-service.ts';

const MAX_READ = 10_000;

function intQuery(value: string | undefined, name: string, fallback: number, max: number): number {
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > max) throw new TributaryError('ERR_BAD_REQUEST', `${name} must be an integer in [0, ${max}]`);
  return parsed;
}

/** A JSON array, or NDJSON (one record per line), of `{"key"?, "value"}`. */
export function parseRecords(text: string, contentType: string | undefined): IngestRecord[] {
  const mime = (contentType ?? '').split(';')[0].trim().toLowerCase();
  let items: unknown[];
  try {
    if (mime === 'application/x-ndjson' || mime === 'application/ndjson' || (mime !== 'application/json' && !text.trimStart().startsWith('['))) {
      items = text.split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line));
    } else {
      const parsed = JSON.parse(text);
      if (!Array.isArray(parsed)) throw new TributaryError('ERR_BAD_REQUEST', 'body must be a JSON array of {"key"?, "value"} (or NDJSON)');
      items = parsed;
    }
  } catch (error) {
    if (error instanceof TributaryError) throw error;
    throw new TributaryError('ERR_BAD_REQUEST', `body is not valid JSON/NDJSON: ${(error as Error).message}`);
  }
  return items.map((item, index) => {
    if (typeof item !== 'object' || item === null || Array.isArray(item) || !('value' in item)) {
      throw new TributaryError('ERR_BAD_REQUEST', `record ${index} must be an object with a "value"`);
    }
    const { key, value } = item as { key?: unknown; value: unknown };
    if (key !== undefined && key !== null && typeof key !== 'string') throw new TributaryError('ERR_BAD_REQUEST', `record ${index}: "key" must be a string`);
    return { key: (key as string | undefined) ?? null, value };
  });
}

export function graphRoutes(graphs: GraphService): Hono {
  const app = new Hono();

  app.put('/:name', async (c) => {
    let body: unknown;
    try {
      body = await c.req.json();
    } catch {
      throw new TributaryError('ERR_BAD_REQUEST', 'graph spec must be JSON');
    }
    const stored = await graphs.deploy(c.req.param('name'), body);
    return c.json(stored, 201);
  });

  app.get('/', (c) => c.json({ graphs: graphs.list().map(({ name, version, updatedAt }) => ({ name, version, updatedAt })) }));
  app.get('/:name', (c) => c.json(graphs.describe(c.req.param('name'))));
  app.delete('/:name', async (c) => {
    await graphs.delete(c.req.param('name'));
    return c.body(null, 204);
  });

  app.post('/:name/sources/:id', async (c) => {
    const records = parseRecords(await c.req.text(), c.req.header('content-type'));
    // Idempotency-Key: a retry after a lost response is answered without appending again.
    const key = c.req.header('idempotency-key');
    if (key !== undefined && (key.length === 0 || key.length > 200)) throw new TributaryError('ERR_BAD_REQUEST', 'Idempotency-Key must be 1-200 characters');
    try {
      const { accepted, duplicate } = graphs.ingest(c.req.param('name'), c.req.param('id'), records, key);
      return c.json({ accepted, duplicate }, 202);
    } catch (error) {
      if (error instanceof TributaryError && error.code === 'ERR_BACKPRESSURE') {
        return c.json({ error: error.toJSON() }, 429, { 'retry-after': '1' });
      }
      throw error;
    }
  });

  app.get('/:name/sinks/:id', async (c) => {
    const from = intQuery(c.req.query('from'), 'from', 0, Number.MAX_SAFE_INTEGER);
    const limit = intQuery(c.req.query('limit'), 'limit', 100, MAX_READ);
    return c.json({ records: await graphs.runtime(c.req.param('name')).readSinkRecords(c.req.param('id'), from, limit) });
  });

  app.get('/:name/nodes/:id/dead-letters', async (c) => {
    const from = intQuery(c.req.query('from'), 'from', 0, Number.MAX_SAFE_INTEGER);
    const limit = intQuery(c.req.query('limit'), 'limit', 100, MAX_READ);
    return c.json({ records: await graphs.runtime(c.req.param('name')).readDeadLetterRecords(c.req.param('id'), from, limit) });
  });

  return app;
}
