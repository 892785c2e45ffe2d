/**
 * The reference StateStore: state rows in the transport's own database (the embedded log's
 * `state` table), written by the batch's transaction itself. Nothing is staged and nothing is
 * published afterwards, so it is trivially exactly-once and costs no I/O beyond the commit.
 */
import type { StateWrite, Transport } from '../transport.ts';
import type { StagedState, StateBatch, StateStore } from './state-store.ts';

const NOTHING_TO_DO = () => {};

export class EmbeddedStateStore implements StateStore {
  readonly kind = 'embedded';
  private readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
  }

  snapshot(namespace: string, partition: number): Promise<StateWrite[]> {
    return Promise.resolve(this.transport.stateSnapshot(namespace, partition));
  }

  stage(batch: StateBatch): Promise<StagedState> {
    const entry = { namespace: batch.namespace, partition: batch.partition, writes: batch.writes };
    return Promise.resolve({ seal: () => [entry], committed: NOTHING_TO_DO, aborted: NOTHING_TO_DO });
  }

  deleteNamespaces(prefix: string): Promise<void> {
    this.transport.deleteState(prefix);
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
