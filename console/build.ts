/**
 * Builds the operator console (console/src/main.ts and what it imports) into one ES module with
 * esbuild, in memory: the control plane serves it at /console/app.js (api/routes/console.ts). No
 * file is written and nothing is fetched: the console works on a machine without a network.
 *
 * @example
 *   const assets = await buildConsole();
 *   assets.js; // the bundled script
 */
import { build } from 'esbuild';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

const CONSOLE_DIR = fileURLToPath(new URL('.', import.meta.url));

export interface ConsoleAssets {
  html: string;
  css: string;
  js: string;
}

export async function buildConsole(): Promise<ConsoleAssets> {
  const result = await build({
    entryPoints: [`${CONSOLE_DIR}src/main.ts`],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    write: false,
    minify: false,
    sourcemap: false,
    logLevel: 'silent',
  });
  const [html, css] = await Promise.all([readFile(`${CONSOLE_DIR}index.html`, 'utf8'), readFile(`${CONSOLE_DIR}console.css`, 'utf8')]);
  return { html, css, js: result.outputFiles[0].text };
}
