/**
 * SIGKILLs a process at the moment it is in a given phase, watching it from
 * outside (a separate process, so the watcher's tight loop never stalls the
 * test's client):
 *
 * - `fsync`: one of its threads is inside fdatasync/fsync on a file under
 *   `dir` (read from /proc/<pid>/task/<tid>/syscall and the fd's link);
 * - `insert`: chDB is writing a part (a `tmp_insert_*` directory exists in a
 *   table directory under `dir`, the data directory).
 *
 * Prints one JSON line: { landed: true, evidence } once killed in the phase,
 * or { landed: false } if the phase was not seen within `timeoutMs` (the
 * process is then left running).
 *   node test/support/kill-in-phase.ts <pid> <fsync|insert> <dir> <timeoutMs>
 */
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { arch } from 'node:os';
import path from 'node:path';

const [pidArg, phase, dir, timeoutArg] = process.argv.slice(2);
const pid = Number(pidArg);
if (!Number.isSafeInteger(pid) || (phase !== 'fsync' && phase !== 'insert') || !dir || !timeoutArg) {
  throw new Error('usage: kill-in-phase.ts <pid> <fsync|insert> <dir> <timeoutMs>');
}
const until = Date.now() + Number(timeoutArg);

/** fsync and fdatasync syscall numbers of this architecture. */
const SYNC_CALLS: Record<string, number[]> = { x64: [74, 75], arm64: [82, 83] };
const syncCalls = SYNC_CALLS[arch()];
if (!syncCalls) throw new Error(`kill-in-phase: no syscall numbers for ${arch()}`);

function inFsync(): string | undefined {
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let line: string;
    try {
      line = readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8');
    } catch {
      continue; // the thread ended
    }
    const [nr, fdArg] = line.split(' ');
    if (!syncCalls!.includes(Number(nr)) || !fdArg) continue;
    try {
      const file = readlinkSync(`/proc/${pid}/fd/${Number.parseInt(fdArg, 16)}`);
      if (file.startsWith(dir!)) return `thread ${tid} in syscall ${nr} on ${file}`;
    } catch {
      // the fd closed meanwhile
    }
  }
  return undefined;
}

/** Table directories of an Atomic database: <data>/store/<xxx>/<uuid>/. */
function tableDirs(): string[] {
  const store = path.join(dir!, 'store');
  const out: string[] = [];
  for (const a of readdirSync(store)) for (const b of readdirSync(path.join(store, a))) out.push(path.join(store, a, b));
  return out.filter((d) => statSync(d).isDirectory());
}

const tmpParts = (t: string): string[] => {
  try {
    return readdirSync(t).filter((n) => n.startsWith('tmp_insert_'));
  } catch {
    return [];
  }
};

/** A part being written now: a tmp_insert_* directory that was not there when watching began (a killed process leaves its own behind). */
function inInsert(tables: string[], before: Set<string>): string | undefined {
  for (const t of tables) {
    const tmp = tmpParts(t).find((n) => !before.has(path.join(t, n)));
    if (tmp) return path.join(t, tmp);
  }
  return undefined;
}

const tables = phase === 'insert' ? tableDirs() : [];
const before = new Set(tables.flatMap((t) => tmpParts(t).map((n) => path.join(t, n))));
let evidence: string | undefined;
while (Date.now() < until && !evidence) evidence = phase === 'fsync' ? inFsync() : inInsert(tables, before);
if (evidence) process.kill(pid, 'SIGKILL');
process.stdout.write(`${JSON.stringify(evidence ? { landed: true, evidence } : { landed: false })}\n`);
