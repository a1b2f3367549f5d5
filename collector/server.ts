/**
 * The OTLP/HTTP receiver: `POST /v1/traces` per the OTLP/HTTP spec, plus
 * `/healthz`, `/readyz` and `/metrics`. Stateless: a request is answered 200
 * only after the bus acknowledged its spans, so a client never has to trust
 * the collector with data it could not deliver; everything refused is refused
 * with a status that tells the client whether retrying can help.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { BusUnavailableError } from '../bus/types.ts';
import { ATTR } from '../contract/index.ts';
import { OtlpDecodeError } from '../otlp/codec.ts';
import { traceMessages, withResourceAttribute } from '../otlp/split.ts';
import { RPC_CODE, type RpcStatus } from '../otlp/status.ts';
import type { Authenticate } from './auth.ts';
import { BodyError, ClientAbortedError, contentCoding, readBody } from './body.ts';
import { BudgetExhaustedError, type InflightBudget, type Reservation } from './budget.ts';
import { decodeRequest, payloadEncoding, statusBody, successBody, type EncodedBody, type PayloadEncoding } from './encoding.ts';
import type { CollectorMetrics, MetricsRegistry } from './metrics.ts';
import type { ResolvedCollectorOptions } from './options.ts';
import { rejectionMessage, rejectionViolations, validateRequest } from './validate.ts';

export const TRACES_PATH = '/v1/traces';

/**
 * How long the unread rest of a refused body may keep draining before the
 * connection is cut. Draining (instead of closing at once) lets the client
 * read our response rather than a connection reset, which OTLP exporters
 * would retry as a network error, e.g. for a 413 that must not be retried.
 */
const DRAIN_TIMEOUT_MS = 2_000;

/** Retry-After for requests arriving while the collector shuts down (another replica, or this one restarted, will take them). */
const SHUTDOWN_RETRY_AFTER_SECONDS = 1;

/** A refusal decided by the collector itself: HTTP status, google.rpc code, message and the optional details. */
class Refusal extends Error {
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

const retryable = (httpStatus: 429 | 503, code: number, message: string, seconds: number): Refusal =>
  new Refusal(httpStatus, { code, message, retryDelaySeconds: seconds }, { 'Retry-After': String(seconds) });

/** Every failure of an export request as the refusal to answer with. */
function refusalFor(err: unknown, options: ResolvedCollectorOptions): Refusal {
  if (err instanceof Refusal) return err;
  if (err instanceof BodyError) {
    const code = err.status === 413 ? RPC_CODE.RESOURCE_EXHAUSTED : RPC_CODE.INVALID_ARGUMENT;
    return new Refusal(err.status, { code, message: err.message });
  }
  if (err instanceof OtlpDecodeError) {
    return new Refusal(400, { code: RPC_CODE.INVALID_ARGUMENT, message: err.message, fieldViolations: [{ field: 'body', description: err.message }] });
  }
  if (err instanceof BudgetExhaustedError) return retryable(429, RPC_CODE.RESOURCE_EXHAUSTED, err.message, options.overloadRetryAfterSeconds);
  if (err instanceof BusUnavailableError) {
    return retryable(503, RPC_CODE.UNAVAILABLE, `downstream unavailable: ${err.message}`, err.retryAfterSeconds);
  }
  // Not known to be transient: OTLP clients must not retry a 500, so the sender learns the data was not taken.
  return new Refusal(500, { code: RPC_CODE.INTERNAL, message: `failed to publish spans: ${(err as Error)?.message ?? String(err)}` });
}

export interface CollectorServerDeps {
  options: ResolvedCollectorOptions;
  registry: MetricsRegistry;
  metrics: CollectorMetrics;
  budget: InflightBudget;
  /** Set when bearer-token auth is on. */
  authenticate?: Authenticate;
}

export interface CollectorServer {
  listen(): Promise<AddressInfo>;
  /**
   * Answers every new request 503 + Retry-After while still listening (a
   * refused connection tells a load balancer less), and resolves once the
   * in-flight requests are answered (up to shutdownTimeoutMs).
   */
  stopAccepting(): Promise<void>;
  /** stopAccepting(), then stops listening and closes the publisher. */
  close(): Promise<void>;
}

export function createCollectorServer(deps: CollectorServerDeps): CollectorServer {
  const { options, registry, metrics, budget, authenticate } = deps;
  const { publisher } = options;
  let closing = false;
  const inflight = new Set<Promise<void>>();
  /** Requests that were sent `100 Continue` (their body is on its way). */
  const continued = new WeakSet<http.IncomingMessage>();

  /** Writes a complete response; see unreadBody for requests answered before their body was read. */
  function respond(req: http.IncomingMessage, res: http.ServerResponse, status: number, contentType: string, body: Uint8Array | string, headers: Record<string, string> = {}) {
    const all: Record<string, string | number> = { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body), ...headers };
    if (!req.complete) unreadBody(req, all);
    if (closing) all.Connection = 'close';
    res.writeHead(status, all);
    res.end(body);
  }

