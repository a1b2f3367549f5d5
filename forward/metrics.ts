/**
 * The forwarder's Prometheus metrics (`fleet_forward_` prefix). Labels:
 * `destination` (the URL without credentials or query) and `route`
 * (`default`, or the tenant whose own destination it is) — both bounded by
 * the configuration, never by traffic.
 */
import { Counter, Gauge, Histogram, type Registry, type RegistryContentType } from 'prom-client';

export type DropReason = 'queue_full' | 'rejected' | 'partial_success' | 'shutdown';
export type RetryReason = 'http_429' | 'http_502' | 'http_503' | 'http_504' | 'network' | 'timeout';

export interface DestinationLabels {
  destination: string;
  route: string;
}

export interface QueueReading extends DestinationLabels {
  bytes: number;
  spans: number;
  up: boolean;
}

const LABELS = ['destination', 'route'] as const;

export function createForwardMetrics(registry: Registry<RegistryContentType>, read: () => QueueReading[]) {
  const registers = [registry];
  const gauge = (name: string, help: string, value: (q: QueueReading) => number) =>
    new Gauge({
      name,
      help,
      labelNames: LABELS,
      registers,
      collect() {
        this.reset();
        for (const q of read()) this.set({ destination: q.destination, route: q.route }, value(q));
      },
    });
  gauge('fleet_forward_queue_bytes', 'Encoded bytes of kept traces waiting for the backend (bounded by forwardQueueBytes).', (q) => q.bytes);
  gauge('fleet_forward_queue_spans', 'Kept spans waiting for the backend.', (q) => q.spans);
  gauge('fleet_forward_up', '1 while the backend takes exports, 0 while they fail and are retried.', (q) => (q.up ? 1 : 0));
  return {
    sentSpans: new Counter({ name: 'fleet_forward_sent_spans_total', help: 'Kept spans the backend accepted.', labelNames: LABELS, registers }),
    requests: new Counter({
      name: 'fleet_forward_requests_total',
      help: 'Export requests by result: ok, retry (retryable failure), rejected (refused for good).',
      labelNames: [...LABELS, 'result'] as const,
      registers,
    }),
    retries: new Counter({
      name: 'fleet_forward_retries_total',
      help: 'Export requests retried, by what failed: http_429, http_502, http_503, http_504, network, timeout.',
      labelNames: [...LABELS, 'reason'] as const,
      registers,
    }),
    droppedSpans: new Counter({
      name: 'fleet_forward_dropped_spans_total',
      help: 'Kept spans not forwarded, by reason: queue_full, rejected (a non-retryable HTTP status), partial_success (the backend refused them), shutdown (in-memory queue at exit).',
      labelNames: [...LABELS, 'reason'] as const,
      registers,
    }),
    latency: new Histogram({
      name: 'fleet_forward_export_duration_seconds',
      help: 'Duration of one export request, by result.',
      labelNames: [...LABELS, 'result'] as const,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  };
}

export type ForwardMetrics = ReturnType<typeof createForwardMetrics>;
