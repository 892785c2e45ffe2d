/** Runs once before all tests: compiles the example WAT sources (tests load functions/build/*.wasm). */
import { buildExamples } from '../scripts/build-wasm.ts';

export default async function setup(): Promise<void> {
  await buildExamples();
}
