/**
 * The Web APIs user functions see (runtime/guest/web/), exercised inside real isolates through
 * `createSandbox`: each `run(code)` is the body of an async function in the guest.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createSandbox, type Sandbox } from '../runtime/host/sandbox.ts';

let sandbox: Sandbox;

beforeAll(async () => {
  sandbox = await createSandbox();
});
afterAll(() => sandbox.dispose());

const run = (code: string) => sandbox.run(code);

describe('TextEncoder / TextDecoder', () => {
  it('round-trips BMP, astral and mixed text through UTF-8', async () => {
    const result = await run(`
      const text = 'héllo wörld 😀 𝄞 中文 \\u0000';
      const bytes = new TextEncoder().encode(text);
      return { same: new TextDecoder().decode(bytes) === text, emoji: [...new TextEncoder().encode('😀')], length: bytes.length };
    `);
    expect(result).toEqual({ same: true, emoji: [0xf0, 0x9f, 0x98, 0x80], length: 32 });
  });

  it('encodes lone surrogates as U+FFFD', async () => {
    expect(await run(`return [...new TextEncoder().encode('a\\ud800b\\udc00')]`)).toEqual([
      0x61, 0xef, 0xbf, 0xbd, 0x62, 0xef, 0xbf, 0xbd,
    ]);
  });

  it('encodeInto writes whole code points only and reports UTF-16 units read', async () => {
    const result = await run(`
      const out = new Uint8Array(4);
      const first = new TextEncoder().encodeInto('a😀', new Uint8Array(3));
      const second = new TextEncoder().encodeInto('a😀b', out);
      return { first, second, bytes: [...out] };
    `);
    expect(result).toEqual({ first: { read: 1, written: 1 }, second: { read: 1, written: 1 }, bytes: [0x61, 0, 0, 0] });
  });

  it('replaces each maximal invalid subpart with one U+FFFD', async () => {
    const result = await run(`
      const d = (bytes) => new TextDecoder().decode(new Uint8Array(bytes));
      return [d([0xf0, 0x80, 0x80, 0x41, 0xc3]), d([0xc0, 0xaf]), d([0xed, 0xa0, 0x80]), d([0xe2, 0x82]), d([0xff, 0x41])];
    `);
    expect(result).toEqual(['\ufffd\ufffd\ufffdA\ufffd', '\ufffd\ufffd', '\ufffd\ufffd\ufffd', '\ufffd', '\ufffdA']);
  });

  it('throws TypeError on invalid input when fatal', async () => {
    const result = await run(`
      const decoder = new TextDecoder('utf-8', { fatal: true });
      try { decoder.decode(new Uint8Array([0x61, 0xff])); } catch (e) { return [e instanceof TypeError, decoder.fatal, decoder.decode(new Uint8Array([0x61]))]; }
    `);
    expect(result).toEqual([true, true, 'a']);
  });

  it('keeps an incomplete sequence between stream: true calls', async () => {
    const result = await run(`
      const bytes = new TextEncoder().encode('x😀y');
      const decoder = new TextDecoder();
      const parts = [];
      for (let i = 0; i < bytes.length; i++) parts.push(decoder.decode(bytes.subarray(i, i + 1), { stream: true }));
      parts.push(decoder.decode());
      const cut = new TextDecoder().decode(bytes.subarray(0, 3));
      return [parts.join(''), parts[1], cut];
    `);
    expect(result).toEqual(['x😀y', '', 'x\ufffd']);
  });

  it('strips a leading BOM unless ignoreBOM, and accepts any BufferSource', async () => {
    const result = await run(`
      const bom = new Uint8Array([0xef, 0xbb, 0xbf, 0x68, 0x69]);
      return [
        new TextDecoder().decode(bom),
        new TextDecoder('utf-8', { ignoreBOM: true }).decode(bom).length,
        new TextDecoder().decode(bom.buffer),
        new TextDecoder().decode(new DataView(bom.buffer, 3)),
        new TextDecoder().decode(new Uint16Array([0x6968])),
      ];
    `);
    expect(result).toEqual(['hi', 3, 'hi', 'hi', 'hi']);
  });

  it("accepts the utf-8 labels ('utf8', padded, any case) and rejects unknown ones with RangeError", async () => {
    const result = await run(`
      const ok = ['utf8', ' UTF-8 ', 'unicode-1-1-utf-8'].map((label) => new TextDecoder(label).encoding);
      let error;
      try { new TextDecoder('no-such-label'); } catch (e) { error = e instanceof RangeError; }
      return { ok, error };
    `);
    expect(result).toEqual({ ok: ['utf-8', 'utf-8', 'utf-8'], error: true });
  });
});

describe('atob / btoa', () => {
  it('round-trips every byte value and forgives whitespace and missing padding', async () => {
    const result = await run(`
      let binary = '';
      for (let i = 0; i < 256; i++) binary += String.fromCharCode(i);
      return [atob(btoa(binary)) === binary, btoa('hello'), atob(' aGVs\\nbG8= '), atob('aGVsbG8'), btoa('')];
    `);
    expect(result).toEqual([true, 'aGVsbG8=', 'hello', 'hello', '']);
  });

  it('throws InvalidCharacterError for bad input', async () => {
    const result = await run(`
      const name = (fn) => { try { fn(); return 'no error'; } catch (e) { return e.name; } };
      return [name(() => atob('a')), name(() => atob('a=bc')), name(() => atob('ab*c')), name(() => btoa('😀'))];
    `);
    expect(result).toEqual(['InvalidCharacterError', 'InvalidCharacterError', 'InvalidCharacterError', 'InvalidCharacterError']);
  });
});

describe('Headers', () => {
  it('is case-insensitive and combines repeated values with ", "', async () => {
    const result = await run(`
      const h = new Headers({ 'Content-Type': 'text/plain' });
      h.append('X-Tag', 'a');
      h.append('x-tag', 'b');
      const before = [h.get('content-type'), h.get('X-TAG'), h.has('CONTENT-type')];
      h.delete('CONTENT-TYPE');
      h.set('X-Tag', 'c');
      return [...before, h.has('content-type'), h.get('x-tag'), h.get('missing')];
    `);
    expect(result).toEqual(['text/plain', 'a, b', true, false, 'c', null]);
  });

  it('iterates sorted and combined, with set-cookie values kept apart', async () => {
    const result = await run(`
      const h = new Headers([['b', '1'], ['Set-Cookie', 'x=1'], ['A', '2'], ['set-cookie', 'y=2'], ['b', '3']]);
      const seen = [];
      h.forEach((value, name, self) => seen.push(name + ':' + value + ':' + (self === h)));
      return { entries: [...h], keys: [...h.keys()], values: [...h.values()], seen, cookies: h.getSetCookie() };
    `);
    expect(result).toEqual({
      entries: [['a', '2'], ['b', '1, 3'], ['set-cookie', 'x=1'], ['set-cookie', 'y=2']],
      keys: ['a', 'b', 'set-cookie', 'set-cookie'],
      values: ['2', '1, 3', 'x=1', 'y=2'],
      seen: ['a:2:true', 'b:1, 3:true', 'set-cookie:x=1:true', 'set-cookie:y=2:true'],
      cookies: ['x=1', 'y=2'],
    });
  });

  it('initialises from Headers, pairs, records and other iterables', async () => {
    const result = await run(`
      const base = new Headers({ a: '1' });
      const fromHeaders = new Headers(base);
      base.set('a', 'changed');
      const fromMap = new Headers(new Map([['m', 'v']]));
      return [fromHeaders.get('a'), new Headers([['p', 'q']]).get('p'), fromMap.get('m'), [...new Headers()].length];
    `);
    expect(result).toEqual(['1', 'q', 'v', 0]);
  });

  it('trims values and rejects invalid names, values and pairs with TypeError', async () => {
    const result = await run(`
      const error = (fn) => { try { fn(); return 'no error'; } catch (e) { return e.constructor.name; } };
      const h = new Headers();
      h.set('x', ' \\t padded \\n');
      return [
        h.get('x'),
        error(() => h.set('bad name', 'v')),
        error(() => h.set('', 'v')),
        error(() => h.set('x', 'a\\nb')),
        error(() => h.set('x', 'a\\u0000b')),
        error(() => h.set('x', 'é😀')),
        error(() => new Headers([['only-name']])),
        error(() => new Headers('nope')),
        error(() => h.get('bad name')),
      ];
    `);
    expect(result).toEqual(['padded', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError']);
  });

  it('looks like a built-in class', async () => {
    const result = await run(`
      const h = new Headers();
      return [
        Object.prototype.toString.call(h),
        Object.prototype.toString.call(h.entries()),
        ['append', 'entries', 'keys', 'values', 'forEach'].every((k) => Object.keys(Headers.prototype).includes(k)),
        Headers.prototype.propertyIsEnumerable('append'),
        Headers.prototype.propertyIsEnumerable(Symbol.iterator),
        Headers.prototype[Symbol.iterator] === Headers.prototype.entries,
        Object.keys(globalThis).includes('Headers'),
      ];
    `);
    // WebIDL members are enumerable (as in browsers and Node); the iterator and globals are not.
    expect(result).toEqual(['[object Headers]', '[object Headers Iterator]', true, true, false, true, false]);
  });
});

describe('Request and Response bodies', () => {
  it('can be read once: the second read rejects with TypeError', async () => {
    const result = await run(`
      const res = new Response('once');
      const first = await res.text();
      const used = res.bodyUsed;
      const second = await res.text().then(() => 'read twice', (e) => e.constructor.name);
      const third = await res.arrayBuffer().then(() => 'read twice', (e) => e.constructor.name);
      return [first, used, second, third];
    `);
    expect(result).toEqual(['once', true, 'TypeError', 'TypeError']);
  });

  it('reads a null body as empty any number of times without becoming used', async () => {
    const result = await run(`
      const res = new Response(null);
      return [await res.text(), await res.text(), res.bodyUsed, res.body, (await res.bytes()).length];
    `);
    expect(result).toEqual(['', '', false, null, 0]);
  });

  it('decodes text, json, arrayBuffer and bytes', async () => {
    const result = await run(`
      const json = await new Response('{"a":[1,"é"]}').json();
      const buffer = await new Response('hé').arrayBuffer();
      const bytes = await new Request('https://x.test/', { method: 'POST', body: new Uint8Array([1, 2, 3]) }).bytes();
      const bad = await new Response('{').json().then(() => 'parsed', (e) => e.constructor.name);
      return { json, buffer: [buffer instanceof ArrayBuffer, buffer.byteLength], bytes: [bytes instanceof Uint8Array, ...bytes], bad };
    `);
    expect(result).toEqual({ json: { a: [1, 'é'] }, buffer: [true, 3], bytes: [true, 1, 2, 3], bad: 'SyntaxError' });
  });

  it('sets a default Content-Type per body kind without overriding an explicit one', async () => {
    const result = await run(`
      const type = (body, init) => new Response(body, init).headers.get('content-type');
      return [
        type('text'),
        type(new URLSearchParams({ a: 'b c' })),
        type(new Uint8Array(1)),
        type(new ArrayBuffer(1)),
        type(null),
        type('{}', { headers: { 'Content-Type': 'application/json' } }),
        await new Response(new URLSearchParams({ a: 'b c' })).text(),
      ];
    `);
    expect(result).toEqual([
      'text/plain;charset=UTF-8',
      'application/x-www-form-urlencoded;charset=UTF-8',
      null,
      null,
      null,
      'application/json',
      'a=b+c',
    ]);
  });

  it('copies buffer bodies at construction', async () => {
    const result = await run(`
      const source = new Uint8Array([1, 2, 3]);
      const res = new Response(source);
      source[0] = 99;
      return [...new Uint8Array(await res.arrayBuffer())];
    `);
    expect(result).toEqual([1, 2, 3]);
  });

  it('clone() gives an independent body, and cannot clone a used one', async () => {
    const result = await run(`
      const res = new Response('shared', { status: 201, headers: { 'x-a': '1' } });
      const copy = res.clone();
      copy.headers.set('x-a', '2');
      const texts = [await res.text(), await copy.text()];
      let error;
      try { res.clone(); } catch (e) { error = e.constructor.name; }
      return [...texts, copy.status, res.headers.get('x-a'), error];
    `);
    expect(result).toEqual(['shared', 'shared', 201, '1', 'TypeError']);
  });

  it('body is null when empty and a ReadableStream of the bytes otherwise', async () => {
    const result = await run(`
      const body = new Response('x').body;
      return [new Response().body, new Request('https://x.test/').body, body instanceof ReadableStream];
    `);
    expect(result).toEqual([null, null, true]);
  });
});

describe('Request', () => {
  it('resolves an absolute URL and normalises standard methods only', async () => {
    const result = await run(`
      const a = new Request('HTTPS://Example.COM/a/../b?q=1');
      const b = new Request('https://x.test/', { method: 'post', body: 'x' });
      const c = new Request('https://x.test/', { method: 'patch' });
      return [a.url, a.method, b.method, c.method, Object.prototype.toString.call(a)];
    `);
    expect(result).toEqual(['https://example.com/b?q=1', 'GET', 'POST', 'patch', '[object Request]']);
  });

  it('throws TypeError for GET/HEAD with a body, bad methods, relative or credentialed URLs', async () => {
    const result = await run(`
      const error = (fn) => { try { fn(); return 'no error'; } catch (e) { return e.constructor.name; } };
      return [
        error(() => new Request('https://x.test/', { body: 'x' })),
        error(() => new Request('https://x.test/', { method: 'HEAD', body: 'x' })),
        error(() => new Request('https://x.test/', { method: 'CONNECT' })),
        error(() => new Request('https://x.test/', { method: 'bad method' })),
        error(() => new Request('/relative')),
        error(() => new Request('https://user:pw@x.test/')),
        error(() => new Request('https://x.test/', { method: 'GET', body: null })),
      ];
    `);
    expect(result).toEqual(['TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'TypeError', 'no error']);
  });

  it('new Request(request) takes over the body and headers; init overrides them', async () => {
    const result = await run(`
      const original = new Request('https://x.test/p', { method: 'PUT', body: 'payload', headers: { 'x-a': '1' } });
      const moved = new Request(original);
      const overridden = new Request(moved.clone(), { headers: { 'x-b': '2' }, method: 'DELETE', body: null });
      return [original.bodyUsed, moved.url, moved.method, moved.headers.get('x-a'), await moved.text(),
        overridden.method, overridden.headers.get('x-a'), overridden.headers.get('x-b')];
    `);
    expect(result).toEqual([true, 'https://x.test/p', 'PUT', '1', 'payload', 'DELETE', null, '2']);
  });

  it('clone() copies url, method, headers and body', async () => {
    const result = await run(`
      const req = new Request('https://x.test/', { method: 'POST', body: 'b', headers: { 'x-a': '1' } });
      const copy = req.clone();
      return [copy.url, copy.method, copy.headers.get('x-a'), await copy.text(), await req.text()];
    `);
    expect(result).toEqual(['https://x.test/', 'POST', '1', 'b', 'b']);
  });
});

describe('Response', () => {
  it('defaults to 200 OK and reflects its init', async () => {
    const result = await run(`
      const a = new Response();
      const b = new Response('x', { status: 404, statusText: 'Not Found', headers: [['x-a', '1']] });
      return [a.status, a.ok, a.statusText, a.type, a.url, a.redirected, b.status, b.ok, b.statusText, b.headers.get('x-a')];
    `);
    expect(result).toEqual([200, true, '', 'default', '', false, 404, false, 'Not Found', '1']);
  });

  it('rejects statuses outside 200-599 with RangeError, and bodies on null-body statuses with TypeError', async () => {
    const result = await run(`
      const error = (fn) => { try { fn(); return 'no error'; } catch (e) { return e.constructor.name; } };
      return [
        error(() => new Response(null, { status: 199 })),
        error(() => new Response(null, { status: 600 })),
        error(() => new Response('x', { status: 204 })),
        error(() => new Response('x', { status: 304 })),
        error(() => new Response(null, { status: 204 })),
        error(() => new Response('', { statusText: 'bad\\n' })),
      ];
    `);
    expect(result).toEqual(['RangeError', 'RangeError', 'TypeError', 'TypeError', 'no error', 'TypeError']);
  });

  it('Response.json, Response.redirect and Response.error', async () => {
    const result = await run(`
      const json = Response.json({ ok: 1 }, { status: 202, headers: { 'x-a': '1' } });
      const redirect = Response.redirect('https://x.test/next');
      const error = Response.error();
      let immutable;
      try { redirect.headers.set('location', '/elsewhere'); } catch (e) { immutable = e.constructor.name; }
      let badStatus;
      try { Response.redirect('https://x.test/', 200); } catch (e) { badStatus = e.constructor.name; }
      return {
        json: [json.status, json.headers.get('content-type'), json.headers.get('x-a'), await json.json()],
        redirect: [redirect.status, redirect.headers.get('location'), immutable, badStatus],
        error: [error.type, error.status, error.ok],
        undef: (() => { try { Response.json(undefined); } catch (e) { return e.constructor.name; } })(),
      };
    `);
    expect(result).toEqual({
      json: [202, 'application/json', '1', { ok: 1 }],
      redirect: [302, 'https://x.test/next', 'TypeError', 'RangeError'],
      error: ['error', 0, false],
      undef: 'TypeError',
    });
  });
});

describe('URL and URLSearchParams', () => {
  it('parses through the host and exposes every component', async () => {
    const result = await run(`
      const u = new URL('../c?x=1#frag', 'https://user:pw@Example.com:8443/a/b');
      return [u.href, u.origin, u.protocol, u.username, u.password, u.host, u.hostname, u.port, u.pathname, u.search, u.hash,
        JSON.stringify({ u }), String(u), Object.prototype.toString.call(u)];
    `);
    expect(result).toEqual([
      'https://user:pw@example.com:8443/c?x=1#frag',
      'https://example.com:8443',
      'https:',
      'user',
      'pw',
      'example.com:8443',
      'example.com',
      '8443',
      '/c',
      '?x=1',
      '#frag',
      '{"u":"https://user:pw@example.com:8443/c?x=1#frag"}',
      'https://user:pw@example.com:8443/c?x=1#frag',
      '[object URL]',
    ]);
  });

  it("throws TypeError 'Invalid URL', and canParse/parse report validity", async () => {
    const result = await run(`
      let error;
      try { new URL('not a url'); } catch (e) { error = [e.constructor.name, e.message.startsWith('Invalid URL')]; }
      return [error, URL.canParse('x'), URL.canParse('/x', 'https://h.test'), URL.parse('x'), URL.parse('/p', 'https://h.test/').href];
    `);
    expect(result).toEqual([['TypeError', true], false, true, null, 'https://h.test/p']);
  });

  it('setters follow WHATWG semantics; an invalid href throws', async () => {
    const result = await run(`
      const u = new URL('https://h.test/a');
      u.pathname = '/b c';
      u.hash = 'x';
      u.port = '8080';
      u.protocol = 'http';
      u.port = 'not a port';
      let error;
      try { u.href = 'nope'; } catch (e) { error = e.constructor.name; }
      return [u.href, error];
    `);
    expect(result).toEqual(['http://h.test:8080/b%20c#x', 'TypeError']);
  });

  it('keeps searchParams and search linked in both directions', async () => {
    const result = await run(`
      const u = new URL('https://h.test/?a=1&b=2#h');
      const params = u.searchParams;
      params.append('c', 'x y');
      const afterAppend = u.href;
      u.search = '?q=é';
      const afterSearch = [params.get('q'), params.has('a'), u.searchParams === params];
      params.delete('q');
      const afterDelete = [u.href, u.search];
      u.href = 'https://h.test/?z=9';
      return [afterAppend, afterSearch, afterDelete, params.get('z')];
    `);
    expect(result).toEqual(['https://h.test/?a=1&b=2&c=x+y#h', ['é', false, true], ['https://h.test/#h', ''], '9']);
  });

  it('parses and serializes application/x-www-form-urlencoded', async () => {
    const result = await run(`
      const p = new URLSearchParams('?a=1&b=%20x+y&a=3&c&=e&%zz=%C3%A9&&');
      const s = new URLSearchParams({ q: 'a b&c=d/é~*' });
      return [[...p], p.size, p.toString(), s.toString()];
    `);
    expect(result).toEqual([
      [['a', '1'], ['b', ' x y'], ['a', '3'], ['c', ''], ['', 'e'], ['%zz', 'é']],
      6,
      'a=1&b=+x+y&a=3&c=&=e&%25zz=%C3%A9',
      'q=a+b%26c%3Dd%2F%C3%A9%7E*',
    ]);
  });

  it('supports the whole URLSearchParams interface', async () => {
    const result = await run(`
      const p = new URLSearchParams([['b', '2'], ['a', '1'], ['b', '1'], ['a', '0']]);
      const has = [p.has('a'), p.has('a', '1'), p.has('a', '9')];
      p.delete('a', '0');
      const getAll = p.getAll('b');
      p.set('b', '3');
      p.append('c', '4');
      p.sort();
      const seen = [];
      p.forEach((value, name) => seen.push(name + value));
      let error;
      try { new URLSearchParams([['x']]); } catch (e) { error = e.constructor.name; }
      return { has, getAll, sorted: p.toString(), seen, keys: [...p.keys()], values: [...p.values()], error,
        tag: Object.prototype.toString.call(p.entries()), fromParams: new URLSearchParams(p).toString() };
    `);
    expect(result).toEqual({
      has: [true, true, false],
      getAll: ['2', '1'],
      sorted: 'a=1&b=3&c=4',
      seen: ['a1', 'b3', 'c4'],
      keys: ['a', 'b', 'c'],
      values: ['1', '3', '4'],
      error: 'TypeError',
      tag: '[object URLSearchParams Iterator]',
      fromParams: 'a=1&b=3&c=4',
    });
  });
});

describe('crypto', () => {
  it('getRandomValues fills integer typed arrays in place', async () => {
    const result = await run(`
      const a = new Uint8Array(65536);
      const returned = crypto.getRandomValues(a);
      const b = crypto.getRandomValues(new Uint32Array(16));
      const distinct = new Set(a).size;
      const view = new Uint8Array(8);
      crypto.getRandomValues(new Uint8Array(view.buffer, 2, 4));
      return [returned === a, distinct > 200, b.some((x) => x !== 0), view[0], view[1], view[6], view[7]];
    `);
    expect(result).toEqual([true, true, true, 0, 0, 0, 0]);
  });

  it('rejects more than 65536 bytes and non-integer arrays', async () => {
    const result = await run(`
      const name = (fn) => { try { fn(); return 'no error'; } catch (e) { return e.name; } };
      return [
        name(() => crypto.getRandomValues(new Uint8Array(65537))),
        name(() => crypto.getRandomValues(new Uint32Array(16385))),
        name(() => crypto.getRandomValues(new Float64Array(1))),
        name(() => crypto.getRandomValues(new DataView(new ArrayBuffer(1)))),
        name(() => new Crypto()),
      ];
    `);
    expect(result).toEqual(['QuotaExceededError', 'QuotaExceededError', 'TypeMismatchError', 'TypeMismatchError', 'TypeError']);
  });

  it('randomUUID returns distinct version 4 UUIDs', async () => {
    const result = (await run(`return Array.from({ length: 200 }, () => crypto.randomUUID());`)) as string[];
    expect(new Set(result).size).toBe(200);
    for (const uuid of result) expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });
});

describe('structuredClone', () => {
  it('deep-copies Maps, Sets, Dates, typed arrays and cycles', async () => {
    const result = await run(`
      const original = { map: new Map([['k', { n: 1 }]]), set: new Set([1, 2]), date: new Date(1e12), bytes: new Uint8Array([7]), re: /x/gi };
      original.self = original;
      const copy = structuredClone(original);
      original.map.get('k').n = 2;
      return [copy !== original, copy.self === copy, copy.map.get('k').n, copy.set.has(2), copy.date instanceof Date,
        copy.date.getTime(), copy.bytes[0], copy.re.flags];
    `);
    expect(result).toEqual([true, true, 1, true, true, 1e12, 7, 'gi']);
  });

  it('throws DataCloneError for functions and symbols', async () => {
    const result = await run(`
      const name = (value) => { try { structuredClone(value); return 'cloned'; } catch (e) { return [e.name, e instanceof Error]; } };
      return [name(() => 1), name({ nested: function f() {} }), name(Symbol('s')), name({ ok: 1 })];
    `);
    expect(result).toEqual([['DataCloneError', true], ['DataCloneError', true], ['DataCloneError', true], 'cloned']);
  });
});

describe('console', () => {
  beforeEach(() => {
    sandbox.logs.length = 0;
  });

  it('sends one line per call at the right level', async () => {
    await run(`
      console.log('l'); console.info('i'); console.warn('w'); console.error('e'); console.debug('d');
      console.trace('t'); console.dir({ a: 1 }); console.assert(false, 'failed %d', 1); console.assert(true, 'silent');
    `);
    expect(sandbox.logs.map((l) => [l.level, l.line.split('\n')[0]])).toEqual([
      ['log', 'l'],
      ['info', 'i'],
      ['warn', 'w'],
      ['error', 'e'],
      ['debug', 'd'],
      ['debug', 'Trace: t'],
      ['log', '{ a: 1 }'],
      ['error', 'Assertion failed: failed 1'],
    ]);
    expect(sandbox.logs[5].line).toMatch(/\n {4}at /);
  });

  it('formats like util.format: substitutions, then remaining arguments', async () => {
    await run(`
      console.log('%s|%d|%i|%f|%j|%o|%O|%%|%c.', 'str', '42.5', 42.9, '1.5', { j: 1 }, [1], { o: 2 }, 'color: red');
      console.log('%s and %s', 'one');
      console.log('a', 1, 'b', null, undefined, -0, 10n, Symbol('s'), true);
      console.log({ s: 'q\\'uote', 'key-x': [1, 'two'], [Symbol('k')]: 0 }, [], {});
      console.log(new Map([['a', 1]]), new Set(['x']), new Date(0), /re/g, new Uint8Array([1, 2]), function named() {}, class K {});
    `);
    expect(sandbox.logs.map((l) => l.line)).toEqual([
      `str|42.5|42|1.5|{"j":1}|[ 1 ]|{ o: 2 }|%|.`,
      'one and %s',
      'a 1 b null undefined -0 10n Symbol(s) true',
      `{ s: 'q\\'uote', 'key-x': [ 1, 'two' ], [Symbol(k)]: 0 } [] {}`,
      `Map(1) { 'a' => 1 } Set(1) { 'x' } 1970-01-01T00:00:00.000Z /re/g Uint8Array(2) [ 1, 2 ] [Function: named] [class K]`,
    ]);
  });

  it('marks cycles, stops at depth 4, shows getters without running them', async () => {
    await run(`
      const cyclic = { name: 'root' };
      cyclic.self = cyclic;
      console.log(cyclic);
      console.log({ a: { b: { c: { d: { e: { f: 1 } } } } } });
      console.log({ get boom() { throw new Error('ran'); } });
      console.log('%j', cyclic);
    `);
    expect(sandbox.logs.map((l) => l.line)).toEqual([
      `{ name: 'root', self: [Circular] }`,
      '{ a: { b: { c: { d: [Object] } } } }',
      '{ boom: [Getter] }',
      '[Circular]',
    ]);
  });

  it('prints errors as name: message with the stack, and platform objects by their state', async () => {
    await run(`
      const error = new TypeError('bad thing');
      console.error(error);
      console.log({ nested: new RangeError('inner') });
      console.log(new Headers({ 'X-A': '1' }), new URLSearchParams('a=1'));
    `);
    const [error, nested, platform] = sandbox.logs.map((l) => l.line);
    expect(error).toMatch(/^TypeError: bad thing\n {4}at /);
    expect(nested).toMatch(/^\{ nested: \[RangeError: inner\n {4}at .*\] \}$/s);
    expect(platform).toBe(`Headers { 'x-a': '1' } URLSearchParams { a: '1' }`);
  });

  it('cuts each line to 8 KiB of UTF-8 at a code point boundary', async () => {
    await run(`
      console.log('x'.repeat(20000));
      console.log('😀'.repeat(5000));
      const big = Array.from({ length: 100 }, () => Array.from({ length: 100 }, () => ({ value: 'abcdefghij' })));
      console.log(big);
      console.log('short');
    `);
    const lines = sandbox.logs.map((l) => l.line);
    for (const line of lines.slice(0, 3)) {
      expect(Buffer.byteLength(line)).toBeLessThanOrEqual(8192);
      expect(Buffer.byteLength(line)).toBeGreaterThan(8000);
      expect(line.endsWith('…')).toBe(true);
    }
    expect(lines[1].slice(0, -1)).toBe('😀'.repeat((lines[1].length - 1) / 2));
    expect(lines[3]).toBe('short');
  });
});

describe('patched built-ins in user code', () => {
  let patched: Sandbox;

  beforeAll(async () => {
    patched = await createSandbox();
  });
  afterAll(() => patched.dispose());

  it('do not break Headers, Request, Response, URL, TextEncoder or console', async () => {
    const result = await patched.run(`
      const boom = (what) => function () { throw new Error(what + ' was called'); };
      Array.prototype.push = boom('Array.prototype.push');
      Array.prototype.join = boom('Array.prototype.join');
      Array.prototype.sort = boom('Array.prototype.sort');
      Array.prototype.splice = boom('Array.prototype.splice');
      JSON.parse = boom('JSON.parse');
      JSON.stringify = boom('JSON.stringify');
      Uint8Array.prototype.set = boom('Uint8Array.prototype.set');
      Uint8Array.prototype.subarray = boom('Uint8Array.prototype.subarray');
      Object.defineProperty(Uint8Array.prototype, 'length', { get: boom('Uint8Array length') });
      String.prototype.toLowerCase = boom('String.prototype.toLowerCase');
      String.prototype.charCodeAt = boom('String.prototype.charCodeAt');
      Map.prototype.get = boom('Map.prototype.get');
      Function.prototype.call = boom('Function.prototype.call');
      Function.prototype.apply = boom('Function.prototype.apply');
      Object.defineProperty(Object.prototype, 'then', { get: boom('Object.prototype.then'), configurable: true });

      const headers = new Headers([['B', '1'], ['a', '2']]);
      headers.append('b', '3');
      headers.set('Content-Type', 'text/plain');
      const response = new Response('héllo 😀', { status: 201, headers });
      const json = Response.json({ list: [1, 2] });
      const request = new Request('https://x.test/path?q=1', { method: 'post', body: new Uint8Array([104, 105]) });
      const url = new URL('https://x.test/?a=1');
      url.searchParams.set('b', 'x y');
      url.searchParams.sort();
      const encoded = new TextEncoder().encode('€');
      const decoded = new TextDecoder().decode(encoded);
      const bodies = [await response.text(), await json.text(), await request.text()];
      let entries = '';
      headers.forEach((value, name) => { entries += name + '=' + value + ';'; });
      console.log('logged', { a: [1] });
      const random = crypto.getRandomValues(new Uint8Array(4)).byteLength;
      const clone = structuredClone(new Map([[1, 2]])) instanceof Map;
      delete Object.prototype.then;
      return { bodies, entries, encoded: encoded.byteLength, decoded, url: url.href, method: request.method,
        status: response.status, random, clone, b64: btoa('hi'), uuid: crypto.randomUUID().length };
    `);
    expect(result).toEqual({
      bodies: ['héllo 😀', '{"list":[1,2]}', 'hi'],
      entries: 'a=2;b=1, 3;content-type=text/plain;',
      encoded: 3,
      decoded: '€',
      url: 'https://x.test/?a=1&b=x+y',
      method: 'POST',
      status: 201,
      random: 4,
      clone: true,
      b64: 'aGk=',
      uuid: 36,
    });
    expect(patched.logs.map((l) => l.line)).toEqual(['logged { a: [ 1 ] }']);
  });
});
