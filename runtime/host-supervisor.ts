/**
 * Runs the isolate hosts as child processes and keeps them alive. A V8 abort (isolated-vm issues
 * #107, #527) or a kill -9 takes down one host: its in-flight calls fail with ERR_HOST_CRASHED,
 * the supervisor restarts it with backoff, and the other hosts keep serving.
 *
 * Two guards recycle a host that is alive but harmful, the same way: it stops getting calls, it
 * is SIGKILLed, its in-flight calls fail with ERR_HOST_CRASHED saying why, and it restarts.
 * - The watchdog: a host's event loop sends a heartbeat every HEARTBEAT_INTERVAL_MS; one not
 *   heard from for `wedgedAfterMs` is blocked by something no timeout interrupts. Queues do not
 *   count: a host with a thousand calls waiting still beats, and is never killed for being busy.
 * - The memory guard: a host whose RSS passes `hostMemoryLimitMb` is recycled before the machine
 *   runs out (isolate memory limits are guidelines V8 can overshoot, and many isolates add up).
 *
 * Hosts run with a scrubbed environment (HOST_ENV_INHERITED): they run untrusted code, so no
 * control-plane secret (TRIBUTARY_TOKEN, AWS_*, Kafka credentials) is ever in their reach.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Duplex } from 'node:stream';
import { FramedChannel } from './framed-channel.ts';
import { availableParallelism, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { TributaryError } from './errors.ts';
import type { HostMessage, HostOp, HostReply, HostRequest, HostResults, HostStats } from './host-protocol.ts';
import type { InvokeTelemetry } from './invoke-telemetry.ts';
import type { Socket } from 'node:net';
import type { LogLine } from './host/function-instance.ts';

const HOST_MAIN = fileURLToPath(new URL('./host/main.ts', import.meta.url));
const MIN_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 5000;
/** A host that stayed up this long is healthy again: its backoff resets. */
const HEALTHY_AFTER_MS = 10_000;

export interface HostSupervisorOptions {
  /** Host processes to run (default: one per core). */
  hosts?: number;
  /** Warm isolate slots per host (default 6). */
  warmSlots?: number;
  /**
   * RSS in MiB above which a host is recycled (default: 75% of the machine's memory, shared
   * equally among the hosts). Checked every WATCHDOG_TICK_MS, so a host can overshoot it briefly.
   */
  hostMemoryLimitMb?: number;
  /** Serves functions' `env.STATE` in fetch (runtime/function-state.ts); without it such calls fail. */
  onStateCall?: (fn: string, op: unknown, args: unknown) => Promise<unknown> | unknown;
  /** Serves functions' bucket bindings (runtime/bucket-calls.ts); never rejects. Without it such calls fail with ERR_BUCKET_NOT_CONFIGURED. */
  onBucketCall?: (bindingsId: string, binding: unknown, op: unknown, args: unknown, limits: unknown) => Promise<unknown>;
  /** CIDRs outbound fetch() from functions may reach although private or loopback (runtime/host/egress.ts); default none. */
  egressAllow?: string[];
  /** A ready host not heard from (heartbeat or reply) for this long is killed and restarted (default 10000 ms). */
  wedgedAfterMs?: number;
  /** After a host died or was recycled; `reason` starts with `watchdog:` or `memory:` for a recycle. */
  onRestart?: (hostIndex: number, reason: string) => void;
  onStats?: (hostIndex: number, stats: HostStats) => void;
  /** Metrics and console lines of the invokes a host served on handed-over connections. */
  onTelemetry?: (hostIndex: number, telemetry: InvokeTelemetry) => void;
}

