/**
 * Entry point of a host process: owns an IsolatePool and answers the control plane's requests.
 * Run only by HostSupervisor, with --no-node-snapshot (isolated-vm needs it on Node >= 20), in a
 * scrubbed environment (no control-plane secrets: isolates run untrusted code in this process).
 */
import { Socket } from 'node:net';
import { asTributaryError, TributaryError } from '../errors.ts';
import { FramedChannel } from '../framed-channel.ts';
import { HEARTBEAT_INTERVAL_MS, type HostMessage, type HostReply, type HostRequest } from '../host-protocol.ts';
import type { LogLine } from './function-instance.ts';
import { IsolatePool } from './isolate-pool.ts';
import { dropCachedResponses } from './response-cache.ts';
import { egressPolicy, parseEgressAllow, setEgressPolicy } from './egress.ts';
import { setBucketRpc, setStateRpc } from './isolate-slot.ts';
import { HttpPlane } from './http-plane.ts';
import { TelemetryTally } from '../invoke-telemetry.ts';

if (process.env.TRIBUTARY_HOST_CHANNEL_FD !== '3') {
  console.error('runtime/host/main.ts is started by the control plane, not by hand');
  process.exit(2);
}

// Outbound fetch may reach private ranges only where the operator allowed them (host/egress.ts).
setEgressPolicy(egressPolicy(parseEgressAllow(process.env.TRIBUTARY_EGRESS_ALLOW)));
const pool = new IsolatePool({ warmSlots: Number(process.env.TRIBUTARY_WARM_SLOTS ?? 6) });

async function handle(request: HostRequest, logs: LogLine[], bytes: number): Promise<{ value: unknown; coldStart: boolean }> {
  switch (request.op) {
    case 'validate':
      return { value: await pool.validate(request.spec, request.code), coldStart: false };
    case 'fetch':
      return pool.run(request.spec, 'fetch', request.request, logs, bytes);
    case 'process': {
      // The batch's isolate CPU time and whether it paid a cold start ride on its result, stamped
      // here (what a guest put there is overwritten).
      const ran = await pool.run(request.spec, 'process', request.batch, logs, bytes);
      const { coldStart: _guest, ...value } = ran.value;
      return { value: { ...value, cpuMs: ran.cpuMs, ...(ran.coldStart ? { coldStart: true } : {}) }, coldStart: ran.coldStart };
    }
    case 'unload':
      pool.unload(request.name, request.exceptKey);
      // A deleted function's cached responses go with it (a new deploy keeps them, as on Workers).
      if (request.exceptKey === undefined) dropCachedResponses(request.name);
      return { value: null, coldStart: false };
    case 'stateReply':
    case 'bucketReply':
      // Handled in receive(), never queued.
      return { value: null, coldStart: false };
    case 'unloadTag':
      pool.unloadTag(request.tag);
      return { value: null, coldStart: false };
    case 'stats':
      return { value: pool.stats, coldStart: false };
    case 'plane':
      plane.configure(request.config);
      return { value: null, coldStart: false };
    case 'routes':
      plane.setRoutes(request.replace, request.routes);
      return { value: null, coldStart: false };
  }
}

// The control plane going away (channel closed) means we go away: never leave orphaned isolates
// running. SIGKILL rather than process.exit: exit handlers wait on isolated-vm's threads, and a
// host whose control plane was kill -9'd was seen hanging there for good. It has nothing to flush.
const channel = new FramedChannel<HostMessage, HostRequest>(new Socket({ fd: 3, readable: true, writable: true }), receive, () => process.kill(process.pid, 'SIGKILL'));

// Invokes on connections the control plane handed over (runtime/host/http-plane.ts); their
// metrics and console lines go back as aggregated deltas.
const telemetry = new TelemetryTally((message) => {
  if (!channel.isClosed) channel.send(message);
});
const plane = new HttpPlane({ pool, telemetry });
process.on('message', (message: unknown, handle: unknown) => {
  if (message === 'conn' && handle !== undefined && handle !== null) plane.accept(handle as Socket);
});
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));

/**
 * Requests are started in arrival order, but one turn of the event loop starts them for at most
 * TURN_BUDGET_MS: a burst of calls that each take most of a slice must not keep timers (guest
 * timers, wall clocks, the heartbeat) from running. The rest start in the next turn; their
 * payload bytes count against MAX_QUEUED_BYTES_PER_HOST while they wait.
 */
const TURN_BUDGET_MS = 25;
const inbox: Array<{ request: HostRequest; bytes: number }> = [];
let inboxHead = 0;
let draining = false;

