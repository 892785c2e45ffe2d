/** How guest code reports a failed call to the host: plain data, never a live user object. */
import { SafeError, StringCtor, StringPrototypeSlice } from './primordials.ts';

export type GuestErrorCode =
  | 'ERR_FN_THREW'
  | 'ERR_FN_BAD_RESPONSE'
  | 'ERR_FN_BAD_OUTPUT'
  | 'ERR_TOO_LARGE'
  | 'ERR_TOO_DEEP'
  | 'ERR_QUOTA_EXCEEDED'
  | 'ERR_WASM_INVALID'
  | 'ERR_COMPILE';

export interface GuestError {
  code: GuestErrorCode;
  message: string;
  stack?: string;
}

const MAX_MESSAGE_CHARS = 4096;

/** Describes anything thrown without trusting it: getters may throw, toString may be hostile. */
export function describeThrown(thrown: unknown, code: GuestErrorCode = 'ERR_FN_THREW'): GuestError {
  let message: string;
  let stack: string | undefined;
  try {
    if (thrown instanceof SafeError) {
      message = `${StringCtor(thrown.name)}: ${StringCtor(thrown.message)}`;
      stack = typeof thrown.stack === 'string' ? StringPrototypeSlice(thrown.stack, 0, MAX_MESSAGE_CHARS) : undefined;
    } else {
      message = `Uncaught ${typeof thrown === 'object' && thrown !== null ? 'non-Error object' : StringCtor(thrown)}`;
    }
  } catch {
    message = 'Uncaught exception (its message could not be read)';
  }
  return { code, message: StringPrototypeSlice(message, 0, MAX_MESSAGE_CHARS), stack };
}

export function guestError(code: GuestErrorCode, message: string): GuestError {
  return { code, message };
}
