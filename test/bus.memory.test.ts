import kafkajs from 'kafkajs';
import { describe, expect, it } from 'vitest';
import { heldBytes, MemoryBus, MESSAGE_OVERHEAD_BYTES } from '../bus/memory.ts';
import { BusUnavailableError, type BusMessage, type ConsumedMessage, type PartitionBatch, type TopicPartition } from '../bus/types.ts';

const TOPIC = 'otlp_spans';
const enc = new TextEncoder();
const msg = (key: string, value: string, headers?: Record<string, string>): BusMessage =>
  headers ? { key, value: enc.encode(value), headers } : { key, value: enc.encode(value) };
const text = (m: ConsumedMessage) => new TextDecoder().decode(m.value);

/** Collects what a subscriber is handed; waitFor() resolves once `n` messages arrived in total. */
function collector() {
  const batches: PartitionBatch[] = [];
  const assignments: TopicPartition[][] = [];
  let waiters: { n: number; resolve: () => void }[] = [];
  const count = () => batches.reduce((n, b) => n + b.messages.length, 0);
  return {
    batches,
    assignments,
    messages: () => batches.flatMap((b) => b.messages),
    handlers: {
      onAssign: (a: TopicPartition[]) => {
        assignments.push(a);
      },
      onBatch: async (b: PartitionBatch) => {
        batches.push(b);
        waiters = waiters.filter((w) => (count() >= w.n ? (w.resolve(), false) : true));
      },
    },
    waitFor: (n: number) =>
      count() >= n ? Promise.resolve() : new Promise<void>((resolve) => waiters.push({ n, resolve })),
  };
}

