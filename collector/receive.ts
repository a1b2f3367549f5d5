/**
 * The transport-independent part of receiving an OTLP export: prepare
 * (decode → stamp the tenant → validate → split, large bodies on an ingest
 * worker) → the tenant's queue share → publish → partial success. The
 * OTLP/HTTP receiver (server.ts) and the OTLP/gRPC one (grpc.ts) both admit
 * a request under the same limits (connection cap, memory guard, queue
 * share, in-flight budget), read it, and call receiveExport, so validation,
 * publishing, metrics and the refusal for every failure are one code path;
 * each transport only maps a Refusal onto its own wire (HTTP status +
 * Retry-After, or gRPC status + google.rpc.Status details).
 */
import { BusUnavailableError } from '../bus/types.ts';
import { OtlpDecodeError } from '../otlp/codec.ts';
import { RPC_CODE, type RpcStatus } from '../otlp/status.ts';
import { BodyError } from './body.ts';
import { BudgetExhaustedError } from './budget.ts';
import type { PayloadEncoding } from './encoding.ts';
import { MemoryPressureError, RequestTooLargeError } from './limits.ts';
import type { CollectorMetrics } from './metrics.ts';
import type { ResolvedCollectorOptions } from './options.ts';
import type { IngestPool } from './workers.ts';

/** Retry-After for requests arriving while the collector shuts down (another replica, or this one restarted, will take them). */
export const SHUTDOWN_RETRY_AFTER_SECONDS = 1;

/**
 * A refusal decided by the collector: HTTP status, google.rpc status (whose
 * code is also the gRPC status code: both use google.rpc.Code) and the HTTP
 * headers that go with it.
 */
export class Refusal extends Error {
  override name = 'Refusal';
  readonly httpStatus: number;
  readonly status: RpcStatus;
  readonly headers: Record<string, string>;
  constructor(httpStatus: number, status: RpcStatus, headers: Record<string, string> = {}) {
    super(status.message);
    this.httpStatus = httpStatus;
    this.status = status;
    this.headers = headers;
  }
}

/** A refusal the client should retry after `seconds` (Retry-After on HTTP, RetryInfo on both). */
export const retryable = (httpStatus: 429 | 503, code: number, message: string, seconds: number): Refusal =>
  new Refusal(httpStatus, { code, message, retryDelaySeconds: seconds }, { 'Retry-After': String(seconds) });

export const shuttingDown = (): Refusal => retryable(503, RPC_CODE.UNAVAILABLE, 'collector is shutting down', SHUTDOWN_RETRY_AFTER_SECONDS);

export const unauthenticated = (): Refusal =>
  new Refusal(401, { code: RPC_CODE.UNAUTHENTICATED, message: 'missing or unknown bearer token' }, { 'WWW-Authenticate': 'Bearer' });

/** Every failure of an export request as the refusal to answer with. */
export function refusalFor(err: unknown, options: ResolvedCollectorOptions): Refusal {
  if (err instanceof Refusal) return err;
  if (err instanceof BodyError) {
    const code = err.status === 413 ? RPC_CODE.RESOURCE_EXHAUSTED : err.status === 408 ? RPC_CODE.DEADLINE_EXCEEDED : RPC_CODE.INVALID_ARGUMENT;
    // A client too slow is not asked to come back at once: 408 carries no Retry-After, its exporter backs off.
    return new Refusal(err.status, { code, message: err.message }, err.status === 408 ? { Connection: 'close' } : {});
  }
  if (err instanceof RequestTooLargeError) return new Refusal(413, { code: RPC_CODE.RESOURCE_EXHAUSTED, message: err.message });
  if (err instanceof MemoryPressureError) return retryable(503, RPC_CODE.UNAVAILABLE, err.message, options.overloadRetryAfterSeconds);
  if (err instanceof OtlpDecodeError) {
    return new Refusal(400, { code: RPC_CODE.INVALID_ARGUMENT, message: err.message, fieldViolations: [{ field: 'body', description: err.message }] });
  }
  if (err instanceof BudgetExhaustedError) return retryable(429, RPC_CODE.RESOURCE_EXHAUSTED, err.message, options.overloadRetryAfterSeconds);
  if (err instanceof BusUnavailableError) {
    return retryable(503, RPC_CODE.UNAVAILABLE, `downstream unavailable: ${err.message}`, err.retryAfterSeconds);
  }
  // Not known to be transient: OTLP clients must not retry a 500 / INTERNAL, so the sender learns the data was not taken.
  return new Refusal(500, { code: RPC_CODE.INTERNAL, message: `failed to publish spans: ${(err as Error)?.message ?? String(err)}` });
}

export interface ReceiveContext {
  options: ResolvedCollectorOptions;
  metrics: CollectorMetrics;
  /** Prepares bodies (decode, validate, split), large ones off the event loop. */
  ingest: IngestPool;
}

/** What an accepted request answers: undefined = full success, else OTLP partial success. */
export type PartialSuccess = { rejectedSpans: number; errorMessage: string } | undefined;

/**
 * Prepares, validates and publishes one export request's (decompressed)
 * body. Resolves once the bus has acknowledged every accepted span; throws
 * what refusalFor maps (a Refusal for wholly invalid data; decode, span
 * cap, queue share, bus and budget errors). `tenant` is the authenticated
 * tenant, if auth is on.
 */
export async function receiveExport(ctx: ReceiveContext, encoding: PayloadEncoding, body: Buffer, tenant: string | undefined): Promise<PartialSuccess> {
  const { options, metrics, ingest } = ctx;
  const { publisher, queueShares } = options;
  const result = await ingest.prepare({ encoding, body, tenant, maxMessageBytes: options.maxMessageBytes, maxSpans: options.maxSpansPerRequest });
  const { rejected, messages } = result;
  const accepted = result.total - rejected;
  metrics.spansReceived.inc(result.total);
  if (rejected > 0) metrics.spansRejected.inc({ reason: 'invalid' }, rejected);
  if (rejected > 0 && accepted === 0) {
    // Nothing to accept is not a partial success: OTLP answers permanently bad data with 400 / INVALID_ARGUMENT.
    throw new Refusal(400, { code: RPC_CODE.INVALID_ARGUMENT, message: result.rejection!.message, fieldViolations: result.rejection!.violations });
  }

  if (messages.length > 0) {
    if (tenant !== undefined) queueShares?.admitPublish(tenant, messages);
    const stopTimer = metrics.publishDuration.startTimer();
    try {
      // One publish for the whole request. The in-process queue takes all of it or none; Kafka
      // may have written some partitions before failing, and the client's retry of the 503
      // then repeats those spans, which the consumers deduplicate (span and attempt ids).
      await publisher.publish(options.topic, messages);
    } catch (err) {
      metrics.spansRejected.inc({ reason: err instanceof BusUnavailableError ? 'unavailable' : 'error' }, accepted);
      throw err;
    } finally {
      stopTimer();
    }
    metrics.spansAccepted.inc(accepted);
    metrics.messagesPublished.inc(messages.length);
  }
  return result.rejection && { rejectedSpans: rejected, errorMessage: result.rejection.message };
}
