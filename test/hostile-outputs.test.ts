/**
 * Outputs over the guest's ceilings fail the record (or the call) that made them, with their own
 * code, and nothing else: emits per record (ERR_QUOTA_EXCEEDED), nesting depth (ERR_TOO_DEEP),
 * bytes per batch (ERR_TOO_LARGE), values that cannot leave the isolate (ERR_FN_BAD_OUTPUT),
 * response heads (413 ERR_TOO_LARGE). In graphs the failing record is dead-lettered with its code
 * while the other records of its batch reach the sink; the host processes stay the same.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_BATCH_OUTPUT_BYTES, MAX_EMITS_PER_RECORD, MAX_JSON_DEPTH } from '../runtime/limits.ts';
import { deploy, json, waitFor, withPlatform } from './fixtures/platform.ts';

let platform: Awaited<ReturnType<typeof withPlatform>>;
let hostPids: unknown;
let counter = 0;

const pids = async () => (await json(platform.app.request('/healthz'))).hosts;

beforeAll(async () => {
  platform = await withPlatform();
  hostPids = await pids();
});
afterAll(() => platform.cleanup());
afterEach(async () => {
  expect(await pids()).toEqual(hostPids);
});

interface DeadLetter {
  error: string;
  record: { key: string | null; value: unknown };
}

/**
 * Runs `process` (a function body over `r`, `env`, `ctx`) as the one node of a fresh graph fed
 * `values` in one ingest (one batch), and waits for `expectSink` records at the sink and
 * `expectDead` dead letters.
 */
async function runGraph(processBody: string, values: unknown[], expectSink: number, expectDead: number, topLevel = '') {
  const name = `outputs-${++counter}`;
  const put = await deploy(platform, name, `${topLevel}\nexport default { async process(r, env, ctx) {\n${processBody}\n} };`, '?timeoutMs=20000');
  expect(put.status, JSON.stringify(put.body)).toBe(201);
  const spec = {
    nodes: [{ id: 'n', function: name, replicas: { min: 1, max: 1 } }],
    sources: [{ id: 'in', type: 'http' }],
    sinks: [{ id: 'out', type: 'log' }],
    edges: [
      { from: 'in', to: 'n', delivery: 'exactly-once', partitions: 1 },
      { from: 'n', to: 'out', delivery: 'exactly-once' },
    ],
  };
  const graph = await platform.app.request(`/v1/graphs/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(spec) });
  expect(graph.status, await graph.clone().text()).toBe(201);
  const ingest = await platform.app.request(`/v1/graphs/${name}/sources/in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(values.map((value, i) => ({ key: `k${i}`, value }))),
  });
  expect(ingest.status).toBe(202);
  const sink = async () => (await json(platform.app.request(`/v1/graphs/${name}/sinks/out?from=0&limit=1000`))).records as Array<{ key: string; value: any }>;
  const dead = async () => (await json(platform.app.request(`/v1/graphs/${name}/nodes/n/dead-letters`))).records.map((r: { value: DeadLetter }) => r.value) as DeadLetter[];
  await waitFor(async () => (await sink()).length >= expectSink && (await dead()).length >= expectDead, 20_000, `${expectSink} sink records and ${expectDead} dead letters`);
  // Anything more would have arrived with the same batch.
  const result = { sink: await sink(), dead: await dead() };
  await platform.app.request(`/v1/graphs/${name}`, { method: 'DELETE' });
  return result;
}

describe('emits per record', () => {
  it(`a record emitting more than ${MAX_EMITS_PER_RECORD} outputs is dead-lettered with ERR_QUOTA_EXCEEDED; the others reach the sink`, async () => {
    const { sink, dead } = await runGraph(`if (r.value === 'flood') for (;;) ctx.emit('x'); return r.value;`, ['a', 'flood', 'b'], 2, 1);
    expect(sink.map((s) => s.value)).toEqual(['a', 'b']);
    expect(dead).toHaveLength(1);
    expect(dead[0].error).toMatch(/^ERR_QUOTA_EXCEEDED: /);
    expect(dead[0].record.value).toBe('flood');
  });

  it('catching the emit error does not save the record, and it is not retried', async () => {
    const { sink, dead } = await runGraph(
      `calls++;
       if (r.value === 'flood') { try { for (;;) ctx.emit('x'); } catch {} return 'survived'; }
       return r.value + ':' + calls;`,
      ['a', 'flood', 'b'],
      2,
      1,
      'let calls = 0;',
    );
    // 'flood' ran once (no retries): 'b' is the third call.
    expect(sink.map((s) => s.value)).toEqual(['a:1', 'b:3']);
    expect(dead[0].error).toMatch(/^ERR_QUOTA_EXCEEDED: /);
  });
});

