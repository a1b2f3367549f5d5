/**
 * The consumer: bus → decode → assemble/decide → batch writer → commit.
 * The same code runs on Kafka (a consumer-group member) and on the embedded
 * in-process queue. Offsets are committed only past messages whose spans
 * were decided and written; everything written is idempotent, so whatever a
 * crash or rebalance makes the bus deliver again changes no number.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Registry } from 'prom-client';
import type { PartitionBatch, Publisher, Subscriber, TopicPartition } from '../bus/types.ts';
import { decodeTraceRequest, flattenSpans, OtlpDecodeError } from '../otlp/codec.ts';
import { decodeFrames } from '../otlp/frames.ts';
import type { KeptSpanSink, SpanSource } from '../forward/types.ts';
import type { Catalog } from '../pricing/catalog.ts';
import type { Store } from '../storage/store.ts';
import { Assembler, DEFAULT_LIMITS, emptyOutput, type AssemblerLimits, type Output } from './assembler.ts';
import { createConsumerMetrics, type ConsumerMetrics } from './metrics.ts';
import { DEFAULT_SETTLE_MS, OffsetTracker } from './offsets.ts';
import { DEFAULT_SAMPLING, type SamplingPolicy } from './sampling.ts';
import { Turns } from './turns.ts';
import { BatchWriter, DEFAULT_WRITER, type WriterOptions } from './writer.ts';

/** How often a member blocked on ClickHouse heartbeats (kafkajs's default heartbeat interval). */
const HEARTBEAT_MS = 3000;

/** Waits for `work`, heartbeating the group meanwhile: a member waiting on ClickHouse (or on its consumer thread) is alive, not dead. */
export async function heartbeating(work: Promise<void>, batch: PartitionBatch, log: (message: string) => void): Promise<void> {
  if (!batch.heartbeat) return work;
  let done = false;
  const finished = work.finally(() => (done = true));
  const timers = new AbortController();
  try {
    while (!done) {
      await Promise.race([finished, sleep(HEARTBEAT_MS, undefined, { signal: timers.signal }).catch(() => {})]);
      if (!done) await batch.heartbeat().catch((err: unknown) => log(`heartbeat failed: ${(err as Error).message}`));
    }
  } finally {
    timers.abort();
  }
  return finished;
}

export interface ConsumerPipelineOptions {
  topic: string;
  store: Store;
  subscriber: Subscriber;
  catalog: Catalog;
  /** Where undecodable messages go, with the reason in headers. */
  deadLetter: { publisher: Publisher; topic: string };
  sampling?: Partial<SamplingPolicy>;
  decisionWaitMs?: number;
  traceTimeoutMs?: number;
  /** How long decided spans keep their messages uncommitted (default DEFAULT_SETTLE_MS; consumers/offsets.ts). */
  settleMs?: number;
  limits?: Partial<AssemblerLimits>;
  writer?: Partial<Omit<WriterOptions, 'onWritten' | 'onError'>>;
  /** How often decided offsets are committed (default 1000 ms). */
  commitIntervalMs?: number;
  /** How often due decisions are taken (default 100 ms). */
  tickMs?: number;
  registry?: Registry;
  log?: (message: string) => void;
  now?: () => number;
  /** Where kept spans go as received, after the sampling decision (the forward stage); unset: nowhere. */
  forward?: KeptSpanSink;
}

export interface StopOptions {
  /**
   * Decide and write everything buffered before stopping (the embedded
   * mode, whose queue does not outlive the process). Without it, undecided
   * traces stay uncommitted and are read again by whoever reads next.
   */
  drain?: boolean;
  /** Give up writing after this long (default 30 s); what is unwritten stays uncommitted. */
  timeoutMs?: number;
}

/** Attempts decided (rows encoded) at a time, between checks of the slice's time. */
const DECISIONS_PER_STEP = 10;

export class ConsumerPipeline {
  readonly registry: Registry;
  private readonly assembler: Assembler;
  private readonly writer: BatchWriter;
  private readonly offsets: OffsetTracker;
  private readonly metrics: ConsumerMetrics;
  private readonly log: (message: string) => void;
  private timers: NodeJS.Timeout[] = [];
  private flushing: Promise<void> | undefined;
  private committing: Promise<void> = Promise.resolve();
  private readonly maxPendingRows: number;
  private ticking = false;
  /** Slices of decoding and deciding, one per turn of the event loop. */
  private readonly turns = new Turns();
  /** Batches being decoded and assembled now (in slices). */
  private readonly taking = new Set<Promise<void>>();
  private readonly options: ConsumerPipelineOptions;

