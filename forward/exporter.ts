/**
 * The OTLP/HTTP exporter of one destination: takes encoded kept traces into
 * its bounded queue at once (never waiting on the network) and sends them
 * from a single loop — batched, protobuf or JSON, gzip — retrying what
 * failed for a retryable reason (429, 502, 503, 504, network errors,
 * timeouts: the OTLP/HTTP spec's list) with exponential backoff, or after
 * the backend's Retry-After. Another status refuses the batch for good: it
 * is dropped and counted, as is whatever a partial success names. While the
 * backend fails, new kept traces wait in the queue; past its bound they are
 * dropped and counted, so a down backend costs the consumers nothing.
 */
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';
import { decodeTraceResponse, traceRequestToJson } from '../otlp/codec.ts';
import { decodeStatus } from '../otlp/status.ts';
import type { DestinationLabels, DropReason, ForwardMetrics, RetryReason } from './metrics.ts';
import type { ForwardQueue, QueuedExport } from './queue.ts';

const gzip = promisify(gzipCallback);

export type ForwardProtocol = 'http/protobuf' | 'http/json';

export interface Destination {
  /** The traces endpoint, used as given (a base URL is completed with /v1/traces by tracesEndpoint). */
  url: string;
  headers: Record<string, string>;
  protocol: ForwardProtocol;
  compression: 'gzip' | 'none';
}

export interface ExporterTiming {
  /** Encoded bytes per request at most (but one trace larger than that goes alone); default 4 MiB. */
  maxBatchBytes: number;
  /** How long a batch may wait to fill once something is queued; default 200 ms. */
  lingerMs: number;
  /** Timeout of one request; default 10 s. */
  timeoutMs: number;
  /** First retry delay; doubles (with jitter) up to maxBackoffMs. Defaults 500 ms and 5 s. */
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** A longer Retry-After is cut to this; default 5 min. */
  maxRetryAfterMs: number;
}

export const DEFAULT_TIMING: ExporterTiming = { maxBatchBytes: 4 * 1024 * 1024, lingerMs: 200, timeoutMs: 10_000, initialBackoffMs: 500, maxBackoffMs: 5_000, maxRetryAfterMs: 300_000 };

/** How long after the last note a backend still down is logged again. */
const DOWN_LOG_EVERY_MS = 60_000;
/** Statuses the OTLP/HTTP spec says to retry. */
const RETRYABLE = new Set([429, 502, 503, 504]);

/** A base URL (no path) means the backend's OTLP root: the traces path is added, as OTEL_EXPORTER_OTLP_ENDPOINT does. */
export function tracesEndpoint(url: string): string {
  const u = new URL(url);
  if (u.pathname === '/' || u.pathname === '') u.pathname = '/v1/traces';
  return u.toString();
}

/** A URL fit for a label or a log line: no credentials, no query. */
export function redactedUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/** Retry-After as seconds or an HTTP date → milliseconds from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

type Outcome = { kind: 'done' } | { kind: 'retry'; reason: RetryReason; delayMs?: number; detail: string };

export interface ExporterOptions {
  destination: Destination;
  /** `default`, or the tenant this destination is the own route of (the `route` label). */
  route: string;
  queue: ForwardQueue;
  metrics: ForwardMetrics;
  log: (message: string) => void;
  timing?: Partial<ExporterTiming>;
}

export class OtlpExporter {
  readonly labels: DestinationLabels;
  private readonly options: ExporterOptions;
  private readonly timing: ExporterTiming;
  private readonly queue: ForwardQueue;
  private up = true;
  private downSince = 0;
  private downLoggedAt = 0;
  private fullLoggedAt = 0;
  private failures = 0;
  private closing = false;
  /** Aborted when close() begins: stops waiting for more work. */
  private readonly closed = new AbortController();
  /** Aborted when close() gives up: stops retrying and the request in flight. */
  private readonly stopped = new AbortController();
  private wake: (() => void) | undefined;
  private readonly loop: Promise<void>;

  constructor(options: ExporterOptions) {
    this.options = options;
    this.timing = { ...DEFAULT_TIMING, ...options.timing };
    this.queue = options.queue;
    this.labels = { destination: redactedUrl(options.destination.url), route: options.route };
    if (this.queue.length > 0) this.options.log(`forward to ${this.labels.destination}: ${this.queue.spans} kept spans queued before the restart are sent first`);
    this.loop = this.run().catch((err: unknown) => this.options.log(`forward to ${this.labels.destination}: exporter stopped: ${(err as Error).stack ?? String(err)}`));
  }

