/** Request bodies with a byte ceiling: 413 ERR_TOO_LARGE before anything is buffered past it. */
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { errorBody } from './errors.ts';

export function limitBody(maxBytes: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: (c) => c.json(errorBody('ERR_TOO_LARGE', `request body exceeds ${maxBytes} bytes`), 413),
  });
}
