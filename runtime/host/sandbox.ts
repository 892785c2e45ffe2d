/**
 * A bare isolate with the guest Web APIs installed, for tests of those APIs: `run(code)` evaluates
 * `code` as the body of an async function and returns a structured copy of its result.
 */
import { DEFAULT_MEMORY_LIMIT_MB, MAX_BODY_BYTES } from '../limits.ts';
import { newBudget } from './budget.ts';
import { IsolateSlot } from './isolate-slot.ts';

export interface Sandbox {
  run(code: string, timeoutMs?: number): Promise<unknown>;
  dispose(): void;
  logs: Array<{ level: string; line: string }>;
}

export async function createSandbox(options: { memoryLimitMb?: number } = {}): Promise<Sandbox> {
  const slot = await IsolateSlot.create({ memoryLimitMb: options.memoryLimitMb ?? DEFAULT_MEMORY_LIMIT_MB, maxBodyBytes: MAX_BODY_BYTES });
  const logs: Sandbox['logs'] = [];
  slot.onLog = (level, line) => logs.push({ level, line });
  return {
    logs,
    // The code runs as an asynchronous entry (evalClosure), so the invocation is in asynchronous
    // mode too: a timer or host operation completing meanwhile must not enter synchronously.
    run: (code, timeoutMs = 5000) =>
      slot.invoke(newBudget({ timeoutMs, memoryLimitMb: slot.memoryLimitMb }, true), () =>
        slot.context.evalClosure(`return (async () => {\n${code}\n})();`, [], {
          result: { copy: true, promise: true },
          timeout: timeoutMs,
        }),
        { hostOps: true },
      ),
    dispose: () => slot.dispose(),
  };
}
