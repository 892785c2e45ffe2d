/**
 * Runs the isolate hosts as child processes and keeps them alive. A V8 abort (isolated-vm issues
 * #107, #527) or a kill -9 takes down one host: its in-flight calls fail with ERR_HOST_CRASHED,
 * the supervisor restarts it with backoff, and the other hosts keep serving.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Duplex } from 'node:stream';
import { FramedChannel } from './framed-channel.ts';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { TributaryError } from './errors.ts';
import type { HostOp, HostReady, HostReply, HostRequest, HostResults, HostStats } from './host-protocol.ts';
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
  onRestart?: (hostIndex: number, reason: string) => void;
  onStats?: (hostIndex: number, stats: HostStats) => void;
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
  /** performance.now() after which the host is presumed wedged (see the watchdog). */
  deadline: number;
}

/** Slack on top of a call's own timeout before its host is presumed wedged. */
const WEDGED_AFTER_MS = 5000;
/** Deadline of calls that carry no function timeout (stats, unload, validate of WASM). */
const DEFAULT_CALL_MS = 30_000;
/** After SIGTERM on close, a host that has not exited (event loop blocked) is SIGKILLed. */
const CLOSE_GRACE_MS = 3000;

class HostHandle {
  child: ChildProcess | null = null;
  channel: FramedChannel<HostRequest, HostReply | HostReady> | null = null;
  ready = false;
  readonly pending = new Map<number, Pending>();
  startedAt = 0;
  backoffMs = MIN_BACKOFF_MS;
  readyWaiters: Array<() => void> = [];
}

export class HostSupervisor {
  private readonly hosts: HostHandle[];
  private readonly options: HostSupervisorOptions;
  private nextId = 1;
  private closing = false;
  private watchdog: NodeJS.Timeout | null = null;

  constructor(options: HostSupervisorOptions = {}) {
    this.options = options;
    const count = Math.max(1, options.hosts ?? availableParallelism());
    this.hosts = Array.from({ length: count }, () => new HostHandle());
  }

  get size(): number {
    return this.hosts.length;
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
   * ending in `#<replica>` spreads replicas: replica r goes r hosts after replica 0's home.
   */
  homeOf(name: string): number {
    const replica = /^(.*)#(\d+)$/.exec(name);
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
      const timeoutMs = 'spec' in request ? request.spec.timeoutMs : DEFAULT_CALL_MS;
      host.pending.set(id, { resolve, reject, deadline: performance.now() + timeoutMs + WEDGED_AFTER_MS });
      channel.send({ ...request, id } as HostRequest);
    });
    this.options.onStats?.(index, reply.stats);
    if (!reply.ok) {
      const error = TributaryError.fromBody(reply.error);
      (error as TributaryError & { logs?: LogLine[] }).logs = reply.logs;
      throw error;
    }
    return { value: reply.value as HostResults[Op], logs: reply.logs, coldStart: reply.coldStart, hostIndex: index };
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
        stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
        env: { ...process.env, TRIBUTARY_WARM_SLOTS: String(this.options.warmSlots ?? 6), TRIBUTARY_HOST_CHANNEL_FD: '3' },
      });
      host.child = child;
      host.ready = false;
      host.startedAt = Date.now();
      host.channel = new FramedChannel<HostRequest, HostReply | HostReady>(child.stdio[3] as Duplex, (message) => {
        if ('ready' in message) {
          host.ready = true;
          for (const wake of host.readyWaiters.splice(0)) wake();
          resolve();
          return;
        }
        const pending = host.pending.get(message.id);
        if (!pending) return;
        host.pending.delete(message.id);
        pending.resolve(message);
      }, () => {});
      child.on('exit', (code, signal) => {
        const reason = signal ? `signal ${signal}` : `exit code ${code}`;
        host.ready = false;
        host.child = null;
        host.channel = null;
        for (const pending of host.pending.values()) {
          pending.reject(new TributaryError('ERR_HOST_CRASHED', `the host process running this call died (${reason}); it is being restarted`));
        }
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
   * Watchdog: a host whose event loop is blocked (user code the isolate cannot interrupt) never
   * answers. A call overdue by WEDGED_AFTER_MS past its own timeout gets its host SIGKILLed: the
   * calls there fail with ERR_HOST_CRASHED and the host restarts, as after any crash.
   */
  private watch(): void {
    this.watchdog = setInterval(() => {
      const now = performance.now();
      this.hosts.forEach((host, index) => {
        for (const pending of host.pending.values()) {
          if (pending.deadline < now) {
            console.error(`tributary: host ${index} stopped answering (a call is ${WEDGED_AFTER_MS} ms past its timeout); killing it`);
            this.kill(index);
            return;
          }
        }
      });
    }, 1000);
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

function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
