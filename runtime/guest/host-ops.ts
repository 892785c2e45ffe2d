/**
 * Asynchronous host operations (crypto.subtle today): the guest asks with `host.startOp`, the
 * host does the work off the isolate and enters the guest again with `completeOp(id, outcome)`,
 * as it does for timers. Operations live as long as the invocation that started them: the host
 * drops late outcomes, and the guest forgets the pending operations of finished invocations as
 * soon as a later one starts one (like timers.ts).
 */
import type { HostRefs } from './host-refs.ts';
import { MapPrototypeDelete, MapPrototypeGet, MapPrototypeSet, ObjectSetPrototypeOf, SafeMap, SafePromise, SafeRangeError, SafeTypeError } from './primordials.ts';

export type OpOutcome = { ok: true; value: unknown } | { ok: false; error: { name: string; message: string } };

interface Pending {
  resolve: (outcome: OpOutcome) => void;
}

export interface HostOps {
  /** Resolves with the host's outcome (never rejects): the caller maps failures to its own errors. */
  run(kind: 'subtle' | 'fetch' | 'zlib' | 'state' | 'cache' | 'bucket' | 'respond' | 'write', payload: unknown): Promise<OpOutcome>;
  complete(id: number, outcome: OpOutcome): void;
}

export function createHostOps(host: HostRefs): HostOps {
  let pending = new SafeMap<number, Pending>();
  let epoch = 0;
  let nextId = 1;
  return {
    run(kind, payload) {
      const id = nextId++;
      const armedBy = host.startOp.applySync(undefined, [id, kind, payload], { arguments: { copy: true } }) as number;
      if (armedBy === -1) throw new SafeRangeError('too many host operations (crypto.subtle, fetch, compression) pending in this invocation');
      if (armedBy === -2) throw new SafeRangeError('ERR_OVERLOADED: host operations (crypto.subtle, fetch, compression) pending in this invocation or on this host hold too many bytes; await some first');
      if (typeof armedBy !== 'number' || armedBy <= 0) throw new SafeTypeError(`${kind === 'fetch' ? 'fetch()' : kind === 'zlib' ? 'CompressionStream' : kind === 'state' ? 'env.STATE in fetch' : kind === 'cache' ? 'The Cache API' : kind === 'bucket' ? 'A bucket binding' : kind === 'respond' || kind === 'write' ? 'A streamed response' : 'crypto.subtle'} is only available while a request is being handled`);
      if (armedBy !== epoch) {
        pending = new SafeMap<number, Pending>();
        epoch = armedBy;
      }
      // The host never completes an operation before this call returns (it defers to its next
      // turn), so the entry is in place when the outcome arrives.
      let resolve!: (outcome: OpOutcome) => void;
      const promise = new SafePromise<OpOutcome>((r) => (resolve = r));
      MapPrototypeSet(pending, id, { resolve });
      return promise;
    },
    complete(id, outcome) {
      const entry = MapPrototypeGet(pending, id);
      if (entry === undefined) return;
      MapPrototypeDelete(pending, id);
      // Without a prototype, resolving with it cannot reach a `then` planted on Object.prototype.
      ObjectSetPrototypeOf(outcome, null);
      entry.resolve(outcome);
    },
  };
}
