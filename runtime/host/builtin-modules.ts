/**
 * Modules the platform offers to functions by specifier, unbundled or bundled (`tributary
 * deploy` leaves these imports in place): `tributary:windows` (runtime/windows/windows.ts). Each
 * is bundled once per host into one ES module with no imports of its own, and compiled into an
 * isolate only when a function imports it. It runs with the function's own rights: it is library
 * code over the public API (`ctx.timers`, `env.STATE`), not part of the sandbox.
 */
import { buildSync } from 'esbuild';
import type ivm from 'isolated-vm';
import { fileURLToPath } from 'node:url';

const SOURCES: Record<string, string> = {
  'tributary:windows': fileURLToPath(new URL('../windows/windows.ts', import.meta.url)),
};

export const BUILTIN_MODULES: readonly string[] = Object.keys(SOURCES);

const bundled = new Map<string, string>();

export function isBuiltinModule(specifier: string): boolean {
  return Object.hasOwn(SOURCES, specifier);
}

function sourceOf(specifier: string): string {
  let code = bundled.get(specifier);
  if (code === undefined) {
    const result = buildSync({ entryPoints: [SOURCES[specifier]], bundle: true, format: 'esm', target: 'es2023', platform: 'neutral', write: false, legalComments: 'none' });
    code = result.outputFiles[0].text;
    bundled.set(specifier, code);
  }
  return code;
}

/** The built-in module `specifier`, compiled and instantiated in `context` (once per context). */
export function builtinModule(isolate: ivm.Isolate, context: ivm.Context, specifier: string, cache: Map<string, ivm.Module>): ivm.Module {
  let module = cache.get(specifier);
  if (module === undefined) {
    module = isolate.compileModuleSync(sourceOf(specifier), { filename: specifier });
    module.instantiateSync(context, (inner) => {
      throw new Error(`cannot import '${inner}'`);
    });
    cache.set(specifier, module);
  }
  return module;
}
