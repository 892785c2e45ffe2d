/**
 * The one place where isolated-vm and V8 failures become Tributary error codes.
 */
import { TributaryError, isErrorCode } from '../errors.ts';
import type { GuestError } from '../guest/errors.ts';

/** Messages isolated-vm uses; matched here and nowhere else. */
const IVM_TIMEOUT = 'Script execution timed out.';
const IVM_MEMORY = 'Isolate was disposed during execution due to memory limit';
const IVM_DISPOSED = 'Isolate was disposed during execution';

export interface TranslateContext {
  /** Whether the isolate reports itself disposed (a memory-limit dispose sets this). */
  isolateDisposed: boolean;
  memoryLimitMb: number;
  timeoutMs: number;
}

export function translateIvmError(error: unknown, ctx: TranslateContext): TributaryError {
  if (error instanceof TributaryError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes(IVM_TIMEOUT)) return timeoutError(ctx.timeoutMs);
  if (message.includes(IVM_MEMORY) || (ctx.isolateDisposed && message.includes(IVM_DISPOSED))) {
    return new TributaryError('ERR_FN_OOM', `function exceeded its memory limit of ${ctx.memoryLimitMb} MB`);
  }
  if (error instanceof RangeError && /Array buffer allocation failed|Invalid typed array length/.test(message)) {
    return new TributaryError('ERR_FN_OOM', `function exceeded its memory limit of ${ctx.memoryLimitMb} MB: ${message}`);
  }
  return new TributaryError('ERR_FN_THREW', message.split('\n')[0].slice(0, 4096));
}

export function timeoutError(timeoutMs: number): TributaryError {
  return new TributaryError('ERR_FN_TIMEOUT', `function exceeded its timeout of ${timeoutMs} ms`);
}

/** The isolate's ArrayBuffer allocator refusing an allocation is isolated-vm enforcing memoryLimit. */
const GUEST_OOM = /^RangeError: Array buffer allocation failed/;

export function fromGuestError(error: GuestError, ctx?: Pick<TranslateContext, 'memoryLimitMb'>): TributaryError {
  if (error.code === 'ERR_FN_THREW' && GUEST_OOM.test(error.message)) {
    return new TributaryError('ERR_FN_OOM', `function exceeded its memory limit${ctx ? ` of ${ctx.memoryLimitMb} MB` : ''}: ${error.message}`);
  }
  return new TributaryError(isErrorCode(error.code) ? error.code : 'ERR_FN_THREW', error.message);
}
