import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

const ROOT = join(import.meta.dirname, '..');
let platform: Awaited<ReturnType<typeof withPlatform>>;

async function putGraph(name: string, spec: unknown) {
  const res = await platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  return { status: res.status, body: await json(res) };
}

async function ingest(name: string, source: string, body: string, contentType = 'application/json', headers: Record<string, string> = {}) {
  return platform.app.request(`/v1/graphs/${name}/sources/${source}`, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body });
}

async function sink(name: string, id: string, from = 0, limit = 1000) {
  return (await json(platform.app.request(`/v1/graphs/${name}/sinks/${id}?from=${from}&limit=${limit}`))).records as Array<{ offset: number; key: string | null; value: any }>;
}

function pipe(fn: string, delivery = 'exactly-once', extra: Record<string, unknown> = {}) {
  return {
    nodes: [{ id: 'n', function: fn, replicas: { min: 1, max: 1 } }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'n', delivery, partitionBy: 'key' },
      { from: 'n', to: 'out', delivery },
    ],
    ...extra,
  };
}

beforeAll(async () => {
  platform = await withPlatform({ maxLagRecords: 500 });
  await deploy(platform, 'wordcount-split', readFileSync(join(ROOT, 'functions/wordcount-split.js'), 'utf8'));
  await deploy(platform, 'wordcount-count', readFileSync(join(ROOT, 'functions/wordcount-count.js'), 'utf8'));
  await deploy(platform, 'upper', `export default { process(r) { return String(r.value).toUpperCase(); } };`);
  await deploy(platform, 'double', `export default { process(r, env, ctx) { ctx.emit(r.value, { key: r.key }); ctx.emit(r.value, { key: r.key }); } };`);
});
afterAll(() => platform.cleanup());

describe('graph validation', () => {
  it('reports every problem at once, with paths', async () => {
    const { status, body } = await putGraph('bad', {
      nodes: [
        { id: 'a', function: 'nope', replicas: { min: 1, max: 1 } },
        { id: 'a', function: 'upper', replicas: { min: 2, max: 1 } },
        { id: 'lonely', function: 'upper', replicas: { min: 1, max: 1 } },
      ],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'a', delivery: 'sometimes' },
        { from: 'a', to: 'ghost', delivery: 'exactly-once' },
        { from: 'a', to: 'out', delivery: 'exactly-once' },
      ],
    });
    expect(status).toBe(400);
    expect(body.error.code).toBe('ERR_GRAPH_INVALID');
    const paths = body.error.problems.map((p: { path: string }) => p.path);
    expect(paths).toEqual(expect.arrayContaining(['$.nodes[0].function', '$.nodes[1].id', '$.nodes[1].replicas', '$.edges[0].delivery', '$.edges[1].to', '$.nodes[id=lonely]']));
    expect(body.error.problems.find((p: { path: string }) => p.path === '$.nodes[0].function').message).toMatch(/unknown function 'nope'/);
  });

  it('reports a cycle as ERR_GRAPH_CYCLE', async () => {
    const { status, body } = await putGraph('loop', {
      nodes: [
        { id: 'a', function: 'upper', replicas: { min: 1, max: 1 } },
        { id: 'b', function: 'upper', replicas: { min: 1, max: 1 } },
      ],
      sources: [{ id: 'in', type: 'http' }],
      sinks: [{ id: 'out', type: 'log' }],
      edges: [
        { from: 'in', to: 'a', delivery: 'exactly-once' },
        { from: 'a', to: 'b', delivery: 'exactly-once' },
        { from: 'b', to: 'a', delivery: 'exactly-once' },
        { from: 'b', to: 'out', delivery: 'exactly-once' },
      ],
    });
    expect(status).toBe(400);
    expect(body.error.code).toBe('ERR_GRAPH_CYCLE');
    expect(body.error.problems[0].message).toMatch(/a -> b -> a|b -> a -> b/);
  });

  it('rejects a body that is not JSON', async () => {
    const res = await platform.app.request('/v1/graphs/x', { method: 'PUT', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(res.status).toBe(400);
  });
});