export interface CallResult<T> {
  value: T;
  logs: LogLine[];
  coldStart: boolean;
  hostIndex: number;
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type HostCall = DistributiveOmit<HostRequest, 'id'>;

interface Pending {
  resolve(reply: HostReply): void;
  reject(error: TributaryError): void;
}

/**
 * Default silence after which a host is presumed wedged. Legitimate work never blocks a host's
 * event loop this long: synchronous entries into isolates are cut after SYNC_SLICE_MS, module
 * top levels likewise, and the largest frame serializes in well under a second.
 */
const WEDGED_AFTER_MS = 10_000;
/** A host that has not become ready this long after its spawn is killed (and restarted). */
const START_TIMEOUT_MS = 60_000;
/** How often the watchdog and the memory guard look at every host. */
const WATCHDOG_TICK_MS = 250;
/** Share of the machine's memory all hosts together may use before one is recycled. */
const HOSTS_MEMORY_SHARE = 0.75;
/** After SIGTERM on close, a host that has not exited (event loop blocked) is SIGKILLed. */
const CLOSE_GRACE_MS = 3000;
const MIB = 1024 * 1024;

/**
 * The only variables a host inherits from the control plane; TRIBUTARY_WARM_SLOTS and
 * TRIBUTARY_HOST_CHANNEL_FD are set for it. Node flags for hosts go in argv (TRIBUTARY_HOST_NODE_FLAGS).
 */
export const HOST_ENV_INHERITED = ['PATH', 'TZ', 'LANG'] as const;

interface Recycle {
  /** For onRestart and the log, e.g. `memory: RSS 612 MiB over the host limit of 512 MiB`. */
  reason: string;
  /** What the host's in-flight calls are told. */
  message: string;
}

class HostHandle {
  child: ChildProcess | null = null;
  channel: FramedChannel<HostRequest, HostMessage> | null = null;
  ready = false;
  readonly pending = new Map<number, Pending>();
  startedAt = 0;
  /** performance.now() of the spawn and of the last frame received (heartbeat or reply). */
  spawnedAt = 0;
  lastHeardAt = 0;
  /** RSS the host last reported in its heartbeat (used where /proc is not available). */
  rssBytes = 0;
  recycle: Recycle | null = null;
  backoffMs = MIN_BACKOFF_MS;
  readyWaiters: Array<() => void> = [];
  /** Takes client connections: ready, and its HTTP plane configured and given the routing table. */
  serving = false;
  /** Connections the host reported in its last heartbeat, and those handed to it since. */
  connections = 0;
  handedSinceBeat = 0;
  /** Connections sent over the IPC channel and not yet confirmed sent (bounded: MAX_HANDOVERS_IN_FLIGHT). */
  handing = 0;
}

/** Hand-overs one host may have queued on its IPC channel; beyond, connections go elsewhere. */
const MAX_HANDOVERS_IN_FLIGHT = 1024;

export class HostSupervisor {
  private readonly hosts: HostHandle[];
  private readonly options: HostSupervisorOptions;
  private nextId = 1;
  private closing = false;
  private watchdog: NodeJS.Timeout | null = null;
  private readonly hostMemoryLimitMb: number;
  private readonly wedgedAfterMs: number;
  /** Set by serveConnections: readies a (re)started host's HTTP plane before it takes connections. */
  private prepareHost: ((index: number) => Promise<void>) | null = null;
  private nextHandOver = 0;

  constructor(options: HostSupervisorOptions = {}) {
    this.options = options;
    const count = Math.max(1, options.hosts ?? availableParallelism());
    this.hosts = Array.from({ length: count }, () => new HostHandle());
    this.hostMemoryLimitMb = options.hostMemoryLimitMb ?? Math.floor((totalmem() * HOSTS_MEMORY_SHARE) / count / MIB);
    this.wedgedAfterMs = options.wedgedAfterMs ?? WEDGED_AFTER_MS;
  }

  get size(): number {
    return this.hosts.length;
  }

  /** Hosts ready to run isolates now (a restarting host runs none): the autoscaler's cores. */
  get readyCount(): number {
    return this.hosts.filter((host) => host.ready).length;
  }

  /** Memory the ready hosts give isolates (MB): each host's RSS limit, for the autoscaler's budget. */
  get readyMemoryMb(): number {
    return this.readyCount * this.hostMemoryLimitMb;
  }

  /** Starts every host and resolves when all are ready. */
  async start(): Promise<void> {
    await Promise.all(this.hosts.map((_, index) => this.spawn(index)));
    this.watch();
  }

  /** pid of each host (null while restarting), for tests and the status endpoint. */
  pids(): Array<number | null> {
    return this.hosts.map((host) => (host.ready ? (host.child?.pid ?? null) : null));
  }

