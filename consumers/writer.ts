/**
 * Batched, retried inserts. Rows are encoded as they come, as
 * RowBinaryWithDefaults compiled from the tables' columns (`prepare`),
 * into buffers of at most CHUNK_ROWS lines (a waiting batch is bytes outside
 * the JavaScript heap, which the garbage collector never traces, and a flush
 * hands them to the store as they are: no body built in one synchronous go,
 * which held the event loop tens of milliseconds per insert), and accumulate
 * until `maxRows` or `maxDelayMs`;
 * a flush writes llm_calls and spans before attempts, so a reader never sees
 * an attempt whose calls are not there yet. A backlog (rows piled up while
 * ClickHouse was away) goes out in inserts of at most `maxRows` rows, so
 * neither the insert nor its encoded body grows with the outage. The message references of a
 * batch are released only after every insert of it succeeded, which is what
 * lets the pipeline commit Kafka offsets past it.
 */
import { insertColumns, rowBinaryEncoder, type RowBinaryEncoder } from '../storage/row-binary.ts';
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

/** Encoded rows and how many. */
interface Chunk {
  bytes: Buffer;
  rows: number;
}
/** Rows per encoded chunk: small enough that encoding one is a short piece of work. */
const CHUNK_ROWS = 500;

/** A batch of encoded rows, per table, in the order the tables are written. */
interface Batch {
  llm_calls: Chunk[];
  spans: Chunk[];
  attempts: Chunk[];
  refs: MessageRef[];
  /** Rows in the three tables' chunks. */
  rows: number;
}
const TABLES = ['llm_calls', 'spans', 'attempts'] as const;
const emptyBatch = (): Batch => ({ llm_calls: [], spans: [], attempts: [], refs: [], rows: 0 });

export class BatchWriter {
  private batch: Batch = emptyBatch();
  private since: number | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  private readonly store: Store;
  private readonly options: WriterOptions;
  private readonly release: (refs: MessageRef[]) => void;
  private readonly chunkRows: number;
  private encoders: Record<(typeof TABLES)[number], RowBinaryEncoder> | undefined;

  constructor(store: Store, options: WriterOptions, release: (refs: MessageRef[]) => void) {
    this.store = store;
    this.options = options;
    this.release = release;
    this.now = options.now ?? Date.now;
    this.chunkRows = Math.min(CHUNK_ROWS, options.maxRows);
  }

  /** Rows waiting to be written. */
  get pendingRows(): number {
    return this.batch.rows;
  }

  /** Reads the tables' columns and compiles their encoders; before the first add. */
  async prepare(): Promise<void> {
    const [llm_calls, spans, attempts] = await Promise.all(TABLES.map(async (t) => rowBinaryEncoder(t, await insertColumns(this.store, t))));
    this.encoders = { llm_calls: llm_calls!, spans: spans!, attempts: attempts! };
  }

  add(o: Output): void {
    if (o.attempts.length + o.llmCalls.length + o.spans.length === 0 && o.refs.length === 0) return;
    const encoders = this.encoders;
    if (!encoders) throw new Error('BatchWriter.add before prepare()');
    this.encode(encoders.llm_calls, this.batch.llm_calls, o.llmCalls);
    this.encode(encoders.spans, this.batch.spans, o.spans);
    this.encode(encoders.attempts, this.batch.attempts, o.attempts);
    for (const r of o.refs) this.batch.refs.push(r);
    this.since ??= this.now();
  }

  private encode(encoder: RowBinaryEncoder, into: Chunk[], rows: readonly object[]): void {
    for (let i = 0; i < rows.length; i += this.chunkRows) {
      const end = Math.min(rows.length, i + this.chunkRows);
      into.push({ bytes: encoder.encode(rows, i, end), rows: end - i });
    }
    this.batch.rows += rows.length;
  }

  /** True when the batch holds maxRows. */
  full(): boolean {
    return this.batch.rows >= this.options.maxRows;
  }

  /** True when the batch is full or old enough to be written. */
  due(): boolean {
    return this.since !== undefined && (this.full() || this.now() - this.since >= this.options.maxDelayMs);
  }

  /** Writes what is batched (after any flush already running). Retries until it succeeds or `signal` aborts. */
  flush(signal?: AbortSignal): Promise<void> {
    const next = this.flushing.then(() => this.writeBatch(signal));
    this.flushing = next.catch(() => {});
    return next;
  }

  private async writeBatch(signal?: AbortSignal): Promise<void> {
    const b = this.batch;
    if (b.rows === 0 && b.refs.length === 0) return;
    this.batch = emptyBatch();
    this.since = undefined;
    try {
      for (const table of TABLES) await this.insert(table, this.encoders![table].columns, b[table], signal);
    } catch (err) {
      // put the batch back in front of anything added meanwhile; rows are idempotent, so rewriting a part is harmless
      const later = this.batch;
      this.batch = b;
      for (const table of TABLES) for (const chunk of later[table]) b[table].push(chunk);
      for (const r of later.refs) b.refs.push(r);
      b.rows += later.rows;
      throw err;
    }
    this.release(b.refs);
  }

  /** Inserts of at most maxRows rows each (a chunk holds at most maxRows). */
  private async insert(table: string, columns: readonly string[], chunks: readonly Chunk[], signal?: AbortSignal): Promise<void> {
    let group: Buffer[] = [];
    let groupRows = 0;
    for (const chunk of chunks) {
      if (groupRows + chunk.rows > this.options.maxRows) {
        await this.insertGroup(table, columns, group, groupRows, signal);
        group = [];
        groupRows = 0;
      }
      group.push(chunk.bytes);
      groupRows += chunk.rows;
    }
    if (groupRows > 0) await this.insertGroup(table, columns, group, groupRows, signal);
  }

  private async insertGroup(table: string, columns: readonly string[], chunks: readonly Buffer[], rows: number, signal?: AbortSignal): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await this.store.insertRowBinary(table, columns, chunks);
        this.options.onWritten?.(table, rows);
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