describe('running graphs', () => {
  it('runs WordCount: branching to several sinks, per-key order, status counts', async () => {
    const spec = JSON.parse(readFileSync(join(ROOT, 'functions/wordcount.graph.json'), 'utf8'));
    spec.sinks.push({ id: 'words', type: 'log' });
    spec.edges.push({ from: 'split', to: 'words', delivery: 'at-least-once' });
    expect((await putGraph('wc', spec)).status).toBe(201);
    const res = await ingest('wc', 'lines', JSON.stringify([{ value: 'to be or not to be' }, { value: 'To see' }]));
    expect(res.status).toBe(202);
    expect(await json(res)).toEqual({ accepted: 2, duplicate: false });
    await waitFor(async () => (await sink('wc', 'counts')).length === 8, 10_000, 'counts');
    const counts = await sink('wc', 'counts');
    expect(counts.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    const toCounts = counts.filter((r) => r.value.word === 'to').map((r) => r.value.count);
    expect(toCounts).toEqual([1, 2, 3]);
    await waitFor(async () => (await sink('wc', 'words')).length === 8, 10_000, 'words sink');
    const { status } = await json(platform.app.request('/v1/graphs/wc'));
    expect(status.nodes.split).toMatchObject({ processed: 2, failed: 0, replicas: 1, queueDepth: 0 });
    expect(status.nodes.count.processed).toBe(8);
    const edge = status.edges.find((e: { from: string; to: string }) => e.from === 'split' && e.to === 'count');
    expect(edge).toMatchObject({ committedOffset: 8, lag: 0, delivery: 'exactly-once' });
    const list = await json(platform.app.request('/v1/graphs'));
    expect(list.graphs.map((g: { name: string }) => g.name)).toContain('wc');
  });

  it('accepts NDJSON and reads sinks with from/limit', async () => {
    expect((await putGraph('nd', pipe('upper'))).status).toBe(201);
    const res = await ingest('nd', 'in', '{"key":"a","value":"x"}\n{"value":"y"}\n\n{"key":"a","value":"z"}\n', 'application/x-ndjson');
    expect(await json(res)).toMatchObject({ accepted: 3 });
    await waitFor(async () => (await sink('nd', 'out')).length === 3, 10_000, 'sink');
    const page = await sink('nd', 'out', 1, 1);
    expect(page).toHaveLength(1);
    expect(page[0].offset).toBe(1);
    expect((await sink('nd', 'out')).map((r) => r.value).sort()).toEqual(['X', 'Y', 'Z']);
  });

  it('rejects malformed records with ERR_BAD_REQUEST, accepting none of them', async () => {
    await putGraph('strict', pipe('upper'));
    const bad = await ingest('strict', 'in', JSON.stringify([{ value: 1 }, { nothing: true }]));
    expect(bad.status).toBe(400);
    expect((await json(bad)).error.message).toMatch(/record 1/);
    const unknown = await ingest('strict', 'nope', JSON.stringify([{ value: 1 }]));
    expect(unknown.status).toBe(404);
    const { status } = await json(platform.app.request('/v1/graphs/strict'));
    expect(status.edges[0].partitions.reduce((s: number, p: { head: number }) => s + p.head, 0)).toBe(0);
  });

  it('deduplicates a retried ingest with the same Idempotency-Key', async () => {
    await putGraph('idem', pipe('upper'));
    const body = JSON.stringify([{ value: 'once' }]);
    expect(await json(await ingest('idem', 'in', body, 'application/json', { 'idempotency-key': 'k1' }))).toEqual({ accepted: 1, duplicate: false });
    expect(await json(await ingest('idem', 'in', body, 'application/json', { 'idempotency-key': 'k1' }))).toEqual({ accepted: 1, duplicate: true });
    await waitFor(async () => (await sink('idem', 'out')).length >= 1, 10_000, 'sink');
    await new Promise((r) => setTimeout(r, 200));
    expect(await sink('idem', 'out')).toHaveLength(1);
  });

  it('answers 429 with Retry-After when a source edge is too far behind', async () => {
    await deploy(platform, 'slow', `export default { async process(r) { await new Promise((res) => setTimeout(res, 50)); return r.value; } };`, '?timeoutMs=30000');
    await putGraph('jam', pipe('slow'));
    const big = JSON.stringify(Array.from({ length: 300 }, (_, i) => ({ value: i })));
    expect((await ingest('jam', 'in', big)).status).toBe(202);
    const refused = await ingest('jam', 'in', big);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect((await json(refused)).error.code).toBe('ERR_BACKPRESSURE');
    await platform.app.request('/v1/graphs/jam', { method: 'DELETE' });
  });

  it('retries a throwing record, then dead-letters it and keeps the stream going', async () => {
    await deploy(platform, 'picky', `let calls = 0; export default { process(r) { calls++; if (r.value === 'bad') throw new Error('cannot digest ' + r.value); return r.value + calls; } };`);
    await putGraph('dlq', pipe('picky'));
    await ingest('dlq', 'in', JSON.stringify([{ key: 'k', value: 'good' }, { key: 'k', value: 'bad' }, { key: 'k', value: 'fine' }]));
    await waitFor(async () => (await sink('dlq', 'out')).length === 2, 10_000, 'sink');
    // 'bad' was tried 3 times: 'fine' sees calls = 1 (good) + 3 (bad) + 1.
    expect((await sink('dlq', 'out')).map((r) => r.value)).toEqual(['good1', 'fine5']);
    const dead = (await json(platform.app.request('/v1/graphs/dlq/nodes/n/dead-letters'))).records;
    expect(dead).toHaveLength(1);
    expect(dead[0].value).toMatchObject({ error: 'Error: cannot digest bad', record: { value: 'bad' } });
    const { status } = await json(platform.app.request('/v1/graphs/dlq'));
    expect(status.nodes.n).toMatchObject({ failed: 1, deadLetters: 1 });
  });

  it('dead-letters a record that times out its whole batch, after isolating it', async () => {
    await deploy(platform, 'hangs', `export default { process(r) { if (r.value === 'hang') for (;;) {} return r.value; } };`, '?timeoutMs=100');
    await putGraph('poison', pipe('hangs'));
    await ingest('poison', 'in', JSON.stringify(['a', 'b', 'hang', 'c', 'd'].map((value) => ({ key: 'k', value }))));
    await waitFor(async () => (await sink('poison', 'out')).length === 4, 20_000, 'sink');
    expect((await sink('poison', 'out')).map((r) => r.value)).toEqual(['a', 'b', 'c', 'd']);
    const dead = (await json(platform.app.request('/v1/graphs/poison/nodes/n/dead-letters'))).records;
    expect(dead[0].value.error).toMatch(/ERR_FN_TIMEOUT/);
  });

  it('env.STATE: get/put/delete/list, per node and per partition', async () => {
    await deploy(
      platform,
      'stateful',
      `export default { async process(r, env) {
        const [op, key, val] = String(r.value).split(':');
        if (op === 'put') await env.STATE.put(key, val);
        if (op === 'del') await env.STATE.delete(key);
        if (op === 'get') { const o = await env.STATE.get(key); return o === null ? 'null' : await o.text(); }
        if (op === 'json') { await env.STATE.put(key, JSON.stringify({ v: val })); return (await (await env.STATE.get(key)).json()).v; }
        if (op === 'list') { const l = await env.STATE.list({ prefix: key, limit: 2 }); return JSON.stringify({ keys: l.objects.map((o) => o.key), truncated: l.truncated }); }
        if (op === 'bytes') { await env.STATE.put(key, new Uint8Array([1, 2, 3])); return String(new Uint8Array(await (await env.STATE.get(key)).arrayBuffer()).length); }
        if (op === 'throw') { await env.STATE.put(key, 'from-a-failed-record'); throw new Error('rolled back'); }
      } };`,
    );
    await putGraph('st', pipe('stateful'));
    const ops = ['put:a1:x', 'put:a2:y', 'put:b1:z', 'get:a1', 'list:a', 'del:a1', 'get:a1', 'json:j:hi', 'bytes:bin', 'throw:t', 'get:t'];
    await ingest('st', 'in', JSON.stringify(ops.map((value) => ({ key: 'same-partition', value }))));
    await waitFor(async () => (await sink('st', 'out')).length === 6, 10_000, 'sink');
    expect((await sink('st', 'out')).map((r) => r.value)).toEqual(['x', JSON.stringify({ keys: ['a1', 'a2'], truncated: false }), 'null', 'hi', '3', 'null']);
  });

  it('state survives a platform restart (committed in the log)', async () => {
    const dataDir = platform.dataDir;
    await putGraph('persist', pipe('wordcount-count'));
    await ingest('persist', 'in', JSON.stringify([{ key: 'w', value: 'w' }, { key: 'w', value: 'w' }]));
    await waitFor(async () => (await sink('persist', 'out')).length === 2, 10_000, 'sink');
    await platform.close();
    platform = await withPlatform({ dataDir, hosts: 2, warmSlots: 2, maxLagRecords: 500 });
    await ingest('persist', 'in', JSON.stringify([{ key: 'w', value: 'w' }]));
    await waitFor(async () => (await sink('persist', 'out')).length === 3, 10_000, 'sink after restart');
    expect((await sink('persist', 'out')).map((r) => r.value.count)).toEqual([1, 2, 3]);
  });
});

describe('live updates', () => {
  it('re-deploying the graph and re-uploading a function while records flow loses and repeats nothing', async () => {
    await putGraph('live', pipe('upper'));
    const total = 3000;
    const feeding = (async () => {
      for (let i = 0; i < total; i += 100) {
        const body = JSON.stringify(Array.from({ length: 100 }, (_, j) => ({ key: `k${(i + j) % 7}`, value: `v${i + j}` })));
        let res = await ingest('live', 'in', body);
        // 429 is the backpressure contract (nothing of the request was accepted): a client retries it.
        for (let tries = 0; res.status === 429 && tries < 100; tries++) {
          await new Promise((r) => setTimeout(r, 50));
          res = await ingest('live', 'in', body);
        }
        expect(res.status).toBe(202);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 40));
    expect((await putGraph('live', pipe('upper'))).status).toBe(201);
    await deploy(platform, 'upper', `export default { process(r) { return String(r.value).toUpperCase() + '!'; } };`);
    await new Promise((r) => setTimeout(r, 40));
    expect((await putGraph('live', pipe('upper'))).status).toBe(201);
    await feeding;
    await waitFor(async () => (await sink('live', 'out', 0, 10_000)).length >= total, 20_000, 'all records').catch(async (error) => {
      const { status } = await json(platform.app.request('/v1/graphs/live'));
      throw new Error(`${error.message}: sink has ${(await sink('live', 'out', 0, 10_000)).length}; status ${JSON.stringify(status)}`);
    });
    await new Promise((r) => setTimeout(r, 200));
    const values = (await sink('live', 'out', 0, 10_000)).map((r) => String(r.value).replace(/!$/, ''));
    expect(values).toHaveLength(total);
    expect(new Set(values).size).toBe(total);
    const { status } = await json(platform.app.request('/v1/graphs/live'));
    expect(status.edges[0].lag).toBe(0);
  });

  it('deletes a graph and its logs', async () => {
    await putGraph('gone', pipe('upper'));
    expect((await platform.app.request('/v1/graphs/gone', { method: 'DELETE' })).status).toBe(204);
    expect((await platform.app.request('/v1/graphs/gone')).status).toBe(404);
    expect((await platform.app.request('/v1/graphs/gone', { method: 'DELETE' })).status).toBe(404);
  });
});
