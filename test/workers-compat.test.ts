/**
 * Conformance of the Workers-compatibility APIs (issue 12), per API, inside real isolates, in
 * the spirit of the Web Platform Tests (written here, not copied): each `run(code)` is the body
 * of an async function in a guest with the platform's Web APIs installed. Where it helps, the
 * same code runs on Node 24's own globals and the two results are compared (`same`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandbox, type Sandbox } from '../runtime/host/sandbox.ts';

let sandbox: Sandbox;
beforeAll(async () => {
  sandbox = await createSandbox();
}, 60_000);
afterAll(() => sandbox.dispose());

const run = (code: string) => sandbox.run(code);
const AsyncFunction = (async () => {}).constructor as new (body: string) => () => Promise<unknown>;
/** The result of `code` in the isolate and on Node's own globals, for comparison. */
async function same(code: string): Promise<unknown> {
  const inIsolate = await run(code);
  const onNode = structuredClone(await new AsyncFunction(code)());
  expect(inIsolate).toEqual(onNode);
  return inIsolate;
}

describe('ReadableStream', () => {
  it('delivers enqueued chunks in order, then done', async () => {
    const result = await same(`
      const s = new ReadableStream({ start(c) { c.enqueue('a'); c.enqueue('b'); c.close(); } });
      const r = s.getReader();
      const out = [];
      for (;;) { const { value, done } = await r.read(); if (done) break; out.push(value); }
      return [out, s.locked];
    `);
    expect(result).toEqual([['a', 'b'], true]);
  });

  it('pulls on demand with a high-water mark, and async-iterates', async () => {
    await same(`
      let pulls = 0;
      const s = new ReadableStream({ pull(c) { pulls++; if (pulls > 3) c.close(); else c.enqueue(pulls); } }, { highWaterMark: 0 });
      const out = [];
      for await (const chunk of s) out.push(chunk);
      return [out, pulls];
    `);
  });

  it('tee gives two branches with the same chunks; cancel reaches the source with its reason', async () => {
    await same(`
      const [a, b] = new ReadableStream({ start(c) { c.enqueue(1); c.enqueue(2); c.close(); } }).tee();
      const read = async (s) => { const out = []; for await (const x of s) out.push(x); return out; };
      let reason;
      const c = new ReadableStream({ cancel(r) { reason = r; } });
      await c.cancel('bye');
      return [await read(a), await read(b), reason];
    `);
  });

  it('errors propagate to readers; a released reader frees the lock', async () => {
    await same(`
      const s = new ReadableStream({ start(c) { c.error(new TypeError('boom')); } });
      const r = s.getReader();
      let message;
      try { await r.read(); } catch (e) { message = e.message; }
      r.releaseLock();
      return [message, s.locked];
    `);
  });

  it('byte streams serve BYOB readers', async () => {
    await same(`
      const s = new ReadableStream({ type: 'bytes', start(c) { c.enqueue(new Uint8Array([1, 2, 3])); c.close(); } });
      const r = s.getReader({ mode: 'byob' });
      const { value } = await r.read(new Uint8Array(8));
      return [...value];
    `);
  });
});

describe('WritableStream and TransformStream', () => {
  it('a writer writes in order and close resolves after the sink closed', async () => {
    await same(`
      const log = [];
      const w = new WritableStream({ write(chunk) { log.push(chunk); }, close() { log.push('closed'); } });
      const writer = w.getWriter();
      await writer.write('x'); await writer.write('y'); await writer.close();
      return log;
    `);
  });

  it('pipeThrough a TransformStream, and pipeTo a WritableStream', async () => {
    await same(`
      const upper = new TransformStream({ transform(chunk, c) { c.enqueue(chunk.toUpperCase()); } });
      const out = [];
      await new ReadableStream({ start(c) { c.enqueue('a'); c.enqueue('b'); c.close(); } })
        .pipeThrough(upper).pipeTo(new WritableStream({ write(x) { out.push(x); } }));
      return out;
    `);
  });

  it('TextEncoderStream and TextDecoderStream round-trip text split mid-character', async () => {
    await same(`
      const bytes = new TextEncoder().encode('h€llo 😀');
      const parts = [bytes.slice(0, 2), bytes.slice(2, 7), bytes.slice(7)];
      const decoded = [];
      await new ReadableStream({ start(c) { for (const p of parts) c.enqueue(p); c.close(); } })
        .pipeThrough(new TextDecoderStream()).pipeTo(new WritableStream({ write(x) { decoded.push(x); } }));
      const encoded = [];
      await new ReadableStream({ start(c) { c.enqueue('\\ud83d'); c.enqueue('\\ude00!'); c.close(); } })
        .pipeThrough(new TextEncoderStream()).pipeTo(new WritableStream({ write(x) { encoded.push(...x); } }));
      return [decoded.join(''), encoded];
    `);
  });
});

