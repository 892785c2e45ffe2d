/** A small HTTP client for the CLI's remote commands; errors print their stable code. */
export interface ClientOptions {
  url: string;
  /** The management token: sent as `Authorization: Bearer`, except to /v1/invoke/ (tenants' functions). */
  token?: string;
}

export class ApiError extends Error {
  readonly code: string;
  readonly status: number;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** GET a JSON answer. */
export async function getJson<T>(options: ClientOptions, path: string): Promise<T> {
  return (await (await request(options, 'GET', path)).json()) as T;
}

/** POST a JSON body, answered with JSON. */
export async function postJson<T>(options: ClientOptions, path: string, body: unknown): Promise<T> {
  return (await (await request(options, 'POST', path, { body: JSON.stringify(body), contentType: 'application/json' })).json()) as T;
}

export async function request(options: ClientOptions, method: string, path: string, init: { body?: string | Uint8Array; contentType?: string; headers?: Record<string, string> } = {}): Promise<Response> {
  const headers: Record<string, string> = { ...init.headers };
  if (options.token && !path.startsWith('/v1/invoke/')) headers.authorization = `Bearer ${options.token}`;
  if (init.contentType) headers['content-type'] = init.contentType;
  let response: Response;
  try {
    response = await fetch(new URL(path, options.url), { method, headers, body: init.body });
  } catch (error) {
    throw new ApiError(0, 'ERR_CONNECT', `cannot reach ${options.url}: ${(error as Error).cause ?? (error as Error).message}`);
  }
  if (response.ok) return response;
  const text = await response.text();
  try {
    const { error } = JSON.parse(text) as { error: { code: string; message: string } };
    throw new ApiError(response.status, error.code, error.message);
  } catch (error) {
    if (error instanceof ApiError) throw error;
    throw new ApiError(response.status, `HTTP_${response.status}`, text.slice(0, 500));
  }
}
