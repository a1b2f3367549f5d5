/**
 * `fleet collector` with knobs for experiments the CLI does not expose: the
 * in-flight byte budget (default 256 MiB), and — as an experiment only —
 * @platformatic/kafka in place of kafkajs. Same construction as
 * cli/index.ts otherwise.
 *   node bench/procs/collector.ts --kafka-brokers B --topic T --dead-letter-topic D --topic-partitions N --collector-port P [--collector-host H] [--compression zstd|gzip|none] [--max-inflight-bytes N] [--client kafkajs|platformatic]
 */
import { parseArgs } from 'node:util';
import { ensureTopics, KafkaPublisher, type KafkaCompression } from '../../bus/kafka.ts';
import type { Publisher } from '../../bus/types.ts';
import { startCollector } from '../../collector/index.ts';

/**
 * EXPERIMENT ONLY (not the bus): the collector publishing through
 * @platformatic/kafka with the same guarantees as KafkaPublisher — idempotent,
 * acks=all, Java-compatible murmur2 partitioning, the same compression — to
 * see what the Kafka client costs the collector. No bounded publish
 * timeout, no readiness probe, no BusUnavailableError mapping.
 */
async function platformaticPublisher(brokers: string[], compression: KafkaCompression): Promise<Publisher> {
  const { Producer, ProduceAcks, compatibilityPartitioner } = await import('@platformatic/kafka');
  const producer = new Producer({ clientId: 'perpass-bench', bootstrapBrokers: brokers, idempotent: true, acks: ProduceAcks.ALL, compression, partitioner: compatibilityPartitioner });
  return {
    publish: async (topic, messages) => {
      await producer.send({ messages: messages.map((m) => ({ topic, key: Buffer.from(m.key), value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength) })) });
    },
    isReady: async () => true,
    close: () => producer.close(),
  };
}

const { values: a } = parseArgs({
  options: {
    'kafka-brokers': { type: 'string' },
    topic: { type: 'string', default: 'otlp_spans' },
    'dead-letter-topic': { type: 'string', default: 'otlp_spans_dlq' },
    'topic-partitions': { type: 'string', default: '6' },
    'collector-port': { type: 'string', default: '4318' },
    'collector-host': { type: 'string' },
    compression: { type: 'string', default: 'zstd' },
    'max-inflight-bytes': { type: 'string' },
    client: { type: 'string', default: 'kafkajs' },
  },
});
const brokers = a['kafka-brokers']!.split(',');
await ensureTopics(brokers, [{ topic: a.topic!, partitions: Number(a['topic-partitions']) }, { topic: a['dead-letter-topic']!, partitions: 1 }]);
const publisher: Publisher = a.client === 'platformatic' ? await platformaticPublisher(brokers, a.compression as KafkaCompression) : new KafkaPublisher({ brokers, compression: a.compression as KafkaCompression });
const collector = await startCollector({
  publisher,
  port: Number(a['collector-port']),
  topic: a.topic!,
  ...(a['collector-host'] && { host: a['collector-host'] }),
  ...(a['max-inflight-bytes'] && { maxInflightBytes: Number(a['max-inflight-bytes']), maxBodyBytes: Math.min(64 << 20, Number(a['max-inflight-bytes'])) }),
});
process.stderr.write(`collector: ${collector.tracesUrl} → Kafka ${brokers.join(',')} topic ${a.topic} (compression ${a.compression})\n`);
const shutdown = () => void collector.close().then(() => process.exit(0));
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