describe('CompressionStream and DecompressionStream', () => {
  it('round-trip gzip, deflate and deflate-raw, and agree with Node on what decompresses', async () => {
    await same(`
      const text = 'compress me '.repeat(100);
      const out = [];
      for (const format of ['gzip', 'deflate', 'deflate-raw']) {
        const compressed = await new Response(new Blob([text]).stream().pipeThrough(new CompressionStream(format))).arrayBuffer();
        const back = await new Response(new Response(compressed).body.pipeThrough(new DecompressionStream(format))).text();
        out.push([compressed.byteLength < text.length, back === text]);
      }
      return out;
    `);
  });

  it('is incremental: a chunk compresses and decompresses before the stream ends', async () => {
    const result = await run(`
      const cs = new CompressionStream('gzip');
      const ds = new DecompressionStream('gzip');
      const input = cs.writable.getWriter();
      const compressed = cs.readable.getReader();
      const inflate = ds.writable.getWriter();
      const output = ds.readable.getReader();
      const events = [];
      for (const event of ['data: one\\n\\n', 'data: two\\n\\n']) {
        void input.write(new TextEncoder().encode(event));
        const { value } = await compressed.read();
        void inflate.write(value);
        events.push(new TextDecoder().decode((await output.read()).value));
      }
      void input.close();
      const rest = [];
      for (;;) { const { value, done } = await compressed.read(); if (done) break; rest.push(...value); }
      void inflate.write(new Uint8Array(rest));
      void inflate.close();
      const tail = await output.read();
      return [events, tail.done];
    `);
    expect(result).toEqual([['data: one\n\n', 'data: two\n\n'], true]);
  });

  it('an unknown format throws TypeError; corrupt data errors the stream with TypeError', async () => {
    const result = await run(`
      let format, corrupt;
      try { new CompressionStream('brotli'); } catch (e) { format = e.constructor.name; }
      try { await new Response(new Response(new Uint8Array([1, 2, 3])).body.pipeThrough(new DecompressionStream('gzip'))).text(); } catch (e) { corrupt = e.constructor.name; }
      return [format, corrupt];
    `);
    expect(result).toEqual(['TypeError', 'TypeError']);
  });
});

describe('bodies as streams', () => {
  it('Response.body streams the bytes; bodyUsed follows reads', async () => {
    await same(`
      const res = new Response('hello');
      const before = res.bodyUsed;
      const reader = res.body.getReader();
      const { value } = await reader.read();
      let again;
      try { await res.text(); } catch (e) { again = e.constructor.name; }
      return [before, [...value], res.bodyUsed, again];
    `);
  });

  it('new Response(stream) and new Request(url, {body: stream}) read whole', async () => {
    const result = await run(`
      const make = () => new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode('ab')); c.enqueue(new Uint8Array([99])); c.close(); } });
      const req = new Request('https://x.test/', { method: 'POST', body: make(), duplex: 'half' });
      return [await new Response(make()).text(), await req.text(), new Response(make()).headers.get('content-type')];
    `);
    expect(result).toEqual(['abc', 'abc', null]);
  });

  it('clone() of a streamed body tees it: both copies read the same bytes', async () => {
    await same(`
      const res = new Response(new ReadableStream({ start(c) { c.enqueue(new Uint8Array([1, 2])); c.close(); } }));
      const copy = res.clone();
      return [[...new Uint8Array(await res.arrayBuffer())], [...new Uint8Array(await copy.arrayBuffer())]];
    `);
  });

  it('a stream chunk that is not bytes fails the read with TypeError; a locked stream cannot become a body', async () => {
    const result = await run(`
      let bad, locked;
      try { await new Response(new ReadableStream({ start(c) { c.enqueue('text'); c.close(); } })).text(); } catch (e) { bad = e.constructor.name; }
      const s = new ReadableStream(); s.getReader();
      try { new Response(s); } catch (e) { locked = e.constructor.name; }
      return [bad, locked];
    `);
    expect(result).toEqual(['TypeError', 'TypeError']);
  });

  it('new Request(request) moves a body: the source reads as used', async () => {
    await same(`
      const a = new Request('https://x.test/', { method: 'POST', body: 'moved' });
      const b = new Request(a);
      return [a.bodyUsed, await b.text()];
    `);
  });
});