  /**
   * The host a function lives on: rendezvous hashing over hosts, stable across restarts. A tag
   * ending in `#<replica>` spreads replicas: replica r goes r hosts after replica 0's home; so
   * does `#<replica>.<generation>`, a replica recycled as a straggler (same host, fresh isolate).
   */
  homeOf(name: string): number {
    const replica = /^(.*)#(\d+)(?:\.\d+)?$/.exec(name);
    if (replica) return (this.homeOf(replica[1]) + Number(replica[2])) % this.hosts.length;
    let best = 0;
    let bestScore = -1;
    for (let index = 0; index < this.hosts.length; index++) {
      const score = fnv1a(`${index}:${name}`);
      if (score > bestScore) [best, bestScore] = [index, score];
    }
    return best;
  }

  /**
   * Sends a request to the function's home host; if that host is restarting, to the next ready one;
   * if none is ready, waits briefly for one.
   */
  async call<Op extends HostOp>(affinity: string, request: Extract<HostCall, { op: Op }>): Promise<CallResult<HostResults[Op]>> {
    const index = await this.pickHost(this.homeOf(affinity));
    return this.callHost(index, request);
  }

  async callHost<Op extends HostOp>(index: number, request: Extract<HostCall, { op: Op }>): Promise<CallResult<HostResults[Op]>> {
    const host = this.hosts[index];
    const channel = host.channel;
    if (!host.ready || !channel || channel.isClosed) throw new TributaryError('ERR_UNAVAILABLE', `host ${index} is not ready`);
    const id = this.nextId++;
    const reply = await new Promise<HostReply>((resolve, reject) => {
      host.pending.set(id, { resolve, reject });
      try {
        channel.send({ ...request, id } as HostRequest);
      } catch (error) {
        host.pending.delete(id);
        reject(error instanceof TributaryError ? error : new TributaryError('ERR_UNAVAILABLE', `host ${index} is not ready`, { cause: error }));
      }
    });
    this.options.onStats?.(index, reply.stats);
    if (!reply.ok) {
      const error = TributaryError.fromBody(reply.error);
      (error as TributaryError & { logs?: LogLine[] }).logs = reply.logs;
      throw error;
    }
    return { value: reply.value as HostResults[Op], logs: reply.logs, coldStart: reply.coldStart, hostIndex: index };
  }

  /**
   * From now on, hosts take client connections (handOver): each ready host — and every host that
   * restarts — runs `prepare` (its HTTP plane's configuration and the routing table) first.
   */
  async serveConnections(prepare: (index: number) => Promise<void>): Promise<void> {
    this.prepareHost = prepare;
    await Promise.all(this.hosts.map((host, index) => (host.ready ? this.prepare(index) : null)));
  }

  private async prepare(index: number): Promise<void> {
    const host = this.hosts[index];
    const child = host.child;
    if (!this.prepareHost || !child) return;
    try {
      await this.prepareHost(index);
    } catch (error) {
      if (host.child === child) console.error(`tributary: host ${index} could not be prepared for connections:`, error);
      return;
    }
    if (host.child === child && host.ready) host.serving = true;
  }

  /**
   * Hands an accepted (paused) client connection to the serving host with the fewest connections
   * (reported at the last heartbeat plus those handed since; ties go round-robin), over the Node
   * IPC channel. False when no host can take it: the caller serves it itself.
   */
  handOver(socket: Socket): boolean {
    let best = -1;
    let bestLoad = Infinity;
    const count = this.hosts.length;
    for (let step = 0; step < count; step++) {
      const index = (this.nextHandOver + step) % count;
      const host = this.hosts[index];
      if (!host.serving || !host.child?.connected || host.handing >= MAX_HANDOVERS_IN_FLIGHT) continue;
      const load = host.connections + host.handedSinceBeat;
      if (load < bestLoad) [best, bestLoad] = [index, load];
    }
    if (best < 0) return false;
    this.nextHandOver = (best + 1) % count;
    const host = this.hosts[best];
    host.handedSinceBeat++;
    host.handing++;
    try {
      host.child!.send('conn', socket, { keepOpen: false }, (error) => {
        host.handing--;
        if (error) socket.destroy();
      });
    } catch {
      host.handing--;
      return false;
    }
    return true;
  }

  /** Sends `request` to every ready host (e.g. unload after delete). */
  async broadcast(request: HostCall): Promise<void> {
    await Promise.allSettled(this.hosts.map((host, index) => (host.ready ? this.callHost(index, request) : null)));
  }

