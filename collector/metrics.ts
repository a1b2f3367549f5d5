/**
 * The collector's Prometheus metrics. Registered on a registry the caller may
 * share (the all-in-one process serves collector and consumer metrics from
 * one /metrics), so the names carry the `fleet_collector_` prefix.
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, type Registry, type RegistryContentType } from 'prom-client';

/** A registry in either exposition format (Prometheus text or OpenMetrics). */
export type MetricsRegistry = Registry<RegistryContentType>;

/** Why spans did not reach the bus: invalid (partial success), unavailable (503/429), error (500). */
export type RejectReason = 'invalid' | 'unavailable' | 'error';

export interface CollectorMetrics {
  spansReceived: Counter;
  spansAccepted: Counter;
  spansRejected: Counter<'reason'>;
  /** Request body bytes, as sent (`wire`) and after decompression (`decoded`). */
  requestBytes: Counter<'stage'>;
  requests: Counter<'code'>;
  /** OTLP/gRPC Export calls answered, by gRPC status name. */
  grpcRequests: Counter<'code'>;
  messagesPublished: Counter;
  publishDuration: Histogram;
  /** Connections the connection cap closed: `evicted` (idle, to make room) or `refused` (every connection busy). */
  connectionsClosed: Counter<'reason'>;
}

/** Reads the in-flight state when Prometheus scrapes, so the gauges are never stale. */
export interface InflightSource {
  bytes(): number;
  requests(): number;
}

export function createCollectorMetrics(registry: MetricsRegistry, inflight: InflightSource): CollectorMetrics {
  const registers = [registry];
  new Gauge({
    name: 'fleet_collector_inflight_bytes',
    help: 'Request bytes (after decompression) being processed now; bounded by maxInflightBytes.',
    registers,
    collect() {
      this.set(inflight.bytes());
    },
  });
  new Gauge({
    name: 'fleet_collector_inflight_requests',
    help: 'OTLP export requests being processed now.',
    registers,
    collect() {
      this.set(inflight.requests());
    },
  });
  return {
    spansReceived: new Counter({ name: 'fleet_collector_spans_received_total', help: 'Spans in decoded export requests.', registers }),
    spansAccepted: new Counter({ name: 'fleet_collector_spans_accepted_total', help: 'Spans published to the bus.', registers }),
    spansRejected: new Counter({
      name: 'fleet_collector_spans_rejected_total',
      help: 'Spans not published, by reason: invalid (reported as partial success), unavailable (bus refused, 503), error (500).',
      labelNames: ['reason'] as const,
      registers,
    }),
    requestBytes: new Counter({
      name: 'fleet_collector_request_bytes_total',
      help: 'Request body bytes received, as sent (stage="wire") and after decompression (stage="decoded").',
      labelNames: ['stage'] as const,
      registers,
    }),
    requests: new Counter({
      name: 'fleet_collector_requests_total',
      help: 'OTLP export requests answered, by HTTP status code.',
      labelNames: ['code'] as const,
      registers,
    }),
    grpcRequests: new Counter({
      name: 'fleet_collector_grpc_requests_total',
      help: 'OTLP/gRPC Export calls answered, by gRPC status (OK, INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, …).',
      labelNames: ['code'] as const,
      registers,
    }),
    messagesPublished: new Counter({ name: 'fleet_collector_messages_published_total', help: 'Bus messages (one per trace per request) published.', registers }),
    publishDuration: new Histogram({
      name: 'fleet_collector_publish_duration_seconds',
      help: 'Time from handing a request\'s messages to the bus until it acknowledged them (or failed).',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    connectionsClosed: new Counter({
      name: 'fleet_collector_connections_closed_total',
      help: 'Connections closed by the connection cap (maxConnections): reason="evicted" (idle, to make room for a new one), "refused" (every connection had a request in progress).',
      labelNames: ['reason'] as const,
      registers,
    }),
  };
}

/**
 * prom-client's process and Node.js metrics, minus the three that break the
 * exposition conventions (`promtool check metrics`: gauges named `_total`):
 * nodejs_active_{handles,requests,resources}_total are the sums of the
 * nodejs_active_{handles,requests,resources}{type} gauges kept beside them.
 * Every perpass process that serves /metrics registers these.
 */
export function collectProcessMetrics(registry: MetricsRegistry): void {
  collectDefaultMetrics({ register: registry });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
}
