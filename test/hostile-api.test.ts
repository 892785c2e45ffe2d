/**
 * Hostile clients of the HTTP API, in-process (app.request): floods of unknown names, bodies that
 * never end or never arrive, quota and strict-number abuse, deeply nested JSON. Each is a clear
 * 4xx and none grows the control plane's memory.
 */
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { errorResponse } from '../api/errors.ts';
import { TributaryError } from '../runtime/errors.ts';
import { LogBuffer } from '../runtime/log-buffer.ts';
import { MAX_BODY_BYTES, MAX_JSON_DEPTH } from '../runtime/limits.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

const OK = `export default { fetch() { return new Response('ok'); }, process(r) { return r.value; } };`;
const ECHO = `export default { async fetch(request) { return new Response(await request.text()); } };`;

/** A body that never ends; `pulled` counts the chunks anyone read from it. */
function endlessBody(chunkBytes = 64 * 1024) {
  const chunk = new Uint8Array(chunkBytes).fill(120);
  const counter = { pulled: 0 };
  const stream = new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        counter.pulled++;
        controller.enqueue(chunk);
      },
    },
    { highWaterMark: 0 },
  );
  return { stream, counter };
}

/** A body that sends one chunk and then nothing, ever. */
function stalledBody() {
  let sent = false;
  return new ReadableStream<Uint8Array>(
    {
      pull(controller) {
        if (!sent) controller.enqueue(new Uint8Array(1024).fill(120));
        sent = true;
        return new Promise(() => {}); // never resolves: the client stalls
      },
    },
    { highWaterMark: 0 },
  );
}

function nested(depth: number, leaf = '1'): string {
  return '['.repeat(depth) + leaf + ']'.repeat(depth);
}

let platform: Awaited<ReturnType<typeof withPlatform>>;
beforeAll(async () => {
  platform = await withPlatform({ hosts: 1, warmSlots: 2, bodyReadTimeoutMs: 500, maxLagRecords: 100 });
  expect((await deploy(platform, 'ok', OK)).status).toBe(201);
  expect((await deploy(platform, 'echo', ECHO)).status).toBe(201);
});
afterAll(() => platform.cleanup());

