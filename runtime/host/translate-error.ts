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
  /** Set when the host itself disposed the isolate mid-entry: the CPU monitor found it over budget. */
  disposedForCpu?: boolean;
  memoryLimitMb: number;
  timeoutMs: number;
  cpuLimitMs?: number;
}

export function translateIvmError(error: unknown, ctx: TranslateContext): TributaryError {
  if (error instanceof TributaryError) return error;
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes(IVM_TIMEOUT)) return timeoutError(ctx.timeoutMs);
  if (ctx.disposedForCpu && message.includes(IVM_DISPOSED) && !message.includes(IVM_MEMORY)) return cpuLimitError(ctx.cpuLimitMs ?? 0);
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

export function cpuLimitError(cpuLimitMs: number): TributaryError {
  return new TributaryError('ERR_FN_CPU_LIMIT', `function used more than its CPU-time budget of ${cpuLimitMs} ms`);
}

/** Errors after which the isolate is discarded: its heap or its execution state cannot be trusted. */
export function discardsIsolate(error: TributaryError): boolean {
  return error.code === 'ERR_FN_TIMEOUT' || error.code === 'ERR_FN_OOM' || error.code === 'ERR_FN_CPU_LIMIT';
}

/** The isolate's ArrayBuffer allocator refusing an allocation is isolated-vm enforcing memoryLimit. */
const GUEST_OOM = /^RangeError: Array buffer allocation failed/;

export function fromGuestError(error: GuestError, ctx?: Pick<TranslateContext, 'memoryLimitMb'>): TributaryError {
  if (error.code === 'ERR_FN_THREW' && GUEST_OOM.test(error.message)) {
    return new TributaryError('ERR_FN_OOM', `function exceeded its memory limit${ctx ? ` of ${ctx.memoryLimitMb} MB` : ''}: ${error.message}`);
  }
  return new TributaryError(isErrorCode(error.code) ? error.code : 'ERR_FN_THREW', error.message);
}
