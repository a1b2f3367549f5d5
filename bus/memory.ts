/**
 * The embedded mode's bus: an in-process, bounded stand-in for one Kafka
 * topic set with a single consumer-group member. It keeps Kafka's contract
 * that the consumers rely on — partitions chosen by key with Kafka's own
 * partitioner, offsets, redelivery from the committed position after the
 * member restarts — and bounds memory by the bytes not yet committed: a
 * publish that would exceed the bound is refused with BusUnavailableError
 * (the collector answers 503 + Retry-After), never half-accepted.
 */
import kafkajs from 'kafkajs';
import {
  BusUnavailableError,
  type BusMessage,
  type ConsumedMessage,
  type PartitionLag,
  type Publisher,
  type Subscriber,
  type SubscriberHandlers,
  type TopicPartition,
  type TopicPartitionOffset,
} from './types.ts';

export interface MemoryBusOptions {
  /** Partitions per topic (default 4). */
  partitions?: number;
  /** Bound on bytes of published-but-uncommitted message values (default 256 MiB). */
  maxBytes?: number;
  /** Most messages handed to one onBatch call (default 500). */
  maxBatchMessages?: number;
  /** Retry-After suggested when full (seconds, default 1). */
  retryAfterSeconds?: number;
}

interface Partition {
  /** Messages from `base` on; committed ones are dropped from the front. */
  log: ConsumedMessage[];
  base: bigint;
  committed: bigint;
  /** Next offset to deliver to the running subscriber. */
  position: bigint;
}

const partitioner = kafkajs.Partitioners.DefaultPartitioner();

export class MemoryBus {
  readonly partitions: number;
  private readonly maxBytes: number;
  private readonly maxBatchMessages: number;
  private readonly retryAfterSeconds: number;
  private readonly topics = new Map<string, Partition[]>();
  private bytes = 0;
  private closed = false;
  private wake: (() => void) | undefined;
  private subscriberRunning = false;
  private subscribedTopic: string | undefined;
  private delivering = false;
  private idleWaiters: (() => void)[] = [];

  constructor(options: MemoryBusOptions = {}) {
    this.partitions = options.partitions ?? 4;
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.maxBatchMessages = options.maxBatchMessages ?? 500;
    this.retryAfterSeconds = options.retryAfterSeconds ?? 1;
  }

  /** Bytes held (published, not yet committed). */
  get bufferedBytes(): number {
    return this.bytes;
  }

  private topic(name: string): Partition[] {
    let t = this.topics.get(name);
    if (!t) {
      t = Array.from({ length: this.partitions }, () => ({ log: [], base: 0n, committed: 0n, position: 0n }));
      this.topics.set(name, t);
    }
    return t;
  }

  publisher(): Publisher {
    return {
      publish: async (topic, messages) => this.append(topic, messages),
      isReady: async () => !this.closed && this.bytes < this.maxBytes,
      close: async () => {},
    };
  }

  private append(topic: string, messages: BusMessage[]): void {
    if (this.closed) throw new BusUnavailableError('in-process queue is closed', this.retryAfterSeconds);
    const size = messages.reduce((n, m) => n + m.value.byteLength, 0);
    if (this.bytes + size > this.maxBytes && this.bytes > 0) {
      throw new BusUnavailableError(
        `in-process queue full (${this.bytes} of ${this.maxBytes} bytes awaiting the consumers)`,
        this.retryAfterSeconds,
      );
    }
    const parts = this.topic(topic);
    const partitionMetadata = parts.map((_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
    for (const m of messages) {
      const partition = partitioner({ topic, partitionMetadata, message: { key: m.key, value: Buffer.from(m.value) } });
      const p = parts[partition]!;
      const offset = p.base + BigInt(p.log.length);
      p.log.push({ ...m, topic, partition, offset: offset.toString() });
    }
    this.bytes += size;
    this.wake?.();
  }

  /** The single group member reading `topic`. Starting a new one after stop() resumes from the committed offsets. */
  subscriber(topic: string): Subscriber {
    let running = false;
    let loop: Promise<void> | undefined;
    const parts = () => this.topic(topic);
    return {
      start: async (handlers: SubscriberHandlers) => {
        if (this.subscriberRunning) throw new Error(`in-process queue: a subscriber of ${topic} is already running`);
        this.subscriberRunning = running = true;
        this.subscribedTopic = topic;
        for (const p of parts()) p.position = p.committed;
        await handlers.onAssign(parts().map((_, partition): TopicPartition => ({ topic, partition })));
        loop = this.deliver(parts(), handlers, () => running);
      },
      commit: async (offsets: TopicPartitionOffset[]) => {
        for (const o of offsets) {
          if (o.topic !== topic) continue;
          const p = parts()[o.partition];
          if (!p) throw new RangeError(`in-process queue: no partition ${o.partition} in ${topic}`);
          const to = BigInt(o.offset);
          if (to <= p.committed) continue;
          const dropped = p.log.splice(0, Number(to - p.base));
          for (const m of dropped) this.bytes -= m.value.byteLength;
          p.base = to;
          p.committed = to;
        }
      },
      lag: async (): Promise<PartitionLag[]> =>
        parts().map((p, partition) => ({ topic, partition, lag: Number(p.base + BigInt(p.log.length) - p.committed) })),
      stop: async () => {
        running = false;
        this.wake?.();
        await loop;
        this.subscriberRunning = false;
      },
    };
  }

  private async deliver(parts: Partition[], handlers: SubscriberHandlers, running: () => boolean): Promise<void> {
    while (running()) {
      let delivered = false;
      this.delivering = true;
      for (const [partition, p] of parts.entries()) {
        const from = Number(p.position - p.base);
        if (from >= p.log.length) continue;
        const messages = p.log.slice(from, from + this.maxBatchMessages);
        await handlers.onBatch({ topic: messages[0]!.topic, partition, messages });
        p.position += BigInt(messages.length);
        delivered = true;
        if (!running()) break;
      }
      this.delivering = false;
      if (!running()) break;
      if (!delivered) {
        for (const resolve of this.idleWaiters.splice(0)) resolve();
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
      this.wake = undefined;
    }
    this.delivering = false;
  }

  /**
   * Resolves once the running subscriber has taken every message published
   * so far (the embedded mode's shutdown waits for this before draining the
   * consumers, so nothing the collector acknowledged is left in the queue).
   */
  idle(): Promise<void> {
    if (!this.subscriberRunning || this.subscribedTopic === undefined) return Promise.resolve();
    const undelivered = this.topic(this.subscribedTopic).some((p) => p.position < p.base + BigInt(p.log.length));
    if (!undelivered && !this.delivering) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Refuses further publishes; subscribers still drain what was accepted. */
  close(): void {
    this.closed = true;
  }
}
