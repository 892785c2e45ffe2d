/**
 * The control plane's view of functions: deploy (validate on a host, then persist), invoke
 * (route to the function's host, record metrics and console output), list, delete.
 */
import { TributaryError } from './errors.ts';
import { cpuLimitOf, specKey, type FunctionKind, type FunctionLimits } from './function-spec.ts';
import { bindingNames, type Bindings } from './function-bindings.ts';
import type { FunctionStateStore } from './function-state.ts';
import { FunctionRegistry, assertFunctionName, sha256Of, type FunctionVersion } from './function-registry.ts';
import type { WireBatch, WireBatchResult, WireRequest, WireResponse } from './guest/wire.ts';
import type { LogLine } from './host/function-instance.ts';
import type { HostSupervisor } from './host-supervisor.ts';
import { MAX_CPU_LIMIT_MS, MAX_FUNCTIONS } from './limits.ts';
import { LogBuffer } from './log-buffer.ts';
import type { RuntimeMetrics } from './metrics.ts';
import type { InvokeRoute } from './host-protocol.ts';
import { replayDurations, type InvokeTelemetry } from './invoke-telemetry.ts';

export interface DeployRequest extends FunctionLimits {
  name: string;
  kind: FunctionKind;
  code: string | Uint8Array;
  /** vars, secrets and bucket bindings the function sees as `env` (function-bindings.ts); a recorder carries them to other control planes. */
  bindings?: Bindings;
}

/**
 * Where deploys are recorded so that other control planes see them (S3 shared deployments,
 * connectors/s3/shared-deployments.ts). Without one, the local registry alone is the record.
 */
export interface FunctionRecorder {
  /**
   * Records a new version (its code already in the local registry) and returns it, numbered,
   * with its `bindings` if any (`bindingsId`: the local bindings file already written for them).
   */
  addVersion(request: { name: string; kind: FunctionKind; sha256: string; code: string | Uint8Array; bindings?: Bindings; bindingsId?: string } & FunctionLimits): Promise<FunctionVersion>;
  /** Throws when these bindings cannot be recorded (ERR_SECRETS_KEY_REQUIRED); asked before anything is written. */
  assertBindings?(bindings: Bindings | undefined): void;
  /** Marks every version deleted; false when there was none. */
  delete(name: string): Promise<boolean>;
  /** Catches up with deploys made elsewhere; called when a name is not found locally. */
  refresh(): Promise<void>;
}

export interface FunctionServiceOptions {
  recorder?: FunctionRecorder;
  /** Functions that may exist at once (default MAX_FUNCTIONS): deploying a new name beyond is ERR_QUOTA_EXCEEDED. */
  maxFunctions?: number;
  /** fetch handlers' env.STATE; a deleted function's namespace is dropped with it. */
  state?: FunctionStateStore;
  /** Why a bucket binding may not name `bucket` (not one the operator configured), or null (runtime/bucket-calls.ts). */
  bucketRefused?(bucket: string): string | null;
}

export class FunctionService {
  readonly registry: FunctionRegistry;
  readonly logs = new LogBuffer();
  private readonly state: FunctionStateStore | undefined;
  private readonly supervisor: HostSupervisor;
  private readonly metrics: RuntimeMetrics;
  private readonly recorder: FunctionRecorder | undefined;
  private readonly maxFunctions: number;
  /** New names being deployed (validated on a host, not yet recorded): they count against the quota. */
  private readonly arriving = new Set<string>();

  private readonly options: FunctionServiceOptions;

  constructor(registry: FunctionRegistry, supervisor: HostSupervisor, metrics: RuntimeMetrics, options: FunctionServiceOptions = {}) {
    this.options = options;
    this.registry = registry;
    this.supervisor = supervisor;
    this.metrics = metrics;
    this.recorder = options.recorder;
    this.maxFunctions = options.maxFunctions ?? MAX_FUNCTIONS;
    this.state = options.state;
  }

  /**
   * Throws ERR_QUOTA_EXCEEDED when `name` is new and MAX_FUNCTIONS exist (or are arriving); a new
   * version of an existing function is always fine. Upload routes call it before reading the body.
   */
  assertQuota(name: string): void {
    if (this.registry.get(name) !== null || this.arriving.has(name)) return;
    if (this.registry.count() + this.arriving.size >= this.maxFunctions) {
      throw new TributaryError('ERR_QUOTA_EXCEEDED', `${this.maxFunctions} functions exist: delete one before deploying a new name`, {
        details: { limit: 'functions', max: this.maxFunctions },
      });
    }
  }