describe('MemoryBus (in-process queue)', () => {
  it('bounds the bytes awaiting commit, per-message overhead included: a publish past the bound is refused whole with BusUnavailableError; the meter sees every byte enter and leave', async () => {
    // Keys of one character: each message holds its value, its key and the fixed overhead.
    const H = MESSAGE_OVERHEAD_BYTES + 1;
    const metered: number[] = [];
    const bus = new MemoryBus({ partitions: 2, maxBytes: 100 + 2 * H, retryAfterSeconds: 7, meter: (_m, bytes) => metered.push(bytes) });
    const pub = bus.publisher();
    await pub.publish(TOPIC, [msg('a', 'x'.repeat(60))]);
    expect(bus.bufferedBytes).toBe(60 + H);
    expect(heldBytes(msg('a', 'x'.repeat(60)))).toBe(60 + H);
    expect(await pub.isReady()).toBe(true);

    const refused = pub.publish(TOPIC, [msg('b', 'y'.repeat(30)), msg('c', 'z'.repeat(20))]);
    await expect(refused).rejects.toBeInstanceOf(BusUnavailableError);
    await expect(refused).rejects.toMatchObject({ retryAfterSeconds: 7, message: expect.stringMatching(new RegExp(`queue full \\(${60 + H} of ${100 + 2 * H} bytes`)) });
    // Nothing of the refused publish was taken.
    expect(bus.bufferedBytes).toBe(60 + H);
    const sub = bus.subscriber(TOPIC);
    expect((await sub.lag()).reduce((n, p) => n + p.lag, 0)).toBe(1);

    // Up to the bound is accepted; past it, not ready.
    await pub.publish(TOPIC, [msg('d', 'w'.repeat(40))]);
    expect(bus.bufferedBytes).toBe(100 + 2 * H);
    expect(await pub.isReady()).toBe(false);

    // Committing frees the bytes: the refused publish now goes through.
    await sub.commit((await sub.lag()).map((p) => ({ topic: TOPIC, partition: p.partition, offset: String(p.lag) })));
    expect(bus.bufferedBytes).toBe(0);
    expect(await pub.isReady()).toBe(true);
    await pub.publish(TOPIC, [msg('b', 'y'.repeat(30)), msg('c', 'z'.repeat(20))]);
    expect(bus.bufferedBytes).toBe(50 + 2 * H);
    // The meter's running sum is the queue's own count, message by message.
    expect(metered.reduce((a, b) => a + b, 0)).toBe(bus.bufferedBytes);
    expect([...metered].sort((a, b) => a - b)).toEqual([-(60 + H), -(40 + H), 20 + H, 30 + H, 40 + H, 60 + H]);

    bus.close();
    await expect(pub.publish(TOPIC, [msg('e', 'v')])).rejects.toBeInstanceOf(BusUnavailableError);
    expect(await pub.isReady()).toBe(false);
  });

  it('puts every message of a key on one partition, the one Kafka’s default partitioner (murmur2) picks', async () => {
    const partitions = 6;
    const bus = new MemoryBus({ partitions });
    const keys = Array.from({ length: 40 }, (_, i) => `${i.toString(16).padStart(8, '0')}4bf92f3577b34da6a3ce929d0e0e4736`.slice(0, 32));
    const messages = keys.flatMap((k, i) => [msg(k, `first-${i}`), msg(k, `second-${i}`), msg(k, `third-${i}`)]);
    await bus.publisher().publish(TOPIC, messages);

    const c = collector();
    const sub = bus.subscriber(TOPIC);
    await sub.start(c.handlers);
    await c.waitFor(messages.length);
    await sub.stop();

    const partitionOf = new Map<string, Set<number>>();
    for (const m of c.messages()) partitionOf.set(m.key, (partitionOf.get(m.key) ?? new Set()).add(m.partition));
    expect(partitionOf.size).toBe(keys.length);
    const partitioner = kafkajs.Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
    for (const k of keys) {
      expect([...partitionOf.get(k)!]).toEqual([partitioner({ topic: TOPIC, partitionMetadata, message: { key: k, value: null } })]);
    }
    // The keys spread over more than one partition.
    expect(new Set(c.messages().map((m) => m.partition)).size).toBeGreaterThan(1);
    // Within a key, publish order = offset order.
    for (const k of keys.slice(0, 5)) {
      const ofKey = c.messages().filter((m) => m.key === k);
      expect(ofKey.map(text)).toEqual([`first-${keys.indexOf(k)}`, `second-${keys.indexOf(k)}`, `third-${keys.indexOf(k)}`]);
      expect(ofKey.map((m) => BigInt(m.offset))).toEqual([...ofKey.map((m) => BigInt(m.offset))].sort((a, b) => (a < b ? -1 : 1)));
    }
  });

  it('delivers batches per partition in offset order, with offsets, keys, values and headers', async () => {
    const bus = new MemoryBus({ partitions: 1, maxBatchMessages: 3 });
    await bus.publisher().publish(TOPIC, [0, 1, 2, 3, 4, 5, 6].map((i) => msg(`k${i}`, `v${i}`, { n: String(i) })));
    const c = collector();
    const sub = bus.subscriber(TOPIC);
    await sub.start(c.handlers);
    await c.waitFor(7);
    await sub.stop();
    expect(c.assignments).toEqual([[{ topic: TOPIC, partition: 0 }]]);
    expect(c.batches.map((b) => b.messages.map((m) => m.offset))).toEqual([['0', '1', '2'], ['3', '4', '5'], ['6']]);
    expect(c.messages()[4]).toEqual({ topic: TOPIC, partition: 0, offset: '4', key: 'k4', value: enc.encode('v4'), headers: { n: '4' } });
  });

  it('redelivers from the committed offset after the subscriber restarts; uncommitted messages come again', async () => {
    const bus = new MemoryBus({ partitions: 2 });
    const pub = bus.publisher();
    await pub.publish(TOPIC, Array.from({ length: 10 }, (_, i) => msg(`key-${i % 4}`, `m${i}`)));

    const first = collector();
    const sub1 = bus.subscriber(TOPIC);
    await sub1.start(first.handlers);
    await first.waitFor(10);
    // Commit only the first half of what each partition delivered.
    const perPartition = new Map<number, ConsumedMessage[]>();
    for (const m of first.messages()) perPartition.set(m.partition, [...(perPartition.get(m.partition) ?? []), m]);
    const committed = [...perPartition].map(([partition, ms]) => ({ partition, upTo: Math.floor(ms.length / 2) }));
    await sub1.commit(committed.map(({ partition, upTo }) => ({ topic: TOPIC, partition, offset: String(upTo) })));
    await sub1.stop();

    // While nobody reads, more is published.
    await pub.publish(TOPIC, [msg('key-1', 'late')]);

    const second = collector();
    const sub2 = bus.subscriber(TOPIC);
    await sub2.start(second.handlers);
    const expected = committed.reduce((n, { partition, upTo }) => n + perPartition.get(partition)!.length - upTo, 0) + 1;
    await second.waitFor(expected);
    await sub2.stop();

    expect(second.assignments).toEqual([[{ topic: TOPIC, partition: 0 }, { topic: TOPIC, partition: 1 }]]);
    for (const { partition, upTo } of committed) {
      const again = second.messages().filter((m) => m.partition === partition && text(m) !== 'late');
      expect(again.map((m) => m.offset)).toEqual(perPartition.get(partition)!.slice(upTo).map((m) => m.offset));
      expect(again.map(text)).toEqual(perPartition.get(partition)!.slice(upTo).map(text));
    }
    expect(second.messages().filter((m) => text(m) === 'late')).toHaveLength(1);
    expect(second.messages()).toHaveLength(expected);
  });

  it('reports lag = published − committed per partition', async () => {
    const bus = new MemoryBus({ partitions: 3 });
    const sub = bus.subscriber(TOPIC);
    expect(await sub.lag()).toEqual([0, 1, 2].map((partition) => ({ topic: TOPIC, partition, lag: 0 })));
    await bus.publisher().publish(TOPIC, Array.from({ length: 30 }, (_, i) => msg(`trace-${i}`, 'x')));
    const lag = await sub.lag();
    expect(lag.reduce((n, p) => n + p.lag, 0)).toBe(30);
    const [p0, p1] = lag;
    await sub.commit([
      { topic: TOPIC, partition: 0, offset: String(p0!.lag) },
      { topic: TOPIC, partition: 1, offset: '1' },
    ]);
    expect(await sub.lag()).toEqual([
      { topic: TOPIC, partition: 0, lag: 0 },
      { topic: TOPIC, partition: 1, lag: p1!.lag - 1 },
      { topic: TOPIC, partition: 2, lag: lag[2]!.lag },
    ]);
    // A commit never moves back; a commit past the end is refused.
    await sub.commit([{ topic: TOPIC, partition: 1, offset: '0' }]);
    expect((await sub.lag())[1]!.lag).toBe(p1!.lag - 1);
    await expect(sub.commit([{ topic: TOPIC, partition: 2, offset: String(lag[2]!.lag + 1) }])).rejects.toBeInstanceOf(RangeError);
  });

  it('keeps one running member per topic, while topics are independent', async () => {
    const bus = new MemoryBus({ partitions: 1 });
    const a = collector();
    const b = collector();
    const subA = bus.subscriber('topic-a');
    const subB = bus.subscriber('topic-b');
    await subA.start(a.handlers);
    await subB.start(b.handlers);
    await expect(bus.subscriber('topic-a').start(collector().handlers)).rejects.toThrow(/already running/);
    // stop() of a member that never started does not release the running one.
    await bus.subscriber('topic-a').stop();
    await expect(bus.subscriber('topic-a').start(collector().handlers)).rejects.toThrow(/already running/);

    await bus.publisher().publish('topic-b', [msg('k', 'to-b')]);
    await bus.publisher().publish('topic-a', [msg('k', 'to-a')]);
    await Promise.all([a.waitFor(1), b.waitFor(1)]);
    expect(a.messages().map(text)).toEqual(['to-a']);
    expect(b.messages().map(text)).toEqual(['to-b']);
    await Promise.all([subA.stop(), subB.stop()]);
  });

  it('idle() resolves once the running subscriber has taken everything published', async () => {
    const bus = new MemoryBus({ partitions: 2, maxBatchMessages: 2 });
    await bus.idle(); // no subscriber, nothing to wait for
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const taken: string[] = [];
    const sub = bus.subscriber(TOPIC);
    await sub.start({
      onAssign: () => {},
      onBatch: async (b) => {
        await gate;
        taken.push(...b.messages.map(text));
      },
    });
    await bus.publisher().publish(TOPIC, Array.from({ length: 7 }, (_, i) => msg(`k${i}`, `m${i}`)));
    let idle = false;
    const waiting = bus.idle().then(() => (idle = true));
    await new Promise((r) => setTimeout(r, 20));
    expect(idle).toBe(false);
    release();
    await waiting;
    expect(taken.sort()).toEqual(['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    await sub.stop();
  });

  it('restarts the member after onBatch throws: onAssign([]), onAssign(all), redelivery from the committed offset', async () => {
    const errors: unknown[] = [];
    const bus = new MemoryBus({ partitions: 1, onError: (e) => errors.push(e) });
    await bus.publisher().publish(TOPIC, [msg('k', 'a'), msg('k', 'b')]);
    const c = collector();
    let failOnce = true;
    const sub = bus.subscriber(TOPIC);
    await sub.start({
      onAssign: c.handlers.onAssign,
      onBatch: async (batch) => {
        if (failOnce) {
          failOnce = false;
          throw new Error('state store unavailable');
        }
        await c.handlers.onBatch(batch);
      },
    });
    await c.waitFor(2);
    await sub.stop();
    expect(errors.map((e) => (e as Error).message)).toEqual(['state store unavailable']);
    expect(c.assignments).toEqual([[{ topic: TOPIC, partition: 0 }], [], [{ topic: TOPIC, partition: 0 }]]);
    expect(c.messages().map(text)).toEqual(['a', 'b']);
  });
});
