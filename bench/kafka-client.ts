/**
 * Kafka client: kafkajs (as perpass uses it: KafkaPublisher / KafkaSubscriber)
 * against @platformatic/kafka, producing and then consuming the same
 * messages (what the collector publishes for realistic traffic) on the same
 * broker, each in a process of its own. Throughput (messages/s, MB/s of
 * uncompressed keys + values) and CPU cost (MB per CPU-second of the client
 * process), with gzip (perpass's default) and without compression.
 * Informs whether the client limits throughput; the bus stays on kafkajs.
 */
import { round, summarizeRuns, type Benchmark } from './lib/common.ts';
import { event, spawnNode } from './lib/child.ts';
import { benchBroker, createTopic, uniqueTopic } from './lib/kafka.ts';

interface Done {
  messages: number;
  bytes: number;
  seconds: number;
  cpuS: number;
}

export const kafkaClientBenchmark: Benchmark = {
  name: 'kafka-client',
  description: 'kafkajs vs @platformatic/kafka: produce and consume the same messages on the same broker',
  async run(o) {
    const smoke = o.smoke;
    const repeats = o.repeats ?? (smoke ? 1 : 3);
    const count = Number(o.set.messages ?? (smoke ? 3000 : 60_000));
    const compressions = (o.set.compressions ?? (smoke ? 'gzip' : 'gzip,none')).split(',') as ('gzip' | 'none')[];
    const clients = ['kafkajs', 'platformatic'] as const;
    const broker = await benchBroker('kafka-client', o.kafkaBrokers, o.log);
    const runs: Record<string, number>[] = [];
    try {
      for (let r = 0; r < repeats; r++) {
        const run: Record<string, number> = {};
        for (const compression of compressions) {
          const order = r % 2 === 0 ? clients : [...clients].reverse();
          for (const client of order) {
            const topic = uniqueTopic(`bench_kc_${client}_${compression}`);
            await createTopic(broker.brokers, topic, 6);
            const base = { client, brokers: broker.brokers, topic, messages: count, compression };
            const producer = spawnNode('bench/procs/kafka-client.ts', [JSON.stringify({ ...base, op: 'produce' })]);
            const p = await event<Done>(producer, 'done', 600_000);
            await producer.exited;
            const consumer = spawnNode('bench/procs/kafka-client.ts', [JSON.stringify({ ...base, op: 'consume', group: `${topic}-g` })]);
            const c = await event<Done>(consumer, 'done', 600_000);
            await consumer.exited;
            const k = `${client}_${compression}`;
            const mb = p.bytes / 1e6;
            run[`${k}_produceMsgPerS`] = round(p.messages / p.seconds);
            run[`${k}_produceMBPerS`] = round(mb / p.seconds, 1);
            run[`${k}_produceMBPerCpuS`] = round(mb / p.cpuS, 1);
            run[`${k}_consumeMsgPerS`] = round(c.messages / c.seconds);
            run[`${k}_consumeMBPerS`] = round(c.bytes / 1e6 / c.seconds, 1);
            run[`${k}_consumeMBPerCpuS`] = round(c.bytes / 1e6 / c.cpuS, 1);
            o.log(`run ${r + 1} ${k}: produce ${JSON.stringify(p)} consume ${JSON.stringify(c)}`);
          }
        }
        runs.push(run);
      }
    } finally {
      await broker.close();
    }
    const metrics = summarizeRuns(runs);
    const units: Record<string, string> = {};
    for (const k of Object.keys(metrics)) units[k.replace(/_(min|max)$/, '')] = k.includes('MsgPerS') ? 'msg/s' : k.includes('PerCpuS') ? 'MB/CPU-s' : 'MB/s';
    return {
      config: {
        repeats,
        messages: count,
        compressions,
        kafkajs: 'bus/kafka.ts KafkaPublisher (idempotent, acks=all, 1 request in flight, ≤ 768 KiB/request, concurrent publishes merged) and KafkaSubscriber (eachBatch, ≤ 1 MiB/partition)',
        platformatic: '@platformatic/kafka Producer (idempotent, acks=all, compatibilityPartitioner = Java murmur2) send() of ≤ 768 KiB batches, 8 at a time; Consumer stream (earliest, ≤ 1 MiB/partition)',
        broker: broker.owned ? 'scripts/kafka.sh (Kafka 4.4, single node, same machine)' : broker.brokers.join(','),
      },
      metrics,
      units,
      runs,
      details: {},
      notes: ['MB = 10^6 bytes of keys + values before compression; CPU = process.cpuUsage() of the client process during the timed part'],
    };
  },
};
