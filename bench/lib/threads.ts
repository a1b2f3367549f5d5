/**
 * CPU time of this process per thread name (Linux, /proc/self/task/<tid>/schedstat,
 * nanoseconds on CPU): which part of a process a cost is in — the
 * JavaScript thread, V8's helper threads (garbage collection, compilation),
 * libuv's pool, chDB's query and merge threads. Numbers in a thread's name
 * are dropped, so a pool's threads add up. A thread that exits between two
 * readings is not counted.
 */
import { readdirSync, readFileSync } from 'node:fs';

export function cpuByThread(): Map<string, number> {
  const byName = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const name = readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim().replace(/[\d:]+$/, '');
      const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      byName.set(name, (byName.get(name) ?? 0) + ns);
    } catch {
      // the thread exited while being read
    }
  }
  return byName;
}

/** Microseconds of CPU per unit of work (e.g. per span) by thread name since `before`, largest first, under 0.05 left out. */
export function cpuByThreadSince(before: Map<string, number>, units: number): Record<string, number> {
  const out: Array<[string, number]> = [];
  for (const [name, ns] of cpuByThread()) {
    const us = (ns - (before.get(name) ?? 0)) / 1000 / units;
    if (us >= 0.05) out.push([name, Math.round(us * 10) / 10]);
  }
  return Object.fromEntries(out.sort((a, b) => b[1] - a[1]));
}
