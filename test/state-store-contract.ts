/**
 * The StateStore contract (connectors/state/state-store.ts), one suite for every implementation:
 * state-store-contract.test.ts runs it over the embedded store and over S3.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { emptyCommitSet, type StateWrite, type Transport } from '../connectors/transport.ts';
import type { StateStore } from '../connectors/state/state-store.ts';

export interface StateStoreFixture {
  transport: Transport;
  store: StateStore;
  /**
   * A new store over the same log and storage, as after a kill -9: the old one is abandoned, not
   * closed. Must run its recovery before resolving.
   */
  reopen(): Promise<StateStore>;
  cleanup(): Promise<void>;
}

/** The 1 MiB per-value ceiling env.STATE enforces (runtime/guest/state-binding.ts). */
const MAX_VALUE_BYTES = 1024 * 1024;

let epoch = 1;

/** Stages, seals and commits one batch the way a partition task does; `notify: false` = crash right after the commit. */
async function commitBatch(f: StateStoreFixture, store: StateStore, namespace: string, partition: number, writes: StateWrite[], notify = true) {
  const staged = await store.stage({ namespace, partition, epoch: epoch++, writes });
  const set = emptyCommitSet();
  set.state.push(...staged.seal());
  f.transport.commit(set);
  if (notify) staged.committed();
}

async function snapshot(store: StateStore, namespace: string, partition: number): Promise<Record<string, string | Uint8Array>> {
  const rows = await store.snapshot(namespace, partition);
  return Object.fromEntries(rows.map((r) => [r.key, r.value!]));
}

const put = (key: string, value: string | Uint8Array | null): StateWrite => ({ key, value });