describe('Blob, File, FormData', () => {
  it('Blob concatenates parts, slices with negative indices and normalizes its type', async () => {
    await same(`
      const blob = new Blob(['ab', new Uint8Array([99]), new Blob(['de'])], { type: 'Text/Plain' });
      return [blob.size, blob.type, await blob.text(), await blob.slice(-3, -1).text(), blob.slice(1, 2, 'X').type];
    `);
  });

  it('File has name and lastModified; FormData turns Blobs into Files', async () => {
    await same(`
      const file = new File(['x'], 'a.txt', { type: 'text/plain', lastModified: 42 });
      const form = new FormData();
      form.append('f', new Blob(['y']));
      form.append('g', file, 'renamed.txt');
      form.set('s', 'one'); form.append('s', 'two'); form.set('s', 'three');
      return [file.name, file.lastModified, form.get('f').name, form.get('g').name, form.getAll('s'), [...form.keys()], form.has('f')];
    `);
  });

  it('multipart round trip through Response.formData(), with names needing escapes', async () => {
    const result = await run(`
      const form = new FormData();
      form.append('na"me', 'line1\\nline2');
      form.append('upload', new File([new Uint8Array([0, 255, 10])], 'b"in.dat', { type: 'application/octet-stream' }));
      const res = new Response(form);
      const type = res.headers.get('content-type');
      const back = await res.formData();
      const file = back.get('upload');
      return [type.startsWith('multipart/form-data; boundary='), back.get('na"me'), file.name, [...new Uint8Array(await file.arrayBuffer())]];
    `);
    expect(result).toEqual([true, 'line1\r\nline2', 'b"in.dat', [0, 255, 10]]);
  });

  it('urlencoded formData(); other types are a TypeError', async () => {
    const result = await run(`
      const form = await new Request('https://x.test/', { method: 'POST', body: new URLSearchParams('a=1&b=%20') }).formData();
      let error;
      try { await new Response('x', { headers: { 'content-type': 'text/plain' } }).formData(); } catch (e) { error = e.constructor.name; }
      return [[...form], error];
    `);
    expect(result).toEqual([[['a', '1'], ['b', ' ']], 'TypeError']);
  });
});

describe('DOMException, Event, EventTarget', () => {
  it('DOMException has name, message, legacy code and constants, and is an Error', async () => {
    await same(`
      const e = new DOMException('gone', 'NotFoundError');
      return [e.name, e.message, e.code, new DOMException('x', 'Custom').code, DOMException.ABORT_ERR, e instanceof Error,
        Object.prototype.toString.call(e), new DOMException().name, new DOMException('x', 'DataCloneError').code];
    `);
  });

  it('errors the platform raises are DOMExceptions with codes', async () => {
    await same(`
      const errs = [];
      try { btoa('\\u0100'); } catch (e) { errs.push([e instanceof DOMException, e.name, e.code]); }
      try { structuredClone(() => {}); } catch (e) { errs.push([e instanceof DOMException, e.name, e.code]); }
      try { crypto.getRandomValues(new Uint8Array(70000)); } catch (e) { errs.push([e instanceof DOMException, e.name, e.code]); }
      return errs;
    `);
  });

  it('listeners run in order, once removes itself, handleEvent objects, dispatch returns !defaultPrevented', async () => {
    await same(`
      const t = new EventTarget();
      const log = [];
      t.addEventListener('x', (e) => log.push(['a', e.type, e.target === t]));
      t.addEventListener('x', { handleEvent: () => log.push(['b']) }, { once: true });
      t.addEventListener('x', (e) => e.preventDefault());
      const first = t.dispatchEvent(new Event('x', { cancelable: true }));
      const second = t.dispatchEvent(new Event('x'));
      return [log, first, second];
    `);
  });
});

