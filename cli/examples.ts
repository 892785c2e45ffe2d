/** Deploys the example functions (functions/*.js and the compiled WAT examples) into a platform. */
import { readFileSync, readdirSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sha256Of } from '../runtime/function-registry.ts';
import type { FunctionService } from '../runtime/function-service.ts';
import type { GraphService } from '../scheduler/graph-service.ts';
import { DEFAULT_MEMORY_LIMIT_MB, DEFAULT_TIMEOUT_MS } from '../runtime/limits.ts';
import { WAT_DIR, compileWat } from '../scripts/build-wasm.ts';

const FUNCTIONS_DIR = fileURLToPath(new URL('../functions/', import.meta.url));

export async function deployExamples(functions: FunctionService): Promise<string[]> {
  const limits = { memoryLimitMb: DEFAULT_MEMORY_LIMIT_MB, timeoutMs: DEFAULT_TIMEOUT_MS };
  const deployed: string[] = [];
  const deploy = async (name: string, kind: 'js' | 'wasm', code: string | Uint8Array) => {
    // Restarting `npm start` should not stack up identical versions.
    if (functions.registry.get(name)?.sha256 !== sha256Of(code)) await functions.deploy({ name, kind, code, ...limits });
    deployed.push(name);
  };
  for (const file of readdirSync(FUNCTIONS_DIR).filter((f) => f.endsWith('.js'))) {
    await deploy(basename(file, '.js'), 'js', readFileSync(join(FUNCTIONS_DIR, file), 'utf8'));
  }
  for (const file of readdirSync(WAT_DIR).filter((f) => f.endsWith('.wat'))) {
    await deploy(basename(file, '.wat'), 'wasm', await compileWat(readFileSync(join(WAT_DIR, file), 'utf8'), file));
  }
  return deployed;
}

/**
 * Deploys the WordCount graph and its windowed twin (words per 10 s tumbling window, through
 * `tributary:windows`) and feeds both the same few lines of text per second, so a newcomer sees
 * counts flowing: `curl 'http://127.0.0.1:8787/v1/graphs/wordcount/sinks/counts?limit=20'`, and
 * every 10 s `curl 'http://127.0.0.1:8787/v1/graphs/wordcount-windowed/sinks/windows?limit=20'`.
 * Returns a function that stops the generator.
 */
export async function startWordCountDemo(graphs: GraphService, linesPerSecond = 5): Promise<() => void> {
  const demos = [
    { graph: 'wordcount', spec: 'wordcount.graph.json' },
    { graph: 'wordcount-windowed', spec: 'wordcount-windowed.graph.json' },
  ];
  for (const demo of demos) await graphs.deploy(demo.graph, JSON.parse(readFileSync(join(FUNCTIONS_DIR, demo.spec), 'utf8')));
  const lines = readFileSync(join(FUNCTIONS_DIR, 'wordcount-lines.txt'), 'utf8').split('\n').filter(Boolean);
  let next = 0;
  const timer = setInterval(() => {
    const batch = Array.from({ length: linesPerSecond }, () => ({ value: lines[next++ % lines.length] }));
    for (const demo of demos) {
      try {
        graphs.ingest(demo.graph, 'lines', batch);
      } catch {
        // Backpressure or a redeploy in progress: skip this tick.
      }
    }
  }, 1000);
  timer.unref();
  return () => clearInterval(timer);
}
