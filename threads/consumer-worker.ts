/**
 * The consumer thread (threads/consumer-thread.ts starts it): the
 * ConsumerPipeline — decode, assemble, price, sample, encode rows — and the
 * forwarder, with their own heap, so neither their work nor their garbage
 * collection holds the main thread's event loop (the collector, /healthz,
 * /metrics, the query endpoint). The store and the bus stay on the main
 * thread (chDB binds one data directory per process; the embedded queue is
 * the collector's; one Kafka client per process): this thread reaches them
 * through the calls below.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Registry } from 'prom-client';
import type { PartitionLag, Publisher, Subscriber, SubscriberHandlers, TopicPartition, TopicPartitionOffset } from '../bus/types.ts';
import type { Config } from '../config/settings.ts';
import { configuredCatalog, pipelineSettings } from '../config/runtime.ts';
import { ConsumerPipeline, type StopOptions } from '../consumers/pipeline.ts';
import { startForwarder } from '../forward/start.ts';
import type { Store } from '../storage/store.ts';
import { pack, Rpc, unpack } from './rpc.ts';
import type { BatchMessage, WorkerData } from './consumer-thread.ts';

const { config, database, deadLetterTopic, forwardQueueDir } = workerData as WorkerData & { config: Config };
const port = parentPort!;
let handlers: SubscriberHandlers | undefined;
let pipeline: ConsumerPipeline | undefined;
let forward: Awaited<ReturnType<typeof startForwarder>>;
const registry = new Registry();

const rpc = new Rpc(port, {
  start: async () => {
    forward = await startForwarder(config, registry, log, forwardQueueDir);
    pipeline = new ConsumerPipeline({
      topic: config.topic,
      store,
      subscriber,
      catalog: configuredCatalog(config),
      deadLetter: { publisher: deadLetters, topic: deadLetterTopic },
      registry,
      log: (m) => log(`consumer: ${m}`),
      ...pipelineSettings(config),
      ...(forward && { forward }),
    });
    await pipeline.start();
    return registry.getMetricsAsJSON();
  },
  batch: (b: BatchMessage) => {
    const values = unpack(b.body, b.lengths);
    return handlers!.onBatch({
      topic: b.topic,
      partition: b.partition,
      messages: b.messages.map((m, i) => ({ ...m, topic: b.topic, partition: b.partition, value: values[i]! })),
    });
  },
  assign: (assigned: TopicPartition[]) => handlers!.onAssign(assigned),
  metrics: () => registry.getMetricsAsJSON(),
  stop: async (o: StopOptions) => {
    await pipeline?.stop(o);
    return registry.getMetricsAsJSON();
  },
  close: async (forwardDrainMs: number) => {
    await forward?.close(forwardDrainMs);
    return registry.getMetricsAsJSON();
  },
});

function log(message: string): void {
  rpc.notify('log', message);
}

const subscriber: Subscriber = {
  async start(h) {
    handlers = h;
    await rpc.call('subscribe');
  },
  commit: (offsets: TopicPartitionOffset[]) => rpc.call('commit', offsets),
  lag: () => rpc.call<PartitionLag[]>('lag'),
  stop: () => rpc.call('unsubscribe'),
};

const deadLetters: Publisher = {
  // each value copied out of the batch's buffer: a view would clone the whole buffer
  publish: (topic, messages) => rpc.call('deadLetter', { topic, messages: messages.map((m) => ({ ...m, value: m.value.slice() })) }),
  isReady: async () => true,
  close: async () => {},
};

const store: Store = {
  database,
  location: 'the main thread',
  insert: (table, rows) => rpc.call('insert', { table, rows }),
  insertRowBinary(table, columns, chunks) {
    const { body } = pack(chunks);
    return rpc.call('insertRowBinary', { table, columns, body }, [body.buffer]);
  },
  query: (sql, params, settings) => rpc.call('query', { sql, params, settings }),
  command: (sql, params, settings) => rpc.call('command', { sql, params, settings }),
  close: async () => {},
};
