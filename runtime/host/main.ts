/**
 * Entry point of a host process: owns an IsolatePool and answers the control plane's requests.
 * Run only by HostSupervisor, with --no-node-snapshot (isolated-vm needs it on Node >= 20).
 */
import { asTributaryError } from '../errors.ts';
import type { HostReady, HostReply, HostRequest } from '../host-protocol.ts';
import type { LogLine } from './function-instance.ts';
import { IsolatePool } from './isolate-pool.ts';

if (!process.send) {
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
      return { value: await instance.process(request.records, logs), coldStart };
    }
    case 'unload':
      pool.unload(request.name, request.exceptKey);
      return { value: null, coldStart: false };
    case 'stats':
      return { value: pool.stats, coldStart: false };
  }
}

process.on('message', (request: HostRequest) => {
  const logs: LogLine[] = [];
  pool.track(handle(request, logs)).then(
    ({ value, coldStart }) => reply({ id: request.id, ok: true, value, logs, coldStart, stats: pool.stats }),
    (error: unknown) => reply({ id: request.id, ok: false, error: asTributaryError(error).toJSON(), logs, coldStart: false, stats: pool.stats }),
  );
});

function reply(message: HostReply): void {
  process.send!(message);
}

// The control plane going away means we go away: never leave orphaned isolates running.
process.on('disconnect', () => process.exit(0));

await pool.start();
process.send({ ready: true, pid: process.pid } satisfies HostReady);