describe('nesting depth', () => {
  it(`an emitted value nested deeper than ${MAX_JSON_DEPTH} is dead-lettered with ERR_TOO_DEEP`, async () => {
    const { sink, dead } = await runGraph(
      `if (r.value !== 'deep') return r.value;
       let v = 'leaf'; for (let i = 0; i < 100000; i++) v = [v];
       ctx.emit(v);`,
      ['a', 'deep', 'b'],
      2,
      1,
    );
    expect(sink.map((s) => s.value)).toEqual(['a', 'b']);
    expect(dead[0].error).toMatch(/^ERR_TOO_DEEP: /);
  });

  it('a returned value is checked like an emitted one', async () => {
    const { dead } = await runGraph(`let v = {}; for (let i = 0; i < ${MAX_JSON_DEPTH + 1}; i++) v = { v }; return v;`, ['deep'], 0, 1);
    expect(dead[0].error).toMatch(/^ERR_TOO_DEEP: /);
  });

  it(`a value exactly ${MAX_JSON_DEPTH} deep still goes through, intact`, async () => {
    const { sink } = await runGraph(`let v = 1; for (let i = 0; i < ${MAX_JSON_DEPTH}; i++) v = [v]; return v;`, ['ok'], 1, 0);
    let v = sink[0].value;
    let depth = 0;
    while (Array.isArray(v)) {
      v = v[0];
      depth++;
    }
    expect({ depth, v }).toEqual({ depth: MAX_JSON_DEPTH, v: 1 });
  });
});

describe('bytes per batch', () => {
  it('the record whose emits cross the batch limit is dead-lettered with ERR_TOO_LARGE; the others reach the sink', async () => {
    const { sink, dead } = await runGraph(
      `if (r.value !== 'huge') return r.value;
       const mib = 'x'.repeat(1024 * 1024);
       for (let i = 0; i < ${MAX_BATCH_OUTPUT_BYTES / (1024 * 1024) + 1}; i++) ctx.emit(mib);`,
      ['a', 'huge', 'b'],
      2,
      1,
    );
    expect(sink.map((s) => s.value)).toEqual(['a', 'b']);
    expect(dead[0].error).toMatch(/^ERR_TOO_LARGE: /);
  });

  it('state writes count too: a record writing past the batch limit fails, its writes discarded', async () => {
    const { sink, dead } = await runGraph(
      `if (r.value === 'hoard') {
         const chunk = 'x'.repeat(300 * 1024);
         for (let i = 0; i < ${Math.ceil(MAX_BATCH_OUTPUT_BYTES / (300 * 1024)) + 1}; i++) await env.STATE.put('k' + i, chunk);
         return 'kept';
       }
       const o = await env.STATE.get('k0');
       return o === null ? 'none' : 'leaked';`,
      ['hoard', 'check'],
      1,
      1,
    );
    expect(sink.map((s) => s.value)).toEqual(['none']);
    expect(dead[0].error).toMatch(/^ERR_TOO_LARGE: /);
  });

  it('shared substructure counts as it would expand: a 2^40-node DAG fails at once with ERR_TOO_LARGE', async () => {
    const { dead } = await runGraph(`let v = ['leaf']; for (let i = 0; i < 40; i++) v = [v, v]; return v;`, ['dag'], 0, 1);
    expect(dead[0].error).toMatch(/^ERR_TOO_LARGE: /);
  });
});