describe('AbortController and AbortSignal', () => {
  it('abort fires once with an AbortError reason; throwIfAborted throws it', async () => {
    await same(`
      const c = new AbortController();
      let fired = 0, onabort = 0;
      c.signal.addEventListener('abort', () => fired++);
      c.signal.onabort = () => onabort++;
      c.abort(); c.abort();
      let thrown;
      try { c.signal.throwIfAborted(); } catch (e) { thrown = e.name; }
      return [c.signal.aborted, c.signal.reason.name, c.signal.reason.code, fired, onabort, thrown];
    `);
  });

  it('AbortSignal.abort, .any and .timeout', async () => {
    await same(`
      const a = new AbortController();
      const any = AbortSignal.any([a.signal, new AbortController().signal]);
      a.abort('why');
      const t = AbortSignal.timeout(5);
      await new Promise((resolve) => t.addEventListener('abort', resolve));
      return [AbortSignal.abort('r').reason, any.aborted, any.reason, t.reason.name, t.reason.code];
    `);
  });

  it('AbortSignal is not constructible; request.signal exists and is not aborted', async () => {
    const result = await run(`
      let error;
      try { new AbortSignal(); } catch (e) { error = e.constructor.name; }
      const req = new Request('https://x.test/');
      return [error, req.signal instanceof AbortSignal, req.signal.aborted, req.signal === req.signal];
    `);
    expect(result).toEqual(['TypeError', true, false, true]);
  });
});

describe('TextDecoder labels', () => {
  it('decodes latin1 (windows-1252), utf-16le/be with BOMs, under their labels', async () => {
    await same(`
      const d = (label, bytes, opts) => { const t = new TextDecoder(label, opts); return [t.encoding, t.decode(new Uint8Array(bytes))]; };
      return [
        d('latin1', [0x63, 0x61, 0x66, 0xe9, 0x80, 0x9f]),
        d(' ISO-8859-1 ', [0xe9]),
        d('ascii', [0x41, 0x92]),
        d('utf-16le', [0xff, 0xfe, 0x68, 0x00, 0x3d, 0xd8, 0x00, 0xde]),
        d('utf-16', [0x69, 0x00]),
        d('utf-16be', [0xfe, 0xff, 0x00, 0x68, 0xd8, 0x3d, 0xde, 0x00]),
        d('utf-16le', [0xff, 0xfe, 0x68, 0x00], { ignoreBOM: true }),
        d('utf-16le', [0x00, 0xd8, 0x41]),
      ];
    `);
  });

  it('utf-16 streams across odd splits; fatal throws TypeError; unknown labels throw RangeError', async () => {
    await same(`
      const t = new TextDecoder('utf-16le');
      const bytes = [0x68, 0x00, 0x3d, 0xd8, 0x00, 0xde];
      let s = '';
      for (const b of bytes) s += t.decode(new Uint8Array([b]), { stream: true });
      s += t.decode();
      const errors = [];
      try { new TextDecoder('utf-16le', { fatal: true }).decode(new Uint8Array([0x00, 0xdc])); } catch (e) { errors.push(e.constructor.name); }
      try { new TextDecoder('no-such-encoding'); } catch (e) { errors.push(e.constructor.name); }
      return [s, errors];
    `);
  });
});