  async deploy(request: DeployRequest): Promise<FunctionVersion> {
    assertFunctionName(request.name);
    const limits = { memoryLimitMb: request.memoryLimitMb, timeoutMs: request.timeoutMs, cpuLimitMs: cpuLimitOf(request) };
    if (!Number.isInteger(limits.cpuLimitMs) || limits.cpuLimitMs < 1 || limits.cpuLimitMs > Math.min(limits.timeoutMs, MAX_CPU_LIMIT_MS)) {
      throw new TributaryError('ERR_BAD_REQUEST', `cpuLimitMs must be an integer in [1, ${Math.min(limits.timeoutMs, MAX_CPU_LIMIT_MS)}]`);
    }
    this.assertQuota(request.name);
    for (const [binding, { bucket }] of Object.entries(request.bindings?.buckets ?? {})) {
      const refused = this.options.bucketRefused ? this.options.bucketRefused(bucket) : 'no buckets are configured for bindings on this platform';
      if (refused !== null) throw new TributaryError('ERR_BAD_REQUEST', `bindings.${binding}: ${refused}`);
    }
    this.recorder?.assertBindings?.(request.bindings);
    const arriving = this.registry.get(request.name) === null && !this.arriving.has(request.name);
    if (arriving) this.arriving.add(request.name);
    const bindingsId = request.bindings ? this.registry.storeBindings(request.bindings) : undefined;
    let recorded = false;
    try {
      const sha256 = sha256Of(request.code);
      const bound = bindingsId ? { bindingsId, bindingsPath: this.registry.bindingsPath(bindingsId) } : {};
      const probe = { name: request.name, version: 0, kind: request.kind, sha256, codePath: '', ...limits, ...bound };
      await this.supervisor.call(request.name, { op: 'validate', spec: probe, code: request.code });
      this.metrics.coldStarts.inc({ function: request.name }); // validation loaded it on its home host
      this.registry.storeCode(request.code, request.kind);
      // Versions beyond MAX_VERSIONS_PER_FUNCTION are pruned as this one is recorded (FunctionRegistry.prune).
      let version = this.recorder
        ? await this.recorder.addVersion({ name: request.name, kind: request.kind, sha256, code: request.code, ...limits, bindings: request.bindings, bindingsId })
        : this.registry.addVersion(request.name, request.kind, sha256, limits);
      if (bindingsId && request.bindings) version = this.registry.setBindings(version.name, version.version, bindingsId, bindingNames(request.bindings));
      recorded = true;
      // Every live host routes invokes to the new version before the deploy returns.
      await this.pushRoute(version.name);
      // Older (and pruned) versions finish their in-flight calls, then their isolates are released.
      void this.supervisor.broadcast({ op: 'unload', name: request.name, exceptKey: specKey(version) });
      return version;
    } finally {
      if (bindingsId && !recorded) this.registry.dropBindings(bindingsId);
      if (arriving) this.arriving.delete(request.name);
    }
  }

  /** The latest version of `name`, or ERR_NOT_FOUND. Invoke routes resolve before reading a body. */
  async resolve(name: string): Promise<FunctionVersion> {
    return this.registry.get(name) ?? (await this.lookupMiss(name));
  }

  async invoke(version: FunctionVersion, request: WireRequest): Promise<WireResponse> {
    return this.run(version, 'http', (spec) => this.supervisor.call(version.name, { op: 'fetch', spec, request }));
  }

  /** Not known here: with shared deployments it may have just been deployed elsewhere. */
  private async lookupMiss(name: string): Promise<FunctionVersion> {
    await this.recorder?.refresh();
    return this.registry.require(name);
  }

  /**
   * Runs `process` over a batch (graph nodes). `instanceTag` names the replica: each tag gets its
   * own isolate, placed by hashing the tag over the hosts.
   */
  async process(version: FunctionVersion, batch: WireBatch, instanceTag: string): Promise<WireBatchResult> {
    return this.run(version, 'stream', (spec) =>
      this.supervisor.call(instanceTag, { op: 'process', spec: { ...spec, instanceTag }, batch }),
    );
  }

