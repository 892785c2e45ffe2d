/** What every page of the console is: something that renders into #view and polls while shown. */
import { PlatformError } from './api.ts';

export interface ViewContext {
  root: HTMLElement;
  /** Shows a platform error plainly (its code and message), or clears it with null. */
  report(error: unknown): void;
  /** The API answered 401: ask for a token. */
  unauthorized(): void;
}

export interface View {
  stop(): void;
}

/**
 * Runs `tick` now and then every `intervalMs` after the previous one settled (never two at once),
 * until stopped. A failed tick is reported; a 401 stops the loop and asks for the token.
 */
export function poll(ctx: ViewContext, intervalMs: number, tick: () => Promise<void>): View {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const run = async () => {
    if (stopped) return;
    try {
      await tick();
      if (!stopped) ctx.report(null);
    } catch (error) {
      if (stopped) return;
      if (error instanceof PlatformError && error.status === 401) {
        stopped = true;
        ctx.unauthorized();
        return;
      }
      ctx.report(error);
    }
    if (!stopped) timer = setTimeout(run, intervalMs);
  };
  void run();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
