/**
 * The collector's public API: a stateless OTLP/HTTP receiver publishing one
 * message per trace to the bus. Used by `fleet collector` and embedded by
 * `fleet start` (which passes the in-process queue's publisher and a shared
 * metrics registry).
 */
import { Registry } from 'prom-client';
import { bearerAuthenticator } from './auth.ts';
import { InflightBudget } from './budget.ts';
import { ConnectionCap, MemoryGuard } from './limits.ts';
import { collectProcessMetrics, createCollectorMetrics, type MetricsRegistry } from './metrics.ts';
import { resolveCollectorOptions, type CollectorOptions } from './options.ts';
import { startGrpcReceiver, type GrpcReceiver } from './grpc.ts';
import { createCollectorServer, TRACES_PATH } from './server.ts';
import { IngestPool } from './workers.ts';

export { CollectorOptionsError, type CollectorOptions } from './options.ts';
export { defaultMemoryBudget, memoryLimitBytes, planMemory, QueueShares, TENANT_HEADER, type MemoryPlan } from './limits.ts';
export { TRACES_PATH } from './server.ts';

export interface RunningCollector {
  /** Base URL, e.g. `http://127.0.0.1:4318`; traces go to `${url}/v1/traces`. */
  url: string;
  /** Base URL plus `/v1/traces`: what an OTLP exporter's traces endpoint should be. */
  tracesUrl: string;
  port: number;
  /** Port of the OTLP/gRPC receiver, when the grpcPort option was given. */
  grpcPort?: number;
  /** The registry the collector's metrics live on (the injected one, if any). */
  registry: MetricsRegistry;
  /** Answers new requests 503 + Retry-After (still listening); resolves once in-flight requests are answered. */
  stopAccepting(): Promise<void>;
  /** Stops accepting, lets in-flight requests finish publishing, then closes the publisher. */
  close(): Promise<void>;
}

/** A host literal as it goes into a URL; a wildcard address becomes the loopback one, which reaches it. */
function urlHost(address: string): string {
  if (address === '0.0.0.0') return '127.0.0.1';
  if (address === '::') return '[::1]';
  return address.includes(':') ? `[${address}]` : address;
}

/** Validates the options (CollectorOptionsError names a bad one), then listens. */
export async function startCollector(options: CollectorOptions): Promise<RunningCollector> {
  const resolved = resolveCollectorOptions(options);
  let registry: MetricsRegistry | undefined = resolved.registry;
  if (!registry) {
    // A collector with its own registry runs as its own process: export the process metrics too.
    // An embedder that injects a registry decides that itself.
    registry = new Registry();
    collectProcessMetrics(registry);
  }
  const budget = new InflightBudget({
    totalBytes: resolved.maxInflightBytes,
    tenantBytes: resolved.maxTenantInflightBytes,
    // HTTP/1.1 carries one request at a time; a multiplexed connection gets a tenant's share.
    connectionBytes: resolved.maxTenantInflightBytes,
  });
  const ingest = new IngestPool({ inlineBelowBytes: resolved.workerThresholdBytes, ...(resolved.ingestWorkers && { workers: resolved.ingestWorkers }) });
  const memoryGuard = resolved.refuseAboveRssBytes === undefined ? undefined : new MemoryGuard(resolved.refuseAboveRssBytes);
  const metrics = createCollectorMetrics(registry, { bytes: () => budget.bytes, requests: () => budget.requests });
  const authenticate = resolved.authTokens && bearerAuthenticator(resolved.authTokens);
  // Both transports share one set of limits: a client's do not double with a second port.
  const deps = {
    options: resolved,
    registry,
    metrics,
    budget,
    ingest,
    connectionCap: new ConnectionCap(resolved.maxConnections),
    ...(memoryGuard && { memoryGuard }),
    ...(authenticate && { authenticate }),
  };
  const server = createCollectorServer(deps);
  const address = await server.listen();
  let grpc: GrpcReceiver | undefined;
  try {
    if (resolved.grpcPort !== undefined) grpc = await startGrpcReceiver(deps, resolved.grpcPort);
  } catch (err) {
    await server.close();
    memoryGuard?.stop();
    await ingest.close();
    throw err;
  }
  const url = `http://${urlHost(address.address)}:${address.port}`;
  const close = async () => {
    // gRPC first: server.close() closes the publisher, which in-flight gRPC calls may still be using.
    await grpc?.close();
    await server.close();
    memoryGuard?.stop();
    await ingest.close();
  };
  // Both transports refuse new requests (503 / UNAVAILABLE + retry delay) and answer those in flight.
  const stopAccepting = async () => {
    await Promise.all([server.stopAccepting(), grpc?.stopAccepting()]);
  };
  return { url, tracesUrl: `${url}${TRACES_PATH}`, port: address.port, ...(grpc && { grpcPort: grpc.port }), registry, stopAccepting, close };
}
