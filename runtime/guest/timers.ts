/**
 * setTimeout/setInterval inside the isolate. The isolate has no event loop of its own: the host
 * arms a real timer and calls back `fireTimer(id)`. Timers live only as long as the invocation
 * that armed them; the host drops every pending timer when the invocation settles or times out.
 */
import type { HostRefs } from './host-refs.ts';
import {
  MapPrototypeDelete, MapPrototypeGet, MapPrototypeSet, PromisePrototypeThen, PromiseResolve, ReflectApply, SafeMap, SafeTypeError,
} from './primordials.ts';

interface Timer {
  callback: (...args: unknown[]) => unknown;
  args: unknown[];
  intervalMs: number | null;
}

export function installTimers(global: typeof globalThis, host: HostRefs): (id: number) => void {
  const timers = new SafeMap<number, Timer>();
  let nextId = 1;

  const arm = (callback: unknown, delay: unknown, args: unknown[], repeat: boolean): number => {
    if (typeof callback !== 'function') throw new SafeTypeError('The "callback" argument must be a function');
    const ms = Number(delay);
    const delayMs = ms > 0 && ms < 2 ** 31 ? ms : 0;
    const id = nextId++;
    MapPrototypeSet(timers, id, { callback: callback as Timer['callback'], args, intervalMs: repeat ? delayMs : null });
    host.setTimer.applySync(undefined, [id, delayMs]);
    return id;
  };
  const clear = (id: unknown): void => {
    if (typeof id !== 'number' || !MapPrototypeDelete(timers, id)) return;
    host.clearTimer.applySync(undefined, [id]);
  };

  const define = (name: string, value: unknown) =>
    Object.defineProperty(global, name, { value, writable: true, configurable: true, enumerable: false });
  define('setTimeout', (callback: unknown, delay?: unknown, ...args: unknown[]) => arm(callback, delay, args, false));
  define('setInterval', (callback: unknown, delay?: unknown, ...args: unknown[]) => arm(callback, delay, args, true));
  define('clearTimeout', clear);
  define('clearInterval', clear);
  define('queueMicrotask', (callback: unknown) => {
    if (typeof callback !== 'function') throw new SafeTypeError('The "callback" argument must be a function');
    PromisePrototypeThen(PromiseResolve(), callback as () => void);
  });

  return function fireTimer(id: number): void {
    const timer = MapPrototypeGet(timers, id);
    if (timer === undefined) return;
    if (timer.intervalMs === null) MapPrototypeDelete(timers, id);
    else host.setTimer.applySync(undefined, [id, timer.intervalMs]);
    ReflectApply(timer.callback, undefined, timer.args);
  };
}