  constructor(options: ConsumerPipelineOptions) {
    this.options = options;
    this.registry = options.registry ?? new Registry();
    this.log = options.log ?? ((m) => console.warn(`[perpass consumer] ${m}`));
    this.offsets = new OffsetTracker(options.topic);
    const metrics = createConsumerMetrics(this.registry, {
      buffered: () => this.assembler.stats(),
      pendingRows: () => this.writer.pendingRows,
      lag: () => options.subscriber.lag(),
    });
    this.metrics = metrics;
    this.assembler = new Assembler({
      catalog: options.catalog,
      sampling: { ...DEFAULT_SAMPLING, ...options.sampling },
      decisionWaitMs: options.decisionWaitMs ?? 500,
      traceTimeoutMs: options.traceTimeoutMs ?? 60_000,
      settleMs: Math.min(options.settleMs ?? DEFAULT_SETTLE_MS, options.traceTimeoutMs ?? 60_000),
      limits: { ...DEFAULT_LIMITS, ...options.limits },
      ...(options.now && { now: options.now }),
      observer: {
        decided: (decision, sampling) => metrics.decisions.inc({ decision, sample_reason: sampling.reason }),
        lateSpan: () => metrics.lateSpans.inc(),
        duplicateSpan: () => metrics.duplicateSpans.inc(),
        outsideAttempt: (n) => metrics.outsideAttempt.inc(n),
        invalidSpan: (message) => {
          metrics.invalidSpans.inc({ result: 'kept' });
          this.log(`invalid span, kept outside any attempt: ${message}`);
        },
        droppedSpan: (message) => {
          metrics.invalidSpans.inc({ result: 'dropped' });
          this.log(`invalid span, dropped: ${message}`);
        },
      },
    });
    const writerOptions = { ...DEFAULT_WRITER, ...options.writer };
    this.maxPendingRows = writerOptions.maxRows * 4;
    this.writer = new BatchWriter(
      options.store,
      {
        ...writerOptions,
        ...(options.now && { now: options.now }),
        onWritten: (table, rows) => metrics.rowsWritten.inc({ table }, rows),
        onError: (err, attempt) => {
          metrics.insertErrors.inc();
          this.log(`insert failed (try ${attempt}), retrying: ${err.message}`);
        },
      },
      (refs) => {
        for (const r of refs) this.offsets.release(r);
      },
    );
  }

  async start(): Promise<void> {
    await this.writer.prepare();
    await this.options.subscriber.start({
      onBatch: (batch) => this.onBatch(batch),
      onAssign: (assigned) => this.onAssign(assigned),
    });
    const tickMs = this.options.tickMs ?? 100;
    this.timers.push(setInterval(() => void this.tick(), tickMs));
    this.timers.push(setInterval(() => void this.commit(), this.options.commitIntervalMs ?? 1000));
    for (const t of this.timers) t.unref();
  }

  /** Buffered state, for tests and health. */
  stats() {
    return { ...this.assembler.stats(), pendingRows: this.writer.pendingRows, pendingMessages: this.offsets.pendingMessages() };
  }

  private emit(out: Output): void {
    this.writer.add(out);
    this.flushIf(this.writer.full());
    if (out.forward.length) this.options.forward?.add(out.forward);
  }

  /**
   * Each span of a message as received, in flattenSpans's order (both walk
   * resource spans → scope spans → spans), for the forwarder; undefined when
   * not forwarding.
   */
  private sources(m: { value: Uint8Array; topic: string; partition: number; offset: string }, spans: number): SpanSource[] | undefined {
    if (!this.options.forward) return undefined;
    const out: SpanSource[] = [];
    let problem: string;
    try {
      for (const resourceSpans of decodeFrames(m.value).resourceSpans) {
        for (const scopeSpans of resourceSpans.scopeSpans) for (const span of scopeSpans.spans) out.push({ span, resourceSpans, scopeSpans });
      }
      if (out.length === spans) return out;
      problem = `${out.length} spans framed but ${spans} decoded`;
    } catch (err) {
      problem = (err as Error).message;
    }
    this.log(`message ${m.topic}/${m.partition}/${m.offset}: ${problem}; its spans are stored but not forwarded`);
    return undefined;
  }

  private async onBatch(batch: PartitionBatch): Promise<void> {
    const taking = this.take(batch);
    this.taking.add(taking);
    try {
      await taking;
    } finally {
      this.taking.delete(taking);
    }
    // backpressure: while ClickHouse cannot keep up, stop taking more from the bus
    if (this.writer.pendingRows >= this.maxPendingRows) await heartbeating(this.flush(), batch, this.log);
    // Batches fetched ahead arrive as a chain of resolved promises: let timers
    // (decisions, commits) and I/O (/metrics) run between two of them.
    await this.turns.next();
  }

