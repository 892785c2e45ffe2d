/**
 * fetch() (https://fetch.spec.whatwg.org/#fetch-method) from functions: the request is built with
 * the platform's Request, its body drained (bounded), and sent by the host (runtime/host/egress.ts:
 * egress policy, subrequest count and byte limits, invocation-bound timeout). Network failures
 * reject with a TypeError, as browsers do, whose message starts with a stable code and whose
 * `code` property is it: ERR_EGRESS_DENIED, ERR_SUBREQUEST_LIMIT, ERR_TOO_LARGE, ERR_FETCH_FAILED,
 * ERR_BAD_REQUEST, ERR_FN_TIMEOUT. Not supported: `cache`, `credentials`, `mode`, `integrity`
 * (ignored, as on Workers); only http: and https:.
 */
import type { HostOps } from '../host-ops.ts';
import { ObjectDefineProperty, SafeTypeError } from '../primordials.ts';
import { BodyDrainError, drainStream } from './streams.ts';
import { createFetchedResponse, type Response } from './response.ts';
import { Request, requestParts } from './request.ts';
import { AbortSignal } from './events.ts';
import { toDOMString } from './webidl.ts';

export function createFetch(ops: HostOps, maxBodyBytes: number): (input: unknown, init?: unknown) => Promise<Response> {
  return async function fetch(input: unknown, init: unknown = undefined): Promise<Response> {
    const request = new Request(input as string, init as object);
    const options = typeof init === 'object' && init !== null ? (init as { redirect?: unknown; signal?: unknown }) : {};
    const redirect = options.redirect === undefined ? 'follow' : toDOMString(options.redirect);
    if (redirect !== 'follow' && redirect !== 'manual' && redirect !== 'error') throw new SafeTypeError(`fetch: invalid redirect mode '${redirect}'`);
    const signal = options.signal instanceof AbortSignal ? options.signal : null;
    signal?.throwIfAborted();
    const parts = requestParts(request);
    let body: Uint8Array | null = parts.body.takeBufferedBytes();
    const stream = parts.body.pendingStream;
    if (stream !== null) {
      try {
        body = (await drainStream(stream, maxBodyBytes)).bytes;
      } catch (error) {
        if (error instanceof BodyDrainError) throw failure(error.tooLarge ? 'ERR_TOO_LARGE' : 'ERR_BAD_REQUEST', error.message);
        throw error;
      }
    }
    const pending = ops.run('fetch', [{ method: parts.method, url: parts.url, headers: parts.headers, body, redirect }, null]);
    const outcome = signal === null ? await pending : await raceAbort(pending, signal);
    if (!outcome.ok) {
      const { message } = outcome.error;
      const code = (outcome.error as { code?: unknown }).code;
      throw failure(typeof code === 'string' ? code : 'ERR_FETCH_FAILED', message, true);
    }
    return createFetchedResponse(outcome.value as Parameters<typeof createFetchedResponse>[0]);
  };
}

function failure(code: string, message: string, prefixed = false): TypeError {
  const error = new SafeTypeError(prefixed ? message : `${code}: ${message}`);
  ObjectDefineProperty(error, 'code', { value: code, writable: true, enumerable: false, configurable: true });
  return error;
}

/** Settles with the operation, or rejects with the signal's reason as soon as it aborts (the host's answer is then dropped). */
function raceAbort<T>(pending: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort);
    pending.then(resolve, reject);
  });
}
