/**
 * structuredClone (https://html.spec.whatwg.org/multipage/structured-data.html#dom-structuredclone):
 * the value is copied to the host and back with V8's serializer, which is the structured clone
 * algorithm. Whatever it rejects (functions, symbols, platform objects holding host state) is
 * reported as a DataCloneError, whichever side of the boundary refused it. `transfer` is not
 * supported: nothing can be detached across a copy.
 */
import type { HostRefs } from '../host-refs.ts';
import { createDomError } from './dom-error.ts';
import { requireArguments, sequenceOf } from './webidl.ts';

export function createStructuredClone(host: HostRefs): <T>(value: T, options?: { transfer?: unknown[] }) => T {
  const clone = host.structuredClone;
  return function structuredClone<T>(value: T, options: { transfer?: unknown[] } | undefined = undefined): T {
    requireArguments(arguments.length, 1, 'structuredClone');
    const transfer = options === undefined || options === null ? undefined : options.transfer;
    if (transfer !== undefined && sequenceOf(transfer, 'structuredClone transfer').length > 0) {
      throw createDomError('structuredClone: transferring objects is not supported', 'DataCloneError');
    }
    try {
      return clone.applySync(undefined, [value], { arguments: { copy: true }, result: { copy: true } }) as T;
    } catch (error) {
      // isolated-vm throws a TypeError ("… could not be cloned.") when the guest side refuses,
      // and a plain Error when the host side does; both mean the value is not cloneable.
      const message = (error as { message?: unknown } | null)?.message;
      throw createDomError(typeof message === 'string' ? message : 'value could not be cloned', 'DataCloneError');
    }
  };
}
