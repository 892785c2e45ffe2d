/**
 * The test rig itself: after ensureService, each service really does its job. Services are left
 * running for the other test files.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import {
  CreateBucketCommand,
  GetObjectCommand,
  ListBucketsCommand,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { beforeAll, describe, expect, it } from 'vitest';
import { SERVICE_DEFAULTS, SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';

const CLIENT_TIMEOUT_MS = 60_000;

interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: options.timeoutMs ?? 30_000 });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk));
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stdout, stderr }));
    child.stdin.end(options.input ?? '');
  });
}

async function runOk(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<string> {
  const result = await run(command, args, options);
  if (result.status !== 0) {
    throw new Error(`${command} ${args.join(' ')} exited ${result.status}:\n${result.stdout}${result.stderr}`);
  }
  return result.stdout;
}

async function pollUntil<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not seen within ${deadlineMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

describe('kafka.sh', () => {
  const bootstrap = SERVICE_DEFAULTS.kafka.brokers[0];
  const hasKcat = spawnSync('kcat', ['-V']).status === 0;
  let kafkaJava: string[] = [];

  beforeAll(async () => {
    await ensureService('kafka');
    const script = fileURLToPath(new URL('../scripts/kafka.sh', import.meta.url));
    const classpath = (await runOk('bash', [script, 'classpath'])).trim();
    kafkaJava = ['-Xmx128m', '-XX:TieredStopAtLevel=1', '-cp', classpath];
  }, SERVICE_START_TIMEOUT_MS);

  it(`creates a topic, produces and consumes a message (${hasKcat ? 'kcat' : 'Kafka CLI classes'})`, async () => {
    const topic = `services-test-${randomUUID()}`;
    const message = `hello ${randomUUID()}`;

    await runOk('java', [
      ...kafkaJava, 'org.apache.kafka.tools.TopicCommand', '--bootstrap-server', bootstrap,
      '--create', '--topic', topic, '--partitions', '1', '--replication-factor', '1',
    ]);

    let consumed: string;
    if (hasKcat) {
      const metadata = await runOk('kcat', ['-b', bootstrap, '-L', '-t', topic]);
      expect(metadata).toContain(`topic "${topic}" with 1 partitions`);
      await runOk('kcat', ['-b', bootstrap, '-t', topic, '-P'], { input: `${message}\n` });
      consumed = await runOk('kcat', ['-b', bootstrap, '-t', topic, '-C', '-o', 'beginning', '-c', '1', '-q']);
    } else {
      await runOk('java', [...kafkaJava, 'kafka.tools.ConsoleProducer', '--bootstrap-server', bootstrap, '--topic', topic], {
        input: `${message}\n`,
      });
      consumed = await runOk('java', [
        ...kafkaJava, 'org.apache.kafka.tools.consumer.ConsoleConsumer', '--bootstrap-server', bootstrap,
        '--topic', topic, '--from-beginning', '--max-messages', '1', '--timeout-ms', '20000',
      ]);
    }
    expect(consumed.trim()).toBe(message);
  }, CLIENT_TIMEOUT_MS);
});

describe('s3.sh', () => {
  const { endpoint, region, accessKeyId, secretAccessKey } = SERVICE_DEFAULTS.s3;
  const client = (secret: string) =>
    new S3Client({ endpoint, region, forcePathStyle: true, credentials: { accessKeyId, secretAccessKey: secret } });

  beforeAll(() => ensureService('s3'), SERVICE_START_TIMEOUT_MS);

  it('serves signed requests made with the configured credentials', async () => {
    const s3 = client(secretAccessKey);
    const bucket = `services-test-${randomUUID()}`;
    const body = `object ${randomUUID()}`;

    await s3.send(new CreateBucketCommand({ Bucket: bucket }));
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: 'dir/object.txt', Body: body }));
    const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: 'dir/object.txt' }));
    expect(await object.Body?.transformToString()).toBe(body);
    const { Buckets } = await s3.send(new ListBucketsCommand({}));
    expect(Buckets?.map((b) => b.Name)).toContain(bucket);
  }, CLIENT_TIMEOUT_MS);

  it('refuses a request signed with a wrong secret', async () => {
    const s3 = client(`${secretAccessKey}-wrong`);
    await expect(s3.send(new ListBucketsCommand({}))).rejects.toMatchObject({
      name: 'SignatureDoesNotMatch',
      $metadata: { httpStatusCode: 403 },
    });
  }, CLIENT_TIMEOUT_MS);
});

describe('prometheus.sh', () => {
  const { url, targets } = SERVICE_DEFAULTS.prometheus;

  beforeAll(() => ensureService('prometheus'), SERVICE_START_TIMEOUT_MS);

  it('loads our scrape config', async () => {
    const response = await fetch(`${url}/api/v1/status/config`);
    expect(response.status).toBe(200);
    const { data } = (await response.json()) as { data: { yaml: string } };
    expect(data.yaml).toContain('job_name: tributary');
    expect(data.yaml).toContain('scrape_interval: 1s');
    expect(data.yaml).toContain('metrics_path: /metrics');
    for (const target of targets) expect(data.yaml).toContain(`- ${target}`);
  });

  it('lists the target among its active targets', async () => {
    interface Target { scrapePool: string; scrapeUrl: string }
    // The scrape manager applies its first target set a few seconds after /-/ready.
    const active = await pollUntil('the tributary target in /api/v1/targets', 30_000, async () => {
      const response = await fetch(`${url}/api/v1/targets?state=active`);
      const { data } = (await response.json()) as { data: { activeTargets: Target[] } };
      return data.activeTargets.length > 0 ? data.activeTargets : undefined;
    });
    expect(active.filter((t) => t.scrapePool === 'tributary').map((t) => t.scrapeUrl).sort()).toEqual(
      targets.map((t) => `http://${t}/metrics`).sort(),
    );
  }, CLIENT_TIMEOUT_MS);
});
