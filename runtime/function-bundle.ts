/**
 * Bundling on deploy, as wrangler does: a function's entry file (TypeScript or JavaScript) and
 * everything it imports become one ES module with esbuild, targeting the isolate (es2023, no
 * Node). With `nodejsCompat`, `node:buffer` (and `buffer`) resolve to the `buffer` npm package,
 * the one `node:` module supported; any other `node:` import fails the bundle with a message
 * naming it.
 *
 * @example
 * const { code } = await bundleFunction({ entry: 'src/index.ts' });
 * await fetch(`${url}/v1/functions/my-fn`, { method: 'PUT', headers: { 'content-type': 'application/javascript' }, body: code });
 */
import { build, type Plugin } from 'esbuild';
import { createRequire } from 'node:module';

export interface BundleOptions {
  /** The entry module, a path on disk. */
  entry: string;
  /** Provide `node:buffer` (like Workers' nodejs_compat flag); default false. */
  nodejsCompat?: boolean;
  /** Minify the output (default false: stack traces stay readable). */
  minify?: boolean;
}

export interface BundleResult {
  code: string;
  /** esbuild's warnings, one line each. */
  warnings: string[];
}

/** `node:` modules the nodejs_compat flag provides, and the packages behind them. */
export const NODE_COMPAT_MODULES: Readonly<Record<string, string>> = Object.freeze({ buffer: 'buffer' });

export class BundleError extends Error {
  readonly code = 'ERR_BUNDLE';
}

function nodeModules(nodejsCompat: boolean): Plugin {
  const require = createRequire(import.meta.url);
  return {
    name: 'tributary-node-modules',
    setup(b) {
      b.onResolve({ filter: /^node:/ }, (args) => {
        const name = args.path.slice('node:'.length);
        const pkg = NODE_COMPAT_MODULES[name];
        if (nodejsCompat && pkg !== undefined) return { path: require.resolve(`${pkg}/`) };
        const hint = nodejsCompat
          ? `only ${Object.keys(NODE_COMPAT_MODULES).map((m) => `node:${m}`).join(', ')} is provided`
          : 'deploy with --nodejs-compat for node:buffer; other node: modules are not available';
        return { errors: [{ text: `cannot import '${args.path}': ${hint}` }] };
      });
    },
  };
}

export async function bundleFunction(options: BundleOptions): Promise<BundleResult> {
  const nodejsCompat = options.nodejsCompat ?? false;
  try {
    const result = await build({
      entryPoints: [options.entry],
      bundle: true,
      write: false,
      format: 'esm',
      target: 'es2023',
      platform: 'neutral',
      // Packages published for browsers and workers first, as wrangler resolves them.
      conditions: ['workerd', 'worker', 'browser'],
      mainFields: ['browser', 'module', 'main'],
      minify: options.minify ?? false,
      legalComments: 'none',
      logLevel: 'silent',
      plugins: [nodeModules(nodejsCompat)],
      // The platform's own modules (runtime/host/builtin-modules.ts) are resolved in the isolate.
      external: ['tributary:*'],
      define: nodejsCompat ? { global: 'globalThis' } : {},
    });
    return {
      code: result.outputFiles![0].text,
      warnings: result.warnings.map((w) => `${w.location ? `${w.location.file}:${w.location.line}: ` : ''}${w.text}`),
    };
  } catch (error) {
    const errors = (error as { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }).errors;
    if (!errors) throw error;
    const lines = errors.map((e) => `${e.location ? `${e.location.file}:${e.location.line}: ` : ''}${e.text}`);
    throw new BundleError(`bundling ${options.entry} failed:\n${lines.join('\n')}`);
  }
}
