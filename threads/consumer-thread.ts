/**
 * Runs the consumers (`fleet start`'s and `fleet consumer`'s) in a worker
 * thread (threads/consumer-worker.ts) and serves it from the main thread:
 * batches of the bus go to it (values packed into one transferred buffer;
 * the group is heartbeaten while it works on one), its rows come back as
 * encoded bytes for the store, its commits, lag reads and dead letters go to
 * the bus, and its metrics appear in the main registry (read from it at each
 * scrape) so /metrics, the alerts' health checks and every metric name stay
 * as they were. Measured (docs/performance.md, `npm run bench -- embedded`):
 * with the consumers on the main thread, their work and their garbage
 * collection held the event loop — OTLP answers, /healthz, /metrics — for
 * hundreds of milliseconds.
 */
import { Worker } from 'node:worker_threads';
import type { ClickHouseSettings } from '@clickhouse/client';
import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import type { BusMessage, ConsumedMessage, Publisher, Subscriber, TopicPartitionOffset } from '../bus/types.ts';
import type { Config } from '../config/settings.ts';
import { boundedReading } from '../consumers/metrics.ts';
import { heartbeating, type StopOptions } from '../consumers/pipeline.ts';
import type { Store } from '../storage/store.ts';
import { pack, Rpc } from './rpc.ts';

export interface WorkerData {
  config: Config;
  /** The store's database (validated on the main thread). */
  database: string;
  deadLetterTopic: string;
  /** Where the forwarder queues kept spans on disk; unset: in memory. */
  forwardQueueDir?: string;
}

export interface ConsumerThreadOptions {
  config: Config;
  store: Store;
  subscriber: Subscriber;
  /** Where undecodable messages go (ConsumerPipelineOptions.deadLetter). */
  deadLetter: { publisher: Publisher; topic: string };
  forwardQueueDir?: string;
  registry: Registry;
  log: (m: string) => void;
}

export interface BatchMessage {
  topic: string;
  partition: number;
  messages: Omit<ConsumedMessage, 'value' | 'topic' | 'partition'>[];
  body: Uint8Array;
  lengths: number[];
}

export interface ConsumerThread {
  /** Stops the pipeline (ConsumerPipeline.stop). */
  stop(options: StopOptions): Promise<void>;
  /** Closes the forwarder, letting it send what it kept for up to `forwardDrainMs`, then ends the thread. */
  close(forwardDrainMs: number): Promise<void>;
}

type Snapshot = MetricObjectWithValues<MetricValue<string>>[];

/** How long a stopping consumer keeps sending kept traces to a forward backend (within fleet start's shutdown bound). */
export const FORWARD_DRAIN_MS = 10_000;

/** How long a scrape waits for the consumer thread's metrics before serving the previous reading. */
const METRICS_WAIT_MS = 250;

/** The consumer thread's metrics, registered on the main registry: each scrape reads them afresh (at most one read at a time). */
class Mirror {
  private readonly latest = new Map<string, MetricObjectWithValues<MetricValue<string>>>();
  private readonly registry: Registry;
  /** A failed read (the thread is stopping or gone) leaves the last reading standing. */
  private readonly refresh: () => Promise<void>;

  constructor(registry: Registry, read: () => Promise<Snapshot>) {
    this.registry = registry;
    this.refresh = boundedReading(async () => this.update(await read()), METRICS_WAIT_MS, undefined, () => undefined);
  }

  update(snapshot: Snapshot): void {
    for (const m of snapshot) {
      if (!this.latest.has(m.name)) this.register(m);
      this.latest.set(m.name, m);
    }
  }

  private register(m: MetricObjectWithValues<MetricValue<string>>): void {
    const get = async () => {
      await this.refresh();
      return this.latest.get(m.name)!;
    };
    // prom-client formats and serves any registered object with name, help, type and get()
    this.registry.registerMetric({ name: m.name, help: m.help, type: m.type, aggregator: m.aggregator, get } as never);
  }
}

export async function startConsumerThread(o: ConsumerThreadOptions): Promise<ConsumerThread> {
  const data: WorkerData = { config: o.config, database: o.store.database, deadLetterTopic: o.deadLetter.topic, ...(o.forwardQueueDir && { forwardQueueDir: o.forwardQueueDir }) };
  const worker = new Worker(new URL('./consumer-worker.ts', import.meta.url), { workerData: data });
  let stopping = false;
  const rpc: Rpc = new Rpc(worker, {
    log: (m: string) => o.log(m),
    subscribe: () =>
      o.subscriber.start({
        onBatch: async (batch) => {
          const { body, lengths } = pack(batch.messages.map((m) => m.value));
          const messages = batch.messages.map(({ key, offset, headers }) => ({ key, offset, ...(headers && { headers }) }));
          const taking = rpc.call<void>('batch', { topic: batch.topic, partition: batch.partition, messages, body, lengths } satisfies BatchMessage, [body.buffer]);
          await heartbeating(taking, batch, o.log);
        },
        onAssign: (assigned) => rpc.call('assign', assigned),
      }),
    commit: (offsets: TopicPartitionOffset[]) => o.subscriber.commit(offsets),
    lag: () => o.subscriber.lag(),
    unsubscribe: () => o.subscriber.stop(),
    deadLetter: ({ topic, messages }: { topic: string; messages: BusMessage[] }) => o.deadLetter.publisher.publish(topic, messages),
    insert: ({ table, rows }: { table: string; rows: object[] }) => o.store.insert(table, rows),
    insertRowBinary: ({ table, columns, body }: { table: string; columns: string[]; body: Uint8Array }) => o.store.insertRowBinary(table, columns, [body]),
    query: ({ sql, params, settings }: { sql: string; params?: Record<string, unknown>; settings?: ClickHouseSettings }) => o.store.query(sql, params, settings),
    command: ({ sql, params, settings }: { sql: string; params?: Record<string, unknown>; settings?: ClickHouseSettings }) =>
      o.store.command(sql, params, settings),
  });
  // A failure of the consumers is a failure of the process, as it was when they ran on this thread.
  let started = false;
  let fail: (err: Error) => void = () => {};
  const failed = new Promise<never>((_, reject) => {
    fail = (err) => {
      rpc.abandon(err);
      reject(err);
      if (stopping || !started) return;
      o.log(`consumer thread failed: ${err.stack ?? err.message}`);
      setImmediate(() => {
        throw err;
      });
    };
  });
  worker.once('error', (err) => fail(err as Error));
  worker.once('exit', (code) => fail(new Error(`consumer thread exited (${code})`)));
  failed.catch(() => {});
  const mirror = new Mirror(o.registry, () => rpc.call<Snapshot>('metrics'));
  try {
    mirror.update(await Promise.race([rpc.call<Snapshot>('start'), failed]));
    started = true;
  } catch (err) {
    await worker.terminate();
    throw err;
  }
  return {
    async stop(options) {
      stopping = true;
      mirror.update(await Promise.race([rpc.call<Snapshot>('stop', options), failed]));
    },
    async close(forwardDrainMs) {
      stopping = true;
      try {
        mirror.update(await Promise.race([rpc.call<Snapshot>('close', forwardDrainMs), failed]));
      } finally {
        await worker.terminate();
      }
    },
  };
}
