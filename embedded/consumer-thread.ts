/**
 * Runs `fleet start`'s consumers in a worker thread (embedded/consumer-worker.ts)
 * and serves it from the main thread: batches of the in-process queue go to
 * it (values packed into one transferred buffer), its rows come back as
 * encoded bytes for the store, its commits and lag reads go to the queue,
 * and its metrics appear in the main registry (read from it at each scrape)
 * so /metrics, the alerts' health checks and every metric name stay as they
 * were. Measured (docs/performance.md, `npm run bench -- embedded`): with the
 * consumers on the main thread, their work and their garbage collection
 * held the event loop, so OTLP answers and /healthz, for hundreds of ms.
 */
import { Worker } from 'node:worker_threads';
import type { ClickHouseSettings } from '@clickhouse/client';
import type { MetricObjectWithValues, MetricValue, Registry } from 'prom-client';
import type { ConsumedMessage, Subscriber, TopicPartition, TopicPartitionOffset } from '../bus/types.ts';
import type { Config } from '../config/settings.ts';
import type { StopOptions } from '../consumers/pipeline.ts';
import type { Store } from '../storage/store.ts';
import { pack, Rpc } from './rpc.ts';

export interface WorkerData {
  config: Config;
  /** The store's database (validated on the main thread). */
  database: string;
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

/** How long a scrape waits for the consumer thread's metrics before serving the previous reading. */
const METRICS_WAIT_MS = 250;

/** The consumer thread's metrics, registered on the main registry: each scrape reads them afresh (at most one read at a time). */
class Mirror {
  private readonly latest = new Map<string, MetricObjectWithValues<MetricValue<string>>>();
  private reading: Promise<void> | undefined;
  private readonly registry: Registry;
  private readonly read: () => Promise<Snapshot>;

  constructor(registry: Registry, read: () => Promise<Snapshot>) {
    this.registry = registry;
    this.read = read;
  }

  update(snapshot: Snapshot): void {
    for (const m of snapshot) {
      if (!this.latest.has(m.name)) this.register(m);
      this.latest.set(m.name, m);
    }
  }

  private register(m: MetricObjectWithValues<MetricValue<string>>): void {
    const refresh = async () => {
      this.reading ??= this.read()
        .then((s) => this.update(s))
        .catch(() => {}) // the thread is stopping or gone: its last reading stands
        .finally(() => (this.reading = undefined));
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([this.reading, new Promise((resolve) => (timer = setTimeout(resolve, METRICS_WAIT_MS)))]);
      clearTimeout(timer);
      return this.latest.get(m.name)!;
    };
    // prom-client formats and serves any registered object with name, help, type and get()
    this.registry.registerMetric({ name: m.name, help: m.help, type: m.type, aggregator: m.aggregator, get: refresh } as never);
  }
}

export async function startConsumerThread(o: { config: Config; store: Store; subscriber: Subscriber; registry: Registry; log: (m: string) => void }): Promise<ConsumerThread> {
  const worker = new Worker(new URL('./consumer-worker.ts', import.meta.url), { workerData: { config: o.config, database: o.store.database } satisfies WorkerData });
  let stopping = false;
  const rpc: Rpc = new Rpc(worker, {
    log: (m: string) => o.log(m),
    subscribe: () =>
      o.subscriber.start({
        onBatch: async (batch) => {
          const { body, lengths } = pack(batch.messages.map((m) => m.value));
          const messages = batch.messages.map(({ key, offset, headers }) => ({ key, offset, ...(headers && { headers }) }));
          await rpc.call('batch', { topic: batch.topic, partition: batch.partition, messages, body, lengths } satisfies BatchMessage, [body.buffer]);
        },
        onAssign: (assigned) => rpc.call('assign', assigned),
      }),
    commit: (offsets: TopicPartitionOffset[]) => o.subscriber.commit(offsets),
    lag: () => o.subscriber.lag(),
    unsubscribe: () => o.subscriber.stop(),
    insert: ({ table, rows }: { table: string; rows: object[] }) => o.store.insert(table, rows),
    insertEncoded: ({ table, body }: { table: string; body: Uint8Array }) => o.store.insertEncoded(table, [body]),
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
