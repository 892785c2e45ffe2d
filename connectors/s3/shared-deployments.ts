/**
 * Function and graph deployments shared by every control plane pointed at one bucket. Deploys and
 * deletes are appended to the bucket's deploy log (DeploymentLog) and applied to the local
 * FunctionRegistry and GraphStore, which stay the read path (an invoke never waits on S3). Events
 * appended by others are applied by polling the log every `pollIntervalMs` (default 1 s), and at
 * once when an invoke names a function not known locally: a deploy on one control plane is served
 * by the others within about a second.
 *
 * The local registry and graph store are a copy of the log (kept in `<data-dir>/s3-<bucket>-<hash>/`),
 * so a bucket's deployments never mix with what a data directory held without S3.
 *
 * Bindings travel with the deploy: a version's vars, bucket bindings and secrets (sealed with the
 * operator's secrets key) are written to the bucket before its event (shared-bindings.ts), and each
 * control plane writes them to its own bindings file before the version becomes visible there. A
 * control plane that cannot open them (another key, none, the object gone) still records the
 * version with its binding names and `bindingsError`, logs it once, and answers its invokes with
 * ERR_SECRETS_UNAVAILABLE; such versions are retried when the control plane starts (with the right
 * key, after a restart). The control plane that appended a deploy or delete removes the bindings
 * objects of the versions it pruned or deleted.
 *
 * Graphs: every control plane runs every deployed graph over its own log — records ingested on one
 * are processed there — with state kept per log (see S3StateStore).
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { TributaryError } from '../../runtime/errors.ts';
import { bindingNames, type Bindings } from '../../runtime/function-bindings.ts';
import type { SecretsKey } from '../../runtime/secrets-key.ts';
import { defaultGuard, type Guard } from '../../runtime/guard.ts';
import { sha256Of, type AppliedBindings, type FunctionRegistry, type FunctionVersion } from '../../runtime/function-registry.ts';
import { cpuLimitOf, type FunctionKind, type FunctionLimits } from '../../runtime/function-spec.ts';
import type { FunctionRecorder } from '../../runtime/function-service.ts';
import type { GraphSpec } from '../../scheduler/graph-spec.ts';
import type { GraphRecorder } from '../../scheduler/graph-service.ts';
import type { GraphStore, StoredGraph } from '../../scheduler/graph-store.ts';
import type { Bucket } from './bucket.ts';
import { DeploymentLog, codeKey, type DeploymentEvent, type EventOrigin } from './deployment-log.ts';
import { SharedBindings } from './shared-bindings.ts';

export interface SharedDeploymentsOptions {
  bucket: Bucket;
  registry: FunctionRegistry;
  graphs: GraphStore;
  /** Where the position in the deploy log is kept (next to the local registry). */
  cursorPath: string;
  /** How often the deploy log is polled for others' deploys (default 1000 ms). */
  pollIntervalMs?: number;
  /** Reports a poll that throws (default: log only); the next poll runs regardless. */
  guard?: Guard;
  /** Seals secrets written to the bucket and opens those read from it; without it, deploys with secrets are refused (ERR_SECRETS_KEY_REQUIRED). */
  secretsKey?: SecretsKey;
}

type VersionEvent = Extract<DeploymentEvent, { type: 'function-version' }>;

/** Where a data directory keeps its copy of a bucket's deployments: one per endpoint and bucket. */
export function deploymentsDir(dataDir: string, bucket: Bucket): string {
  return join(dataDir, `s3-${bucket.name}-${createHash('sha256').update(`${bucket.where}\u0000${bucket.name}`).digest('hex').slice(0, 8)}`);
}

/** An invoke of an unknown name catches up at most this often (a stream of typos must not become a stream of LISTs). */
const MIN_REFRESH_INTERVAL_MS = 250;

export class SharedDeployments implements FunctionRecorder, GraphRecorder {
  /** Called after another control plane's function deploy (version) or delete (null) was applied. */
  onFunction?: (name: string, version: FunctionVersion | null) => void;
  /** Called after another control plane's graph deploy or delete was applied; a rejection is retried at the next poll. */
  onGraph?: (name: string) => Promise<void>;
  private readonly options: SharedDeploymentsOptions;
  private readonly log: DeploymentLog;
  private readonly bindings: SharedBindings;
  /** Bindings objects of this control plane's appends in flight → the local bindings file already written for them. */
  private readonly localBindings = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  private lastRefreshAt = 0;
  /** Graphs whose runtime still has to catch up with an applied event. */
  private readonly staleGraphs = new Set<string>();
  /** Why the last poll failed (S3 down); null once one succeeds. */
  lastError: Error | null = null;

