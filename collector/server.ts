/**
 * The OTLP/HTTP receiver: `POST /v1/traces` per the OTLP/HTTP spec, plus
 * `/healthz`, `/readyz` and `/metrics`. Stateless: a request is answered 200
 * only after the bus acknowledged its spans, so a client never has to trust
 * the collector with data it could not deliver; everything refused is refused
 * with a status that tells the client whether retrying can help.
 */
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { RPC_CODE } from '../otlp/status.ts';
import type { Authenticate } from './auth.ts';
import { BodyError, ClientAbortedError, contentCoding, readBody } from './body.ts';
import type { InflightBudget, Reservation } from './budget.ts';
import { payloadEncoding, statusBody, successBody, type EncodedBody, type PayloadEncoding } from './encoding.ts';
import type { ConnectionCap, MemoryGuard } from './limits.ts';
import type { CollectorMetrics, MetricsRegistry } from './metrics.ts';
import type { ResolvedCollectorOptions } from './options.ts';
import { receiveExport, Refusal, refusalFor, shuttingDown, unauthenticated } from './receive.ts';
import type { IngestPool } from './workers.ts';

export const TRACES_PATH = '/v1/traces';

/**
 * How long the unread rest of a refused body may keep draining before the
 * connection is cut. Draining (instead of closing at once) lets the client
 * read our response rather than a connection reset, which OTLP exporters
 * would retry as a network error, e.g. for a 413 that must not be retried.
 */
const DRAIN_TIMEOUT_MS = 2_000;

export interface CollectorServerDeps {
  options: ResolvedCollectorOptions;
  registry: MetricsRegistry;
  metrics: CollectorMetrics;
  budget: InflightBudget;
  /** Prepares bodies (decode, validate, split), large ones off the event loop. */
  ingest: IngestPool;
  /** The cap on open connections, shared with the gRPC receiver. */
  connectionCap: ConnectionCap;
  /** Set when the memory budget's RSS guard is on. */
  memoryGuard?: MemoryGuard;
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
  const { options, registry, metrics, budget, ingest, connectionCap, memoryGuard, authenticate } = deps;
  const { publisher, queueShares } = options;
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
    const arrived = Date.now();
    const encoding = payloadEncoding(req.headers['content-type']);
    // A request in neither encoding still gets a Status body; protobuf is OTLP's default.
    const answerIn: PayloadEncoding = encoding ?? 'protobuf';
    let reservation: Reservation | undefined;
    let httpStatus: number;
    try {
      if (closing) throw shuttingDown();
      const tenant = authenticate?.(req.headers.authorization);
      if (authenticate && tenant === undefined) throw unauthenticated();
      if (!encoding) {
        throw new Refusal(415, {
          code: RPC_CODE.INVALID_ARGUMENT,
          message: `unsupported Content-Type ${JSON.stringify(req.headers['content-type'] ?? '')}: use application/x-protobuf or application/json`,
        });
      }
      const coding = contentCoding(req.headers['content-encoding']);
      // Node's parser already refused malformed lengths; chunked bodies declare none.
      const declared = Number.parseInt(req.headers['content-length'] ?? '0', 10) || 0;
      // Cheap refusals first, before a byte of the body is read: memory, then the tenant's queue share.
      memoryGuard?.check();
      if (tenant !== undefined) queueShares?.admit(tenant, declared);
      if (declared > options.maxBodyBytes) {
        throw new BodyError(413, `request body of ${declared} bytes exceeds the limit of ${options.maxBodyBytes} bytes`);
      }
      // Only bytes received count: a declared length is a claim, and a client that declares 64 MiB and trickles holds what it sent.
      reservation = budget.open({ tenant, connection: req.socket });
      if (req.headers.expect?.toLowerCase() === '100-continue') {
        continued.add(req);
        res.writeContinue();
      }

      const { body, wireBytes } = await readBody(req, {
        coding,
        maxBytes: options.maxBodyBytes,
        onBytes: reservation.grow,
        expectedBytes: declared,
        deadline: arrived + options.bodyTimeoutMs,
        minBytesPerSecond: options.minBodyBytesPerSecond,
      });
      metrics.requestBytes.inc({ stage: 'wire' }, wireBytes);
      metrics.requestBytes.inc({ stage: 'decoded' }, body.length);

      const partial = await receiveExport({ options, metrics, ingest }, encoding, body, tenant);
      httpStatus = 200;
      send(req, res, 200, successBody(answerIn, partial));
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

  let markBusy: (req: http.IncomingMessage, res: http.ServerResponse) => void = () => {};
  const onRequest = (req: http.IncomingMessage, res: http.ServerResponse) => {
    markBusy(req, res);
    const handled = route(req, res).catch((err: unknown) => {
      // Only reachable for failures outside handleExport's own handling (e.g. a metrics scrape error).
      if (!res.headersSent) plain(req, res, 500, `internal error: ${(err as Error)?.message ?? String(err)}\n`);
      else res.destroy();
    });
    inflight.add(handled);
    void handled.finally(() => inflight.delete(handled));
  };

  const server = http.createServer(
    {
      // Node answers 408 itself to a client too slow with its headers, or with a whole request.
      headersTimeout: options.headersTimeoutMs,
      requestTimeout: options.bodyTimeoutMs + options.headersTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      // How often Node checks those two timeouts (default 30 s: a slow-headers client would be judged late).
      connectionsCheckingInterval: Math.min(1_000, options.headersTimeoutMs),
    },
    onRequest,
  );
  // Decide on 100-continue requests ourselves, so refused bodies are never sent.
  server.on('checkContinue', onRequest);
  markBusy = watchConnections(server, connectionCap, metrics);

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

/** Per socket: requests in progress, when it last became idle, whether it ever carried a request. */
export interface SocketUse {
  active: number;
  idleSince: number;
  served: boolean;
}

/**
 * Admits a just-accepted socket under the connection cap (HTTP and gRPC
 * alike), before any byte is parsed: undefined when the cap closed it, else
 * its use record — whoever carries requests on it marks them in `active`,
 * so the cap evicts idle connections only.
 */
export function admitSocket(cap: ConnectionCap, metrics: CollectorMetrics, socket: Socket): SocketUse | undefined {
  const use: SocketUse = { active: 0, idleSince: Date.now(), served: false };
  const conn = {
    idleSince: () => (use.active > 0 ? undefined : use.idleSince),
    served: () => use.served,
    close: () => {
      metrics.connectionsClosed.inc({ reason: 'evicted' });
      socket.destroy();
    },
  };
  if (!cap.admit(conn)) {
    metrics.connectionsClosed.inc({ reason: 'refused' });
    socket.destroy();
    return undefined;
  }
  socket.once('close', () => cap.remove(conn));
  return use;
}

/**
 * The connection cap on the HTTP server: every accepted socket is admitted
 * (or closed) by the cap before the HTTP parser sees a byte, and the
 * returned function marks a socket busy for the life of each of its
 * requests, so the cap evicts idle connections only.
 */
function watchConnections(server: http.Server, cap: ConnectionCap, metrics: CollectorMetrics): (req: http.IncomingMessage, res: http.ServerResponse) => void {
  const uses = new WeakMap<Socket, SocketUse>();
  server.on('connection', (socket: Socket) => {
    const use = admitSocket(cap, metrics, socket);
    if (use) uses.set(socket, use);
  });
  return (req, res) => {
    const use = uses.get(req.socket);
    if (!use) return;
    use.active += 1;
    use.served = true;
    res.once('close', () => {
      use.active -= 1;
      use.idleSince = Date.now();
    });
  };
}
