/**
 * The OTLP/gRPC receiver: `opentelemetry.proto.collector.trace.v1.TraceService/Export`
 * (the official service definition in otlp/proto) on @grpc/grpc-js, default
 * port 4317. Same receive path as OTLP/HTTP (receive.ts): same validation,
 * bearer auth (the `authorization` metadata), in-flight budget, partial
 * success and refusals; a refusal becomes the gRPC status of the same
 * google.rpc code with the google.rpc.Status (BadRequest / RetryInfo details)
 * in `grpc-status-details-bin`, where OTLP exporters read the retry delay.
 *
 * The request message arrives as raw bytes (identity deserializer) so it is
 * decoded by the collector's own frame decoder, as over HTTP. grpc-js bounds
 * the message, also after gzip/deflate decompression, by
 * `grpc.max_receive_message_length` (= maxBodyBytes) and answers
 * RESOURCE_EXHAUSTED without RetryInfo past it (not retried, like HTTP 413).
 */
import * as grpc from '@grpc/grpc-js';
import { encodeTraceResponse } from '../otlp/codec.ts';
import { otlpRoot } from '../otlp/proto.ts';
import { encodeStatus } from '../otlp/status.ts';
import type { Authenticate } from './auth.ts';
import type { InflightBudget, Reservation } from './budget.ts';
import type { CollectorMetrics } from './metrics.ts';
import type { ResolvedCollectorOptions } from './options.ts';
import { receiveExport, refusalFor, shuttingDown, unauthenticated } from './receive.ts';

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

export interface GrpcReceiverDeps {
  options: ResolvedCollectorOptions;
  metrics: CollectorMetrics;
  budget: InflightBudget;
  authenticate?: Authenticate;
}

export interface GrpcReceiver {
  /** The port it listens on (the chosen one when the option was 0). */
  port: number;
  /** Stops accepting, lets in-flight calls finish (up to shutdownTimeoutMs), then cuts the rest. Does not close the publisher. */
  close(): Promise<void>;
}

export async function startGrpcReceiver(deps: GrpcReceiverDeps, port: number): Promise<GrpcReceiver> {
  const { options, metrics, budget, authenticate } = deps;
  let closing = false;
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxBodyBytes,
    // Partial-success messages name up to ten spans; nothing we send is large.
    'grpc.max_send_message_length': 4 * 1024 * 1024,
  });

  const reply = (callback: grpc.sendUnaryData<Uint8Array>, code: number, err?: grpc.ServerErrorResponse, body?: Uint8Array) => {
    metrics.grpcRequests.inc({ code: CODE_NAME[code] ?? String(code) });
    if (err) callback(err);
    else callback(null, body);
  };

  const exportHandler: grpc.handleUnaryCall<Buffer, Uint8Array> = (call, callback) => {
    let reservation: Reservation | undefined;
    const run = async () => {
      if (closing) throw shuttingDown();
      const authorization = call.metadata.get('authorization')[0];
      const tenant = authenticate?.(typeof authorization === 'string' ? authorization : authorization?.toString('utf8'));
      if (authenticate && tenant === undefined) throw unauthenticated();
      reservation = budget.open();
      reservation.grow(call.request.length);
      // grpc-js has already decompressed the message: its wire size is not known here.
      metrics.requestBytes.inc({ stage: 'decoded' }, call.request.length);
      return receiveExport({ options, metrics }, 'protobuf', call.request, tenant);
    };
    run().then(
      (partial) => reply(callback, grpc.status.OK, undefined, encodeTraceResponse(partial)),
      (err: unknown) => {
        const { status } = refusalFor(err, options);
        const metadata = new grpc.Metadata();
        metadata.set('grpc-status-details-bin', Buffer.from(encodeStatus(status)));
        reply(callback, status.code, { name: 'OtlpRefusal', code: status.code, details: status.message, message: status.message, metadata });
      },
    ).finally(() => reservation?.release());
  };

  server.addService(SERVICE, { Export: exportHandler });
  const host = options.host ?? '0.0.0.0';
  const address = host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(new Error(`collector cannot listen for OTLP/gRPC on ${address}: ${err.message}`, { cause: err })) : resolve(p),
    ),
  );
  return {
    port: bound,
    close: async () => {
      if (closing) return;
      closing = true;
      let timer: NodeJS.Timeout | undefined;
      const graceful = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      const timeout = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), options.shutdownTimeoutMs)));
      if ((await Promise.race([graceful, timeout])) === 'timeout') server.forceShutdown();
      clearTimeout(timer);
    },
  };
}