/** `env.STATE` calls waiting for the control plane's stateReply. */
const stateWaiters = new Map<number, (result: unknown) => void>();
let nextStateId = 1;
setStateRpc((fn, op, args) => {
  if (channel.isClosed) return Promise.resolve({ ok: false, error: { name: 'TypeError', message: 'ERR_UNAVAILABLE: the control plane is gone', code: 'ERR_UNAVAILABLE' } });
  const id = nextStateId++;
  return new Promise((resolve) => {
    stateWaiters.set(id, resolve);
    channel.send({ stateCall: true, id, fn, op, args });
  });
});

/** Bucket binding calls waiting for the control plane's bucketReply. */
const bucketWaiters = new Map<number, (result: unknown) => void>();
setBucketRpc((bindingsId, binding, op, args, limits) => {
  if (channel.isClosed) return Promise.resolve({ ok: false, error: { name: 'TypeError', message: 'ERR_S3_UNAVAILABLE: the control plane is gone', code: 'ERR_S3_UNAVAILABLE' } });
  const id = nextStateId++;
  return new Promise((resolve) => {
    bucketWaiters.set(id, resolve);
    channel.send({ bucketCall: true, id, bindingsId, binding, op, args, limits });
  });
});

function receive(request: HostRequest, bytes: number): void {
  if (request.op === 'bucketReply') {
    const waiter = bucketWaiters.get(request.id);
    bucketWaiters.delete(request.id);
    waiter?.(request.result);
    return;
  }
  if (request.op === 'stateReply') {
    const waiter = stateWaiters.get(request.id);
    stateWaiters.delete(request.id);
    waiter?.(request.result);
    return;
  }
  if ((request.op === 'fetch' || request.op === 'process') && !pool.reserveBytes(bytes, false)) {
    reply({ id: request.id, ok: false, error: pool.overloaded().toJSON(), logs: [], coldStart: false, stats: pool.stats });
    return;
  }
  inbox.push({ request, bytes });
  if (!draining) drain();
}

function drain(): void {
  draining = true;
  const started = performance.now();
  while (inboxHead < inbox.length) {
    if (performance.now() - started > TURN_BUDGET_MS) {
      if (inboxHead > 1024) {
        inbox.splice(0, inboxHead);
        inboxHead = 0;
      }
      setImmediate(drain);
      return;
    }
    const { request, bytes } = inbox[inboxHead++];
    if (request.op === 'fetch' || request.op === 'process') pool.releaseBytes(bytes);
    onRequest(request, bytes);
  }
  inbox.length = 0;
  inboxHead = 0;
  draining = false;
}

function onRequest(request: HostRequest, bytes: number): void {
  const logs: LogLine[] = [];
  pool.track(handle(request, logs, bytes)).then(
    ({ value, coldStart }) => reply({ id: request.id, ok: true, value, logs, coldStart, stats: pool.stats }),
    (error: unknown) => {
      const known = asTributaryError(error);
      if (known.code === 'ERR_INTERNAL') console.error('tributary host: internal error', error);
      reply({ id: request.id, ok: false, error: known.toJSON(), logs, coldStart: false, stats: pool.stats });
    },
  );
}

/** A reply that does not fit the channel fails its own call with ERR_TOO_LARGE; the host carries on. */
function reply(message: HostReply): void {
  try {
    channel.send(message);
  } catch (error) {
    if (channel.isClosed) return;
    const failure = error instanceof TributaryError && error.code === 'ERR_TOO_LARGE'
      ? new TributaryError('ERR_TOO_LARGE', `the function's result is too large to return: ${error.message}`)
      : asTributaryError(error);
    if (failure.code === 'ERR_INTERNAL') console.error('tributary host: cannot send a reply', error);
    channel.send({ id: message.id, ok: false, error: failure.toJSON(), logs: [], coldStart: message.coldStart, stats: pool.stats });
  }
}

await pool.start();
channel.send({ ready: true, pid: process.pid });

// The watchdog's evidence that this event loop turns (see HostBeat).
setInterval(() => {
  if (!channel.isClosed) channel.send({ beat: true, rssBytes: process.memoryUsage.rss(), connections: plane.connections });
}, HEARTBEAT_INTERVAL_MS);

/** How long a graceful stop lets requests in flight on this host's connections finish (the supervisor SIGKILLs after 3 s). */
const STOP_GRACE_MS = 2000;

// A graceful stop from the supervisor: finish the requests in flight, release the isolates, exit.
process.once('SIGTERM', () => {
  void plane.close(STOP_GRACE_MS).then(() => {
    telemetry.flush();
    pool.close();
    process.exit(0);
  });
});