describe('unknown names', () => {
  it('3000 invokes of unknown names answer 404 and do not grow the registry cache', async () => {
    expect((await platform.app.request('/v1/invoke/ok')).status).toBe(200);
    const before = platform.functions.registry.cacheSize;
    for (let i = 0; i < 3000; i++) {
      const res = await platform.app.request(`/v1/invoke/missing-${i}`);
      expect(res.status).toBe(404);
    }
    expect(platform.functions.registry.cacheSize).toBe(before);
  });

  it('an invoke of an unknown function with an endless body answers 404 without reading it', async () => {
    const { stream, counter } = endlessBody();
    const res = await platform.app.request('/v1/invoke/nobody', { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(404);
    expect((await json(res)).error.code).toBe('ERR_NOT_FOUND');
    expect(counter.pulled).toBe(0);
  });
});

describe('request bodies', () => {
  it('a body without Content-Length is cut at the byte ceiling while streaming: 413 ERR_TOO_LARGE', async () => {
    const { stream, counter } = endlessBody();
    const res = await platform.app.request('/v1/invoke/echo', { method: 'POST', body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(413);
    expect((await json(res)).error.code).toBe('ERR_TOO_LARGE');
    expect(counter.pulled * 64 * 1024).toBeLessThanOrEqual(MAX_BODY_BYTES + 64 * 1024);
  });

  it('a declared Content-Length over the ceiling is refused before reading', async () => {
    const { stream, counter } = endlessBody();
    const res = await platform.app.request('/v1/invoke/echo', {
      method: 'POST',
      headers: { 'content-length': String(MAX_BODY_BYTES + 1) },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(413);
    expect(counter.pulled).toBe(0);
  });

  it('an invoke body that stalls answers 408 ERR_BODY_TIMEOUT', async () => {
    const res = await platform.app.request('/v1/invoke/echo', { method: 'POST', body: stalledBody(), duplex: 'half' } as RequestInit);
    expect(res.status).toBe(408);
    expect((await json(res)).error.code).toBe('ERR_BODY_TIMEOUT');
  });

  it('an upload body that stalls answers 408 ERR_BODY_TIMEOUT', async () => {
    const res = await platform.app.request('/v1/functions/ok', {
      method: 'PUT',
      headers: { 'content-type': 'application/javascript' },
      body: stalledBody(),
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(408);
    expect((await json(res)).error.code).toBe('ERR_BODY_TIMEOUT');
  });

  it('an ingest body that stalls answers 408 ERR_BODY_TIMEOUT', async () => {
    await platform.app.request('/v1/graphs/stall', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pipe('ok')) });
    const res = await platform.app.request('/v1/graphs/stall/sources/in', { method: 'POST', body: stalledBody(), duplex: 'half' } as RequestInit);
    expect(res.status).toBe(408);
    await platform.app.request('/v1/graphs/stall', { method: 'DELETE' });
  });

  it('an upload with a bad content type is refused before its body is read', async () => {
    const { stream, counter } = endlessBody();
    const res = await platform.app.request('/v1/functions/typed', { method: 'PUT', headers: { 'content-type': 'text/plain' }, body: stream, duplex: 'half' } as RequestInit);
    expect(res.status).toBe(400);
    expect(counter.pulled).toBe(0);
  });

  it('an upload with a bad query limit is refused before its body is read', async () => {
    const { stream, counter } = endlessBody();
    const res = await platform.app.request('/v1/functions/limited?timeoutMs=0x10', {
      method: 'PUT',
      headers: { 'content-type': 'application/javascript' },
      body: stream,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(400);
    expect(counter.pulled).toBe(0);
  });
});

describe('the in-flight body budget', () => {
  it('bodies beyond maxInflightBodyBytes being read at once answer 503 ERR_OVERLOADED with Retry-After, and the budget comes back', async () => {
    const small = await withPlatform({ hosts: 1, warmSlots: 1, maxInflightBodyBytes: 1024 * 1024, bodyReadTimeoutMs: 1000 });
    try {
      await deploy(small, 'echo', ECHO);
      // A slow client holding 800 KiB of the 1 MiB budget, then stalling.
      let sent = false;
      const hog = new ReadableStream<Uint8Array>(
        {
          pull(controller) {
            if (sent) return new Promise(() => {});
            sent = true;
            controller.enqueue(new Uint8Array(800 * 1024));
          },
        },
        { highWaterMark: 0 },
      );
      const hogged = small.app.request('/v1/invoke/echo', { method: 'POST', body: hog, duplex: 'half' } as RequestInit);
      await waitFor(() => sent, 5000, 'the slow body to be read');
      await new Promise((resolve) => setImmediate(resolve)); // its chunk taken from the budget
      const refused = await small.app.request('/v1/invoke/echo', { method: 'POST', body: 'y'.repeat(500 * 1024) });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('1');
      expect((await json(refused)).error.code).toBe('ERR_OVERLOADED');
      expect((await hogged).status).toBe(408);
      const after = await small.app.request('/v1/invoke/echo', { method: 'POST', body: 'y'.repeat(500 * 1024) });
      expect(after.status).toBe(200);
    } finally {
      await small.cleanup();
    }
  });
});

describe('the functions quota', () => {
  it('refuses a new name beyond maxFunctions with 400 ERR_QUOTA_EXCEEDED, before reading the body', async () => {
    const quota = await withPlatform({ hosts: 1, warmSlots: 1, maxFunctions: 3 });
    try {
      for (const name of ['q1', 'q2', 'q3']) expect((await deploy(quota, name, OK)).status).toBe(201);
      const over = await deploy(quota, 'q4', OK);
      expect(over.status).toBe(400);
      expect(over.body.error.code).toBe('ERR_QUOTA_EXCEEDED');

      const { stream, counter } = endlessBody();
      const endless = await quota.app.request('/v1/functions/q5', { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: stream, duplex: 'half' } as RequestInit);
      expect(endless.status).toBe(400);
      expect(counter.pulled).toBe(0);

      const again = await deploy(quota, 'q1', OK.replace("'ok'", "'ok2'"));
      expect(again.status).toBe(201);
      expect(again.body.version).toBe(2);

      expect((await quota.app.request('/v1/functions/q2', { method: 'DELETE' })).status).toBe(204);
      expect((await deploy(quota, 'q4', OK)).status).toBe(201);
    } finally {
      await quota.cleanup();
    }
  });
});

describe('strict numbers in query parameters', () => {
  for (const value of ['0x10', '1e3', '%205', '+5', '5.0', '', '-5', '16abc', '99999999999999999999']) {
    it(`memoryLimitMb=${value} answers 400 ERR_BAD_REQUEST`, async () => {
      const { status, body } = await deploy(platform, 'strict', OK, `?memoryLimitMb=${value}`);
      expect(status).toBe(400);
      expect(body.error.code).toBe('ERR_BAD_REQUEST');
    });
  }

  it('plain decimal digits are accepted', async () => {
    const { status, body } = await deploy(platform, 'strict', OK, '?memoryLimitMb=64&timeoutMs=500&cpuLimitMs=200');
    expect(status).toBe(201);
    expect(body).toMatchObject({ memoryLimitMb: 64, timeoutMs: 500, cpuLimitMs: 200 });
  });

  it('logs ?limit=0x10 answers 400', async () => {
    expect((await platform.app.request('/v1/functions/ok/logs?limit=0x10')).status).toBe(400);
  });

  it('sinks ?from=1e3 answers 400', async () => {
    await platform.app.request('/v1/graphs/numbers', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pipe('ok')) });
    expect((await platform.app.request('/v1/graphs/numbers/sinks/out?from=1e3')).status).toBe(400);
    expect((await platform.app.request('/v1/graphs/numbers/sinks/out?limit=%2010')).status).toBe(400);
    expect((await platform.app.request('/v1/graphs/numbers/sinks/out?from=0&limit=10')).status).toBe(200);
    await platform.app.request('/v1/graphs/numbers', { method: 'DELETE' });
  });
});

function pipe(fn: string) {
  return {
    nodes: [{ id: 'n', function: fn, replicas: { min: 1, max: 1 } }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'n', delivery: 'at-least-once' },
      { from: 'n', to: 'out', delivery: 'at-least-once' },
    ],
  };
}

describe('deeply nested JSON', () => {
  beforeAll(async () => {
    const res = await platform.app.request('/v1/graphs/deep', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pipe('ok')) });
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await platform.app.request('/v1/graphs/deep', { method: 'DELETE' });
  });

  it('a 6000-deep record in a JSON array answers 400 ERR_TOO_DEEP', async () => {
    const res = await platform.app.request('/v1/graphs/deep/sources/in', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `[{"value":${nested(6000)}}]`,
    });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe('ERR_TOO_DEEP');
  });

  it('a 6000-deep NDJSON record answers 400 ERR_TOO_DEEP', async () => {
    const res = await platform.app.request('/v1/graphs/deep/sources/in', {
      method: 'POST',
      headers: { 'content-type': 'application/x-ndjson' },
      body: `{"value":1}\n{"value":${nested(6000)}}\n`,
    });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe('ERR_TOO_DEEP');
  });

  it(`a value nested exactly MAX_JSON_DEPTH (${MAX_JSON_DEPTH}) deep is accepted, one more is not`, async () => {
    const at = await platform.app.request('/v1/graphs/deep/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `[{"value":${nested(MAX_JSON_DEPTH)}}]` });
    expect(at.status).toBe(202);
    const past = await platform.app.request('/v1/graphs/deep/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: `[{"value":${nested(MAX_JSON_DEPTH + 1)}}]` });
    expect(past.status).toBe(400);
  });

  it('brackets inside strings do not count', async () => {
    const res = await platform.app.request('/v1/graphs/deep/sources/in', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ value: '['.repeat(6000) + '"\\' }]),
    });
    expect(res.status).toBe(202);
  });

  it('a 6000-deep graph spec answers 400 ERR_TOO_DEEP', async () => {
    const spec = `{"nodes":${nested(6000, '{"id":"n"}')},"sources":[],"sinks":[],"edges":[]}`;
    const res = await platform.app.request('/v1/graphs/deepspec', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: spec });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe('ERR_TOO_DEEP');
  });

  it('a graph spec that is not JSON answers 400 ERR_BAD_REQUEST', async () => {
    const res = await platform.app.request('/v1/graphs/notjson', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{"nodes": [' });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe('ERR_BAD_REQUEST');
  });
});

describe('Retry-After', () => {
  it('ERR_BACKPRESSURE from an ingest carries Retry-After', async () => {
    await deploy(platform, 'slow', `export default { async process(r) { await new Promise((res) => setTimeout(res, 50)); return r.value; } };`, '?timeoutMs=30000');
    await platform.app.request('/v1/graphs/jam', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(pipe('slow')) });
    const big = JSON.stringify(Array.from({ length: 80 }, (_, i) => ({ value: i })));
    expect((await platform.app.request('/v1/graphs/jam/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big })).status).toBe(202);
    const refused = await platform.app.request('/v1/graphs/jam/sources/in', { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^[1-9][0-9]*$/);
    expect((await json(refused)).error.code).toBe('ERR_BACKPRESSURE');
    await platform.app.request('/v1/graphs/jam', { method: 'DELETE' });
  });

  /** The error renderer alone, on a bare hono app: what every route's errors go through. */
  function rendering(error: () => never) {
    const app = new Hono();
    app.onError((e, c) => errorResponse(c, e));
    app.get('/', () => error());
    return app.request('/');
  }

  it('ERR_OVERLOADED carries Retry-After from details.retryAfterS', async () => {
    const res = await rendering(() => {
      throw new TributaryError('ERR_OVERLOADED', 'queue full', { details: { retryAfterS: 7 } });
    });
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('7');
  });

  it('ERR_OVERLOADED without a hint says Retry-After: 1', async () => {
    const res = await rendering(() => {
      throw new TributaryError('ERR_OVERLOADED', 'queue full');
    });
    expect(res.headers.get('retry-after')).toBe('1');
  });

  it('other errors carry no Retry-After', async () => {
    const res = await rendering(() => {
      throw new TributaryError('ERR_NOT_FOUND', 'no such thing');
    });
    expect(res.headers.get('retry-after')).toBeNull();
  });

  it('a stack overflow in a route is a 400 ERR_TOO_DEEP, not a 500', async () => {
    const recurse = (n: number): number => recurse(n + 1) + 1;
    const res = await rendering(() => {
      recurse(0);
      throw new Error('unreachable');
    });
    expect(res.status).toBe(400);
    expect((await json(res)).error.code).toBe('ERR_TOO_DEEP');
  });

  it('a string too long to build in a route is a 413 ERR_TOO_LARGE, not a 500', async () => {
    const res = await rendering(() => {
      'x'.repeat(2 ** 30 + 1);
      throw new Error('unreachable');
    });
    expect(res.status).toBe(413);
    expect((await json(res)).error.code).toBe('ERR_TOO_LARGE');
  });
});

describe('function responses', () => {
  it('response headers over MAX_RESPONSE_HEADER_BYTES answer 413 ERR_TOO_LARGE', async () => {
    await deploy(platform, 'fat-head', `export default { fetch() { const h = new Headers(); for (let i = 0; i < 80; i++) h.set('x-h' + i, 'v'.repeat(1024)); return new Response('x', { headers: h }); } };`);
    const res = await platform.app.request('/v1/invoke/fat-head');
    expect(res.status).toBe(413);
    expect((await json(res)).error.code).toBe('ERR_TOO_LARGE');
    expect((await platform.app.request('/v1/invoke/ok')).status).toBe(200);
  });
});

describe('the console log buffer', () => {
  const line = (text: string) => ({ level: 'log' as const, line: text, time: 0 });

  it('keeps at most bytesPerFunction bytes of a function, dropping the oldest lines', () => {
    const logs = new LogBuffer({ bytesPerFunction: 10_000 });
    for (let i = 0; i < 100; i++) logs.append('f', 1, [line(`${i}:${'x'.repeat(1000)}`)]);
    const kept = logs.read('f');
    expect(kept.length).toBeLessThan(10);
    expect(kept.at(-1)!.line.startsWith('99:')).toBe(true);
    expect(logs.size.bytes).toBeLessThanOrEqual(10_000);
  });

  it('keeps at most linesPerFunction lines of a function', () => {
    const logs = new LogBuffer({ linesPerFunction: 5 });
    logs.append('f', 1, Array.from({ length: 12 }, (_, i) => line(String(i))));
    expect(logs.read('f').map((l) => l.line)).toEqual(['7', '8', '9', '10', '11']);
  });

  it('keeps at most `functions` functions, dropping the least recently written', () => {
    const logs = new LogBuffer({ functions: 3 });
    for (const name of ['a', 'b', 'c', 'd']) logs.append(name, 1, [line(name)]);
    expect(logs.size.functions).toBe(3);
    expect(logs.read('a')).toEqual([]);
    expect(logs.read('d').map((l) => l.line)).toEqual(['d']);
  });

  it('keeps at most totalBytes over all functions', () => {
    const logs = new LogBuffer({ totalBytes: 50_000 });
    for (let i = 0; i < 200; i++) logs.append(`fn-${i}`, 1, [line('y'.repeat(1000))]);
    expect(logs.size.bytes).toBeLessThanOrEqual(50_000);
    expect(logs.read('fn-199')).toHaveLength(1);
  });
});
