/**
 * Runs once around all tests: compiles the example WAT sources (tests load functions/build/*.wasm),
 * and at the end stops the services (Kafka, S3 server, Prometheus) this run's tests started —
 * never one that was running before (scripts/test-run-services.ts). TRIBUTARY_KEEP_SERVICES=1
 * leaves them running, for a quicker next run; `npm run services:stop` stops them.
 */
import { buildExamples } from '../scripts/build-wasm.ts';
import { beginTestRun, endTestRun } from '../scripts/test-run-services.ts';

export default async function setup(): Promise<() => Promise<void>> {
  await buildExamples();
  await beginTestRun();
  return async () => {
    const stopped = await endTestRun({ services: process.env.TRIBUTARY_KEEP_SERVICES === '1' ? [] : undefined });
    if (stopped.length > 0) console.log(`stopped the services this test run started: ${stopped.join(', ')}`);
  };
}
