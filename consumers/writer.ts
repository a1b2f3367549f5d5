/**
 * Batched, retried inserts. Rows are encoded as JSONEachRow lines as they
 * come (a waiting batch is flat strings, not object trees the garbage
 * collector would trace again and again) and accumulate until `maxRows` or
 * `maxDelayMs`;
 * a flush writes llm_calls and spans before attempts, so a reader never sees
 * an attempt whose calls are not there yet. A backlog (rows piled up while
 * ClickHouse was away) goes out in inserts of at most `maxRows` rows, so
 * neither the insert nor its encoded body grows with the outage. The message references of a
 * batch are released only after every insert of it succeeded, which is what
 * lets the pipeline commit Kafka offsets past it.
 */
import type { Store } from '../storage/store.ts';
import type { Output } from './assembler.ts';
import type { MessageRef } from './offsets.ts';

export interface WriterOptions {
  maxRows: number;
  maxDelayMs: number;
  /** First retry delay; doubles up to 10 s. */
  retryDelayMs: number;
  now?: () => number;
  onWritten?(table: string, rows: number): void;
  onError?(error: Error, attempt: number): void;
}

export const DEFAULT_WRITER: WriterOptions = { maxRows: 20_000, maxDelayMs: 200, retryDelayMs: 250 };

/** A batch of encoded rows, per table, in the order the tables are written. */
interface Batch {
  llm_calls: string[];
  spans: string[];
  attempts: string[];
  refs: MessageRef[];
}
const TABLES = ['llm_calls', 'spans', 'attempts'] as const;
const emptyBatch = (): Batch => ({ llm_calls: [], spans: [], attempts: [], refs: [] });
const rowCount = (b: Batch) => b.llm_calls.length + b.spans.length + b.attempts.length;
const encode = (into: string[], rows: readonly object[]) => {
  for (const r of rows) into.push(JSON.stringify(r));
};

export class BatchWriter {
  private batch: Batch = emptyBatch();
  private since: number | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  private readonly store: Store;
  private readonly options: WriterOptions;
  private readonly release: (refs: MessageRef[]) => void;

  constructor(store: Store, options: WriterOptions, release: (refs: MessageRef[]) => void) {
    this.store = store;
    this.options = options;
    this.release = release;
    this.now = options.now ?? Date.now;
  }

  /** Rows waiting to be written. */
  get pendingRows(): number {
    return rowCount(this.batch);
  }

  add(o: Output): void {
    if (o.attempts.length + o.llmCalls.length + o.spans.length === 0 && o.refs.length === 0) return;
    encode(this.batch.llm_calls, o.llmCalls);
    encode(this.batch.spans, o.spans);
    encode(this.batch.attempts, o.attempts);
    for (const r of o.refs) this.batch.refs.push(r);
    this.since ??= this.now();
  }

  /** True when the batch is full or old enough to be written. */
  due(): boolean {
    return this.since !== undefined && (rowCount(this.batch) >= this.options.maxRows || this.now() - this.since >= this.options.maxDelayMs);
  }

  /** Writes what is batched (after any flush already running). Retries until it succeeds or `signal` aborts. */
  flush(signal?: AbortSignal): Promise<void> {
    const next = this.flushing.then(() => this.writeBatch(signal));
    this.flushing = next.catch(() => {});
    return next;
  }

  private async writeBatch(signal?: AbortSignal): Promise<void> {
    const b = this.batch;
    if (rowCount(b) === 0 && b.refs.length === 0) return;
    this.batch = emptyBatch();
    this.since = undefined;
    try {
      for (const table of TABLES) await this.insert(table, b[table], signal);
    } catch (err) {
      // put the batch back in front of anything added meanwhile; rows are idempotent, so rewriting a part is harmless
      const later = this.batch;
      this.batch = b;
      for (const table of TABLES) for (const line of later[table]) b[table].push(line);
      for (const r of later.refs) b.refs.push(r);
      throw err;
    }
    this.release(b.refs);
  }

  private async insert(table: string, lines: readonly string[], signal?: AbortSignal): Promise<void> {
    for (let i = 0; i < lines.length; i += this.options.maxRows) await this.insertChunk(table, lines.slice(i, i + this.options.maxRows), signal);
  }

  private async insertChunk(table: string, lines: readonly string[], signal?: AbortSignal): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.store.insertJsonLines(table, lines);
        this.options.onWritten?.(table, lines.length);
        return;
      } catch (err) {
        this.options.onError?.(err as Error, attempt);
        if (signal?.aborted) throw err;
        const delay = Math.min(this.options.retryDelayMs * 2 ** (attempt - 1), 10_000);
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, delay);
          signal?.addEventListener('abort', () => (clearTimeout(t), resolve()), { once: true });
        });
        if (signal?.aborted) throw err;
      }
    }
  }
}
