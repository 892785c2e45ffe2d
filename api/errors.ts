/** Renders every failure as `{ "error": { "code", "message" } }`; never a stack or a host path. */
import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { TributaryError, asTributaryError, type ErrorCode } from '../runtime/errors.ts';

export function errorResponse(c: Context, error: unknown): Response {
  // hono middleware (bearer auth) throws HTTPExceptions that already carry our JSON body.
  if (error instanceof HTTPException) return error.getResponse();
  const known = asTributaryError(error);
  if (known.code === 'ERR_INTERNAL' && !(error instanceof TributaryError)) console.error('internal error:', error);
  return c.json({ error: known.toJSON() }, known.status as ContentfulStatusCode);
}

export function errorBody(code: ErrorCode, message: string) {
  return { error: { code, message } };
}
