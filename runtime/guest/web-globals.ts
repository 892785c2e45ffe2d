/**
 * The slice of the installed Web APIs that platform code calls, typed for guest code (whose lib
 * has no DOM). Read from the global object once, right after installation, before user code.
 */
export interface GuestHeaders {
  entries(): Iterable<[string, string]>;
}

export interface GuestResponse {
  status: number;
  statusText: string;
  headers: GuestHeaders;
  arrayBuffer(): Promise<ArrayBuffer>;
}

export interface WebGlobals {
  Request: new (url: string, init: object) => { arrayBuffer(): Promise<ArrayBuffer> };
  Response: new (body?: unknown, init?: object) => GuestResponse;
  Headers: new () => GuestHeaders;
  TextEncoder: new () => { encode(text: string): Uint8Array };
  TextDecoder: new () => { decode(bytes: Uint8Array): string };
}

export function webGlobals(global: typeof globalThis): WebGlobals {
  const g = global as unknown as WebGlobals;
  return { Request: g.Request, Response: g.Response, Headers: g.Headers, TextEncoder: g.TextEncoder, TextDecoder: g.TextDecoder };
}
