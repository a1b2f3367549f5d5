/**
 * The consumers' Prometheus metrics (`fleet_consumer_` prefix), registered on
 * a registry the caller may share with the collector in the all-in-one.
 */
import { Counter, Gauge, type Registry, type RegistryContentType } from 'prom-client';
import type { PartitionLag } from '../bus/types.ts';

export interface ConsumerStateSource {
  buffered(): { traces: number; spans: number; bytes: number; decidedAttempts: number; orphanSpans: number };
  pendingRows(): number;
  lag(): Promise<PartitionLag[]>;
}

/**
 * How long a scrape waits for the bus to tell the lag (a Kafka admin round
 * trip, slow while the broker is busy): past it the scrape answers with the
 * previous reading and the request finishes for the next one, so /metrics
 * stays fast whatever the broker does.
 */
const LAG_WAIT_MS = 250;

/**
 * A reading refreshed on demand, one refresh at a time: a caller waits at
 * most `waitMs` for it and then gets the last one (the refresh goes on for
 * the next caller), so a scrape never waits longer on a slow source. A failed
 * refresh makes the reading `onError(last)`.
 */
export function boundedReading<T>(read: () => Promise<T>, waitMs: number, initial: T, onError: (last: T) => T): () => Promise<T> {
  let last = initial;
  let reading: Promise<void> | undefined;
  return async () => {
    reading ??= read()
      .then(
        (v) => void (last = v),
        () => void (last = onError(last)),
      )
      .finally(() => (reading = undefined));
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([reading, new Promise((resolve) => (timer = setTimeout(resolve, waitMs)))]);
    clearTimeout(timer);
    return last;
  };
}

export function createConsumerMetrics(registry: Registry<RegistryContentType>, source: ConsumerStateSource) {
  const registers = [registry];
  // lag is unknown while the bus is down; the gauge stays empty rather than stale
  const lag = boundedReading(() => source.lag(), LAG_WAIT_MS, [] as PartitionLag[], () => []);
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  gauge('fleet_consumer_buffered_traces', 'Traces with undecided spans in memory (bounded).', () => source.buffered().traces);
  gauge('fleet_consumer_buffered_spans', 'Undecided spans in memory (bounded).', () => source.buffered().spans);
  gauge('fleet_consumer_buffered_bytes', 'Encoded bytes of undecided spans in memory (bounded).', () => source.buffered().bytes);
  gauge('fleet_consumer_decision_cache_attempts', 'Decided attempts remembered for late spans.', () => source.buffered().decidedAttempts);
  gauge('fleet_consumer_decision_cache_orphan_spans', 'Spans written outside any attempt, remembered for an attempt span still to come.', () => source.buffered().orphanSpans);
  gauge('fleet_consumer_pending_rows', 'Rows decided but not yet written to ClickHouse.', () => source.pendingRows());
  new Gauge({
    name: 'fleet_consumer_lag_messages',
    help: 'Messages between the group\'s committed offset and the end of each partition.',
    labelNames: ['topic', 'partition'] as const,
    registers,
    async collect() {
      const partitions = await lag();
      this.reset();
      for (const l of partitions) this.set({ topic: l.topic, partition: String(l.partition) }, l.lag);
    },
  });
  return {
    messages: new Counter({ name: 'fleet_consumer_messages_total', help: 'Bus messages read, by result (ok, dead_letter).', labelNames: ['result'] as const, registers }),
    spans: new Counter({ name: 'fleet_consumer_spans_total', help: 'Spans read from the bus.', registers }),
    decisions: new Counter({
      name: 'fleet_consumer_decisions_total',
      help: 'Attempts decided, by how (ended, timeout, overflow, shutdown) and the sampling reason.',
      labelNames: ['decision', 'sample_reason'] as const,
      registers,
    }),
    lateSpans: new Counter({ name: 'fleet_consumer_late_spans_total', help: 'Spans that joined an attempt after it was decided.', registers }),
    duplicateSpans: new Counter({ name: 'fleet_consumer_duplicate_spans_total', help: 'Spans received again (exporter retries, redelivery) and ignored.', registers }),
    outsideAttempt: new Counter({ name: 'fleet_consumer_outside_attempt_spans_total', help: 'Spans under no attempt, kept in spans with sample_reason outside_attempt.', registers }),
    invalidSpans: new Counter({
      name: 'fleet_consumer_invalid_spans_total',
      help: 'Spans breaking the wire contract (reported in the log), by what became of them: kept outside any attempt, or dropped (no valid trace or span id to store them by).',
      labelNames: ['result'] as const,
      registers,
    }),
    rowsWritten: new Counter({ name: 'fleet_consumer_rows_written_total', help: 'Rows inserted into ClickHouse, by table.', labelNames: ['table'] as const, registers }),
    insertErrors: new Counter({ name: 'fleet_consumer_insert_errors_total', help: 'Failed inserts (retried with backoff).', registers }),
    commits: new Counter({ name: 'fleet_consumer_offset_commits_total', help: 'Offset commits of the consumer group.', registers }),
  };
}

export type ConsumerMetrics = ReturnType<typeof createConsumerMetrics>;