  /**
   * Decodes and assembles a batch's spans, in slices. onAssign waits for
   * the batches being taken, so a rebalance never lands between two slices
   * of a batch: its spans belong to the assignment that delivered them.
   */
  private async take(batch: PartitionBatch): Promise<void> {
    // what spans of this batch make ready at once (late spans, overflow decisions), written together
    const ready = emptyOutput();
    for (const m of batch.messages) {
      // In bounded slices: in the embedded mode the collector's /healthz and clients share this event loop.
      if (this.turns.due) await this.turns.next();
      const ref = this.offsets.ref(m.partition, BigInt(m.offset));
      let spans;
      try {
        spans = [...flattenSpans(decodeTraceRequest(m.value))];
      } catch (err) {
        if (!(err instanceof OtlpDecodeError)) throw err;
        await this.deadLetter(m.topic, m.partition, m.offset, m.key, m.value, err.message);
        this.offsets.received(ref, 0);
        continue;
      }
      this.metrics.messages.inc({ result: 'ok' });
      this.metrics.spans.inc(spans.length);
      this.offsets.received(ref, spans.length);
      const bytes = spans.length ? Math.ceil(m.value.byteLength / spans.length) : 0;
      const sources = this.sources(m, spans.length);
      for (const [i, span] of spans.entries()) this.assembler.add(span, ref, bytes, ready, sources?.[i]);
    }
    this.emit(ready);
  }

  private async deadLetter(topic: string, partition: number, offset: string, key: string, value: Uint8Array, reason: string): Promise<void> {
    const { publisher, topic: dlq } = this.options.deadLetter;
    await publisher.publish(dlq, [
      { key, value, headers: { 'perpass-error': reason, 'perpass-source': `${topic}/${partition}/${offset}` } },
    ]);
    this.metrics.messages.inc({ result: 'dead_letter' });
    this.log(`message ${topic}/${partition}/${offset} sent to ${dlq}: ${reason}`);
  }

  private async onAssign(assigned: TopicPartition[]): Promise<void> {
    await Promise.allSettled([...this.taking]);
    const mine = new Set(assigned.filter((tp) => tp.topic === this.options.topic).map((tp) => tp.partition));
    this.assembler.retainPartitions(mine);
    this.offsets.retainOnly(mine);
  }

  /** Takes the due decisions in slices, letting other work run between them (a burst can make thousands due at once). */
  private async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (;;) {
        const out = this.assembler.tick(DECISIONS_PER_STEP);
        this.emit(out);
        if (out.attempts.length < DECISIONS_PER_STEP || this.timers.length === 0) break;
        if (this.turns.due) await this.turns.next();
      }
    } finally {
      this.ticking = false;
    }
    this.flushIf(this.writer.due());
  }

  /**
   * Starts writing when `ready` and no write runs: a full batch as soon as
   * it is full (and again when a write ends with a full one waiting), not
   * only at the next decision tick, which may wait its turns behind the
   * batches being taken, so the writer's backlog never grows into
   * backpressure while ClickHouse keeps up; a batch that is only old enough
   * at the tick (fewer, larger inserts cost chDB less).
   */
  private flushIf(ready: boolean): void {
    if (!ready || this.flushing || this.timers.length === 0) return;
    void this.flush().then(() => this.flushIf(this.writer.full()));
  }

  private flush(signal?: AbortSignal): Promise<void> {
    const run = (this.flushing ?? Promise.resolve()).then(() => this.writer.flush(signal));
    const tracked = run.finally(() => {
      if (this.flushing === tracked) this.flushing = undefined;
    });
    this.flushing = tracked;
    return run;
  }

  /** Commits what is decided and written (serialised, so commits never go backwards). */
  commit(): Promise<void> {
    this.committing = this.committing.then(async () => {
      const offsets = this.offsets.committable();
      if (offsets.length === 0) return;
      try {
        await this.options.subscriber.commit(offsets);
        this.offsets.committed(offsets);
        this.metrics.commits.inc();
      } catch (err) {
        this.log(`offset commit failed (will retry): ${(err as Error).message}`);
      }
    });
    return this.committing;
  }

  /** Decides what is due, writes everything decided and commits it (tests and shutdown). */
  async settle(): Promise<void> {
    this.emit(this.assembler.tick());
    await this.flush();
    await this.commit();
  }

  /**
   * Leaves at once, writing and committing nothing more — what a crash does:
   * whatever was not committed is read again by the next member. For a
   * process that must go now; stop() is the orderly way.
   */
  async abort(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.options.subscriber.stop();
  }

  async stop(options: StopOptions = {}): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const abort = AbortSignal.timeout(options.timeoutMs ?? 30_000);
    this.emit(options.drain ? this.assembler.drainAll() : this.assembler.tick());
    try {
      await this.flush(abort);
      await this.commit();
    } catch (err) {
      this.log(`stopping with rows unwritten (they stay uncommitted): ${(err as Error).message}`);
    }
    await this.options.subscriber.stop();
  }
}
