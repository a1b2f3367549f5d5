/**
 * A forward queue kept on disk in a DurableLog (bus/log.ts), so kept traces
 * waiting for a backend survive a restart: each queued request is one log
 * record (u32 span count, then the encoded request); the log's committed
 * position is the first record the backend has not taken yet. A start reads
 * the records past it back into the queue.
 *
 * offer() never waits for the disk: the record is appended in the
 * background (the log's group commit fsyncs many at once) and the request
 * is queued in memory at once; a removal commits past a record only once
 * that record is on disk. What the log cannot take (a disk error, or its
 * bound while untrimmed segments linger) stays queued in memory only, and
 * is logged.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { DurableLog } from '../bus/log.ts';
import { MemoryForwardQueue, type ForwardQueue, type QueuedExport } from './queue.ts';

interface Entry extends QueuedExport {
  /** Log offset once appended; undefined while pending or when the append failed. */
  offset?: number;
  /** Settles once the append is done (either way). */
  persisted: Promise<void>;
}

/** Records per read when the queue is loaded at start. */
const LOAD_BATCH = 1024;

export class DurableForwardQueue implements ForwardQueue {
  readonly durable = true;
  private readonly log: DurableLog;
  private readonly items: MemoryForwardQueue<Entry>;
  private readonly note: (message: string) => void;
  private committing: Promise<void> = Promise.resolve();
  private failedAppends = 0;

  private readonly dir: string;

  private constructor(dir: string, log: DurableLog, maxBytes: number, note: (message: string) => void) {
    this.dir = dir;
    this.log = log;
    this.items = new MemoryForwardQueue<Entry>(maxBytes);
    this.note = note;
  }

  /**
   * Opens (creating) the queue in `dir`, with what a previous process left
   * in it. `label` (the destination, without credentials) is written beside
   * the log for whoever looks at the directory.
   */
  static async open(dir: string, maxBytes: number, label: string, log: (message: string) => void): Promise<DurableForwardQueue> {
    await mkdir(dir, { recursive: true });
    await writeFile(path.join(dir, 'destination'), `${label}\n`);
    // segments are deleted only whole: leave room for the one the committed position is inside
    const segmentBytes = Math.max(64 * 1024, Math.floor(maxBytes / 8));
    const durable = await DurableLog.open({ dir: path.join(dir, 'log'), maxBytes: maxBytes + 2 * segmentBytes, segmentBytes, log });
    const queue = new DurableForwardQueue(dir, durable, maxBytes, log);
    for (let from = durable.committed; ; ) {
      const records = await durable.read(from, LOAD_BATCH);
      if (records.length === 0) break;
      // all of it, even past a bound lowered since: the bound applies to new kept traces
      for (const r of records) queue.items.offer({ spans: r.data.readUInt32LE(0), body: r.data.subarray(4), offset: r.offset, persisted: Promise.resolve() }, true);
      from = records.at(-1)!.offset + 1;
    }
    return queue;
  }

  get length(): number {
    return this.items.length;
  }
  get bytes(): number {
    return this.items.bytes;
  }
  get spans(): number {
    return this.items.spans;
  }

  offer(item: QueuedExport): boolean {
    const entry: Entry = { ...item, persisted: Promise.resolve() };
    if (!this.items.offer(entry)) return false;
    const record = Buffer.allocUnsafe(4 + item.body.byteLength);
    record.writeUInt32LE(item.spans, 0);
    record.set(item.body, 4);
    entry.persisted = this.log.append([record]).then(
      (offset) => {
        entry.offset = offset;
      },
      (err: unknown) => {
        // noted for the first failure and every 1000th after it, not per trace
        if (this.failedAppends++ % 1000 === 0) this.note(`forward queue ${this.dir}: a kept trace could not be written to disk (${this.failedAppends} so far) and is queued in memory only: ${(err as Error).message}`);
      },
    );
    return true;
  }

  head(maxBytes: number): QueuedExport[] {
    return this.items.head(maxBytes);
  }

  remove(n: number): void {
    const removed = this.items.remove(n);
    this.committing = this.committing
      .then(async () => {
        await Promise.all(removed.map((e) => e.persisted));
        const last = removed.reduce((max, e) => (e.offset !== undefined && e.offset > max ? e.offset : max), -1);
        if (last >= 0) await this.log.commit(last + 1);
      })
      .catch((err: unknown) => this.note(`forward queue ${this.dir}: committing what the backend took failed (it is sent again after a restart): ${(err as Error).message}`));
  }

  async close(): Promise<void> {
    await this.committing;
    await this.log.close();
  }
}