describe('Workers-only globals', () => {
  it('IdentityTransformStream passes bytes; FixedLengthStream errors unless exactly its length passes', async () => {
    const result = await run(`
      const text = async (stream) => new Response(stream).text();
      const through = (Type, arg, chunks) => {
        const t = new Type(arg);
        const w = t.writable.getWriter();
        for (const c of chunks) void w.write(new TextEncoder().encode(c)).catch(() => {});
        void w.close().catch(() => {});
        return text(t.readable).catch((e) => e.constructor.name);
      };
      return [
        await through(IdentityTransformStream, undefined, ['ab', 'cd']),
        await through(FixedLengthStream, 4, ['ab', 'cd']),
        await through(FixedLengthStream, 5, ['ab', 'cd']),
        await through(FixedLengthStream, 3, ['ab', 'cd']),
        (() => { try { new FixedLengthStream(-1); } catch (e) { return e.constructor.name; } })(),
        Object.prototype.toString.call(new IdentityTransformStream()),
      ];
    `);
    expect(result).toEqual(['abcd', 'abcd', 'TypeError', 'TypeError', 'TypeError', '[object IdentityTransformStream]']);
  });

  it('request.cf is an empty frozen object: edge metadata reads as undefined instead of throwing', async () => {
    const result = await run(`
      const cf = new Request('https://example.com/').cf;
      return [typeof cf, cf.country, cf.tlsVersion, Object.isFrozen(cf), Object.keys(cf).length];
    `);
    expect(result).toEqual(['object', undefined, undefined, true, 0]);
  });

  it('URLPattern matches and extracts groups as Node 24 does', async () => {
    await same(`
      const p = new URLPattern({ pathname: '/books/:id(\\\\d+)/:rest*' });
      const q = new URLPattern('https://example.com/*?x=:x');
      let invalid = null;
      try { new URLPattern({ pathname: '/(' }); } catch (e) { invalid = e.constructor.name; }
      return [
        p.test('https://x.test/books/12/a/b'), p.test('https://x.test/books/x'),
        p.exec('https://x.test/books/12/a/b').pathname.groups, p.pathname, p.hasRegExpGroups,
        q.exec('https://example.com/a/b?x=1')?.search.groups, q.protocol, invalid,
      ];
    `);
  });

  it("Headers.getAll serves Set-Cookie only, as Workers' does", async () => {
    const result = await run(`
      const h = new Headers([['set-cookie', 'a=1'], ['Set-Cookie', 'b=2'], ['x', 'y']]);
      let other = null;
      try { h.getAll('x'); } catch (e) { other = e.constructor.name; }
      return [h.getAll('Set-Cookie'), other];
    `);
    expect(result).toEqual([['a=1', 'b=2'], 'TypeError']);
  });

  it('scheduler.wait resolves after its delay; reportError logs and returns', async () => {
    const result = await run(`
      const started = Date.now();
      await scheduler.wait(20);
      const waited = Date.now() - started >= 15;
      let rejected = null;
      try { await scheduler.wait(-1); } catch (e) { rejected = e.constructor.name; }
      return [waited, rejected, reportError(new Error('reported')), typeof caches.default.match];
    `);
    expect(result).toEqual([true, 'RangeError', undefined, 'function']);
  });
});

describe('performance, navigator, globals', () => {
  it('performance.now() is a number that does not go backwards; timeOrigin is 0 as on Workers', async () => {
    const result = await run(`
      const a = performance.now(); const b = performance.now();
      return [typeof a, b >= a, performance.timeOrigin, navigator.userAgent.startsWith('Cloudflare-Workers'), self === globalThis];
    `);
    expect(result).toEqual(['number', true, 0, true, true]);
  });

  it('queueMicrotask calls back with no argument', async () => {
    await same(`
      return await new Promise((resolve) => queueMicrotask(function () { resolve(arguments.length); }));
    `);
  });
});

