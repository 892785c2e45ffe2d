/**
 * Option merging that never lets an explicit `undefined` override a default. `{...defaults,
 * ...options}` does exactly that: a CLI flag left unset arrives as `undefined` and silently wipes
 * the default (the autoscaler's stable window once crashed the control plane this way).
 *
 * @example
 *   const options = withDefaults({ intervalMs: 1000, stableWindowMs: 10_000 }, input);
 */
export function withDefaults<D extends object, O extends object>(defaults: D, options: O | undefined): D & O {
  const merged = { ...defaults } as Record<string, unknown>;
  if (options) {
    for (const [key, value] of Object.entries(options)) {
      if (value !== undefined) merged[key] = value;
    }
  }
  return merged as D & O;
}