export function stateStoreContract(name: string, open: () => Promise<StateStoreFixture>): void {
  describe(`StateStore contract: ${name}`, () => {
    let f: StateStoreFixture;
    const ns = (id: string) => `g-${id}/count`;

    afterEach(async () => {
      await f?.cleanup();
    });

    it('starts empty, and shows a committed batch: strings as strings, bytes as bytes, deletes gone', async () => {
      f = await open();
      expect(await f.store.snapshot(ns('a'), 0)).toEqual([]);
      await commitBatch(f, f.store, ns('a'), 0, [put('word', '1'), put('bin', new Uint8Array([0, 255, 10, 13])), put('gone', 'x')]);
      await commitBatch(f, f.store, ns('a'), 0, [put('gone', null), put('word', '2')]);
      const state = await f.store.snapshot(ns('a'), 0);
      expect(state.map((w) => w.key)).toEqual(['bin', 'word']);
      const byKey = Object.fromEntries(state.map((w) => [w.key, w.value]));
      expect(byKey.word).toBe('2');
      expect(byKey.bin).toBeInstanceOf(Uint8Array);
      expect([...(byKey.bin as Uint8Array)]).toEqual([0, 255, 10, 13]);
    });

    it('never shows the writes of a batch whose transaction did not commit', async () => {
      f = await open();
      await commitBatch(f, f.store, ns('b'), 0, [put('k', 'committed')]);
      // Abandoned before sealing (partition task stopped mid-batch).
      const abandoned = await f.store.stage({ namespace: ns('b'), partition: 0, epoch: epoch++, writes: [put('k', 'abandoned'), put('extra', 'x')] });
      abandoned.aborted();
      // Sealed, but the transaction never committed (it threw, or the process died before it).
      const failed = await f.store.stage({ namespace: ns('b'), partition: 0, epoch: epoch++, writes: [put('k', 'rolled back')] });
      failed.seal();
      failed.aborted();
      expect(await snapshot(f.store, ns('b'), 0)).toEqual({ k: 'committed' });
      const reopened = await f.reopen();
      expect(await snapshot(reopened, ns('b'), 0)).toEqual({ k: 'committed' });
    });

    it('keeps namespaces and partitions apart', async () => {
      f = await open();
      await commitBatch(f, f.store, 'g1/count', 0, [put('k', 'g1 p0')]);
      await commitBatch(f, f.store, 'g1/count', 1, [put('k', 'g1 p1')]);
      await commitBatch(f, f.store, 'g1/other', 0, [put('k', 'other node')]);
      await commitBatch(f, f.store, 'g10/count', 0, [put('k', 'g10')]);
      expect(await snapshot(f.store, 'g1/count', 0)).toEqual({ k: 'g1 p0' });
      expect(await snapshot(f.store, 'g1/count', 1)).toEqual({ k: 'g1 p1' });
      expect(await snapshot(f.store, 'g1/other', 0)).toEqual({ k: 'other node' });
      expect(await snapshot(f.store, 'g1/count', 2)).toEqual({});
      // Deleting graph g1's state leaves g10's (a prefix of the name, not of the namespace).
      await f.store.deleteNamespaces('g1/');
      expect(await snapshot(f.store, 'g1/count', 0)).toEqual({});
      expect(await snapshot(f.store, 'g1/other', 0)).toEqual({});
      expect(await snapshot(f.store, 'g10/count', 0)).toEqual({ k: 'g10' });
      const reopened = await f.reopen();
      expect(await snapshot(reopened, 'g1/count', 1)).toEqual({});
      expect(await snapshot(reopened, 'g10/count', 0)).toEqual({ k: 'g10' });
    });

    it('applies batches in the order they were sealed, whatever order they were staged in', async () => {
      f = await open();
      const first = await f.store.stage({ namespace: ns('c'), partition: 0, epoch: epoch++, writes: [put('k', 'staged first, sealed last')] });
      const second = await f.store.stage({ namespace: ns('c'), partition: 0, epoch: epoch++, writes: [put('k', 'staged second, sealed first'), put('j', 'j')] });
      for (const staged of [second, first]) {
        const set = emptyCommitSet();
        set.state.push(...staged.seal());
        f.transport.commit(set);
        staged.committed();
      }
      expect(await snapshot(f.store, ns('c'), 0)).toEqual({ k: 'staged first, sealed last', j: 'j' });
    });

    it('recovers batches committed just before a crash, idempotently', async () => {
      f = await open();
      await commitBatch(f, f.store, ns('d'), 3, [put('count', '1'), put('seen', 'a')]);
      // Crash between the log transaction and anything after it, twice in a row.
      await commitBatch(f, f.store, ns('d'), 3, [put('count', '2'), put('seen', null)], false);
      await commitBatch(f, f.store, ns('d'), 3, [put('count', '3')], false);
      const once = await f.reopen();
      expect(await snapshot(once, ns('d'), 3)).toEqual({ count: '3' });
      // Recovering again (another crash before anything new) changes nothing.
      const twice = await f.reopen();
      expect(await snapshot(twice, ns('d'), 3)).toEqual({ count: '3' });
      await commitBatch(f, twice, ns('d'), 3, [put('count', '4')]);
      expect(await snapshot(twice, ns('d'), 3)).toEqual({ count: '4' });
      // And once more after new work on the recovered store.
      await commitBatch(f, twice, ns('d'), 3, [put('count', '5')], false);
      const third = await f.reopen();
      expect(await snapshot(third, ns('d'), 3)).toEqual({ count: '5' });
    });

    it('round-trips values up to the 1 MiB limit and keys of any shape up to 1024 characters', async () => {
      f = await open();
      const bigText = 'é'.repeat(MAX_VALUE_BYTES / 2); // 1 MiB of UTF-8
      const bigBytes = new Uint8Array(MAX_VALUE_BYTES).map((_, i) => (i * 7) & 0xff);
      const keys = ['a/b/../c', '.', '..', '~tilde', 'ключ 🔑', 'x'.repeat(1024), 'y'.repeat(200), 'y'.repeat(201), 'Case', 'case', ' spaced '];
      const writes = [put('big-text', bigText), put('big-bytes', bigBytes), ...keys.map((k, i) => put(k, `v${i}`))];
      await commitBatch(f, f.store, ns('e'), 0, writes);
      const state = await snapshot(f.store, ns('e'), 0);
      expect(Object.keys(state).sort()).toEqual(['big-bytes', 'big-text', ...keys].sort());
      expect(state['big-text']).toBe(bigText);
      expect(Buffer.from(state['big-bytes'] as Uint8Array).equals(Buffer.from(bigBytes))).toBe(true);
      keys.forEach((k, i) => expect(state[k], k).toBe(`v${i}`));
    });

    it('holds partitions larger than one S3 listing page (1000 keys)', async () => {
      f = await open();
      const writes = Array.from({ length: 1100 }, (_, i) => put(`key-${String(i).padStart(4, '0')}`, String(i)));
      await commitBatch(f, f.store, ns('f'), 0, writes);
      const state = await f.store.snapshot(ns('f'), 0);
      expect(state.length).toBe(1100);
      expect(state[1099]).toEqual({ key: 'key-1099', value: '1099' });
    }, 60_000);
  });
}
