/**
 * The OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`
 * (the official service definition in otlp/proto) on @grpc/grpc-js, default
 * port 4317. Same limits and receive path as OTLP/HTTP, with the instances
 * startCollector builds: the connection cap (shared with HTTP) admits each
 * connection before grpc-js reads a byte of it; when a call's metadata
 * arrives — before its message is read — shutdown, bearer auth (the
 * `authorization` metadata), the memory guard and the tenant's queue share
 * refuse it; then the in-flight budget (per tenant and per connection)
 * holds its message, and receive.ts prepares it (on an ingest worker when
 * large), checks the queue share and publishes. A refusal becomes the gRPC
 * status of the same google.rpc code with the google.rpc.Status
 * (BadRequest / RetryInfo details) in `grpc-status-details-bin`, where OTLP
 * exporters read the retry delay.
 *
 * The request message arrives as raw bytes (identity deserializer) so it is
 * decoded by the collector's own frame decoder, as over HTTP. grpc-js bounds
 * the message, also after gzip/deflate decompression, by
 * `grpc.max_receive_message_length` (= maxBodyBytes) and answers
 * RESOURCE_EXHAUSTED without RetryInfo past it (not retried, like HTTP 413).
 */
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { encodeTraceResponse } from '../otlp/codec.ts';
import { otlpRoot } from '../otlp/proto.ts';
import { encodeStatus, type RpcStatus } from '../otlp/status.ts';
import type { Reservation } from './budget.ts';
import { receiveExport, refusalFor, shuttingDown, unauthenticated } from './receive.ts';
import { admitSocket, type CollectorServerDeps, type SocketUse } from './server.ts';

const traceService = otlpRoot.lookupService('opentelemetry.proto.collector.trace.v1.TraceService');
/** `/opentelemetry.proto.collector.trace.v1.TraceService/Export`, from the .proto (protobufjs full names start with a dot). */
export const EXPORT_METHOD_PATH = `/${traceService.fullName.replace(/^\./, '')}/${traceService.methods.Export!.name}`;

const identity = (b: Buffer): Buffer => b;

const SERVICE: grpc.ServiceDefinition = {
  Export: {
    path: EXPORT_METHOD_PATH,
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength),
    responseDeserialize: identity,
    originalName: 'export',
  },
};

/** gRPC status names by code, for the requests metric. */
const CODE_NAME = Object.fromEntries(Object.entries(grpc.status).filter(([, v]) => typeof v === 'number').map(([k, v]) => [v, k])) as Record<number, string>;

/** What the HTTP receiver gets, but its metrics registry: the same instances, so both transports share every limit. */
export type GrpcReceiverDeps = Omit<CollectorServerDeps, 'registry'>;

export interface GrpcReceiver {
  /** The port it listens on (the chosen one when the option was 0). */
  port: number;
  /** New calls get UNAVAILABLE + RetryInfo (still listening); resolves once the calls in flight are answered (up to shutdownTimeoutMs). */
  stopAccepting(): Promise<void>;
  /** stopAccepting(), then stops listening and cuts what is left. Does not close the publisher. */
  close(): Promise<void>;
}

/** A call's peer as grpc-js names it (`getPeer()`): the socket's remote address and port. */
const peerOf = (socket: net.Socket): string => `${socket.remoteAddress}:${socket.remotePort}`;

function grpcError(status: RpcStatus): grpc.ServerErrorResponse {
  const metadata = new grpc.Metadata();
  metadata.set('grpc-status-details-bin', Buffer.from(encodeStatus(status)));
  return { name: 'OtlpRefusal', code: status.code, details: status.message, message: status.message, metadata };
}

