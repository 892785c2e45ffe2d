/** Renders every failure as `{ "error": { "code", "message" } }`; never a stack or a host path. */
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { TributaryError, asTributaryError, type ErrorCode } from '../runtime/errors.ts';

export function errorResponse(c: Context, error: unknown): Response {
  const known = asTributaryError(error);
  if (known.code === 'ERR_INTERNAL' && !(error instanceof TributaryError)) console.error('internal error:', error);
  return c.json({ error: known.toJSON() }, known.status as ContentfulStatusCode);
}

export function errorBody(code: ErrorCode, message: string) {
  return { error: { code, message } };
}
