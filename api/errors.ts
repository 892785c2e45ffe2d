/**
 * Renders every failure as `{ "error": { "code", "message" } }`; never a stack or a host path.
 * Errors that ask the caller to come back (ERR_OVERLOADED, ERR_BACKPRESSURE) carry `Retry-After`.
 */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { TributaryError, asTributaryError, type ErrorBody, type ErrorCode } from '../runtime/errors.ts';

/** Codes whose answer says when to retry: `details.retryAfterS` seconds, 1 unless the thrower knew better. */
const RETRY_AFTER: ReadonlySet<ErrorCode> = new Set(['ERR_OVERLOADED', 'ERR_BACKPRESSURE']);
const DEFAULT_RETRY_AFTER_S = 1;

export function errorResponse(c: Context, error: unknown): Response {
  // hono middleware (bearer auth) throws HTTPExceptions that already carry our JSON body.
  if (error instanceof HTTPException) return error.getResponse();
  const rendered = renderError(error);
  return c.json(rendered.body, rendered.status as ContentfulStatusCode, rendered.headers);
}

/** An error answer, without hono: what the control plane's routes and the hosts' HTTP plane both send. */
export interface RenderedError {
  status: number;
  /** Besides `content-type: application/json`. */
  headers: Record<string, string>;
  body: { error: ErrorBody };
}

/** Renders any failure once: the known code, its status, `Retry-After` where the code asks for it. */
export function renderError(error: unknown): RenderedError {
  const known = error instanceof TributaryError ? error : fromRangeError(error) ?? asTributaryError(error);
  if (known.code === 'ERR_INTERNAL' && !(error instanceof TributaryError)) console.error('internal error:', error);
  const headers: Record<string, string> = {};
  if (RETRY_AFTER.has(known.code)) headers['retry-after'] = String(retryAfterS(known.details.retryAfterS));
  return { status: known.status, headers, body: { error: known.toJSON() } };
}

export function errorBody(code: ErrorCode, message: string) {
  return { error: { code, message } };
}

function retryAfterS(value: unknown): number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 3600 ? value : DEFAULT_RETRY_AFTER_S;
}

/**
 * A RangeError reaching a route comes from the size of what the caller sent (a stack overflow
 * walking a nested value, a string or buffer too long to build): the caller's fault, so a 4xx,
 * never a 500. Limits checked up front (MAX_JSON_DEPTH, MAX_BODY_BYTES) should make this rare;
 * it is logged so that the check that missed it can be added.
 */
function fromRangeError(error: unknown): TributaryError | null {
  if (!(error instanceof RangeError)) return null;
  console.error('tributary: RangeError from request input (answered 4xx):', error.message);
  if (/call stack size/i.test(error.message)) {
    return new TributaryError('ERR_TOO_DEEP', 'request input nests too deeply to process', { cause: error });
  }
  if (/invalid (string|array|typed array) length|allocation failed|out of memory|too large/i.test(error.message)) {
    return new TributaryError('ERR_TOO_LARGE', 'request input is too large to process', { cause: error });
  }
  return new TributaryError('ERR_BAD_REQUEST', 'request input is out of range', { cause: error });
}
