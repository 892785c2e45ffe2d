/**
 * Compiles the example WAT sources (functions/wasm/*.wat) to WebAssembly with wabt, so no binary
 * is committed without its source. Usable as a module (`compileWat`) or a script (writes
 * functions/build/*.wasm).
 */
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import wabtInit from 'wabt';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const WAT_DIR = join(ROOT, 'functions', 'wasm');
export const BUILD_DIR = join(ROOT, 'functions', 'build');

export async function compileWat(source: string, filename = 'module.wat'): Promise<Uint8Array> {
  const wabt = await wabtInit();
  const module = wabt.parseWat(filename, source);
  try {
    module.resolveNames();
    module.validate();
    return new Uint8Array(module.toBinary({}).buffer);
  } finally {
    module.destroy();
  }
}

export async function buildExamples(): Promise<string[]> {
  mkdirSync(BUILD_DIR, { recursive: true });
  const written: string[] = [];
  for (const file of readdirSync(WAT_DIR).filter((f) => f.endsWith('.wat'))) {
    const bytes = await compileWat(readFileSync(join(WAT_DIR, file), 'utf8'), file);
    const out = join(BUILD_DIR, `${basename(file, '.wat')}.wasm`);
    writeFileSync(out, bytes);
    written.push(out);
  }
  return written;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const path of await buildExamples()) console.log(`built ${path}`);
}
