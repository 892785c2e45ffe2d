/**
 * `npm test` stops the services it started and leaves the ones it found
 * (scripts/test-run-services.ts), against a real Prometheus started by scripts/prometheus.sh in
 * a run directory and on a port of this test's own, so the services other tests use are untouched.
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureService, SERVICE_START_TIMEOUT_MS, serviceRunning, stopService } from '../scripts/services.ts';
import { beginTestRun, endTestRun } from '../scripts/test-run-services.ts';
import { tempDir } from './fixtures/platform.ts';

const run = tempDir('tributary-run-');
const env = { TRIBUTARY_RUN: run, PROM_PORT: String(21000 + Math.floor(Math.random() * 9000)), PROM_TARGETS: '127.0.0.1:1' };
const options = { services: ['prometheus'] as const, env };

/** Starts Prometheus as a user would, outside any test run's bookkeeping. */
function startByHand(): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [join(import.meta.dirname, '..', 'scripts', 'prometheus.sh'), 'start'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`prometheus.sh start exited ${code}`))));
  });
}

afterAll(async () => {
  await stopService('prometheus', env);
  rmSync(run, { recursive: true, force: true });
}, SERVICE_START_TIMEOUT_MS);

describe('services around a test run', () => {
  it('stops a service the run started', async () => {
    expect(await serviceRunning('prometheus', env)).toBe(false);
    await beginTestRun(options);
    await ensureService('prometheus', env);
    expect(await serviceRunning('prometheus', env)).toBe(true);
    expect(await endTestRun(options)).toEqual(['prometheus']);
    expect(await serviceRunning('prometheus', env)).toBe(false);
  }, SERVICE_START_TIMEOUT_MS);

  it('leaves a service it found running, even when a test asks for it', async () => {
    await startByHand();
    await beginTestRun(options);
    await ensureService('prometheus', env); // what a test does: already running, left alone
    expect(await endTestRun(options)).toEqual([]);
    expect(await serviceRunning('prometheus', env)).toBe(true);
    await stopService('prometheus', env);
  }, SERVICE_START_TIMEOUT_MS);

  it('leaves a service that ran before the run even when a test stopped and restarted it', async () => {
    await startByHand();
    await beginTestRun(options);
    await stopService('prometheus', env); // a test that needs it gone for a while
    await ensureService('prometheus', env);
    expect(await endTestRun(options)).toEqual([]);
    expect(await serviceRunning('prometheus', env)).toBe(true);
    await stopService('prometheus', env);
  }, SERVICE_START_TIMEOUT_MS);

  it('with two overlapping runs, the last one to finish stops what the first started', async () => {
    const other = spawn('sleep', ['600'], { stdio: 'ignore' }); // stands for a second vitest run's process
    try {
      await beginTestRun(options);
      await ensureService('prometheus', env);
      await beginTestRun({ ...options, pid: other.pid });
      await ensureService('prometheus', env); // the second run's test: already running
      expect(await endTestRun(options)).toEqual([]); // the other run still needs it
      expect(await serviceRunning('prometheus', env)).toBe(true);
      expect(await endTestRun({ ...options, pid: other.pid })).toEqual(['prometheus']);
      expect(await serviceRunning('prometheus', env)).toBe(false);
    } finally {
      other.kill('SIGKILL');
    }
  }, SERVICE_START_TIMEOUT_MS);
});