describe('Headers, URLSearchParams, structuredClone fixes', () => {
  it('custom iterators are honoured, on arrays too', async () => {
    await same(`
      const pairs = [['a', '1']];
      pairs[Symbol.iterator] = function* () { yield ['b', '2']; };
      const iterable = { *[Symbol.iterator]() { yield ['c', '3']; } };
      return [[...new Headers(pairs)], [...new URLSearchParams(pairs)], [...new Headers(iterable)], [...new URLSearchParams(iterable)]];
    `);
  });

  it('record init converts each key and value before reading the next (observable through a proxy)', async () => {
    await same(`
      const log = [];
      const target = { a: { toString() { log.push('value a'); return '1'; } }, b: '2' };
      const proxy = new Proxy(target, {
        ownKeys(t) { log.push('ownKeys'); return Reflect.ownKeys(t); },
        getOwnPropertyDescriptor(t, k) { log.push('desc ' + k); return Reflect.getOwnPropertyDescriptor(t, k); },
        get(t, k) { log.push('get ' + String(k)); return Reflect.get(t, k); },
      });
      new URLSearchParams(proxy);
      const first = log.splice(0);
      new Headers(proxy);
      return [first, log];
    `);
  });

  it('keys, values, entries, forEach and the accessors are enumerable, as WebIDL members are', async () => {
    await same(`
      const enumerable = (proto, key) => Object.getOwnPropertyDescriptor(proto, key).enumerable;
      return [
        ['keys', 'values', 'entries', 'forEach', 'get', 'append'].map((k) => enumerable(Headers.prototype, k)),
        ['keys', 'values', 'entries', 'size', 'sort'].map((k) => enumerable(URLSearchParams.prototype, k)),
        ['text', 'json', 'body', 'status', 'clone'].map((k) => enumerable(Response.prototype, k)),
        enumerable(Response, 'json'),
      ];
    `);
  });

  it('structuredClone refuses platform objects with DataCloneError and transfers ArrayBuffers', async () => {
    await same(`
      const refused = [];
      for (const v of [new URL('https://x.test/'), { nested: [new Headers()] }, new Map([[1, new Request('https://x.test/')]])]) {
        try { structuredClone(v); refused.push('cloned'); } catch (e) { refused.push([e.name, e.code]); }
      }
      const buffer = new Uint8Array([1, 2, 3]).buffer;
      const copy = structuredClone({ buffer }, { transfer: [buffer] });
      let twice;
      try { structuredClone(1, { transfer: [buffer] }); } catch (e) { twice = e.name; }
      return [refused, buffer.byteLength, [...new Uint8Array(copy.buffer)], twice];
    `);
  });
});

