/**
 * The control plane's view of functions: deploy (validate on a host, then persist), invoke
 * (route to the function's host, record metrics and console output), list, delete.
 */
import { TributaryError } from './errors.ts';
import { specKey, type FunctionKind, type FunctionLimits } from './function-spec.ts';
import { FunctionRegistry, assertFunctionName, sha256Of, type FunctionVersion } from './function-registry.ts';
import type { WireBatch, WireBatchResult, WireRequest, WireResponse } from './guest/wire.ts';
import type { LogLine } from './host/function-instance.ts';
import type { HostSupervisor } from './host-supervisor.ts';
import { LogBuffer } from './log-buffer.ts';
import type { RuntimeMetrics } from './metrics.ts';

export interface DeployRequest extends FunctionLimits {
  name: string;
  kind: FunctionKind;
  code: string | Uint8Array;
}

/**
 * Where deploys are recorded so that other control planes see them (S3 shared deployments,
 * connectors/s3/shared-deployments.ts). Without one, the local registry alone is the record.
 */
export interface FunctionRecorder {
  /** Records a new version (its code already in the local registry) and returns it, numbered. */
  addVersion(request: { name: string; kind: FunctionKind; sha256: string; code: string | Uint8Array } & FunctionLimits): Promise<FunctionVersion>;
  /** Marks every version deleted; false when there was none. */
  delete(name: string): Promise<boolean>;
  /** Catches up with deploys made elsewhere; called when a name is not found locally. */
  refresh(): Promise<void>;
}

export class FunctionService {
  readonly registry: FunctionRegistry;
  readonly logs = new LogBuffer();
  private readonly supervisor: HostSupervisor;
  private readonly metrics: RuntimeMetrics;
  private readonly recorder: FunctionRecorder | undefined;

  constructor(registry: FunctionRegistry, supervisor: HostSupervisor, metrics: RuntimeMetrics, recorder?: FunctionRecorder) {
    this.registry = registry;
    this.supervisor = supervisor;
    this.metrics = metrics;
    this.recorder = recorder;
  }

  async deploy(request: DeployRequest): Promise<FunctionVersion> {
    assertFunctionName(request.name);
    const sha256 = sha256Of(request.code);
    const limits = { memoryLimitMb: request.memoryLimitMb, timeoutMs: request.timeoutMs };
    const probe = { name: request.name, version: 0, kind: request.kind, sha256, codePath: '', ...limits };
    await this.supervisor.call(request.name, { op: 'validate', spec: probe, code: request.code });
    this.metrics.coldStarts.inc({ function: request.name }); // validation loaded it on its home host
    this.registry.storeCode(request.code, request.kind);
    const version = this.recorder
      ? await this.recorder.addVersion({ name: request.name, kind: request.kind, sha256, code: request.code, ...limits })
      : this.registry.addVersion(request.name, request.kind, sha256, limits);
    // Older versions finish their in-flight calls, then their isolates are released.
    void this.supervisor.broadcast({ op: 'unload', name: request.name, exceptKey: specKey(version) });
    return version;
  }

  async invoke(name: string, request: WireRequest): Promise<WireResponse> {
    const version = this.registry.get(name) ?? (await this.lookupMiss(name));
    return this.run(version, 'http', (spec) => this.supervisor.call(name, { op: 'fetch', spec, request }));
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

  async delete(name: string): Promise<void> {
    if (!(this.recorder ? await this.recorder.delete(name) : this.registry.delete(name))) throw new TributaryError('ERR_NOT_FOUND', `no function named '${name}'`);
    this.logs.drop(name);
    await this.supervisor.broadcast({ op: 'unload', name });
  }
}
