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
  /** Bound on bytes of published-but-uncommitted messages, counted by heldBytes (default 256 MiB). */
  maxBytes?: number;
  /** Told of each message entering (+heldBytes) and leaving (−heldBytes, once committed) the queue: per-tenant shares. */
  meter?: (message: BusMessage, bytes: number) => void;
  /** Most messages handed to one onBatch call (default 500). */
  maxBatchMessages?: number;
  /** Retry-After suggested when full (seconds, default 1). */
  retryAfterSeconds?: number;
  /**
   * Told when onBatch or onAssign throws (default: printed to stderr). The
   * member then restarts as a Kafka consumer would: onAssign([]), then
   * onAssign(all partitions) and delivery again from the committed offsets.
   */
  onError?: (error: unknown) => void;
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

/** What the queue holds per message beyond its value and key: the message object, its offset string, headers, the log slot. */
export const MESSAGE_OVERHEAD_BYTES = 256;

/** Bytes one message holds in the queue: value, key and headers plus the per-message overhead, so many tiny messages are bounded too. */
export const heldBytes = (m: BusMessage): number =>
  m.value.byteLength + m.key.length + MESSAGE_OVERHEAD_BYTES + (m.headers ? Object.entries(m.headers).reduce((n, [k, v]) => n + k.length + v.length, 0) : 0);

export class MemoryBus {
  readonly partitions: number;
  private readonly maxBytes: number;
  private readonly maxBatchMessages: number;
  private readonly retryAfterSeconds: number;
  private readonly topics = new Map<string, Partition[]>();
  private bytes = 0;
  private closed = false;
  private readonly onError: (error: unknown) => void;
  private readonly meter: ((message: BusMessage, bytes: number) => void) | undefined;
  /** Wakes the delivery loop of the running subscriber of a topic. */
  private readonly wakers = new Map<string, () => void>();
  /** Topics that have a running subscriber (one member per topic). */
  private readonly subscribed = new Set<string>();
  /** Topics whose subscriber is inside onBatch/onAssign now. */
  private readonly delivering = new Set<string>();
  private idleWaiters: (() => void)[] = [];

