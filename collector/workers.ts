/**
 * The ingest pool: large bodies are decoded, validated and split on worker
 * threads, so a 50 MiB request never holds the event loop (and with it
 * /healthz and every other client) for seconds. Small bodies are prepared
 * inline, where a worker's round trip would cost more than the work.
 * Requests queue for a free worker; how many are waiting is bounded by the
 * in-flight budget, since each holds its body's bytes.
 */
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { OtlpDecodeError } from '../otlp/codec.ts';
import { prepareRequest, type IngestInput, type IngestResult } from './ingest.ts';
import type { WorkerReply, WorkerRequest } from './ingest-worker.ts';
import { RequestTooLargeError } from './limits.ts';

interface Job {
  id: number;
  input: IngestInput;
  resolve: (r: IngestResult) => void;
  reject: (e: Error) => void;
}

interface Slot {
  worker: Worker;
  job?: Job | undefined;
}

const WORKER_URL = new URL('./ingest-worker.ts', import.meta.url);

export class IngestPool {
  /** Bodies of at least this many bytes go to a worker. */
  readonly inlineBelowBytes: number;
  private readonly size: number;
  private readonly slots: Slot[] = [];
  private readonly waiting: Job[] = [];
  private nextId = 0;
  private closed = false;

  constructor(options: { inlineBelowBytes: number; workers?: number }) {
    this.inlineBelowBytes = options.inlineBelowBytes;
    // One core stays with the event loop (and chDB, in fleet start).
    this.size = options.workers ?? Math.max(1, Math.min(4, os.availableParallelism() - 1));
  }

  prepare(input: IngestInput): Promise<IngestResult> {
    if (input.body.byteLength < this.inlineBelowBytes) {
      try {
        return Promise.resolve(prepareRequest(input));
      } catch (err) {
        return Promise.reject(err as Error);
      }
    }
    if (this.closed) return Promise.reject(new Error('ingest pool is closed'));
    return new Promise((resolve, reject) => {
      this.waiting.push({ id: this.nextId++, input, resolve, reject });
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      let slot = this.slots.find((s) => !s.job);
      if (!slot && this.slots.length < this.size) slot = this.spawn();
      if (!slot) return;
      const job = this.waiting.shift()!;
      slot.job = job;
      // The body moves to the worker without a copy when it owns its memory (Buffer.concat of a large body does); else one copy.
      const { body } = job.input;
      const owned = body.byteOffset === 0 && body.byteLength === body.buffer.byteLength && body.buffer instanceof ArrayBuffer ? body : new Uint8Array(body);
      try {
        slot.worker.postMessage({ id: job.id, input: { ...job.input, body: owned } } satisfies WorkerRequest, [owned.buffer as ArrayBuffer]);
      } catch {
        // Memory a native module allocated (a snappy or lz4 decoder's output) cannot be transferred: one copy.
        const copy = new Uint8Array(body);
        slot.worker.postMessage({ id: job.id, input: { ...job.input, body: copy } } satisfies WorkerRequest, [copy.buffer]);
      }
    }
  }

  private spawn(): Slot {
    const slot: Slot = { worker: new Worker(WORKER_URL) };
    slot.worker.unref();
    slot.worker.on('message', (reply: WorkerReply) => {
      const job = slot.job;
      slot.job = undefined;
      if (job && job.id === reply.id) {
        if ('result' in reply) job.resolve(reply.result);
        else job.reject(workerError(reply.error));
      }
      this.dispatch();
    });
    // A worker that died (e.g. out of memory) fails its job and is replaced on the next dispatch.
    const fail = (err: Error) => {
      const i = this.slots.indexOf(slot);
      if (i >= 0) this.slots.splice(i, 1);
      slot.job?.reject(new Error(`ingest worker failed: ${err.message}`));
      slot.job = undefined;
      this.dispatch();
    };
    slot.worker.on('error', fail);
    slot.worker.on('exit', (code) => fail(new Error(`exited with code ${code}`)));
    this.slots.push(slot);
    return slot;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const job of this.waiting.splice(0)) job.reject(new Error('ingest pool is closed'));
    await Promise.all(this.slots.splice(0).map((s) => s.worker.terminate()));
  }
}

function workerError(error: { kind: string; message: string }): Error {
  if (error.kind === 'decode') return new OtlpDecodeError(error.message);
  if (error.kind === 'too-large') return new RequestTooLargeError(error.message);
  return new Error(error.message);
}
