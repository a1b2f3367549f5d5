/**
 * The collector's public API: a stateless OTLP/HTTP receiver publishing one
 * message per trace to the bus. Used by `fleet collector` and embedded by
 * `fleet start` (which passes the in-process queue's publisher and a shared
 * metrics registry).
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { bearerAuthenticator } from './auth.ts';
import { InflightBudget } from './budget.ts';
import { createCollectorMetrics, type MetricsRegistry } from './metrics.ts';
import { resolveCollectorOptions, type CollectorOptions } from './options.ts';
import { createCollectorServer, TRACES_PATH } from './server.ts';

export { CollectorOptionsError, type CollectorOptions } from './options.ts';
export { TRACES_PATH } from './server.ts';

export interface RunningCollector {
  /** Base URL, e.g. `http://127.0.0.1:4318`; traces go to `${url}/v1/traces`. */
  url: string;
  /** Base URL plus `/v1/traces`: what an OTLP exporter's traces endpoint should be. */
  tracesUrl: string;
  port: number;
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
    collectDefaultMetrics({ register: registry });
  }
  const budget = new InflightBudget(resolved.maxInflightBytes);
  const metrics = createCollectorMetrics(registry, { bytes: () => budget.bytes, requests: () => budget.requests });
  const server = createCollectorServer({
    options: resolved,
    registry,
    metrics,
    budget,
    ...(resolved.authTokens && { authenticate: bearerAuthenticator(resolved.authTokens) }),
  });
  const address = await server.listen();
  const url = `http://${urlHost(address.address)}:${address.port}`;
  return { url, tracesUrl: `${url}${TRACES_PATH}`, port: address.port, registry, stopAccepting: server.stopAccepting, close: server.close };
}
