/** The StateStore contract over every implementation: the embedded store and S3 (a real S3 server). */
import { rmSync } from 'node:fs';
import { beforeAll } from 'vitest';
import { SqliteLog } from '../connectors/embedded/sqlite-log.ts';
import { Bucket } from '../connectors/s3/bucket.ts';
import { S3StateStore } from '../connectors/s3/s3-state-store.ts';
import { EmbeddedStateStore } from '../connectors/state/embedded-state-store.ts';
import { SERVICE_START_TIMEOUT_MS, ensureService } from '../scripts/services.ts';
import { createBucket } from './fixtures/s3.ts';
import { tempDir } from './fixtures/platform.ts';
import { stateStoreContract } from './state-store-contract.ts';

stateStoreContract('embedded', async () => {
  const dataDir = tempDir();
  const transport = new SqliteLog({ dataDir });
  return {
    transport,
    store: new EmbeddedStateStore(transport),
    reopen: async () => new EmbeddedStateStore(transport),
    async cleanup() {
      transport.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});

beforeAll(() => ensureService('s3'), SERVICE_START_TIMEOUT_MS);

stateStoreContract('s3', async () => {
  const dataDir = tempDir();
  const transport = new SqliteLog({ dataDir });
  const bucket = await Bucket.open(await createBucket());
  const stores: S3StateStore[] = [await S3StateStore.open({ bucket, transport })];
  return {
    transport,
    store: stores[0],
    async reopen() {
      const store = await S3StateStore.open({ bucket, transport });
      stores.push(store);
      return store;
    },
    async cleanup() {
      for (const store of stores) await store.close();
      bucket.close();
      transport.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
});