  /** Queue state for the metrics. */
  reading() {
    return { ...this.labels, bytes: this.queue.bytes, spans: this.queue.spans, up: this.up };
  }

  /** Queues one encoded trace; never waits. Counts it dropped when the queue is full or closing. */
  enqueue(item: QueuedExport): void {
    if (this.closing) return this.drop('shutdown', item.spans);
    if (!this.queue.offer(item)) {
      this.drop('queue_full', item.spans);
      const now = Date.now();
      if (now - this.fullLoggedAt >= DOWN_LOG_EVERY_MS) {
        this.fullLoggedAt = now;
        this.options.log(`forward to ${this.labels.destination}: queue full (${this.queue.bytes} bytes, ${this.queue.spans} spans); dropping kept traces until the backend catches up (fleet_forward_dropped_spans_total{reason="queue_full"})`);
      }
      return;
    }
    this.wake?.();
  }

  /**
   * Sends what is queued for up to `timeoutMs`, then stops. What is still
   * queued then stays in a durable queue, or is counted dropped (reason
   * shutdown) from an in-memory one.
   */
  async close(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.closed.abort();
    this.wake?.();
    const timer = setTimeout(() => this.stopped.abort(), timeoutMs);
    await this.loop;
    clearTimeout(timer);
    const left = this.queue.spans;
    if (left > 0 && this.queue.durable) {
      this.options.log(`forward to ${this.labels.destination}: ${left} kept spans stay queued on disk (backend ${this.up ? 'slow' : 'down'}); they are sent after the next start`);
    } else if (left > 0) {
      this.drop('shutdown', left);
      this.options.log(`forward to ${this.labels.destination}: ${left} kept spans were still queued at shutdown and are not forwarded (backend ${this.up ? 'slow' : 'down'})`);
    }
    await this.queue.close();
  }

  private drop(reason: DropReason, spans: number): void {
    this.options.metrics.droppedSpans.inc({ ...this.labels, reason }, spans);
  }

  private async run(): Promise<void> {
    while (!this.stopped.signal.aborted) {
      if (this.queue.length === 0) {
        if (this.closing) return;
        await new Promise<void>((resolve) => (this.wake = resolve));
        this.wake = undefined;
        continue;
      }
      // let a batch fill, unless it is full already or the process is leaving
      if (!this.closing && this.queue.bytes < this.timing.maxBatchBytes) await this.pause(this.timing.lingerMs, this.closed.signal);
      const batch = this.queue.head(this.timing.maxBatchBytes);
      const outcome = await this.export(batch);
      if (outcome.kind === 'done') {
        this.queue.remove(batch.length);
        continue;
      }
      if (this.stopped.signal.aborted) return;
      this.failures++;
      this.markDown(outcome.detail);
      this.options.metrics.retries.inc({ ...this.labels, reason: outcome.reason });
      await this.pause(outcome.delayMs ?? this.backoffMs(), this.stopped.signal);
    }
  }

  private backoffMs(): number {
    const base = Math.min(this.timing.initialBackoffMs * 2 ** Math.min(this.failures - 1, 30), this.timing.maxBackoffMs);
    // jitter, so destinations (and replicas) that failed together do not retry together
    return base * (0.5 + Math.random() / 2);
  }