  private constructor(options: SharedDeploymentsOptions) {
    this.options = options;
    this.bindings = new SharedBindings({ bucket: options.bucket, key: options.secretsKey });
    this.log = new DeploymentLog({ bucket: options.bucket, cursorPath: options.cursorPath, apply: (event, _seq, origin) => this.apply(event, origin) });
  }

  /** Replays what the local copy misses of the deploy log, before anything is served. */
  static async open(options: SharedDeploymentsOptions): Promise<SharedDeployments> {
    const shared = new SharedDeployments(options);
    // Versions left without bindings by an earlier run (a key fixed since): tried once more, after the replay.
    const unavailable = options.registry.unavailableBindings();
    await shared.log.sync();
    shared.staleGraphs.clear(); // graphs are launched from the store once caught up
    await shared.retryBindings(unavailable);
    return shared;
  }

  private async retryBindings(unavailable: ReturnType<FunctionRegistry['unavailableBindings']>): Promise<void> {
    for (const { name, version, key, names } of unavailable) {
      try {
        const bindings = await this.replicate(name, version, { key, names });
        if (!bindings.error) this.options.registry.applyBindings(name, version, bindings);
      } catch (error) {
        console.error(`tributary: bindings of '${name}' v${version} not retried (the bucket failed): ${(error as Error).message}`);
      }
    }
  }