export async function startGrpcReceiver(deps: GrpcReceiverDeps, port: number): Promise<GrpcReceiver> {
  const { options, metrics, budget, ingest, connectionCap, memoryGuard, authenticate } = deps;
  const { queueShares } = options;
  let closing = false;
  const inflight = new Set<Promise<unknown>>();
  /** The connections' use records by peer, for the cap (busy while a call runs) and the per-connection budget. */
  const uses = new Map<string, SocketUse>();

  /** The tenant of a call's metadata; throws the refusal for a call that must not be read at all. */
  const admit = (metadata: grpc.Metadata): string | undefined => {
    if (closing) throw shuttingDown();
    const authorization = metadata.get('authorization')[0];
    const tenant = authenticate?.(typeof authorization === 'string' ? authorization : authorization?.toString('utf8'));
    if (authenticate && tenant === undefined) throw unauthenticated();
    // Cheap refusals before the message is read, as over HTTP: memory, then the tenant's queue share.
    memoryGuard?.check();
    if (tenant !== undefined) queueShares?.admit(tenant);
    return tenant;
  };

  const reply = (callback: grpc.sendUnaryData<Uint8Array>, code: number, err?: grpc.ServerErrorResponse, body?: Uint8Array) => {
    metrics.grpcRequests.inc({ code: CODE_NAME[code] ?? String(code) });
    if (err) callback(err);
    else callback(null, body);
  };

  /** Refuses a call when its metadata arrives, before grpc-js reads its message. */
  const admission: grpc.ServerInterceptor = (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, proceed) => {
            try {
              admit(metadata);
            } catch (err) {
              const { status } = refusalFor(err, options);
              const e = grpcError(status);
              metrics.grpcRequests.inc({ code: CODE_NAME[status.code] ?? String(status.code) });
              call.sendStatus({ code: status.code, details: status.message, metadata: e.metadata! });
              return;
            }
            proceed(metadata);
          },
        }),
    });

  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxBodyBytes,
    // Partial-success messages name up to ten spans; nothing we send is large.
    'grpc.max_send_message_length': 4 * 1024 * 1024,
    interceptors: [admission],
  });

  const exportHandler: grpc.handleUnaryCall<Buffer, Uint8Array> = (call, callback) => {
    let reservation: Reservation | undefined;
    const use = uses.get(call.getPeer());
    if (use) {
      use.active += 1;
      use.served = true;
    }
    const run = async () => {
      const tenant = admit(call.metadata);
      const received = call.request.length;
      // The message is in memory now (grpc-js read it whole): the in-flight budget holds it, per tenant and per connection.
      reservation = budget.open({ tenant, connection: use ?? call });
      reservation.grow(received);
      // grpc-js has already decompressed the message: its wire size is not known here.
      metrics.requestBytes.inc({ stage: 'decoded' }, received);
      return receiveExport({ options, metrics, ingest }, 'protobuf', call.request, tenant);
    };
    const done = run()
      .then(
        (partial) => reply(callback, grpc.status.OK, undefined, encodeTraceResponse(partial)),
        (err: unknown) => {
          const { status } = refusalFor(err, options);
          reply(callback, status.code, grpcError(status));
        },
      )
      .finally(() => {
        reservation?.release();
        if (use) {
          use.active -= 1;
          use.idleSince = Date.now();
        }
        inflight.delete(done);
      });
    inflight.add(done);
  };

  server.addService(SERVICE, { Export: exportHandler });
  // Our own listener, so the connection cap decides each connection before grpc-js reads a byte of it.
  const injector = server.createConnectionInjector(grpc.ServerCredentials.createInsecure());
  const sockets = new Set<net.Socket>();
  const listener = net.createServer((socket) => {
    const use = admitSocket(connectionCap, metrics, socket);
    if (!use) return;
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    const peer = peerOf(socket);
    uses.set(peer, use);
    socket.once('close', () => uses.delete(peer));
    injector.injectConnection(socket);
  });
  const host = options.host ?? '0.0.0.0';
  const bound = await new Promise<number>((resolve, reject) => {
    listener.once('error', (err) => reject(new Error(`collector cannot listen for OTLP/gRPC on ${host}:${port}: ${err.message}`, { cause: err })));
    listener.listen(port, host, () => resolve((listener.address() as net.AddressInfo).port));
  });

  let stopping: Promise<void> | undefined;
  /** Sets `closing` (new calls get UNAVAILABLE) and waits for the calls in flight, up to shutdownTimeoutMs. */
  async function drainInflight(): Promise<void> {
    closing = true;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, options.shutdownTimeoutMs)));
    await Promise.race([Promise.allSettled([...inflight]), timeout]);
    clearTimeout(timer);
  }
  let closed = false;
  return {
    port: bound,
    stopAccepting: () => (stopping ??= drainInflight()),
    close: async () => {
      if (closed) return;
      closed = true;
      await (stopping ??= drainInflight());
      const stopped = new Promise<void>((resolve) => listener.close(() => resolve()));
      // The calls in flight were answered or ran out of time: cut the sessions.
      server.forceShutdown();
      injector.destroy();
      for (const socket of sockets) socket.destroy();
      await stopped;
    },
  };
}
