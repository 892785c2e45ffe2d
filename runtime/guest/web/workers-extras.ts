/**
 * Small Workers-only globals that real Workers code reaches for: `IdentityTransformStream` (a byte
 * pass-through), `FixedLengthStream(length)` (a pass-through that errors unless exactly `length`
 * bytes pass), `scheduler.wait(ms)` and `reportError(error)` (logged as an uncaught error, as
 * workerd does). Built on the platform's own classes and captured built-ins.
 */
import { NumberCtor, NumberIsInteger, ObjectFreeze, PromiseReject, SafePromise, SafeRangeError, SafeTypeError, uncurryThis } from '../primordials.ts';
import { byteLengthOf, copyOf, viewOf } from './bytes.ts';
import { TransformStream, TransformStreamDefaultController } from './streams.ts';
import { defineToStringTag } from './webidl.ts';

const enqueue = uncurryThis(TransformStreamDefaultController.prototype.enqueue) as (c: unknown, chunk: unknown) => void;

function bytesOf(chunk: unknown, who: string): Uint8Array {
  const view = viewOf(chunk);
  if (view === null) throw new SafeTypeError(`${who}: chunks must be ArrayBuffers or ArrayBufferViews`);
  return copyOf(view);
}

export class IdentityTransformStream extends TransformStream<unknown, Uint8Array> {
  constructor() {
    super({
      transform(chunk, controller) {
        enqueue(controller, bytesOf(chunk, 'IdentityTransformStream'));
      },
    });
  }
}
defineToStringTag(IdentityTransformStream.prototype, 'IdentityTransformStream');

export class FixedLengthStream extends TransformStream<unknown, Uint8Array> {
  constructor(length: unknown) {
    const expected = typeof length === 'bigint' ? NumberCtor(length) : (length as number);
    if (typeof expected !== 'number' || !NumberIsInteger(expected) || expected < 0) throw new SafeTypeError('FixedLengthStream: the length must be a non-negative integer');
    let seen = 0;
    super({
      transform(chunk, controller) {
        const bytes = bytesOf(chunk, 'FixedLengthStream');
        seen += byteLengthOf(bytes);
        if (seen > expected) throw new SafeTypeError(`FixedLengthStream: more than the ${expected} bytes announced were written`);
        enqueue(controller, bytes);
      },
      flush() {
        if (seen !== expected) throw new SafeTypeError(`FixedLengthStream: ${seen} of the ${expected} bytes announced were written`);
      },
    });
  }
}
defineToStringTag(FixedLengthStream.prototype, 'FixedLengthStream');

/** `scheduler.wait(ms)`: a promise resolved after `ms` (an invocation's timer, like setTimeout). */
export function createScheduler(setTimer: (callback: () => void, delayMs: number) => unknown): object {
  return ObjectFreeze({
    wait(delayMs: unknown = 0) {
      const ms = NumberCtor(delayMs);
      if (!(ms >= 0)) return PromiseReject(new SafeRangeError('scheduler.wait: the delay must be a non-negative number'));
      return new SafePromise<void>((resolve) => setTimer(() => resolve(), ms));
    },
  });
}

export function createReportError(logError: (...args: unknown[]) => void): (error: unknown) => void {
  return function reportError(error: unknown): void {
    logError('Uncaught', error);
  };
}