  private async run<T>(
    version: FunctionVersion,
    trigger: 'http' | 'stream',
    send: (spec: ReturnType<FunctionRegistry['specOf']>) => Promise<{ value: T; logs: LogLine[]; coldStart: boolean }>,
  ): Promise<T> {
    const started = performance.now();
    const labels = { function: version.name, trigger };
    try {
      // Run without its env it would misbehave quietly: refuse, saying why (shared deployments).
      if (version.bindingsError) throw new TributaryError(version.bindingsError.code, `function '${version.name}' v${version.version}: ${version.bindingsError.message}`);
      const result = await send(this.registry.specOf(version));
      this.logs.append(version.name, version.version, result.logs);
      if (result.coldStart) this.metrics.coldStarts.inc({ function: version.name });
      this.metrics.invocations.inc({ ...labels, outcome: 'ok' });
      return result.value;
    } catch (error) {
      const logs = (error as { logs?: LogLine[] }).logs;
      if (logs) this.logs.append(version.name, version.version, logs);
      const code = error instanceof TributaryError ? error.code : 'ERR_INTERNAL';
      this.metrics.invocations.inc({ ...labels, outcome: code });
      throw error;
    } finally {
      this.metrics.invocationDuration.observe(labels, (performance.now() - started) / 1000);
    }
  }

  /**
   * The invoke routing table hosts serve from: every function's latest version. Bounded by
   * MAX_FUNCTIONS entries of a FunctionSpec each (~300 bytes).
   */
  routeTable(): InvokeRoute[] {
    return this.registry.list().filter(servable).map((version) => [version.name, this.registry.specOf(version)]);
  }

  /** Tells every live host the current route of `name` (its latest version, or none); resolves once each acknowledged. */
  async pushRoute(name: string): Promise<void> {
    const version = this.registry.get(name);
    await this.supervisor.broadcast({ op: 'routes', replace: false, routes: [[name, version && servable(version) ? this.registry.specOf(version) : null]] });
  }

  /** Applies what hosts report of the invokes they served themselves (runtime/invoke-telemetry.ts). */
  recordRemote(telemetry: InvokeTelemetry): void {
    for (const tally of telemetry.calls) {
      // A function deleted since: its series are gone and stay gone.
      if (this.registry.get(tally.function) === null) continue;
      const labels = { function: tally.function, trigger: 'http' as const };
      for (const [outcome, count] of Object.entries(tally.outcomes)) this.metrics.invocations.inc({ ...labels, outcome }, count);
      if (tally.coldStarts > 0) this.metrics.coldStarts.inc({ function: tally.function }, tally.coldStarts);
      const histogram = this.metrics.invocationDuration.labels(labels);
      replayDurations(tally, (seconds) => histogram.observe(seconds));
    }
    for (const batch of telemetry.logs) this.logs.append(batch.function, batch.version, batch.lines);
    if (telemetry.droppedLogLines > 0) console.error(`tributary: a host dropped ${telemetry.droppedLogLines} console lines (its buffer toward the control plane was full)`);
  }

  async delete(name: string): Promise<void> {
    if (!(this.recorder ? await this.recorder.delete(name) : this.registry.delete(name))) throw new TributaryError('ERR_NOT_FOUND', `no function named '${name}'`);
    try {
      await this.pushRoute(name);
      await this.supervisor.broadcast({ op: 'unload', name });
    } finally {
      // A namespace the bucket could not drop now stays behind (logged); the function is gone.
      await this.state?.dropFunction(name).catch((error: unknown) => console.error(`tributary: env.STATE of deleted function '${name}' not removed: ${(error as Error).message}`));
      await this.forget(name);
    }
  }

  /**
   * Drops what the control plane keeps about a deleted function: its console lines and every
   * metric series labelled with it. (A call still in flight when it ran may record one last series.)
   */
  async forget(name: string): Promise<void> {
    this.logs.drop(name);
    await this.metrics.forgetFunction(name);
  }
}

/** Whether hosts may serve a version themselves: not one whose bindings are missing here (the control plane answers it, with the error). */
function servable(version: FunctionVersion): boolean {
  return version.bindingsError === undefined;
}
