/**
 * The store's spool: binary INSERT data reaches chDB through a file its
 * `INSERT … FROM INFILE` reads (chDB's raw insert takes text formats only),
 * written in `<data-dir>/insert-spool/` and removed once the insert
 * returned; what a crash left there is removed when the store opens.
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import path from 'node:path';

const spoolOf = (dataDir: string) => path.join(dataDir, 'insert-spool');

/** Empties the spool of `dataDir` (when the store opens: no insert of this process can be using it yet). */
export function clearSpool(dataDir: string): void {
  rmSync(spoolOf(dataDir), { recursive: true, force: true });
  mkdirSync(spoolOf(dataDir), { mode: 0o700 });
}

/** Writes `chunks` to a new spool file named after `label`, runs `insert` with its path, then removes it. */
export async function withSpoolFile<T>(dataDir: string, label: string, chunks: readonly Uint8Array[], insert: (file: string) => Promise<T>): Promise<T> {
  await mkdir(spoolOf(dataDir), { recursive: true, mode: 0o700 });
  const file = path.join(spoolOf(dataDir), `${label}-${randomUUID()}.bin`);
  // wx: never through a file or link already there; 0600: the rows are the store's, not the host's users'
  const handle = await open(file, 'wx', 0o600);
  try {
    await handle.writev(chunks as Uint8Array[]);
  } finally {
    await handle.close();
  }
  try {
    return await insert(file);
  } finally {
    await rm(file, { force: true });
  }
}
