/**
 * What free references to these globals inside the guest bundle resolve to (esbuild `inject`,
 * see host/guest-bundle.ts). Bundled libraries look some globals up when first used, after user
 * code may have replaced them — web-streams-polyfill reads `queueMicrotask` lazily and
 * `AbortController` whenever a WritableStream is built — so they get the platform's own.
 */
import { PromisePrototypeThen, PromiseResolve, ReflectApply } from './primordials.ts';
export { AbortController } from './web/events.ts';

const resolved = PromiseResolve();

export function queueMicrotask(callback: () => void): void {
  PromisePrototypeThen(resolved, () => ReflectApply(callback, undefined, []));
}
