/**
 * setTimeout/setInterval inside the isolate. The isolate has no event loop of its own: the host
 * arms a real timer and calls back `fireTimer(id)`. Timers live only as long as the invocation
 * that armed them: the host drops its pending timers when the invocation settles or times out,
 * and tells the guest, with every timer it arms, which invocation it belongs to, so the guest
 * forgets the callbacks of finished invocations as soon as a later one arms a timer (a function
 * arming an hour-long timer per call keeps one callback, not one per call). The host refuses
 * timers beyond MAX_TIMERS_PER_INVOCATION pending; setTimeout then throws.
 */
import type { HostRefs } from './host-refs.ts';
import {
  MapPrototypeDelete, MapPrototypeGet, MapPrototypeSet, PromisePrototypeThen, PromiseResolve, ReflectApply, SafeMap, SafeRangeError, SafeTypeError,
} from './primordials.ts';

interface Timer {
  callback: (...args: unknown[]) => unknown;
  args: unknown[];
  intervalMs: number | null;
}

/** The host's answer to setTimer: the arming invocation's id (> 0), 0 when it armed nothing, -1 at the limit. */
const NOT_ARMED = 0;
const LIMIT_REACHED = -1;

export function installTimers(global: typeof globalThis, host: HostRefs): (id: number) => void {
  let timers = new SafeMap<number, Timer>();
  /** The invocation whose timers `timers` holds. */
  let epoch = 0;
  let nextId = 1;

  const arm = (callback: unknown, delay: unknown, args: unknown[], repeat: boolean): number => {
    if (typeof callback !== 'function') throw new SafeTypeError('The "callback" argument must be a function');
    const ms = Number(delay);
    const delayMs = ms > 0 && ms < 2 ** 31 ? ms : 0;
    const id = nextId++;
    const armedBy = host.setTimer.applySync(undefined, [id, delayMs]) as number;
    if (armedBy === LIMIT_REACHED) throw new SafeRangeError('too many timers pending in this invocation');
    // Not armed (module top level): it would never fire, so it is not kept.
    if (typeof armedBy !== 'number' || armedBy <= NOT_ARMED) return id;
    if (armedBy !== epoch) {
      timers = new SafeMap<number, Timer>();
      epoch = armedBy;
    }
    MapPrototypeSet(timers, id, { callback: callback as Timer['callback'], args, intervalMs: repeat ? delayMs : null });
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
    // The callback gets no argument (a bare `then` reaction would pass it undefined).
    PromisePrototypeThen(PromiseResolve(), () => ReflectApply(callback as () => void, undefined, []));
  });

  return function fireTimer(id: number): void {
    const timer = MapPrototypeGet(timers, id);
    if (timer === undefined) return;
    if (timer.intervalMs === null) MapPrototypeDelete(timers, id);
    else if ((host.setTimer.applySync(undefined, [id, timer.intervalMs]) as number) <= NOT_ARMED) MapPrototypeDelete(timers, id);
    ReflectApply(timer.callback, undefined, timer.args);
  };
}
