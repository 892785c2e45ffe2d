/**
 * Bundles `runtime/guest/bootstrap.ts` into one script for the isolates. The bundle runs inside
 * a function scope, so nothing it defines lands on the isolate's global object except the
 * installer, on a deletable property the host removes before any user code runs.
 */
import { buildSync } from 'esbuild';
import { fileURLToPath } from 'node:url';

const ENTRY = fileURLToPath(new URL('../guest/bootstrap.ts', import.meta.url));
/** Free references to a few globals in bundled libraries resolve to the guest's own (guest/bundle-globals.ts). */
const INJECT = fileURLToPath(new URL('../guest/bundle-globals.ts', import.meta.url));
const GLOBAL_NAME = '__tributaryGuest';

let cached: string | undefined;

/** Script source that defines `globalThis.__tributaryBoot = install`. */
export function guestBootstrapSource(): string {
  if (cached !== undefined) return cached;
  const result = buildSync({
    entryPoints: [ENTRY],
    bundle: true,
    format: 'iife',
    globalName: GLOBAL_NAME,
    target: 'es2023',
    platform: 'neutral',
    write: false,
    minifySyntax: true,
    inject: [INJECT],
    legalComments: 'none',
  });
  const bundle = result.outputFiles[0].text;
  cached = `(function () {\n${bundle}\nglobalThis.__tributaryBoot = ${GLOBAL_NAME}.install;\n})();`;
  return cached;
}
