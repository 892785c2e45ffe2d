/**
 * The composition root of a control-plane process: registry, host supervisor, metrics, services
 * and the hono app. `startPlatform` resolves once every host process is ready.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FunctionStateStore, SqliteFetchState } from '../runtime/function-state.ts';
import { S3FunctionState } from '../connectors/s3/s3-function-state.ts';
import type { Hono } from 'hono';
import { FunctionRegistry } from '../runtime/function-registry.ts';
import { FunctionService } from '../runtime/function-service.ts';
import { HostSupervisor } from '../runtime/host-supervisor.ts';
import { RuntimeMetrics } from '../runtime/metrics.ts';
import { createApp } from './app.ts';
import { SqliteLog, type Durability } from '../connectors/embedded/sqlite-log.ts';
import { GraphService } from '../scheduler/graph-service.ts';
import { GraphStore } from '../scheduler/graph-store.ts';
import { GraphMetrics } from '../scheduler/graph-metrics.ts';
import type { ScalingPolicy } from '../scheduler/autoscaler/policy.ts';
import { BrokerPool } from '../connectors/kafka/broker-pool.ts';
import { platformBrokers } from '../connectors/kafka/brokers.ts';
import { KafkaCommitLedger } from '../connectors/kafka/kafka-commit-ledger.ts';
import { KafkaS3State } from '../connectors/kafka/kafka-s3-state.ts';
import { Bucket, type S3Options } from '../connectors/s3/bucket.ts';
import { S3StateStore } from '../connectors/s3/s3-state-store.ts';
import { SharedDeployments, deploymentsDir } from '../connectors/s3/shared-deployments.ts';
import { specKey } from '../runtime/function-spec.ts';
import { Guard } from '../runtime/guard.ts';
import { BucketCalls } from '../runtime/bucket-calls.ts';
import { SecretsKey } from '../runtime/secrets-key.ts';

export interface PlatformOptions {
  /** Where functions and logs persist (default ./.tributary). */
  dataDir?: string;
  /** Isolate host processes (default one per core). */
  hosts?: number;
  /** Warm isolate slots per host (default 6). */
  warmSlots?: number;
  /** RSS above which a host process is recycled (default 75% of the machine's memory / hosts). */
  hostMemoryLimitMb?: number;
  /** CIDRs functions' outbound fetch() may reach although private or loopback (default: $TRIBUTARY_EGRESS_ALLOW, comma-separated, else none). */
  egressAllow?: string[];
  /** Bearer token for the management API (default: TRIBUTARY_TOKEN, else none). */
  token?: string;
  /** Records per batch sent to an isolate (default 1000). */
  maxBatchRecords?: number;
  /** Unconsumed records per source edge before ingest answers 429 (default 200000). */
  maxLagRecords?: number;
  /** fsync every log commit (default false: durable across process crashes). Same as `durability: 'fsync'`. */
  fsync?: boolean;
  /**
   * What a returned log commit survives: 'process-crash' (default: kill -9 of the platform; a
   * power loss may drop the last commits) or 'fsync' (every commit on stable storage first).
   */
  durability?: Durability;
  /** Kafka bootstrap brokers of graphs' Kafka edges (default TRIBUTARY_KAFKA_BROKERS, else 127.0.0.1:9092). */
  kafkaBrokers?: string | string[];
  /** Autoscaler decision interval (default 1000 ms; 0 disables it). */
  autoscaleIntervalMs?: number;
  /** Time the autoscaler waits before scaling down (default 10000 ms). */
  stableWindowMs?: number;
  /** Scaling policy per graph (default: the latency model); benches pass baselines. */
  policy?(graph: string): ScalingPolicy;
  /**
   * Object storage (`serve --s3-endpoint --s3-bucket`): env.STATE on S3, and function and graph
   * deployments shared with every control plane using the same bucket (polled every
   * `pollIntervalMs`, default 1000). Checked at startup: a bad setting fails with ERR_S3_CONFIG.
   */
  s3?: S3Options & { pollIntervalMs?: number };
  /**
   * File holding the secrets key (32 bytes, base64 or hex; mode 0600) with which functions' secrets
   * are sealed in the `s3` bucket (default: $TRIBUTARY_SECRETS_KEY, else none). Every control plane
   * sharing the bucket needs the same key; without one, deploys with secrets are refused there
   * (ERR_SECRETS_KEY_REQUIRED). See runtime/secrets-key.ts.
   */
  secretsKeyFile?: string;
  /**
   * The tenants' buckets: the only buckets bucket bindings (`env.ASSETS`) and graphs' S3 sinks may
   * name (`serve --user-buckets a,b`, default $TRIBUTARY_USER_BUCKETS), reached with the platform's
   * S3 settings — `endpoint`, `region` and `credentials` here, else those of `s3`, else the AWS
   * defaults. The credentials stay in this process: hosts and isolates never see them. The
   * platform's own `s3.bucket` is never bindable.
   */
  userBuckets?: { buckets: string[] } & Omit<S3Options, 'bucket'>;
  /** Functions that may exist at once (default MAX_FUNCTIONS): a new name beyond is 400 ERR_QUOTA_EXCEEDED. */
  maxFunctions?: number;
  /** Versions kept per function (default MAX_VERSIONS_PER_FUNCTION); older ones are pruned on deploy. */
  maxVersionsPerFunction?: number;
  /** Largest request body (default MAX_BODY_BYTES): 413 ERR_TOO_LARGE beyond. */
  maxBodyBytes?: number;
  /**
   * Time a request body may take to arrive (default BODY_READ_TIMEOUT_MS, 30 s): 408
   * ERR_BODY_TIMEOUT, and the HTTP server's request timeout is derived from it (api/server.ts).
   */
  bodyReadTimeoutMs?: number;
  /** Bytes of all request bodies being read at once (default MAX_INFLIGHT_BODY_BYTES): 503 ERR_OVERLOADED beyond. */
  maxInflightBodyBytes?: number;
}