  /** Starts polling the deploy log. */
  start(): void {
    if (this.timer) return;
    const guard = this.options.guard ?? defaultGuard;
    const pollIntervalMs = this.options.pollIntervalMs;
    this.timer = setInterval(guard.wrap('deployments.poll', { bucket: this.options.bucket.name }, () => this.poll()), pollIntervalMs !== undefined && pollIntervalMs > 0 ? pollIntervalMs : 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  get position(): number {
    return this.log.position;
  }

  private async poll(): Promise<void> {
    try {
      await this.log.sync();
      this.lastError = null;
    } catch (error) {
      if (this.lastError === null) console.error(`tributary: cannot read the deploy log: ${(error as Error).message}`);
      this.lastError = error as Error;
    }
    for (const name of [...this.staleGraphs]) {
      try {
        await this.onGraph?.(name);
        this.staleGraphs.delete(name);
      } catch (error) {
        console.error(`tributary: graph '${name}' could not follow a deploy made elsewhere (retrying): ${(error as Error).message}`);
      }
    }
  }

  async refresh(): Promise<void> {
    if (this.refreshing) return this.refreshing;
    if (Date.now() - this.lastRefreshAt < MIN_REFRESH_INTERVAL_MS) return;
    this.refreshing = this.poll().finally(() => {
      this.lastRefreshAt = Date.now();
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** Throws ERR_SECRETS_KEY_REQUIRED for a deploy with secrets when there is no key: FunctionService asks before writing anything. */
  assertBindings(bindings: Bindings | undefined): void {
    this.bindings.assertStorable(bindings);
  }

  async addVersion(
    request: { name: string; kind: FunctionKind; sha256: string; code: string | Uint8Array; bindings?: Bindings; bindingsId?: string } & FunctionLimits,
  ): Promise<FunctionVersion> {
    this.bindings.assertStorable(request.bindings);
    // Code first: no event may name code the bucket does not hold.
    await this.options.bucket.putIfAbsent(codeKey(request.sha256, request.kind), request.code, 'application/octet-stream');
    const { bindings, bindingsId } = request;
    const names = bindings ? bindingNames(bindings) : undefined;
    // The bindings object is written per attempt: its secrets are sealed for the version number the attempt got.
    const hooks = bindings
      ? {
          beforePut: async (event: VersionEvent) => {
            const key = await this.bindings.put(event.version.name, event.version.version, bindings);
            event.bindings = { key, names: names! };
            if (bindingsId) this.localBindings.set(key, bindingsId);
          },
          discard: async (event: VersionEvent) => {
            if (!event.bindings) return;
            this.localBindings.delete(event.bindings.key);
            await this.bindings.discard(event.bindings.key);
          },
        }
      : {};
    const event = await this.log.append((): VersionEvent => ({
      type: 'function-version' as const,
      version: {
        name: request.name,
        version: this.options.registry.nextVersion(request.name),
        kind: request.kind,
        sha256: request.sha256,
        createdAt: new Date().toISOString(),
        memoryLimitMb: request.memoryLimitMb,
        timeoutMs: request.timeoutMs,
        cpuLimitMs: cpuLimitOf(request),
      },
    }), hooks);
    if (event?.bindings) this.localBindings.delete(event.bindings.key);
    return event!.version;
  }

  async delete(name: string): Promise<boolean> {
    let last = 0;
    const event = await this.log.append(() => {
      if (!this.options.registry.get(name)) return null;
      last = this.options.registry.nextVersion(name) - 1;
      return { type: 'function-delete' as const, name };
    });
    // Versions after `last` may be deploying already (elsewhere): their objects stay.
    if (event !== null) await this.removeBindings(name, (version) => version <= last);
    return event !== null;
  }

  /** Deletes bindings objects of versions gone; a failure leaves them (sealed) in the bucket, logged. */
  private async removeBindings(name: string, doomed: (version: number) => boolean): Promise<void> {
    try {
      await this.bindings.remove(name, doomed);
    } catch (error) {
      console.error(`tributary: bindings objects of removed versions of '${name}' not deleted from the bucket: ${(error as Error).message}`);
    }
  }

  /** Fetches (and opens) a version's bindings from the bucket into a local bindings file; why not, when it cannot. S3 failures throw. */
  private async replicate(name: string, version: number, event: { key: string; names: AppliedBindings['names'] }): Promise<AppliedBindings> {
    try {
      const bindings = await this.bindings.fetch(event.key, name, version);
      return { key: event.key, names: event.names, id: this.options.registry.storeBindings(bindings) };
    } catch (error) {
      if (!(error instanceof TributaryError) || error.code !== 'ERR_SECRETS_UNAVAILABLE') throw error;
      console.error(`tributary: function '${name}' v${version} cannot get its bindings on this control plane; its invokes answer ERR_SECRETS_UNAVAILABLE: ${error.message}`);
      return { key: event.key, names: event.names, error: { code: error.code, message: error.message } };
    }
  }

  async putGraph(name: string, spec: GraphSpec): Promise<StoredGraph> {
    const event = await this.log.append(() => ({
      type: 'graph-put' as const,
      graph: { name, spec, version: (this.options.graphs.get(name)?.version ?? 0) + 1, updatedAt: new Date().toISOString() },
    }));
    return event!.graph;
  }

  async deleteGraph(name: string): Promise<void> {
    await this.log.append(() => ({ type: 'graph-delete' as const, name }));
  }

  private async apply(event: DeploymentEvent, origin: EventOrigin): Promise<void> {
    const { registry, graphs } = this.options;
    switch (event.type) {
      case 'function-version': {
        const { version } = event;
        if (!registry.hasCode(version.sha256, version.kind)) await this.fetchCode(version.sha256, version.kind);
        // Bindings are in place before the version is visible: no invoke may run it without its env.
        let bindings: AppliedBindings | undefined;
        if (event.bindings) {
          const local = origin === 'local' ? this.localBindings.get(event.bindings.key) : undefined;
          bindings = local ? { key: event.bindings.key, names: event.bindings.names, id: local } : await this.replicate(version.name, version.version, event.bindings);
        }
        const pruned = registry.applyVersion(version, bindings);
        if (origin === 'remote') this.onFunction?.(version.name, registry.get(version.name) ?? version);
        else if (pruned.some((gone) => gone.bindings)) {
          const doomed = new Set(pruned.map((gone) => gone.version));
          await this.removeBindings(version.name, (number) => doomed.has(number));
        }
        return;
      }
      case 'function-delete':
        registry.delete(event.name);
        if (origin === 'remote') this.onFunction?.(event.name, null);
        return;
      case 'graph-put':
        graphs.apply(event.graph);
        if (origin === 'remote') this.staleGraphs.add(event.graph.name);
        return;
      case 'graph-delete':
        graphs.delete(event.name);
        if (origin === 'remote') this.staleGraphs.add(event.name);
        return;
    }
  }

  private async fetchCode(sha256: string, kind: FunctionKind): Promise<void> {
    const key = codeKey(sha256, kind);
    const code = await this.options.bucket.get(key);
    if (code === null) throw new TributaryError('ERR_S3_UNAVAILABLE', `deployed code s3://${this.options.bucket.name}/${key} is missing`);
    if (sha256Of(code) !== sha256) throw new TributaryError('ERR_S3_UNAVAILABLE', `deployed code s3://${this.options.bucket.name}/${key} does not match its SHA-256`);
    this.options.registry.storeCode(code, kind);
  }
}
