/**
 * perpass processes for end-to-end tests: `node bin/fleet.js …` (or any node
 * script, or any program) as a child process whose output is kept, so a test
 * can wait for a log line and show the tail when something goes wrong.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Child {
  readonly proc: ChildProcess;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
  /** Waits until its output matches `pattern` and returns the match. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal) once it has exited. */
  exited: Promise<number | NodeJS.Signals>;
  kill(signal?: NodeJS.Signals): Promise<number | NodeJS.Signals>;
}

/** Children still running; killed when the test process exits, so a failed test leaves none behind. */
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

export const startNode = (script: string, args: string[], env: NodeJS.ProcessEnv = {}): Child =>
  startProcess(process.execPath, [path.join(ROOT, script), ...args], { NODE_ENV: 'production', ...env }, `${path.basename(script)} ${args.slice(0, 1).join(' ')}`);

/** `command args` in the repository root, with `env` over this process's environment; `name` labels its errors. */
export function startProcess(command: string, args: string[], env: NodeJS.ProcessEnv = {}, name = path.basename(command)): Child {
  const proc = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (chunk: Buffer) => {
    out += chunk.toString();
    if (out.length > 2_000_000) out = out.slice(-1_000_000);
    for (const l of listeners) l();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  running.add(proc);
  const exited = new Promise<number | NodeJS.Signals>((resolve) =>
    proc.once('exit', (code, signal) => {
      running.delete(proc);
      resolve(code ?? signal ?? -1);
    }),
  );
  return {
    proc,
    output: () => out,
    exited,
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(pattern);
          if (m) {
            cleanup();
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${name}: no ${pattern} within ${timeoutMs} ms; output tail:\n${out.slice(-3000)}`));
        }, timeoutMs);
        const onExit = (code: number | NodeJS.Signals) => {
          cleanup();
          if (!out.match(pattern)) reject(new Error(`${name} exited (${code}) before ${pattern}; output tail:\n${out.slice(-3000)}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          listeners.delete(check);
        };
        listeners.add(check);
        void exited.then(onExit);
        check();
      });
    },
    async kill(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}

/**
 * `fleet …` as a child. `start` and `collector` get `--grpc-port 0` unless the
 * test names one: the default 4317 would collide between test files running at once.
 */
export const startFleet = (args: string[], env: NodeJS.ProcessEnv = {}): Child => {
  const receives = (args[0] === 'start' || args[0] === 'collector') && !args.includes('--grpc-port');
  return startNode('bin/fleet.js', receives ? [...args, '--grpc-port', '0'] : args, env);
};
