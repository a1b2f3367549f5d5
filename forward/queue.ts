/**
 * The queue of one forward destination: encoded export requests (one per
 * trace and decision) waiting for the backend, bounded in bytes. The
 * exporter reads from its head and removes what the backend took (or
 * refused for good), so a batch in flight stays queued until then.
 *
 * Behind an interface: the in-memory queue loses what it holds when the
 * process exits (counted and logged); the durable one (durable-queue.ts, on
 * the bus's DurableLog) is there again on the next start.
 */

/** One encoded ExportTraceServiceRequest and how many spans it holds. */
export interface QueuedExport {
  spans: number;
  body: Uint8Array;
}

export interface ForwardQueue {
  /** Appends `item` (never waiting on a disk); false (and nothing queued) when it would pass the bound. */
  offer(item: QueuedExport): boolean;
  /** The oldest items up to `maxBytes` together (always at least one, if any), left in the queue. */
  head(maxBytes: number): QueuedExport[];
  /** Removes the `n` oldest items. */
  remove(n: number): void;
  readonly length: number;
  readonly bytes: number;
  readonly spans: number;
  /** True when what it holds at close() is there again when the process starts again. */
  readonly durable: boolean;
  /** Releases the queue; an in-memory one forgets what it holds. */
  close(): Promise<void>;
}

/** The in-memory queue; also the durable queue's view of what its log holds (items of type T). */
export class MemoryForwardQueue<T extends QueuedExport = QueuedExport> implements ForwardQueue {
  readonly durable: boolean = false;
  private items: T[] = [];
  /** Index of the oldest item: removing from the front of an array is O(n), so the front is skipped and compacted now and then. */
  private start = 0;
  private queuedBytes = 0;
  private queuedSpans = 0;
  private readonly maxBytes: number;

  constructor(maxBytes: number) {
    this.maxBytes = maxBytes;
  }

  get length(): number {
    return this.items.length - this.start;
  }
  get bytes(): number {
    return this.queuedBytes;
  }
  get spans(): number {
    return this.queuedSpans;
  }

  /** `overBound`: queue it even past the bound (what a durable queue already holds on disk at start). */
  offer(item: T, overBound = false): boolean {
    if (!overBound && this.queuedBytes + item.body.byteLength > this.maxBytes) return false;
    this.items.push(item);
    this.queuedBytes += item.body.byteLength;
    this.queuedSpans += item.spans;
    return true;
  }

  head(maxBytes: number): T[] {
    const out: T[] = [];
    let bytes = 0;
    for (let i = this.start; i < this.items.length; i++) {
      const item = this.items[i]!;
      if (out.length > 0 && bytes + item.body.byteLength > maxBytes) break;
      out.push(item);
      bytes += item.body.byteLength;
    }
    return out;
  }

  /** Removes the `n` oldest items and returns them. */
  remove(n: number): T[] {
    const end = Math.min(this.start + n, this.items.length);
    const removed = this.items.slice(this.start, end);
    for (const item of removed) {
      this.queuedBytes -= item.body.byteLength;
      this.queuedSpans -= item.spans;
    }
    this.start = end;
    if (this.start > 1024 && this.start * 2 > this.items.length) {
      this.items = this.items.slice(this.start);
      this.start = 0;
    }
    return removed;
  }

  async close(): Promise<void> {
    this.items = [];
    this.start = 0;
    this.queuedBytes = 0;
    this.queuedSpans = 0;
  }
}
