/**
 * Reading a Kafka topic back, for tests and benchmarks alike (no vitest
 * here, so a benchmark process can import it): its offsets, and every
 * message up to its end as of the call.
 */
import { randomUUID } from 'node:crypto';
import kafkajs from 'kafkajs';
import { KafkaSubscriber } from '../../bus/kafka.ts';
import type { ConsumedMessage } from '../../bus/types.ts';

/** Per partition of `topic`: the first offset still held and one past the last (the offset the next message gets). */
export async function topicOffsets(brokers: string[], topic: string): Promise<Map<number, { start: bigint; end: bigint }>> {
  const admin = new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    return new Map((await admin.fetchTopicOffsets(topic)).map((e) => [e.partition, { start: BigInt(e.low), end: BigInt(e.high) }]));
  } finally {
    await admin.disconnect();
  }
}

/**
 * Every message of `topic` from its start to its end as of the call, read by
 * a fresh consumer group that commits nothing; `keep` picks which to return
 * (the rest are only counted towards the end).
 */
export async function readTopicToEnd(
  brokers: string[],
  topic: string,
  keep: (m: ConsumedMessage) => boolean = () => true,
  timeoutMs = 60_000,
): Promise<ConsumedMessage[]> {
  const ends = new Map([...(await topicOffsets(brokers, topic))].filter(([, o]) => o.end > o.start).map(([p, o]) => [p, o.end]));
  // partitions whose message at end − 1 has not been read yet
  const open = new Map(ends);
  const kept: ConsumedMessage[] = [];
  if (open.size === 0) return kept;
  let reachedEnd!: () => void;
  const atEnd = new Promise<void>((resolve) => (reachedEnd = resolve));
  const reader = new KafkaSubscriber({ brokers, groupId: `topic-reader-${randomUUID()}`, topic, logLevel: 'nothing' });
  await reader.start({
    onAssign: () => {},
    onBatch: async (batch) => {
      for (const m of batch.messages) {
        const end = ends.get(m.partition);
        if (end === undefined || BigInt(m.offset) >= end) continue; // written after the call
        if (keep(m)) kept.push(m);
        if (BigInt(m.offset) + 1n === end) open.delete(m.partition);
      }
      if (open.size === 0) reachedEnd();
    },
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      atEnd,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${topic}: partitions ${[...open.keys()].join(', ')} not read to their end within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    await reader.stop();
  }
  return kept;
}
