/** Per-function defaults and hard ceilings. Every limit names its unit. */

/** Default isolate heap limit. isolated-vm documents this as a guideline: a hostile function can
 * overshoot it 2-3x before V8 notices, which is why isolates live in supervised host processes. */
export const DEFAULT_MEMORY_LIMIT_MB = 128;
export const MIN_MEMORY_LIMIT_MB = 8;
export const MAX_MEMORY_LIMIT_MB = 2048;

/** Default wall-clock budget for one invocation, including its timers and awaited promises. */
export const DEFAULT_TIMEOUT_MS = 1000;
export const MIN_TIMEOUT_MS = 1;
export const MAX_TIMEOUT_MS = 300_000;

/** Upload and invoke request bodies, and function responses. */
export const MAX_BODY_BYTES = 10 * 1024 * 1024;

/** Console lines kept per function (ring buffer in the control plane) and per-line cap. */
export const LOG_LINES_PER_FUNCTION = 1000;
export const MAX_LOG_LINE_BYTES = 8 * 1024;
/** Console lines one invocation may emit before further lines are dropped. */
export const MAX_LOG_LINES_PER_INVOCATION = 200;
