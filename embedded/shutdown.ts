/**
 * Hard ends of a bounded shutdown. What `fleet start` acknowledged is
 * fsynced in its durable queue, so ending the process at any instant loses
 * nothing; these make sure it does end when promised.
 */
import { Worker } from 'node:worker_threads';

/**
 * Ends the process now by `signal`'s default action: no exit handlers run.
 * process.exit() would run chDB's, which wait for its in-flight queries (and
 * were seen to hang).
 */
export function exitNow(signal: 'SIGINT' | 'SIGTERM'): never {
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
  process.kill(process.pid, 'SIGKILL'); // only if the default action was overridden
  throw new Error('unreachable');
}

/**
 * SIGKILLs this process after `ms` from a worker thread: a main thread busy
 * for seconds (deciding a large backlog, a blocking native call) cannot hold
 * the bound past it. The worker is unref'd: it never keeps the process up.
 */
export function startWatchdog(ms: number): void {
  const worker = new Worker(`setTimeout(() => process.kill(${process.pid}, 'SIGKILL'), ${Math.max(0, Math.floor(ms))});`, { eval: true });
  worker.unref();
}