  private async pickHost(home: number): Promise<number> {
    const deadline = Date.now() + 5000;
    for (;;) {
      for (let step = 0; step < this.hosts.length; step++) {
        const index = (home + step) % this.hosts.length;
        if (this.hosts[index].ready) return index;
      }
      if (this.closing || Date.now() > deadline) throw new TributaryError('ERR_UNAVAILABLE', 'no isolate host is available');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()));
        this.hosts[home].readyWaiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  private spawn(index: number): Promise<void> {
    const host = this.hosts[index];
    return new Promise<void>((resolve) => {
      // TRIBUTARY_HOST_NODE_FLAGS: extra node flags for hosts, e.g. "--cpu-prof --cpu-prof-dir=/tmp/p".
      const extra = (process.env.TRIBUTARY_HOST_NODE_FLAGS ?? '').split(' ').filter(Boolean);
      const child = spawn(process.execPath, ['--no-node-snapshot', '--disable-warning=ExperimentalWarning', ...extra, HOST_MAIN], {
        // fd 3: the framed channel; fd 4: Node's IPC channel, which carries handed-over client connections.
        stdio: ['ignore', 'inherit', 'inherit', 'pipe', 'ipc'],
        env: hostEnvironment({
          TRIBUTARY_WARM_SLOTS: String(this.options.warmSlots ?? 6),
          TRIBUTARY_HOST_CHANNEL_FD: '3',
          // Only when the operator allowed something: hosts otherwise get nothing new in their environment.
          ...(this.options.egressAllow?.length ? { TRIBUTARY_EGRESS_ALLOW: this.options.egressAllow.join(',') } : {}),
        }),
      });
      host.child = child;
      host.ready = false;
      host.serving = false;
      host.connections = 0;
      host.handedSinceBeat = 0;
      host.handing = 0;
      host.recycle = null;
      child.on('error', () => {}); // a failed IPC send is reported to its callback
      host.startedAt = Date.now();
      host.spawnedAt = performance.now();
      host.lastHeardAt = host.spawnedAt;
      host.channel = new FramedChannel<HostRequest, HostMessage>(child.stdio[3] as Duplex, (message) => {
        host.lastHeardAt = performance.now();
        if ('beat' in message) {
          host.rssBytes = message.rssBytes;
          host.connections = message.connections;
          host.handedSinceBeat = 0;
          return;
        }
        if ('telemetry' in message) {
          this.options.onTelemetry?.(index, message);
          return;
        }
        if ('stateCall' in message) {
          const handler = this.options.onStateCall;
          const unavailable = { ok: false, error: { name: 'TypeError', message: 'env.STATE is not available here', code: 'ERR_UNAVAILABLE' } };
          const channel = host.channel;
          const reply = (result: unknown) => {
            if (!channel || channel !== host.channel) return; // the host died meanwhile: nobody waits
            try {
              channel.send({ id: message.id, op: 'stateReply', result });
            } catch {
              channel.send({ id: message.id, op: 'stateReply', result: unavailable });
            }
          };
          void Promise.resolve(handler ? handler(message.fn, message.op, message.args) : unavailable)
            .then(reply, () => reply(unavailable))
            .catch(() => undefined);
          return;
        }
        if ('bucketCall' in message) {
          const handler = this.options.onBucketCall;
          // Answered on the channel that asked: a restarted host never gets a reply meant for its predecessor.
          const asked = host.channel;
          const answer = (result: unknown) => {
            if (asked && !asked.isClosed && host.channel === asked) asked.send({ id: message.id, op: 'bucketReply', result });
          };
          if (!handler) answer({ ok: false, error: { name: 'TypeError', message: 'ERR_BUCKET_NOT_CONFIGURED: bucket bindings are not configured on this platform', code: 'ERR_BUCKET_NOT_CONFIGURED' } });
          else void handler(message.bindingsId, message.binding, message.op, message.args, message.limits).then(answer, () => answer({ ok: false, error: { name: 'TypeError', message: 'ERR_S3_UNAVAILABLE: the bucket operation failed', code: 'ERR_S3_UNAVAILABLE' } }));
          return;
        }
        if ('ready' in message) {
          host.ready = host.recycle === null;
          for (const wake of host.readyWaiters.splice(0)) wake();
          resolve();
          if (host.ready) void this.prepare(index);
          return;
        }
        const pending = host.pending.get(message.id);
        if (!pending) return;
        host.pending.delete(message.id);
        pending.resolve(message);
      }, () => {});
      child.on('exit', (code, signal) => {
        const recycle = host.recycle;
        const reason = recycle?.reason ?? (signal ? `signal ${signal}` : `exit code ${code}`);
        const message = recycle?.message ?? `the host process running this call died (${reason}); it is being restarted`;
        host.ready = false;
        host.serving = false;
        host.child = null;
        host.channel = null;
        for (const pending of host.pending.values()) pending.reject(new TributaryError('ERR_HOST_CRASHED', message));
        host.pending.clear();
        resolve();
        if (this.closing) return;
        this.options.onRestart?.(index, reason);
        host.backoffMs = Date.now() - host.startedAt > HEALTHY_AFTER_MS ? MIN_BACKOFF_MS : Math.min(host.backoffMs * 2, MAX_BACKOFF_MS);
        setTimeout(() => void this.spawn(index), host.backoffMs).unref();
      });
    });
  }

