/**
 * Errors the Web specs raise as DOMExceptions (InvalidCharacterError, QuotaExceededError,
 * DataCloneError, TypeMismatchError, …): real DOMException instances, with their legacy `code`.
 */
import { DOMException } from './events.ts';

export type DomErrorName =
  | 'InvalidCharacterError' | 'QuotaExceededError' | 'DataCloneError' | 'TypeMismatchError' | 'NotSupportedError'
  | 'InvalidAccessError' | 'OperationError' | 'SyntaxError' | 'DataError' | 'AbortError' | 'TimeoutError'
  | 'InvalidStateError' | 'NetworkError';

export function createDomError(message: string, name: DomErrorName): Error {
  return new DOMException(message, name);
}
