/** Bearer-token guard for the management API, on only when TRIBUTARY_TOKEN (or --token) is set. */
import type { MiddlewareHandler } from 'hono';
import { bearerAuth } from 'hono/bearer-auth';
import { errorBody } from './errors.ts';

export function requireToken(token: string | undefined): MiddlewareHandler {
  if (!token) return async (_c, next) => next();
  return bearerAuth({
    token,
    noAuthenticationHeaderMessage: errorBody('ERR_UNAUTHORIZED', 'missing Authorization: Bearer <token> header'),
    invalidAuthenticationHeaderMessage: errorBody('ERR_UNAUTHORIZED', 'malformed Authorization header; expected Bearer <token>'),
    invalidTokenMessage: errorBody('ERR_UNAUTHORIZED', 'invalid token'),
  });
}
