/**
 * Entry point of a host process: owns an IsolatePool and answers the control plane's requests.
 * Run only by HostSupervisor, with --no-node-snapshot (isolated-vm needs it on Node >= 20).
 */
import { Socket } from 'node:net';
import { asTributaryError } from '../errors.ts';
import { FramedChannel } from '../framed-channel.ts';
import type { HostReady, HostReply, HostRequest } from '../host-protocol.ts';
import type { LogLine } from './function-instance.ts';
import { IsolatePool } from './isolate-pool.ts';

if (process.env.TRIBUTARY_HOST_CHANNEL_FD !== '3') {
  console.error('runtime/host/main.ts is started by the control plane, not by hand');
  process.exit(2);
}

const pool = new IsolatePool({ warmSlots: Number(process.env.TRIBUTARY_WARM_SLOTS ?? 6) });

async function handle(request: HostRequest, logs: LogLine[]): Promise<{ value: unknown; coldStart: boolean }> {
  switch (request.op) {
    case 'validate':
      return { value: await pool.validate(request.spec, request.code), coldStart: false };
    case 'fetch': {
      const { instance, coldStart } = await pool.acquire(request.spec, logs);
      return { value: await instance.fetch(request.request, logs), coldStart };
    }
    case 'process': {
      const { instance, coldStart } = await pool.acquire(request.spec, logs);
      return { value: await instance.process(request.batch, logs), coldStart };
    }
    case 'unload':
      pool.unload(request.name, request.exceptKey);
      return { value: null, coldStart: false };
    case 'unloadTag':
      pool.unloadTag(request.tag);
      return { value: null, coldStart: false };
    case 'stats':
      return { value: pool.stats, coldStart: false };
  }
}

// The control plane going away (channel closed) means we go away: never leave orphaned isolates running.
const channel = new FramedChannel<HostReply | HostReady, HostRequest>(new Socket({ fd: 3, readable: true, writable: true }), onRequest, () => process.exit(0));

function onRequest(request: HostRequest): void {
  const logs: LogLine[] = [];
  pool.track(handle(request, logs)).then(
    ({ value, coldStart }) => channel.send({ id: request.id, ok: true, value, logs, coldStart, stats: pool.stats }),
    (error: unknown) => {
      const known = asTributaryError(error);
      if (known.code === 'ERR_INTERNAL') console.error('tributary host: internal error', error);
      channel.send({ id: request.id, ok: false, error: known.toJSON(), logs, coldStart: false, stats: pool.stats });
    },
  );
}

await pool.start();
channel.send({ ready: true, pid: process.pid });

// A graceful stop from the supervisor: release the isolates and exit normally.
process.once('SIGTERM', () => {
  pool.close();
  process.exit(0);
});
