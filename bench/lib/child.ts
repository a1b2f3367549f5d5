/**
 * Child processes of a benchmark: perpass commands (`node bin/fleet.js …`)
 * and the benchmark's own helper processes, with their JSON-line events.
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startNode, type Child } from '../../test/support/processes.ts';
import { ROOT } from './kafka.ts';

export type { Child };

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Write a V8 CPU profile (.cpuprofile) into this directory when the process exits. */
  cpuProfDir?: string;
}

const QUIET_ENV = { KAFKAJS_NO_PARTITIONER_WARNING: '1', NODE_NO_WARNINGS: '1' };

export function spawnNode(script: string, args: string[], o: SpawnOptions = {}): Child {
  const env: NodeJS.ProcessEnv = { ...QUIET_ENV, ...o.env };
  if (o.cpuProfDir) {
    mkdirSync(o.cpuProfDir, { recursive: true });
    env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --cpu-prof --cpu-prof-dir=${o.cpuProfDir}`.trim();
  }
  return startNode(script, args, env);
}

/** `fleet …`; `start` and `collector` get `--grpc-port 0` unless given one, so parallel processes never collide on 4317. */
export const spawnFleet = (args: string[], o: SpawnOptions = {}): Child => {
  const receives = (args[0] === 'start' || args[0] === 'collector') && !args.includes('--grpc-port');
  return spawnNode('bin/fleet.js', receives ? [...args, '--grpc-port', '0'] : args, o);
};

/** Waits for the JSON line `{"event":"<name>",…}` (the first one after `after` characters of output) and parses it. */
export async function event<T = Record<string, unknown>>(child: Child, name: string, timeoutMs = 120_000): Promise<T> {
  const m = await child.waitFor(new RegExp(`^\\{"event":"${name}".*\\}$`, 'm'), timeoutMs);
  return JSON.parse(m[0]) as T;
}

/** Every JSON event line named `name` seen so far. */
export function events<T = Record<string, unknown>>(child: Child, name: string): T[] {
  return child
    .output()
    .split('\n')
    .filter((l) => l.startsWith(`{"event":"${name}"`))
    .map((l) => JSON.parse(l) as T);
}

/** SIGTERM, then SIGKILL after `graceMs`. */
export async function stop(child: Child | undefined, graceMs = 20_000): Promise<void> {
  if (!child) return;
  const timer = setTimeout(() => child.proc.kill('SIGKILL'), graceMs);
  await child.kill('SIGTERM');
  clearTimeout(timer);
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), `perpass-bench-${prefix}-`));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The newest .cpuprofile in a directory. */
export function newestProfile(dir: string): string | undefined {
  const files = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile')).sort();
  return files.length ? path.join(dir, files.at(-1)!) : undefined;
}

export const profilesDir = (name: string): string => path.join(ROOT, 'bench/results/profiles', `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}`);
