import type { HostRefs } from '../host-refs.ts';
import { ObjectDefineProperty } from '../primordials.ts';
import { atob, btoa } from './base64.ts';
import { createConsole } from './console.ts';
import { Crypto, createCrypto } from './crypto.ts';
import { TextDecoder, TextEncoder } from './encoding.ts';
import { Headers } from './headers.ts';
import { Request } from './request.ts';
import { Response } from './response.ts';
import { createStructuredClone } from './structured-clone.ts';
import { URLSearchParams } from './url-search-params.ts';
import { bindUrlHost, URL } from './url.ts';

/**
 * Puts the Web-standard APIs on `global`: TextEncoder, TextDecoder, atob, btoa, Headers, Request,
 * Response, URL, URLSearchParams, crypto (getRandomValues, randomUUID), structuredClone and
 * console. Call once per context, before any user code runs; `host` stays in closures.
 *
 * @example
 * installWebApis(globalThis, host);
 * new Response('hi').headers.get('content-type'); // 'text/plain;charset=UTF-8'
 */
export function installWebApis(global: typeof globalThis, host: HostRefs): void {
  bindUrlHost(host);
  const classes: [string, Function][] = [
    ['TextEncoder', TextEncoder],
    ['TextDecoder', TextDecoder],
    ['Headers', Headers],
    ['Request', Request],
    ['Response', Response],
    ['URL', URL],
    ['URLSearchParams', URLSearchParams],
    ['Crypto', Crypto],
  ];
  for (let i = 0; i < classes.length; i++) {
    const name = classes[i][0];
    const constructor = classes[i][1];
    // Bundlers may rename a class to avoid a collision; the global must still say its own name.
    ObjectDefineProperty(constructor, 'name', { value: name, writable: false, enumerable: false, configurable: true });
    defineGlobal(global, name, constructor);
  }
  defineGlobal(global, 'atob', atob);
  defineGlobal(global, 'btoa', btoa);
  defineGlobal(global, 'structuredClone', createStructuredClone(host));
  defineGlobal(global, 'crypto', createCrypto(host));
  defineGlobal(global, 'console', createConsole(host));
}

/** Globals are writable, configurable and non-enumerable, like the Web's. */
function defineGlobal(global: typeof globalThis, name: string, value: unknown): void {
  ObjectDefineProperty(global, name, { value, writable: true, enumerable: false, configurable: true });
}
