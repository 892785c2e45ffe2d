/**
 * The composition root of a control-plane process: registry, host supervisor, metrics, services
 * and the hono app. `startPlatform` resolves once every host process is ready.
 */
import { resolve } from 'node:path';
import type { Hono } from 'hono';
import { FunctionRegistry } from '../runtime/function-registry.ts';
import { FunctionService } from '../runtime/function-service.ts';
import { HostSupervisor } from '../runtime/host-supervisor.ts';
import { RuntimeMetrics } from '../runtime/metrics.ts';
import { createApp } from './app.ts';
import { SqliteLog } from '../connectors/embedded/sqlite-log.ts';
import { GraphService } from '../scheduler/graph-service.ts';
import { GraphStore } from '../scheduler/graph-store.ts';
import { GraphMetrics } from '../scheduler/graph-metrics.ts';
import type { ScalingPolicy } from '../scheduler/autoscaler/policy.ts';

export interface PlatformOptions {
  /** Where functions and logs persist (default ./.tributary). */
  dataDir?: string;
  /** Isolate host processes (default one per core). */
  hosts?: number;
  /** Warm isolate slots per host (default 6). */
  warmSlots?: number;
  /** Bearer token for the management API (default: TRIBUTARY_TOKEN, else none). */
  token?: string;
  /** Records per batch sent to an isolate (default 1000). */
  maxBatchRecords?: number;
  /** Unconsumed records per source edge before ingest answers 429 (default 200000). */
  maxLagRecords?: number;
  /** fsync every log commit (default false: durable across process crashes). */
  fsync?: boolean;
  /** Autoscaler decision interval (default 1000 ms; 0 disables it). */
  autoscaleIntervalMs?: number;
  /** Time the autoscaler waits before scaling down (default 10000 ms). */
  stableWindowMs?: number;
  /** Scaling policy per graph (default: the latency model); benches pass baselines. */
  policy?(graph: string): ScalingPolicy;
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
  const metrics = new RuntimeMetrics();
  const supervisor = new HostSupervisor({
    hosts: options.hosts,
    warmSlots: options.warmSlots,
    onRestart: (host, reason) => {
      metrics.hostRestarts.inc({ host: String(host) });
      console.error(`tributary: host ${host} died (${reason}); restarting`);
    },
    onStats: (host, stats) => {
      metrics.isolates.set({ host: String(host), state: 'warm' }, stats.warm);
      metrics.isolates.set({ host: String(host), state: 'loaded' }, stats.instances);
    },
  });
  const registry = new FunctionRegistry(dataDir);
  await supervisor.start();
  const functions = new FunctionService(registry, supervisor, metrics);
  const log = new SqliteLog({ dataDir, fsync: options.fsync });
  const graphStore = new GraphStore(dataDir);
  const graphs = new GraphService(graphStore, log, functions, {
    maxBatchRecords: options.maxBatchRecords,
    maxLagRecords: options.maxLagRecords,
    metrics: new GraphMetrics(metrics.registry),
    cores: supervisor.size,
    releaseReplica: (tag) => void supervisor.broadcast({ op: 'unloadTag', tag }),
    autoscaleIntervalMs: options.autoscaleIntervalMs,
    stableWindowMs: options.stableWindowMs,
    policy: options.policy,
  });
  graphs.start();
  const app = createApp({ functions, graphs, supervisor, metrics, token: options.token ?? process.env.TRIBUTARY_TOKEN });
  return {
    app,
    functions,
    graphs,
    log,
    supervisor,
    metrics,
    dataDir,
    async close() {
      await graphs.close();
      await supervisor.close();
      registry.close();
      graphStore.close();
      log.close();
    },
  };
}