export interface Platform {
  app: Hono;
  functions: FunctionService;
  graphs: GraphService;
  log: SqliteLog;
  supervisor: HostSupervisor;
  metrics: RuntimeMetrics;
  dataDir: string;
  close(): Promise<void>;
}

export async function startPlatform(options: PlatformOptions = {}): Promise<Platform> {
  const dataDir = resolve(options.dataDir ?? './.tributary');
  // A bad key setting fails before anything is created (ERR_SECRETS_KEY_INVALID).
  const secretsKey = SecretsKey.load({ file: options.secretsKeyFile, env: process.env.TRIBUTARY_SECRETS_KEY });
  const metrics = new RuntimeMetrics();
  const guard = new Guard({ onError: ({ where }) => metrics.controlPlaneErrors.inc({ where }) });
  mkdirSync(dataDir, { recursive: true });
  // S3 is checked before any host starts, so that a bad setting fails fast and leaves nothing behind.
  const bucket = options.s3 ? await Bucket.open(options.s3) : null;
  // env.STATE of fetch handlers: one namespace per function, in the bucket or on the control plane (runtime/function-state.ts).
  const functionState = new FunctionStateStore(bucket ? new S3FunctionState(bucket) : new SqliteFetchState(dataDir));
  const userBuckets = options.userBuckets ?? { buckets: (process.env.TRIBUTARY_USER_BUCKETS ?? '').split(',').map((b) => b.trim()).filter((b) => b !== '') };
  const userS3 = { endpoint: userBuckets.endpoint ?? options.s3?.endpoint, region: userBuckets.region ?? options.s3?.region, credentials: userBuckets.credentials ?? options.s3?.credentials };
  let bucketsPath: (id: string) => string = () => '';
  const bucketCalls = new BucketCalls({ s3: userS3, allowed: userBuckets.buckets, platformBucket: options.s3?.bucket, bindingsPath: (id) => bucketsPath(id) });
  const supervisor = new HostSupervisor({
    onStateCall: (fn, op, args) => functionState.call(fn, op, args),
    onBucketCall: (bindingsId, binding, op, args, limits) => bucketCalls.call(bindingsId, binding, op, args, limits),
    hosts: options.hosts,
    warmSlots: options.warmSlots,
    hostMemoryLimitMb: options.hostMemoryLimitMb,
    egressAllow: options.egressAllow ?? (process.env.TRIBUTARY_EGRESS_ALLOW ?? '').split(',').map((e) => e.trim()).filter((e) => e !== ''),
    onRestart: (host, reason) => {
      metrics.hostRestarts.inc({ host: String(host), reason: restartReason(reason) });
      console.error(`tributary: host ${host} died (${reason}); restarting`);
    },
    onTelemetry: (_host, telemetry) => {
      try {
        functions.recordRemote(telemetry);
      } catch (error) {
        guard.report('host.telemetry', {}, error);
      }
    },
    onStats: (host, stats) => {
      metrics.isolates.set({ host: String(host), state: 'warm' }, stats.warm);
      metrics.isolates.set({ host: String(host), state: 'loaded' }, stats.instances);
    },
  });
  // With S3, functions and graphs are a local copy of the bucket's deploy log.
  const deployDir = bucket ? deploymentsDir(dataDir, bucket) : dataDir;
  const registry = new FunctionRegistry(deployDir, { maxVersions: options.maxVersionsPerFunction });
  bucketsPath = (id) => registry.bindingsPath(id);
  const graphStore = new GraphStore(deployDir);
  const log = new SqliteLog({ dataDir, fsync: options.fsync, durability: options.durability, guard });
  // Kafka clients connect lazily: a graph without Kafka edges never opens a connection.
  const ledger = new KafkaCommitLedger(dataDir);
  const kafka = { pool: new BrokerPool(platformBrokers(options.kafkaBrokers)), ledger, s3State: bucket ? new KafkaS3State({ bucket, local: ledger }) : undefined };
  let shared: SharedDeployments | undefined;
  let stateStore: S3StateStore | undefined;
  if (bucket) {
    try {
      shared = await SharedDeployments.open({ bucket, registry, graphs: graphStore, cursorPath: join(deployDir, 'deploy-log.json'), pollIntervalMs: options.s3?.pollIntervalMs, guard, secretsKey });
      stateStore = await S3StateStore.open({ bucket, transport: log, guard });
    } catch (error) {
      for (const resource of [registry, graphStore, log, bucket]) resource.close();
      throw error;
    }
  }
  await supervisor.start();
  const functions = new FunctionService(registry, supervisor, metrics, {
    recorder: shared,
    maxFunctions: options.maxFunctions,
    state: functionState,
    bucketRefused: (name) => bucketCalls.refused(name),
  });
  const graphs = new GraphService(graphStore, log, functions, {
    stateStore,
    recorder: shared,
    maxBatchRecords: options.maxBatchRecords,
    maxLagRecords: options.maxLagRecords,
    metrics: new GraphMetrics(metrics.registry),
    cores: supervisor.size,
    resources: () => ({ readyHosts: supervisor.readyCount, memoryMb: supervisor.readyMemoryMb }),
    releaseReplica: (tag) => void supervisor.broadcast({ op: 'unloadTag', tag }),
    autoscaleIntervalMs: options.autoscaleIntervalMs,
    stableWindowMs: options.stableWindowMs,
    policy: options.policy,
    kafka,
    guard,
    s3Sinks: { s3: userS3, refused: (name) => bucketCalls.refused(name) },
  });
  if (shared) {
    shared.onFunction = (name, version) => {
      if (version === null) functions.forget(name).catch((error: unknown) => guard.report('shared.onFunction', { function: name }, error));
      void functions.pushRoute(name).then(() => supervisor.broadcast(version === null ? { op: 'unload', name } : { op: 'unload', name, exceptKey: specKey(version) }));
    };
    shared.onGraph = (name) => graphs.refresh(name);
    shared.start();
  }
  graphs.start();
  const app = createApp({
    functions,
    graphs,
    supervisor,
    metrics,
    token: options.token ?? process.env.TRIBUTARY_TOKEN,
    maxBodyBytes: options.maxBodyBytes,
    bodyReadTimeoutMs: options.bodyReadTimeoutMs,
    maxInflightBodyBytes: options.maxInflightBodyBytes,
  });
  return {
    app,
    functions,
    graphs,
    log,
    supervisor,
    metrics,
    dataDir,
    async close() {
      shared?.stop();
      await graphs.close();
      await kafka.pool.close();
      await kafka.s3State?.close();
      kafka.ledger.close();
      await stateStore?.close(); // publishes what it can; the rest is published at the next start
      await supervisor.close();
      registry.close();
      functionState.close();
      graphStore.close();
      log.close();
      bucket?.close();
      bucketCalls.close();
    },
  };
}

/** The coarse cause of a host restart, for the metric label (the full reason goes to the log). */
function restartReason(reason: string): 'watchdog' | 'memory' | 'crash' {
  if (reason.startsWith('watchdog:')) return 'watchdog';
  if (reason.startsWith('memory:')) return 'memory';
  return 'crash';
}