describe('values that cannot leave the isolate', () => {
  const cases: Array<[string, string]> = [
    ['a function', `ctx.emit({ f() {} }.f);`],
    ['a function inside an object', `ctx.emit({ ok: 1, f: () => 1 });`],
    ['a symbol', `ctx.emit([Symbol('s')]);`],
    ['a BigInt', `ctx.emit({ n: 10n });`],
    ['a cyclic object', `const o = { a: {} }; o.a.back = o; ctx.emit(o);`],
    ['a Map', `ctx.emit(new Map([[1, 2]]));`],
  ];
  for (const [what, body] of cases) {
    it(`emitting ${what} is dead-lettered with ERR_FN_BAD_OUTPUT; the others reach the sink`, async () => {
      const { sink, dead } = await runGraph(`if (r.value === 'bad') { ${body} return; } return r.value;`, ['a', 'bad', 'b'], 2, 1);
      expect(sink.map((s) => s.value)).toEqual(['a', 'b']);
      expect(dead[0].error).toMatch(/^ERR_FN_BAD_OUTPUT: /);
    });
  }

  it('a getter that answers differently the second time changes nothing: what was checked is what crosses', async () => {
    const { sink } = await runGraph(
      `let reads = 0;
       const sneaky = { get v() { reads++; if (reads === 1) return 'small'; let d = 1; for (let i = 0; i < 100000; i++) d = [d]; return d; } };
       ctx.emit(sneaky);
       return { reads };`,
      ['x'],
      2,
      0,
    );
    expect(sink.map((s) => s.value)).toEqual([{ v: 'small' }, { reads: 1 }]);
  });

  it('mutating an emitted object afterwards changes nothing', async () => {
    const { sink } = await runGraph(`const o = { a: [1, 2] }; ctx.emit(o); o.a.push(() => 1); o.b = 10n; o.self = o;`, ['x'], 1, 0);
    expect(sink[0].value).toEqual({ a: [1, 2] });
  });
});

describe('legitimate outputs', () => {
  it('objects, arrays, shared substructure, bytes and dates arrive as emitted', async () => {
    const { sink } = await runGraph(
      `const shared = { n: 1 };
       ctx.emit({ word: 'w', count: 3, tags: ['a', 'b'], nested: { deep: [{ x: null, y: true }] }, left: shared, right: shared }, { key: 'k' });
       ctx.emit(new Uint8Array([1, 2, 3]));
       ctx.emit(new Date(0));
       ctx.emit(['x', 2, false, null]);`,
      ['x'],
      4,
      0,
    );
    expect(sink[0]).toMatchObject({ key: 'k', value: { word: 'w', count: 3, tags: ['a', 'b'], nested: { deep: [{ x: null, y: true }] }, left: { n: 1 }, right: { n: 1 } } });
    expect(sink[1].value).toEqual({ 0: 1, 1: 2, 2: 3 });
    expect(sink[2].value).toBe('1970-01-01T00:00:00.000Z');
    expect(sink[3].value).toEqual(['x', 2, false, null]);
  });
});

describe('response heads', () => {
  async function invokeWith(fetchBody: string) {
    const name = `outputs-${++counter}`;
    expect((await deploy(platform, name, `export default { fetch() {\n${fetchBody}\n} };`, '?timeoutMs=20000')).status).toBe(201);
    const res = await platform.app.request(`/v1/invoke/${name}`);
    return { status: res.status, body: await json(res) };
  }

  it('270 MiB of response headers answer 413 ERR_TOO_LARGE; the host survives', async () => {
    const { status, body } = await invokeWith(`
      const value = 'v'.repeat(1024 * 1024);
      const headers = new Headers();
      for (let i = 0; i < 270; i++) headers.append('x-big', value);
      return new Response('body', { headers });`);
    expect(status).toBe(413);
    expect(body.error.code).toBe('ERR_TOO_LARGE');
  });

  it('a huge status text answers 413 ERR_TOO_LARGE', async () => {
    const { status, body } = await invokeWith(`return new Response('body', { statusText: 'x'.repeat(1024 * 1024) });`);
    expect(status).toBe(413);
    expect(body.error.code).toBe('ERR_TOO_LARGE');
  });

  it('ordinary headers still go through', async () => {
    const name = `outputs-${++counter}`;
    await deploy(platform, name, `export default { fetch() { return new Response('ok', { headers: { 'x-a': '1', 'x-b': 'y'.repeat(1000) } }); } };`);
    const res = await platform.app.request(`/v1/invoke/${name}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-b')).toHaveLength(1000);
  });
});
