/**
 * Metrics of the durable queue (`fleet_queue_` prefix): how full it is, and
 * its group commits — how many fsyncs, how long, how many records each
 * covered, and whether one is running now.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { MemoryBus } from './memory.ts';

export function queueMetrics(registry: Registry) {
  const registers = [registry];
  let bus: MemoryBus | undefined;
  const fsyncs = new Counter({ name: 'fleet_queue_fsyncs_total', help: 'Group commits (one fdatasync each) of the durable queue.', registers });
  const records = new Counter({ name: 'fleet_queue_fsynced_records_total', help: 'Records made durable by those fsyncs (÷ fsyncs = records per group commit).', registers });
  const seconds = new Histogram({
    name: 'fleet_queue_fsync_seconds',
    help: 'Duration of one group commit (write + fdatasync).',
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers,
  });
  new Gauge({
    name: 'fleet_queue_fsync_in_progress',
    help: 'Partitions of the durable queue with a group commit running now.',
    registers,
    collect() {
      this.set(bus?.durableLogs.filter((l) => l.syncInProgress).length ?? 0);
    },
  });
  new Gauge({
    name: 'fleet_queue_bytes',
    help: 'Bytes of the durable queue on disk (messages not yet committed by the consumers, by whole segment).',
    registers,
    collect() {
      this.set(bus?.bufferedBytes ?? 0);
    },
  });
  return {
    observe: (s: number, n: number) => {
      fsyncs.inc();
      records.inc(n);
      seconds.observe(s);
    },
    watch: (b: MemoryBus) => {
      bus = b;
    },
  };
}
