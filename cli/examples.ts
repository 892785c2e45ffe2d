/** Deploys the example functions (functions/*.js and the compiled WAT examples) into a platform. */
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FunctionService } from '../runtime/function-service.ts';
import { DEFAULT_MEMORY_LIMIT_MB, DEFAULT_TIMEOUT_MS } from '../runtime/limits.ts';
import { WAT_DIR, compileWat } from '../scripts/build-wasm.ts';

const FUNCTIONS_DIR = fileURLToPath(new URL('../functions/', import.meta.url));

export async function deployExamples(functions: FunctionService): Promise<string[]> {
  const limits = { memoryLimitMb: DEFAULT_MEMORY_LIMIT_MB, timeoutMs: DEFAULT_TIMEOUT_MS };
  const deployed: string[] = [];
  for (const file of readdirSync(FUNCTIONS_DIR).filter((f) => f.endsWith('.js'))) {
    const name = basename(file, '.js');
    await functions.deploy({ name, kind: 'js', code: readFileSync(join(FUNCTIONS_DIR, file), 'utf8'), ...limits });
    deployed.push(name);
  }
  for (const file of readdirSync(WAT_DIR).filter((f) => f.endsWith('.wat'))) {
    const name = basename(file, '.wat');
    await functions.deploy({ name, kind: 'wasm', code: await compileWat(readFileSync(join(WAT_DIR, file), 'utf8'), file), ...limits });
    deployed.push(name);
  }
  return deployed;
}
