/**
 * One Kafka client producing or consuming the benchmark's messages, in a
 * process of its own so its CPU time is its own (process.cpuUsage).
 *   node bench/procs/kafka-client.ts '{"client":"kafkajs"|"platformatic","op":"produce"|"consume","brokers":[…],"topic":…,"messages":N,"compression":"gzip"|"none","group":…}'
 *
 * The messages are what the collector publishes for realistic traffic
 * (bench/lib/traffic.ts, split by trace): ~3 KB OTLP protobuf values keyed by
 * trace id. kafkajs runs as perpass runs it: KafkaPublisher (idempotent,
 * acks=all, one request in flight, requests up to 768 KiB) and
 * KafkaSubscriber (eachBatch). @platformatic/kafka gets the same producer
 * guarantees (idempotent, acks=all, murmur2 partitioning as the Java client)
 * and a consumer-group stream.
 */
import { KafkaPublisher, KafkaSubscriber } from '../../bus/kafka.ts';
import type { BusMessage } from '../../bus/types.ts';
import { collectorMessages, exportRequests, planAttempts } from '../lib/traffic.ts';

interface Options {
  client: 'kafkajs' | 'platformatic';
  op: 'produce' | 'consume';
  brokers: string[];
  topic: string;
  messages: number;
  compression: 'gzip' | 'none';
  group: string;
  /** Concurrent send calls (each up to ~768 KiB of messages). */
  concurrency: number;
}

const o: Options = { compression: 'gzip', concurrency: 8, group: 'g', ...JSON.parse(process.argv[2]!) };
/** Messages sent before the timed part (connection, metadata, producer id). */
const WARMUP = 10;
const emit = (event: string, data: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);

function messages(n: number): BusMessage[] {
  const out: BusMessage[] = [];
  const plan = planAttempts({ attempts: Math.ceil(n / 1.4) + 200, seed: 9, tenant: 'bench-kafka' });
  for (const r of exportRequests(plan)) {
    for (const m of collectorMessages(r)) {
      out.push(m);
      if (out.length === n) return out;
    }
  }
  return out;
}

/** Chunks of at most ~768 KiB, as KafkaPublisher cuts its produce requests. */
function chunks(ms: BusMessage[], maxBytes = 768 * 1024): BusMessage[][] {
  const out: BusMessage[][] = [];
  let cur: BusMessage[] = [];
  let bytes = 0;
  for (const m of ms) {
    const size = m.key.length + m.value.byteLength;
    if (cur.length && bytes + size > maxBytes) {
      out.push(cur);
      cur = [];
      bytes = 0;
    }
    cur.push(m);
    bytes += size;
  }
  if (cur.length) out.push(cur);
  return out;
}

async function inParallel<T>(items: T[], concurrency: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < items.length) await fn(items[next++]!);
  }));
}

async function produce(): Promise<void> {
  const ms = messages(o.messages);
  const bytes = ms.reduce((n, m) => n + m.key.length + m.value.byteLength, 0);
  const batches = chunks(ms);
  emit('ready', { messages: ms.length, bytes });
  let send: (batch: BusMessage[]) => Promise<void>;
  let close: () => Promise<void>;
  let warm: () => Promise<void>;
  if (o.client === 'kafkajs') {
    const p = new KafkaPublisher({ brokers: o.brokers, compression: o.compression, logLevel: 'nothing', publishTimeoutMs: 60_000 });
    send = (batch) => p.publish(o.topic, batch);
    close = () => p.close();
    warm = () => p.publish(o.topic, ms.slice(0, WARMUP));
  } else {
    const { Producer, ProduceAcks, compatibilityPartitioner } = await import('@platformatic/kafka');
    const p = new Producer({ clientId: 'perpass-bench', bootstrapBrokers: o.brokers, idempotent: true, acks: ProduceAcks.ALL, compression: o.compression, partitioner: compatibilityPartitioner });
    send = async (batch) => {
      await p.send({ messages: batch.map((m) => ({ topic: o.topic, key: Buffer.from(m.key), value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength) })) });
    };
    close = () => p.close();
    warm = () => send(ms.slice(0, WARMUP));
  }
  await warm();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await inParallel(batches, o.concurrency, send);
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await close();
  emit('done', { messages: ms.length, bytes, seconds, cpuS: (cpu.user + cpu.system) / 1e6 });
}

async function consume(): Promise<void> {
  // the producer's 10 warm-up messages are in the topic too
  const expected = o.messages + WARMUP;
  let count = 0;
  let bytes = 0;
  // timed from the first delivery on (group join excluded); that first delivery is not counted in the rate
  let t0 = 0;
  let cpu0 = process.cpuUsage();
  let untimed = 0;
  let untimedBytes = 0;
  let resolveDone!: () => void;
  const done = new Promise<void>((r) => (resolveDone = r));
  const got = (n: number, b: number) => {
    if (t0 === 0) {
      t0 = performance.now();
      cpu0 = process.cpuUsage();
      untimed = n;
      untimedBytes = b;
    }
    count += n;
    bytes += b;
    if (count >= expected) resolveDone();
  };
  emit('ready');
  let close: () => Promise<void>;
  if (o.client === 'kafkajs') {
    const sub = new KafkaSubscriber({ brokers: o.brokers, groupId: o.group, topic: o.topic, logLevel: 'nothing' });
    await sub.start({
      onAssign: () => {},
      onBatch: async (b) => {
        let n = 0;
        for (const m of b.messages) n += m.value.byteLength + m.key.length;
        got(b.messages.length, n);
      },
    });
    close = () => sub.stop();
  } else {
    const { Consumer, MessagesStreamModes } = await import('@platformatic/kafka');
    const c = new Consumer({ clientId: 'perpass-bench', groupId: o.group, bootstrapBrokers: o.brokers, maxBytesPerPartition: 1024 * 1024, maxWaitTime: 1000 });
    const stream = await c.consume({ topics: [o.topic], mode: MessagesStreamModes.EARLIEST, autocommit: false });
    stream.on('data', (m: { key?: Buffer; value?: Buffer }) => got(1, (m.value?.length ?? 0) + (m.key?.length ?? 0)));
    close = async () => {
      await stream.close();
      await c.close(true);
    };
  }
  await done;
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  await close();
  emit('done', { messages: count - untimed, bytes: bytes - untimedBytes, seconds, cpuS: (cpu.user + cpu.system) / 1e6, total: count });
}

await (o.op === 'produce' ? produce() : consume());
process.exit(0);
