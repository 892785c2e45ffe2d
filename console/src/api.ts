/**
 * The console's client of the platform's HTTP API. The management token (when the platform has
 * one) lives in sessionStorage and travels only in the Authorization header, never in a URL;
 * `invoke` never sends it (the request reaches a tenant's function).
 */
const TOKEN_KEY = 'tributary.token';

export class PlatformError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value === null) sessionStorage.removeItem(TOKEN_KEY);
  else sessionStorage.setItem(TOKEN_KEY, value);
}

async function failure(response: Response): Promise<PlatformError> {
  const text = await response.text();
  try {
    const { error } = JSON.parse(text) as { error: { code: string; message: string } };
    if (typeof error?.code === 'string') return new PlatformError(response.status, error.code, String(error.message));
  } catch {}
  return new PlatformError(response.status, `HTTP_${response.status}`, text.slice(0, 300) || response.statusText);
}

async function call(path: string, init: RequestInit = {}, withToken = true): Promise<Response> {
  const headers = new Headers(init.headers);
  const t = token();
  if (withToken && t) headers.set('authorization', `Bearer ${t}`);
  let response: Response;
  try {
    response = await fetch(path, { ...init, headers, cache: 'no-store' });
  } catch (error) {
    throw new PlatformError(0, 'ERR_CONNECT', `cannot reach the platform: ${(error as Error).message}`);
  }
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await call(path)).json()) as T;
}

export async function getText(path: string): Promise<string> {
  return (await call(path)).text();
}

export async function config(): Promise<{ auth: boolean }> {
  return (await (await call('/console/config.json', {}, false)).json()) as { auth: boolean };
}

export interface InvokeResult {
  status: number;
  contentType: string;
  body: string;
}

/** Calls a function's fetch handler, without the management token. The body read is bounded. */
export async function invoke(name: string, method: string, path: string, body: string | undefined): Promise<InvokeResult> {
  const sub = path && !path.startsWith('/') ? `/${path}` : path;
  let response: Response;
  try {
    response = await fetch(`/v1/invoke/${encodeURIComponent(name)}${sub}`, { method, body: method === 'GET' || method === 'HEAD' ? undefined : body, cache: 'no-store' });
  } catch (error) {
    throw new PlatformError(0, 'ERR_CONNECT', `cannot reach the platform: ${(error as Error).message}`);
  }
  const text = await response.text();
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', body: text.length > 65_536 ? `${text.slice(0, 65_536)}…` : text };
}
