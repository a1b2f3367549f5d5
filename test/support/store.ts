/**
 * Embedded chDB stores for tests. chDB binds one data directory per process
 * and vitest runs each test file in its own process, so a file gets one
 * temporary directory and a fresh database in it per call.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrate } from '../../sql/migrate.ts';
import { openStore, type Store } from '../../storage/store.ts';

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `perpass-${prefix}-`));
}

let dataDir: string | undefined;

/** A migrated database `database` in this process's chDB directory. */
export async function freshStore(database = 'fleet'): Promise<Store> {
  dataDir ??= tempDir('chdb');
  const store = openStore({ dataDir, database });
  await migrate(store);
  return store;
}
