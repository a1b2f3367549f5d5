/** A fresh embedded chDB store per test file (vitest runs each file in its own process). */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrate } from '../../sql/migrate.ts';
import { openStore, type Store } from '../../storage/store.ts';

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), `perpass-${prefix}-`));
}

export async function freshStore(prefix = 'store', database = 'fleet'): Promise<Store> {
  const store = openStore({ dataDir: tempDir(prefix), database });
  await migrate(store);
  return store;
}