describe('crypto.subtle', () => {
  it('digests with SHA-1/256/384/512 as Node does', async () => {
    await same(`
      const data = new TextEncoder().encode('abc');
      const hex = (b) => [...new Uint8Array(b)].map((x) => x.toString(16).padStart(2, '0')).join('');
      return [hex(await crypto.subtle.digest('SHA-1', data)), hex(await crypto.subtle.digest({ name: 'SHA-256' }, data)),
        (await crypto.subtle.digest('SHA-384', data)).byteLength, (await crypto.subtle.digest('SHA-512', data.buffer)).byteLength];
    `);
  });

  it('HMAC sign/verify with an imported raw key; the key reports its algorithm and usages', async () => {
    await same(`
      const enc = new TextEncoder();
      const key = await crypto.subtle.importKey('raw', enc.encode('key'), { name: 'HMAC', hash: 'SHA-256' }, true, ['sign', 'verify']);
      const sig = await crypto.subtle.sign('HMAC', key, enc.encode('message'));
      return [[...new Uint8Array(sig)], await crypto.subtle.verify('HMAC', key, sig, enc.encode('message')),
        await crypto.subtle.verify('HMAC', key, sig, enc.encode('other')), key.type, key.extractable, key.algorithm, key.usages,
        [...new Uint8Array(await crypto.subtle.exportKey('raw', key))]];
    `);
  });

  it("AES-GCM, AES-CBC and AES-CTR round trips with known keys give Node's ciphertexts", async () => {
    await same(`
      const raw = new Uint8Array(16).fill(7);
      const iv = new Uint8Array(16).fill(1);
      const data = new TextEncoder().encode('attack at dawn');
      const out = [];
      for (const [name, params] of [['AES-GCM', { iv: iv.slice(0, 12) }], ['AES-CBC', { iv }], ['AES-CTR', { counter: iv, length: 64 }]]) {
        const key = await crypto.subtle.importKey('raw', raw, name, false, ['encrypt', 'decrypt']);
        const ct = await crypto.subtle.encrypt({ name, ...params }, key, data);
        const pt = await crypto.subtle.decrypt({ name, ...params }, key, ct);
        out.push([[...new Uint8Array(ct)], new TextDecoder().decode(pt)]);
      }
      return out;
    `);
  });

  it('ECDSA, Ed25519 and RSA-PSS sign with generated keys and verify; JWK export round trips', async () => {
    const result = await run(`
      const data = new TextEncoder().encode('payload');
      const out = [];
      const cases = [
        [{ name: 'ECDSA', namedCurve: 'P-256' }, { name: 'ECDSA', hash: 'SHA-256' }],
        [{ name: 'Ed25519' }, { name: 'Ed25519' }],
        [{ name: 'RSA-PSS', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, { name: 'RSA-PSS', saltLength: 32 }],
      ];
      for (const [gen, params] of cases) {
        const pair = await crypto.subtle.generateKey(gen, true, ['sign', 'verify']);
        const sig = await crypto.subtle.sign(params, pair.privateKey, data);
        const jwk = await crypto.subtle.exportKey('jwk', pair.publicKey);
        const again = await crypto.subtle.importKey('jwk', jwk, gen, true, ['verify']);
        out.push([await crypto.subtle.verify(params, again, sig, data), pair.privateKey.type, pair.publicKey.type, jwk.kty]);
      }
      return out;
    `);
    expect(result).toEqual([[true, 'private', 'public', 'EC'], [true, 'private', 'public', 'OKP'], [true, 'private', 'public', 'RSA']]);
  });

  it('RSA-OAEP encrypts and decrypts; spki/pkcs8 export and import', async () => {
    const result = await run(`
      const pair = await crypto.subtle.generateKey({ name: 'RSA-OAEP', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, true, ['encrypt', 'decrypt']);
      const ct = await crypto.subtle.encrypt({ name: 'RSA-OAEP' }, pair.publicKey, new TextEncoder().encode('secret'));
      const spki = await crypto.subtle.exportKey('spki', pair.publicKey);
      const pkcs8 = await crypto.subtle.exportKey('pkcs8', pair.privateKey);
      const priv = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSA-OAEP', hash: 'SHA-256' }, false, ['decrypt']);
      await crypto.subtle.importKey('spki', spki, { name: 'RSA-OAEP', hash: 'SHA-256' }, true, ['encrypt']);
      return [new TextDecoder().decode(await crypto.subtle.decrypt({ name: 'RSA-OAEP' }, priv, ct)), priv.extractable];
    `);
    expect(result).toEqual(['secret', false]);
  });

  it('PBKDF2 and HKDF deriveBits/deriveKey, ECDH deriveBits agree with Node', async () => {
    await same(`
      const enc = new TextEncoder();
      const pb = await crypto.subtle.importKey('raw', enc.encode('password'), 'PBKDF2', false, ['deriveBits', 'deriveKey']);
      const bits = await crypto.subtle.deriveBits({ name: 'PBKDF2', salt: enc.encode('salt'), iterations: 1000, hash: 'SHA-256' }, pb, 256);
      const aes = await crypto.subtle.deriveKey({ name: 'PBKDF2', salt: enc.encode('salt'), iterations: 1000, hash: 'SHA-256' }, pb, { name: 'AES-GCM', length: 128 }, true, ['encrypt']);
      const hk = await crypto.subtle.importKey('raw', enc.encode('ikm'), 'HKDF', false, ['deriveBits']);
      const hbits = await crypto.subtle.deriveBits({ name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(0), info: enc.encode('info') }, hk, 128);
      const a = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
      const b = await crypto.subtle.generateKey({ name: 'ECDH', namedCurve: 'P-256' }, false, ['deriveBits']);
      const ab = new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: b.publicKey }, a.privateKey, 256));
      const ba = new Uint8Array(await crypto.subtle.deriveBits({ name: 'ECDH', public: a.publicKey }, b.privateKey, 256));
      return [[...new Uint8Array(bits)], [...new Uint8Array(await crypto.subtle.exportKey('raw', aes))], [...new Uint8Array(hbits)], ab.join() === ba.join()];
    `);
  });

  it('errors are DOMExceptions or TypeErrors as WebCrypto specifies; non-extractable keys do not export', async () => {
    const result = await run(`
      const names = [];
      const key = await crypto.subtle.importKey('raw', new Uint8Array(16), 'AES-GCM', false, ['encrypt']);
      for (const f of [
        () => crypto.subtle.exportKey('raw', key),
        () => crypto.subtle.digest('MD5', new Uint8Array(1)),
        () => crypto.subtle.decrypt({ name: 'AES-GCM', iv: new Uint8Array(12) }, key, new Uint8Array(32)),
        () => crypto.subtle.sign('HMAC', {}, new Uint8Array(1)),
        () => crypto.subtle.digest('SHA-256', 'not bytes'),
      ]) {
        try { await f(); names.push('resolved'); } catch (e) { names.push(e.name); }
      }
      return names;
    `);
    expect(result).toEqual(['InvalidAccessError', 'NotSupportedError', 'InvalidAccessError', 'TypeError', 'TypeError']);
  });

  it('X25519, RSASSA-PKCS1-v1_5 and AES-KW wrap/unwrap work too', async () => {
    const result = await run(`
      const x = await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
      const y = await crypto.subtle.generateKey({ name: 'X25519' }, false, ['deriveBits']);
      const xy = new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: y.publicKey }, x.privateKey, 256));
      const yx = new Uint8Array(await crypto.subtle.deriveBits({ name: 'X25519', public: x.publicKey }, y.privateKey, 256));
      const rsa = await crypto.subtle.generateKey({ name: 'RSASSA-PKCS1-v1_5', modulusLength: 1024, publicExponent: new Uint8Array([1, 0, 1]), hash: 'SHA-256' }, false, ['sign', 'verify']);
      const sig = await crypto.subtle.sign('RSASSA-PKCS1-v1_5', rsa.privateKey, new Uint8Array([1, 2]));
      const kw = await crypto.subtle.generateKey({ name: 'AES-KW', length: 128 }, false, ['wrapKey', 'unwrapKey']);
      const key = await crypto.subtle.importKey('raw', new Uint8Array(16).fill(3), 'AES-GCM', true, ['encrypt']);
      const wrapped = await crypto.subtle.wrapKey('raw', key, kw, 'AES-KW');
      const unwrapped = await crypto.subtle.unwrapKey('raw', wrapped, kw, 'AES-KW', 'AES-GCM', true, ['encrypt']);
      return [xy.join() === yx.join(), await crypto.subtle.verify('RSASSA-PKCS1-v1_5', rsa.publicKey, sig, new Uint8Array([1, 2])),
        wrapped.byteLength, [...new Uint8Array(await crypto.subtle.exportKey('raw', unwrapped))]];
    `);
    expect(result).toEqual([true, true, 24, new Array(16).fill(3)]);
  });

  it('timingSafeEqual compares equal-length buffers; CryptoKey is not constructible', async () => {
    const result = await run(`
      const a = new Uint8Array([1, 2, 3]);
      let lengths, ctor;
      try { crypto.subtle.timingSafeEqual(a, new Uint8Array(2)); } catch (e) { lengths = e.constructor.name; }
      try { new CryptoKey(); } catch (e) { ctor = e.constructor.name; }
      return [crypto.subtle.timingSafeEqual(a, new Uint8Array([1, 2, 3])), crypto.subtle.timingSafeEqual(a.buffer, new Uint8Array([1, 2, 4])), lengths, ctor];
    `);
    expect(result).toEqual([true, false, 'TypeError', 'TypeError']);
  });
});
