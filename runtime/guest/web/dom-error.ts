/**
 * Errors the Web specs raise as DOMExceptions (InvalidCharacterError, QuotaExceededError,
 * DataCloneError, TypeMismatchError). The isolate has no DOMException, so they are plain Errors
 * whose own `name` is the DOMException name: `catch (e) { e.name === 'DataCloneError' }` works.
 */
import { ObjectDefineProperty, SafeError } from '../primordials.ts';

export type DomErrorName = 'InvalidCharacterError' | 'QuotaExceededError' | 'DataCloneError' | 'TypeMismatchError';

export function createDomError(message: string, name: DomErrorName): Error {
  const error = new SafeError(message);
  ObjectDefineProperty(error, 'name', { value: name, writable: true, enumerable: false, configurable: true });
  return error;
}