  constructor(options: MemoryBusOptions = {}) {
    this.partitions = options.partitions ?? 4;
    this.maxBytes = options.maxBytes ?? 256 * 1024 * 1024;
    this.maxBatchMessages = options.maxBatchMessages ?? 500;
    this.retryAfterSeconds = options.retryAfterSeconds ?? 1;
    this.meter = options.meter;
    this.onError = options.onError ?? ((e) => console.error('in-process queue: a subscriber handler failed; redelivering from the committed offsets:', e));
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
    const size = messages.reduce((n, m) => n + heldBytes(m), 0);
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
      this.meter?.(m, heldBytes(m));
    }
    this.bytes += size;
    this.wakers.get(topic)?.();
  }

  /** The single group member reading `topic`. Starting a new one after stop() resumes from the committed offsets. */
  subscriber(topic: string): Subscriber {
    let running = false;
    let loop: Promise<void> | undefined;
    const parts = () => this.topic(topic);
    return {
      start: async (handlers: SubscriberHandlers) => {
        if (running || this.subscribed.has(topic)) throw new Error(`in-process queue: a subscriber of ${topic} is already running`);
        this.subscribed.add(topic);
        running = true;
        try {
          for (const p of parts()) p.position = p.committed;
          await handlers.onAssign(parts().map((_, partition): TopicPartition => ({ topic, partition })));
        } catch (e) {
          running = false;
          this.subscribed.delete(topic);
          throw e;
        }
        loop = this.deliver(topic, parts(), handlers, () => running);
      },
      commit: async (offsets: TopicPartitionOffset[]) => {
        for (const o of offsets) {
          if (o.topic !== topic) continue;
          const p = parts()[o.partition];
          if (!p) throw new RangeError(`in-process queue: no partition ${o.partition} in ${topic}`);
          const to = BigInt(o.offset);
          const end = p.base + BigInt(p.log.length);
          if (to > end) throw new RangeError(`in-process queue: commit of offset ${to} past the end (${end}) of ${topic}/${o.partition}`);
          if (to <= p.committed) continue;
          const dropped = p.log.splice(0, Number(to - p.base));
          for (const m of dropped) {
            this.bytes -= heldBytes(m);
            this.meter?.(m, -heldBytes(m));
          }
          p.base = to;
          p.committed = to;
          if (p.position < to) p.position = to;
        }
      },
      lag: async (): Promise<PartitionLag[]> =>
        parts().map((p, partition) => ({ topic, partition, lag: Number(p.base + BigInt(p.log.length) - p.committed) })),
      stop: async () => {
        if (!running) {
          await loop;
          return;
        }
        running = false;
        this.wakers.get(topic)?.();
        await loop;
        loop = undefined;
        this.subscribed.delete(topic);
        this.notifyIdle();
      },
    };
  }

  private async deliver(topic: string, parts: Partition[], handlers: SubscriberHandlers, running: () => boolean): Promise<void> {
    try {
      await this.deliverLoop(topic, parts, handlers, running);
    } finally {
      this.delivering.delete(topic);
      this.notifyIdle();
    }
  }

  private async deliverLoop(topic: string, parts: Partition[], handlers: SubscriberHandlers, running: () => boolean): Promise<void> {
    let failures = 0;
    while (running()) {
      let delivered = false;
      this.delivering.add(topic);
      try {
        for (const [partition, p] of parts.entries()) {
          const from = Number(p.position - p.base);
          if (from >= p.log.length) continue;
          const messages = p.log.slice(from, from + this.maxBatchMessages);
          await handlers.onBatch({ topic, partition, messages });
          p.position += BigInt(messages.length);
          delivered = true;
          failures = 0;
          if (!running()) return;
        }
      } catch (e) {
        // As a Kafka member whose consumer crashed: everything it held is
        // void, and it reads again from the committed offsets.
        this.onError(e);
        failures++;
        await this.sleep(topic, Math.min(5000, 50 * 2 ** Math.min(failures, 7)), running);
        if (!running()) return;
        try {
          await handlers.onAssign([]);
          for (const p of parts) p.position = p.committed;
          await handlers.onAssign(parts.map((_, partition): TopicPartition => ({ topic, partition })));
        } catch (e2) {
          this.onError(e2);
        }
        continue;
      }
      this.delivering.delete(topic);
      if (!delivered) {
        this.notifyIdle();
        await this.sleep(topic, undefined, running);
      }
    }
  }

  private undelivered(topic: string): boolean {
    return this.topic(topic).some((p) => p.position < p.base + BigInt(p.log.length));
  }

  private isIdle(): boolean {
    return this.delivering.size === 0 && [...this.subscribed].every((t) => !this.undelivered(t));
  }

  private notifyIdle(): void {
    if (this.idleWaiters.length > 0 && this.isIdle()) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  /**
   * Resolves once the running subscribers have taken every message published
   * so far (the embedded mode's shutdown waits for this before draining the
   * consumers, so nothing the collector acknowledged is left in the queue).
   * Also resolves when the subscribers stop.
   */
  idle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** Waits for a publish to `topic` or stop() (or `ms`, when given). */
  private sleep(topic: string, ms: number | undefined, running: () => boolean): Promise<void> {
    if (!running()) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const timer = ms === undefined ? undefined : setTimeout(done, ms);
      const wakers = this.wakers;
      function done() {
        clearTimeout(timer);
        if (wakers.get(topic) === done) wakers.delete(topic);
        resolve();
      }
      wakers.set(topic, done);
    });
  }

  /** Refuses further publishes; subscribers still drain what was accepted. */
  close(): void {
    this.closed = true;
  }
}
