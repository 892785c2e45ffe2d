/**
 * Real services for integration tests, started by the project's own scripts
 * (`scripts/kafka.sh`, `scripts/s3.sh`, `scripts/prometheus.sh`). Each script's `start` is
 * idempotent and serialized by a lock, so every test file may call {@link ensureService} in its
 * `beforeAll`: the first caller pays for the download and start, later ones return in
 * milliseconds. A service a test started is stopped when the test run ends (test/global-setup.ts,
 * scripts/test-run-services.ts); one that was running before is left alone. `stopService` is for
 * tests that need one gone.
 */
import { spawn } from 'node:child_process';
import { markStartedByTests } from './test-run-services.ts';
import { fileURLToPath } from 'node:url';

export type ServiceName = 'kafka' | 's3' | 'prometheus';

/** Where the scripts put each service when no port or credential variable overrides it. */
export const SERVICE_DEFAULTS = {
  kafka: { brokers: ['127.0.0.1:9092'] },
  s3: {
    endpoint: 'http://127.0.0.1:9000',
    region: 'us-east-1',
    accessKeyId: 'tributary',
    secretAccessKey: 'tributary-secret',
  },
  prometheus: { url: 'http://127.0.0.1:9090', targets: ['127.0.0.1:8787'] },
} as const;

/**
 * Generous on purpose: a cold Kafka start fetches ~50 MB of jars from Maven Central and may
 * install kcat with apt-get; a cold Prometheus start may install Debian's package.
 */
export const SERVICE_START_TIMEOUT_MS = 15 * 60_000;
const SERVICE_STOP_TIMEOUT_MS = 2 * 60_000;

const SCRIPTS_DIR = fileURLToPath(new URL('.', import.meta.url));

/**
 * Starts a service unless it already runs with the same configuration, and resolves once it
 * answers (Kafka: a metadata request; S3: any HTTP answer; Prometheus: `/-/ready` is 200).
 * `env` overrides the script's variables (KAFKA_PORT, S3_PORT, PROM_TARGETS, ...); a running
 * service whose configuration differs is restarted with the new one.
 *
 * @example
 * beforeAll(() => ensureService('prometheus', { PROM_TARGETS: '127.0.0.1:8787' }), SERVICE_START_TIMEOUT_MS);
 */
export async function ensureService(name: ServiceName, env: Record<string, string> = {}): Promise<void> {
  // Under vitest, a service this call starts is marked, so the run stops it at its end (test-run-services.ts).
  const mark = process.env.VITEST !== undefined && !(await serviceRunning(name, env));
  await runScript(name, ['start'], env, SERVICE_START_TIMEOUT_MS);
  if (mark) markStartedByTests(name, env);
}

/** Stops a service (SIGTERM, then SIGKILL), keeping its data. */
export async function stopService(name: ServiceName, env: Record<string, string> = {}): Promise<void> {
  await runScript(name, ['stop'], env, SERVICE_STOP_TIMEOUT_MS);
}

/** Stops and starts a service, keeping its data: for tests that lose a broker mid-stream. */
export async function restartService(name: ServiceName, env: Record<string, string> = {}): Promise<void> {
  await runScript(name, ['restart'], env, SERVICE_START_TIMEOUT_MS);
}

/**
 * Runs `bash scripts/<name>.sh <args>`, echoing its output as it comes (a cold start has progress
 * worth seeing) and keeping it for the error when the script fails or outlives `timeoutMs`.
 */
function runScript(name: ServiceName, args: string[], env: Record<string, string>, timeoutMs: number): Promise<void> {
  const script = `${SCRIPTS_DIR}${name}.sh`;
  const command = `bash ${script} ${args.join(' ')}`;
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [script, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk;
      process.stdout.write(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      output += chunk;
      process.stderr.write(chunk);
    });
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      reject(new Error(`${command} did not finish within ${timeoutMs / 1000}s; its output:\n${output}`));
    }, timeoutMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(new Error(`${command} could not be run: ${error.message}`));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${command} failed (${signal ?? `exit ${code}`}); its output:\n${output}`));
    });
  });
}

/** Every service the scripts can start. */
export const SERVICES: readonly ServiceName[] = ['kafka', 's3', 'prometheus'];

/**
 * True while the service's server process runs (answering or not): `scripts/<name>.sh status`
 * exits 0 (answering) or 1 (running, not answering); 3 means stopped.
 */
export function serviceRunning(name: ServiceName, env: Record<string, string> = {}): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', [`${SCRIPTS_DIR}${name}.sh`, 'status'], { env: { ...process.env, ...env }, stdio: 'ignore' });
    child.on('error', reject);
    child.on('close', (code) => resolve(code === 0 || code === 1));
  });
}
