/**
 * Exercises the Web API paths every invocation uses, in a pre-warmed slot before any user code:
 * V8 compiles functions lazily, so without this the first real call pays for compiling Request,
 * Response, Headers and URL (about a millisecond).
 */
import { createDispatcher } from './dispatch.ts';
import { isResponse, readResponse } from './web/index.ts';
import { webGlobals } from './web-globals.ts';

export function warmup(global: typeof globalThis): void {
  const web = webGlobals(global);
  // A throwaway dispatcher shares its functions' bytecode with the real one.
  const dispatcher = createDispatcher(global, {
    maxBodyBytes: 1024,
    maxResponseHeaderBytes: 1024,
    maxEmitsPerRecord: 10,
    maxBatchOutputBytes: 1024,
    maxJsonDepth: 8,
    env: {},
  });
  // `process` emits a string and an object: both emit paths (and the output copy) get compiled.
  dispatcher.install({
    fetch: () => new web.Response('warm'),
    process: (record, _env, ctx) => {
      (ctx as { emit(value: unknown): void }).emit('warm');
      return record;
    },
  });
  void dispatcher.dispatchFetch({ method: 'GET', url: 'http://warm.up/', headers: [['x-warm', 'up']], body: null });
  void dispatcher.fetchFromHost('GET', 'http://warm.up/', 'x-warm\nup', null, false);
  void dispatcher.dispatchBatch({
    records: [{ key: 'k', value: 'v', headers: {}, offset: 0, timestamp: 0 }],
    state: { namespace: 'warmup', partition: 0, epoch: 0, snapshot: [] },
    maxAttempts: 1,
  });
  const request = new web.Request('http://warm.up/path?q=1', { method: 'POST', headers: [['x-warm', 'up']], body: new Uint8Array([1]) });
  void request.arrayBuffer();
  const url = new (global as unknown as { URL: new (href: string) => { searchParams: { get(k: string): string | null } } }).URL('http://warm.up/?q=1');
  url.searchParams.get('q');
  const response = new web.Response('warm', { status: 200, headers: { 'content-type': 'text/plain' } });
  if (isResponse(response)) readResponse(response);
  new web.TextDecoder().decode(new web.TextEncoder().encode('warm'));
}
