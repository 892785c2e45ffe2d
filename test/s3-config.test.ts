/**
 * Bad S3 settings fail at startup with ERR_S3_CONFIG and a message naming the setting to fix —
 * in-process (startPlatform) and from the command line (`tributary serve` exits 1).
 */
import { spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { startPlatform, type PlatformOptions } from '../api/platform.ts';
import { TributaryError } from '../runtime/errors.ts';
import { SERVICE_DEFAULTS, SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { tempDir } from './fixtures/platform.ts';
import { TEST_CREDENTIALS, createBucket, freePort } from './fixtures/s3.ts';

const { endpoint } = SERVICE_DEFAULTS.s3;
const CLI = join(import.meta.dirname, '..', 'cli', 'tributary.ts');
let bucket: string;

beforeAll(async () => {
  await ensureService('s3');
  bucket = (await createBucket()).bucket;
}, SERVICE_START_TIMEOUT_MS);

async function startupError(s3: PlatformOptions['s3']): Promise<TributaryError> {
  const dataDir = tempDir();
  try {
    const platform = await startPlatform({ dataDir, hosts: 1, warmSlots: 1, s3 });
    await platform.close();
    throw new Error('startPlatform succeeded');
  } catch (error) {
    expect(error).toBeInstanceOf(TributaryError);
    return error as TributaryError;
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('startPlatform with bad S3 settings', () => {
  it('names a missing bucket', async () => {
    const error = await startupError({ endpoint, bucket: 'no-such-bucket-here', credentials: TEST_CREDENTIALS });
    expect(error.code).toBe('ERR_S3_CONFIG');
    expect(error.message).toBe(`--s3-bucket 'no-such-bucket-here' does not exist at ${endpoint}: create it first (Tributary never creates buckets)`);
  });

  it('names the access key when it is unknown, and the secret when it does not match', async () => {
    const unknown = await startupError({ endpoint, bucket, credentials: { accessKeyId: 'nobody', secretAccessKey: 'x' } });
    expect(unknown.code).toBe('ERR_S3_CONFIG');
    expect(unknown.message).toMatch(/^credentials rejected by http:\/\/127\.0\.0\.1:9000: .*\(AWS_ACCESS_KEY_ID\)$/);
    const wrong = await startupError({ endpoint, bucket, credentials: { ...TEST_CREDENTIALS, secretAccessKey: 'not-the-secret' } });
    expect(wrong.code).toBe('ERR_S3_CONFIG');
    expect(wrong.message).toMatch(/^credentials rejected by .*\(AWS_SECRET_ACCESS_KEY\)$/);
  });

  it('names an endpoint that does not answer, and one that is not a URL', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const error = await startupError({ endpoint: closed, bucket, credentials: TEST_CREDENTIALS });
    expect(error.code).toBe('ERR_S3_CONFIG');
    expect(error.message).toBe(`cannot reach --s3-endpoint '${closed}': ECONNREFUSED`);
    expect((await startupError({ endpoint: '127.0.0.1:9000', bucket })).message).toBe(`--s3-endpoint '127.0.0.1:9000' is not an http(s) URL`);
  });
});

function serve(args: string[], env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
  const dataDir = tempDir();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--no-node-snapshot', CLI, 'serve', '--port', '0', '--hosts', '1', '--data-dir', dataDir, ...args], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      rmSync(dataDir, { recursive: true, force: true });
      resolve({ code, stderr });
    });
  });
}

describe('tributary serve with bad S3 settings', () => {
  const env = { AWS_ACCESS_KEY_ID: TEST_CREDENTIALS.accessKeyId, AWS_SECRET_ACCESS_KEY: TEST_CREDENTIALS.secretAccessKey, AWS_REGION: 'us-east-1' };

  it('exits 1 naming the missing bucket', async () => {
    const { code, stderr } = await serve(['--s3-endpoint', endpoint, '--s3-bucket', 'missing-bucket'], env);
    expect(code).toBe(1);
    expect(stderr).toContain(`tributary: ERR_S3_CONFIG: --s3-bucket 'missing-bucket' does not exist at ${endpoint}`);
  });

  it('exits 1 naming AWS_SECRET_ACCESS_KEY when the secret in the environment is wrong', async () => {
    const { code, stderr } = await serve(['--s3-endpoint', endpoint, '--s3-bucket', bucket], { ...env, AWS_SECRET_ACCESS_KEY: 'wrong' });
    expect(code).toBe(1);
    expect(stderr).toMatch(/tributary: ERR_S3_CONFIG: credentials rejected by .*\(AWS_SECRET_ACCESS_KEY\)/);
  });

  it('refuses --s3-endpoint without --s3-bucket as a usage error', async () => {
    const { code, stderr } = await serve(['--s3-endpoint', endpoint], env);
    expect(code).toBe(2);
    expect(stderr).toContain('--s3-endpoint needs --s3-bucket');
  });
});
