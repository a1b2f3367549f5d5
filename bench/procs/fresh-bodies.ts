/**
 * Fresh request bodies (new traces in every one) made on a worker thread,
 * ahead of need. Planning 2,000 attempts takes 60–140 ms of synchronous
 * work: done on the load generator's own thread, it delayed the answers
 * that arrived meanwhile and so inflated the latencies it measured.
 */
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import zlib from 'node:zlib';
import { encode, exportRequests, planAttempts } from '../lib/traffic.ts';

interface Config {
  seed: number;
  spansPerRequest: number;
  gzip: boolean;
}

/** Endless fresh traffic: plans of 2000 attempts, each with a seed of its own, starting now. */
function* freshBodies(c: Config): Generator<Uint8Array> {
  for (let chunk = 0; ; chunk++) {
    const plan = planAttempts({ attempts: 2000, seed: c.seed * 100_000 + chunk, tenant: 'bench-load', startNs: BigInt(Date.now()) * 1_000_000n });
    for (const r of exportRequests(plan, { spansPerRequest: c.spansPerRequest })) {
      const raw = encode(r);
      yield c.gzip ? zlib.gzipSync(raw) : raw;
    }
  }
}

if (!isMainThread && workerData?.freshBodies) {
  const bodies = freshBodies(workerData.freshBodies as Config);
  parentPort!.on('message', (want: number) => {
    // copies that own their memory, so they can be transferred
    const out = Array.from({ length: want }, () => new Uint8Array(bodies.next().value!));
    parentPort!.postMessage(out, out.map((b) => b.buffer));
  });
}

/** Bodies kept ready on the worker's side of the queue: `ahead` of them, refilled in batches. */
export class FreshBodies {
  private readonly ready: Buffer[] = [];
  private readonly waiters: ((b: Buffer) => void)[] = [];
  private requested = 0;
  private readonly worker: Worker;
  /** Times take() found nothing ready (the worker fell behind). */
  underruns = 0;

  private readonly ahead: number;

  constructor(config: Config, ahead = 256) {
    this.ahead = ahead;
    this.worker = new Worker(new URL(import.meta.url), { workerData: { freshBodies: config } });
    this.worker.unref();
    this.worker.on('message', (bodies: Uint8Array[]) => {
      this.requested -= bodies.length;
      for (const b of bodies) {
        const body = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
        const waiter = this.waiters.shift();
        if (waiter) waiter(body);
        else this.ready.push(body);
      }
      this.refill();
    });
    this.worker.on('error', (err: Error) => {
      process.stderr.write(`fresh-bodies worker failed: ${err.stack ?? err.message}\n`);
      process.exit(1);
    });
    this.refill();
  }

  /** Resolves once `ahead` bodies are ready (before the load starts). */
  async filled(): Promise<void> {
    while (this.ready.length < this.ahead) await new Promise((r) => setTimeout(r, 20));
  }

  /** A body now, or undefined (counted) when none is ready. */
  poll(): Buffer | undefined {
    const b = this.ready.shift();
    if (!b) this.underruns++;
    this.refill();
    return b;
  }

  /** A body, waiting for one if none is ready. */
  take(): Promise<Buffer> {
    const b = this.ready.shift();
    this.refill();
    if (b) return Promise.resolve(b);
    this.underruns++;
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private refill(): void {
    const missing = this.ahead - this.ready.length - this.requested + this.waiters.length;
    // in batches of 16, so the worker is not asked for bodies one message at a time
    if (missing >= 16) {
      this.requested += missing;
      this.worker.postMessage(missing);
    }
  }
}