  private pause(ms: number, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
    });
  }

  private async export(batch: QueuedExport[]): Promise<Outcome> {
    const { destination } = this.options;
    const spans = batch.reduce((n, b) => n + b.spans, 0);
    // concatenated ExportTraceServiceRequest encodings are one request holding all their resourceSpans
    const proto = batch.length === 1 ? batch[0]!.body : Buffer.concat(batch.map((b) => b.body));
    let body: Uint8Array = destination.protocol === 'http/json' ? Buffer.from(traceRequestToJson(proto)) : proto;
    if (destination.compression === 'gzip') body = await gzip(body);
    const headers: Record<string, string> = {
      ...destination.headers,
      'content-type': destination.protocol === 'http/json' ? 'application/json' : 'application/x-protobuf',
      ...(destination.compression === 'gzip' && { 'content-encoding': 'gzip' }),
    };
    const started = performance.now();
    const observe = (result: string) => {
      this.options.metrics.latency.observe({ ...this.labels, result }, (performance.now() - started) / 1000);
      this.options.metrics.requests.inc({ ...this.labels, result });
    };
    let status: number;
    let response: Buffer;
    let contentType: string;
    let retryAfter: string | null;
    try {
      const res = await fetch(destination.url, {
        method: 'POST',
        headers,
        body,
        signal: AbortSignal.any([this.stopped.signal, AbortSignal.timeout(this.timing.timeoutMs)]),
      });
      response = Buffer.from(await res.arrayBuffer());
      status = res.status;
      contentType = res.headers.get('content-type') ?? '';
      retryAfter = res.headers.get('retry-after');
    } catch (err) {
      observe('retry');
      const e = err as Error;
      const timedOut = e.name === 'TimeoutError' && !this.stopped.signal.aborted;
      const cause = (e.cause as Error | undefined)?.message;
      return { kind: 'retry', reason: timedOut ? 'timeout' : 'network', detail: timedOut ? `no answer within ${this.timing.timeoutMs} ms` : `${e.message}${cause ? `: ${cause}` : ''}` };
    }
    if (status >= 200 && status < 300) {
      observe('ok');
      const rejected = this.partialSuccess(response, contentType, spans);
      this.options.metrics.sentSpans.inc(this.labels, spans - rejected);
      if (rejected > 0) this.drop('partial_success', rejected);
      this.markUp();
      return { kind: 'done' };
    }
    const message = errorMessage(response, contentType);
    if (RETRYABLE.has(status)) {
      observe('retry');
      const after = retryAfterMs(retryAfter);
      return {
        kind: 'retry',
        reason: `http_${status}` as RetryReason,
        ...(after !== undefined && { delayMs: Math.min(after, this.timing.maxRetryAfterMs) }),
        detail: `HTTP ${status}${after !== undefined ? ` (Retry-After ${retryAfter})` : ''}${message ? `: ${message}` : ''}`,
      };
    }
    observe('rejected');
    this.drop('rejected', spans);
    this.markUp();
    this.options.log(`forward to ${this.labels.destination}: HTTP ${status} refused ${spans} spans for good, dropped${message ? `: ${message}` : ''}`);
    return { kind: 'done' };
  }

  /** Spans the backend says it rejected in a successful answer (OTLP partial success); logged with its message. */
  private partialSuccess(body: Buffer, contentType: string, spans: number): number {
    if (body.length === 0) return 0;
    let rejected = 0;
    let message = '';
    try {
      if (contentType.includes('json')) {
        const parsed = JSON.parse(body.toString('utf8')) as { partialSuccess?: { rejectedSpans?: number | string; errorMessage?: string } };
        rejected = Number(parsed.partialSuccess?.rejectedSpans ?? 0);
        message = parsed.partialSuccess?.errorMessage ?? '';
      } else if (contentType.includes('protobuf')) {
        const parsed = decodeTraceResponse(body);
        rejected = Number(parsed.partialSuccess?.rejectedSpans ?? 0);
        message = parsed.partialSuccess?.errorMessage ?? '';
      }
    } catch {
      // an answer that is not an ExportTraceServiceResponse says nothing about rejected spans
      return 0;
    }
    rejected = Number.isFinite(rejected) ? Math.min(Math.max(rejected, 0), spans) : 0;
    if (rejected > 0 || message) this.options.log(`forward to ${this.labels.destination}: partial success, ${rejected} of ${spans} spans rejected${message ? `: ${message}` : ''}`);
    return rejected;
  }

  private markDown(detail: string): void {
    const now = Date.now();
    if (this.up) {
      this.up = false;
      this.downSince = now;
      this.downLoggedAt = now;
      this.options.log(`forward to ${this.labels.destination}: backend unavailable (${detail}); kept traces wait in the queue (${this.queue.spans} spans) and are retried with backoff`);
    } else if (now - this.downLoggedAt >= DOWN_LOG_EVERY_MS) {
      this.downLoggedAt = now;
      this.options.log(`forward to ${this.labels.destination}: backend still unavailable after ${Math.round((now - this.downSince) / 1000)} s (${detail}); ${this.queue.spans} spans queued`);
    }
  }

  private markUp(): void {
    this.failures = 0;
    if (this.up) return;
    this.up = true;
    this.options.log(`forward to ${this.labels.destination}: backend back after ${Math.round((Date.now() - this.downSince) / 1000)} s; sending the ${this.queue.spans} queued spans`);
  }
}

/** What an error answer says: a google.rpc.Status (protobuf or JSON) message, or the start of its text. */
function errorMessage(body: Buffer, contentType: string): string {
  if (body.length === 0) return '';
  try {
    if (contentType.includes('protobuf')) return decodeStatus(body).message;
    if (contentType.includes('json')) {
      const parsed = JSON.parse(body.toString('utf8')) as { message?: unknown };
      if (typeof parsed.message === 'string') return parsed.message;
    }
  } catch {
    // not a Status: fall back to the text
  }
  const text = body.toString('utf8').replace(/\s+/g, ' ').trim();
  return text.length > 300 ? `${text.slice(0, 297)}...` : text;
}
