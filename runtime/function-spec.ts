import { MAX_CPU_LIMIT_MS } from './limits.ts';

/** What a host needs to know to run one version of a function. Plain data: crosses the IPC channel. */
export type FunctionKind = 'js' | 'wasm';

export interface FunctionLimits {
  /** Isolate heap limit in MiB (default 128); see DEFAULT_MEMORY_LIMIT_MB for its honesty caveat. */
  memoryLimitMb: number;
  /** Wall-clock budget per invocation in ms (default 1000), module evaluation included. */
  timeoutMs: number;
  /**
   * CPU-time budget per invocation in ms, timers and awaits included (default: timeoutMs, capped
   * at MAX_CPU_LIMIT_MS). Absent on versions deployed before it existed: read it through cpuLimitOf.
   */
  cpuLimitMs?: number;
}

/** The CPU budget of a function: its own, else its timeout capped at MAX_CPU_LIMIT_MS. */
export function cpuLimitOf(limits: FunctionLimits): number {
  return limits.cpuLimitMs ?? Math.min(limits.timeoutMs, MAX_CPU_LIMIT_MS);
}

export interface FunctionSpec extends FunctionLimits {
  name: string;
  version: number;
  kind: FunctionKind;
  sha256: string;
  /** Absolute path of the immutable code file (content-addressed by sha256). */
  codePath: string;
  /** Distinguishes replicas of a graph node (`graph/node#r`): each gets its own isolate. */
  instanceTag?: string;
  /** The deploy's vars and secrets file (runtime/function-bindings.ts), read by the host at load; its id is part of specKey. */
  bindingsPath?: string;
  bindingsId?: string;
}

/**
 * What makes two loaded instances interchangeable: same function, same code, same limits. The
 * version number is not part of it, so an upload can load the instance before its version exists.
 */
export function specKey(spec: Pick<FunctionSpec, 'name' | 'sha256' | 'memoryLimitMb' | 'timeoutMs' | 'cpuLimitMs' | 'instanceTag' | 'bindingsId'>): string {
  const tag = spec.instanceTag ? `#${spec.instanceTag}` : '';
  const bindings = spec.bindingsId ? `/b${spec.bindingsId}` : '';
  return `${spec.name}@${spec.sha256.slice(0, 16)}/${spec.memoryLimitMb}mb/${spec.timeoutMs}ms/${cpuLimitOf(spec)}cpu${bindings}${tag}`;
}