  /**
   * A request answered before its body was read. If the client waits for
   * 100-continue it will not send the body at all, so the connection cannot
   * be reused; otherwise discard what is still coming (bounded by DRAIN_TIMEOUT_MS).
   */
  function unreadBody(req: http.IncomingMessage, headers: Record<string, string | number>) {
    if (req.headers.expect?.toLowerCase() === '100-continue' && !continued.has(req)) headers.Connection = 'close';
    else drain(req);
  }

  function send(req: http.IncomingMessage, res: http.ServerResponse, httpStatus: number, encoded: EncodedBody, headers: Record<string, string> = {}) {
    respond(req, res, httpStatus, encoded.contentType, encoded.body, headers);
  }

  function drain(req: http.IncomingMessage) {
    const timer = setTimeout(() => req.socket.destroy(), DRAIN_TIMEOUT_MS);
    timer.unref();
    req.once('end', () => clearTimeout(timer));
    req.once('close', () => clearTimeout(timer));
    req.resume();
  }

  async function handleExport(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const encoding = payloadEncoding(req.headers['content-type']);
    // A request in neither encoding still gets a Status body; protobuf is OTLP's default.
    const answerIn: PayloadEncoding = encoding ?? 'protobuf';
    let reservation: Reservation | undefined;
    let httpStatus: number;
    try {
      if (closing) throw retryable(503, RPC_CODE.UNAVAILABLE, 'collector is shutting down', SHUTDOWN_RETRY_AFTER_SECONDS);
      const tenant = authenticate?.(req.headers.authorization);
      if (authenticate && tenant === undefined) {
        throw new Refusal(401, { code: RPC_CODE.UNAUTHENTICATED, message: 'missing or unknown bearer token' }, { 'WWW-Authenticate': 'Bearer' });
      }
      if (!encoding) {
        throw new Refusal(415, {
          code: RPC_CODE.INVALID_ARGUMENT,
          message: `unsupported Content-Type ${JSON.stringify(req.headers['content-type'] ?? '')}: use application/x-protobuf or application/json`,
        });
      }
      const coding = contentCoding(req.headers['content-encoding']);
      // Node's parser already refused malformed lengths; chunked bodies declare none.
      const declared = Number.parseInt(req.headers['content-length'] ?? '0', 10) || 0;
      if (declared > options.maxBodyBytes) {
        throw new BodyError(413, `request body of ${declared} bytes exceeds the limit of ${options.maxBodyBytes} bytes`);
      }
      reservation = budget.open();
      reservation.grow(declared);
      if (req.headers.expect?.toLowerCase() === '100-continue') {
        continued.add(req);
        res.writeContinue();
      }

      const { body, wireBytes } = await readBody(req, { coding, maxBytes: options.maxBodyBytes, onBytes: reservation.grow });
      metrics.requestBytes.inc({ stage: 'wire' }, wireBytes);
      metrics.requestBytes.inc({ stage: 'decoded' }, body.length);

      const decoded = decodeRequest(encoding, body);
      // With auth on, the token decides the tenant: whatever the client put in fleet.tenant is overwritten.
      // Stamped before validation, so the size check sees the resources as they will be published.
      const stamped = tenant === undefined ? decoded : withResourceAttribute(decoded, ATTR.TENANT, tenant);
      const result = validateRequest(stamped, { maxMessageBytes: options.maxMessageBytes });
      const { rejected } = result;
      const accepted = result.total - rejected;
      metrics.spansReceived.inc(result.total);
      if (rejected > 0) metrics.spansRejected.inc({ reason: 'invalid' }, rejected);
      if (rejected > 0 && accepted === 0) {
        // Nothing to accept is not a partial success: OTLP answers permanently bad data with 400.
        throw new Refusal(400, { code: RPC_CODE.INVALID_ARGUMENT, message: rejectionMessage(result), fieldViolations: rejectionViolations(result) });
      }

      const messages = traceMessages(result.valid, options.maxMessageBytes);
      if (messages.length > 0) {
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
      httpStatus = 200;
      send(req, res, 200, successBody(answerIn, rejected > 0 ? { rejectedSpans: rejected, errorMessage: rejectionMessage(result) } : undefined));
    } catch (err) {
      if (err instanceof ClientAbortedError) {
        // Nobody to answer; the socket is already gone.
        req.socket.destroy();
        return;
      }
      const refusal = refusalFor(err, options);
      httpStatus = refusal.httpStatus;
      send(req, res, refusal.httpStatus, statusBody(answerIn, refusal.status), refusal.headers);
    } finally {
      reservation?.release();
    }
    metrics.requests.inc({ code: String(httpStatus) });
  }

  async function handleReady(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let ready = false;
    let why = 'collector is shutting down';
    if (!closing) {
      try {
        ready = await publisher.isReady();
        why = 'the bus is not accepting writes';
      } catch (err) {
        why = `the bus readiness check failed: ${(err as Error).message}`;
      }
    }
    plain(req, res, ready ? 200 : 503, ready ? 'ready\n' : `not ready: ${why}\n`);
  }

  async function handleMetrics(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    respond(req, res, 200, registry.contentType, await registry.metrics());
  }

  function plain(req: http.IncomingMessage, res: http.ServerResponse, status: number, text: string, headers: Record<string, string> = {}) {
    respond(req, res, status, 'text/plain; charset=utf-8', text, headers);
  }

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    const method = req.method ?? 'GET';
    if (path === TRACES_PATH) {
      if (method === 'POST') return handleExport(req, res);
      const encoded = statusBody('protobuf', { code: RPC_CODE.UNIMPLEMENTED, message: `${method} not allowed on ${TRACES_PATH}: use POST` });
      return send(req, res, 405, encoded, { Allow: 'POST' });
    }
    if (method !== 'GET' && method !== 'HEAD') return plain(req, res, 405, `${method} not allowed on ${path}\n`, { Allow: 'GET, HEAD' });
    if (path === '/healthz') return plain(req, res, 200, 'ok\n');
    if (path === '/readyz') return handleReady(req, res);
    if (path === '/metrics') return handleMetrics(req, res);
    return plain(req, res, 404, `no such endpoint ${path}: OTLP traces go to POST ${TRACES_PATH}\n`);
  }

  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const handled = route(req, res).catch((err: unknown) => {
      // Only reachable for failures outside handleExport's own handling (e.g. a metrics scrape error).
      if (!res.headersSent) plain(req, res, 500, `internal error: ${(err as Error)?.message ?? String(err)}\n`);
      else res.destroy();
    });
    inflight.add(handled);
    void handled.finally(() => inflight.delete(handled));
  };

  const server = http.createServer(onRequest);
  // Decide on 100-continue requests ourselves, so refused bodies are never sent.
  server.on('checkContinue', onRequest);

  let stopping: Promise<void> | undefined;
  let closed = false;
  /** Sets `closing` (new requests get 503) and waits for the requests in flight, up to shutdownTimeoutMs. */
  async function drainInflight(): Promise<void> {
    closing = true;
    server.closeIdleConnections();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, options.shutdownTimeoutMs)));
    await Promise.race([Promise.allSettled([...inflight]), timeout]);
    clearTimeout(timer);
  }

  return {
    listen: () =>
      new Promise<AddressInfo>((resolve, reject) => {
        const onError = (err: Error) => reject(new Error(`collector cannot listen on ${options.host ?? '*'}:${options.port}: ${err.message}`, { cause: err }));
        server.once('error', onError);
        server.listen(options.port, options.host, () => {
          server.off('error', onError);
          resolve(server.address() as AddressInfo);
        });
      }),
    stopAccepting: () => (stopping ??= drainInflight()),
    close: async () => {
      if (closed) return;
      closed = true;
      const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
      await (stopping ??= drainInflight());
      server.closeAllConnections();
      await stopped;
      await publisher.close();
    },
  };
}
