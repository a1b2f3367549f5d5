/**
 * The running `fleet start` that owns an embedded store. chDB lets one
 * process open a data directory, so while `fleet start` runs, the other
 * `fleet` commands reach the store through its query endpoint. It writes
 * where that endpoint is into the directory (one small JSON file; ClickHouse
 * ignores files it does not know) and removes it when it stops, so
 * `fleet report` finds it whatever --query-port it was started with.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';

const FILE = 'perpass-owner.json';

const OwnerSchema = z.object({
  pid: z.number().int().positive(),
  /** Base URL of its query endpoint. */
  queryUrl: z.url(),
  /** Whether its query endpoint accepts the writer (--query-write-token). */
  writeMode: z.boolean(),
  startedAt: z.string(),
});
export type StoreOwner = z.infer<typeof OwnerSchema>;

const ownerFile = (dataDir: string) => path.join(path.resolve(dataDir), FILE);

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Records this process as the owner of `dataDir`; the returned function removes the record (if still ours). */
export function announceOwner(dataDir: string, owner: Omit<StoreOwner, 'pid' | 'startedAt'>): () => void {
  const file = ownerFile(dataDir);
  const record: StoreOwner = { pid: process.pid, startedAt: new Date().toISOString(), ...owner };
  writeFileSync(file, `${JSON.stringify(record)}\n`);
  return () => {
    if (findOwner(dataDir)?.pid === process.pid) rmSync(file, { force: true });
  };
}

/** The live `fleet start` owning `dataDir`, if any (a record left by a killed one is ignored). */
export function findOwner(dataDir: string): StoreOwner | undefined {
  let text: string;
  try {
    text = readFileSync(ownerFile(dataDir), 'utf8');
  } catch {
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return undefined;
  }
  const parsed = OwnerSchema.safeParse(json);
  return parsed.success && alive(parsed.data.pid) ? parsed.data : undefined;
}

/**
 * Takes the durable queue directory `dir` for this process: two processes
 * appending to one log would interleave records. A lock left by a killed
 * process is taken over. Returns the release function.
 */
export function lockQueue(dir: string): () => void {
  const file = path.join(dir, 'owner.pid');
  mkdirSync(dir, { recursive: true });
  for (;;) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx' });
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(file, 'utf8').trim());
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
        throw new Error(`the durable queue ${dir} is in use by PID ${pid} (another fleet start on the same --data-dir); give this one its own --data-dir`);
      }
      rmSync(file, { force: true });
    }
  }
  return () => {
    try {
      if (Number(readFileSync(file, 'utf8').trim()) === process.pid) rmSync(file, { force: true });
    } catch {
      // already gone
    }
  };
}

/** The PID ClickHouse wrote into the directory's `status` file when the process holding its lock is alive. */
export function lockHolder(dataDir: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path.join(path.resolve(dataDir), 'status'), 'utf8');
  } catch {
    return undefined;
  }
  const pid = Number(/^PID: (\d+)$/m.exec(text)?.[1]);
  return Number.isSafeInteger(pid) && pid !== process.pid && alive(pid) ? pid : undefined;
}