  /** For crash tests: SIGKILLs one host as an external OOM killer would. */
  kill(index: number): void {
    this.hosts[index].child?.kill('SIGKILL');
  }

  /**
   * Recycles a live host: no new calls are routed to it, it is SIGKILLed, its in-flight calls
   * fail with ERR_HOST_CRASHED carrying `recycle.message`, and it restarts as after a crash.
   */
  private recycleHost(index: number, recycle: Recycle): void {
    const host = this.hosts[index];
    if (!host.child || host.recycle) return;
    host.recycle = recycle;
    host.ready = false;
    host.serving = false;
    console.error(`tributary: recycling host ${index}: ${recycle.reason}`);
    host.child.kill('SIGKILL');
  }

  /**
   * Watchdog and memory guard, every WATCHDOG_TICK_MS. A tick that itself comes late means the
   * control plane was stalled and heartbeats may sit unread in the socket: it judges no host.
   */
  private watch(): void {
    let lastTick = performance.now();
    this.watchdog = setInterval(() => {
      const now = performance.now();
      const stalled = now - lastTick > WATCHDOG_TICK_MS * 4;
      lastTick = now;
      if (stalled) return;
      this.hosts.forEach((host, index) => {
        if (!host.child || host.recycle) return;
        if (!host.ready) {
          if (now - host.spawnedAt > START_TIMEOUT_MS) this.recycleHost(index, { reason: 'watchdog: not ready after start', message: 'the host process did not start' });
          return;
        }
        const silentMs = now - host.lastHeardAt;
        if (silentMs > this.wedgedAfterMs) {
          this.recycleHost(index, {
            reason: `watchdog: no heartbeat for ${Math.round(silentMs)} ms`,
            message: `the host process running this call stopped responding (event loop blocked for over ${this.wedgedAfterMs} ms) and was recycled; it is being restarted`,
          });
          return;
        }
        const rssMb = residentBytes(host) / MIB;
        if (rssMb > this.hostMemoryLimitMb) {
          this.recycleHost(index, {
            reason: `memory: RSS ${Math.round(rssMb)} MiB over the host limit of ${this.hostMemoryLimitMb} MiB`,
            message: `the host process running this call was recycled for memory (RSS ${Math.round(rssMb)} MiB over its limit of ${this.hostMemoryLimitMb} MiB); it is being restarted`,
          });
        }
      });
    }, WATCHDOG_TICK_MS);
    this.watchdog.unref();
  }

  async close(): Promise<void> {
    this.closing = true;
    if (this.watchdog) clearInterval(this.watchdog);
    await Promise.all(
      this.hosts.map(
        (host) =>
          new Promise<void>((resolve) => {
            const child = host.child;
            if (!child) return resolve();
            const force = setTimeout(() => child.kill('SIGKILL'), CLOSE_GRACE_MS);
            child.once('exit', () => {
              clearTimeout(force);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
  }
}

/** The host's environment: HOST_ENV_INHERITED from ours, plus `own`. Nothing else crosses. */
function hostEnvironment(own: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of HOST_ENV_INHERITED) {
    const value = process.env[name];
    if (value !== undefined) env[name] = value;
  }
  return { ...env, ...own };
}

/** A host's RSS: from /proc (current even if its event loop is stuck), else its last heartbeat. */
function residentBytes(host: HostHandle): number {
  const pid = host.child?.pid;
  if (pid !== undefined) {
    try {
      const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
      if (match) return Number(match[1]) * 1024;
    } catch {
      // Not Linux, or the process just exited.
    }
  }
  return host.rssBytes;
}

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
