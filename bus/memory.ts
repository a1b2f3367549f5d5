/**
 * The embedded mode's bus: an in-process stand-in for one Kafka topic set
 * with a single consumer-group member. It keeps Kafka's contract that the
 * consumers rely on — partitions chosen by key with Kafka's own partitioner,
 * offsets, redelivery from the committed position after the member restarts
 * — and bounds the bytes not yet committed: a publish that would exceed the
 * bound is refused with BusUnavailableError (the collector answers 503 +
 * Retry-After), never half-accepted.
 *
 * Partitions live in memory, or — for the topics given to MemoryBus.open —
 * in a DurableLog per partition on disk: a publish then resolves only once
 * fsynced, and a restart on the same directory redelivers everything past
 * the committed offsets (`fleet start` keeps its OTLP topic this way).
 */
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import kafkajs from 'kafkajs';
import { DiskPartition, type PartitionStore } from './durable.ts';
import { DurableLog } from './log.ts';
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
  /**
   * Told when onBatch or onAssign throws (default: printed to stderr). The
   * member then restarts as a Kafka consumer would: onAssign([]), then
   * onAssign(all partitions) and delivery again from the committed offsets.
   */
  onError?: (error: unknown) => void;
}

export interface DurableBusOptions extends MemoryBusOptions {
  /** Directory of the logs: `<dir>/<topic>/<partition>/`. */
  dir: string;
  /** Topics kept on disk; others (e.g. alert sinks' topics) stay in memory. */
  topics: string[];
  /** Where log recovery reports what it dropped. */
  log?: (message: string) => void;
  /** Told every fdatasync (metrics). */
  onSync?: (seconds: number, records: number) => void;
}

/** Messages from `base` on in memory; committed ones are dropped from the front. */
class MemoryPartition implements PartitionStore {
  private readonly log: ConsumedMessage[] = [];
  private base = 0n;
  committed = 0n;
  bytes = 0;
  get end(): bigint {
    return this.base + BigInt(this.log.length);
  }
  append(messages: BusMessage[], topic: string, partition: number): void {
    for (const m of messages) {
      this.log.push({ ...m, topic, partition, offset: this.end.toString() });
      this.bytes += m.value.byteLength;
    }
  }
  read(from: bigint): ConsumedMessage[] {
    const at = Number(from - this.base);
    return this.log.slice(at, at + this.max);
  }
  commit(to: bigint): void {
    const dropped = this.log.splice(0, Number(to - this.base));
    for (const m of dropped) this.bytes -= m.value.byteLength;
    this.base = to;
    this.committed = to;
  }
  private readonly max: number;
  constructor(max: number) {
    this.max = max;
  }
}

interface Partition {
  store: PartitionStore;
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
  private closed = false;
  private readonly onError: (error: unknown) => void;
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
    this.onError = options.onError ?? ((e) => console.error('in-process queue: a subscriber handler failed; redelivering from the committed offsets:', e));
  }

  /**
   * Opens a bus whose `topics` are durable: one DurableLog per partition
   * under `dir`, recovered (torn tails cut, corrupt records skipped and
   * logged) before it returns. The partition count is fixed by what is on
   * disk, as a Kafka topic's is: a different `partitions` is refused, since
   * keys would move to other partitions and lose their order.
   */
  static async open(options: DurableBusOptions): Promise<MemoryBus> {
    const bus = new MemoryBus(options);
    const maxBytes = bus.maxBytes;
    for (const topic of options.topics) {
      const dir = path.join(options.dir, topic);
      await mkdir(dir, { recursive: true });
      const found = (await readdir(dir)).filter((n) => /^\d+$/.test(n)).map(Number);
      if (found.length > 0 && Math.max(...found) + 1 !== bus.partitions) {
        throw new Error(`queue ${dir} has ${Math.max(...found) + 1} partitions on disk, ${bus.partitions} configured; a key would change partition and lose its order`);
      }
      const parts: Partition[] = [];
      for (let p = 0; p < bus.partitions; p++) {
        // each log may take all of the bus's bound; the bus checks the sum
        const log = await DurableLog.open({ dir: path.join(dir, String(p)), maxBytes, ...(options.log && { log: options.log }), ...(options.onSync && { onSync: options.onSync }) });
        const store = new DiskPartition(log, bus.retryAfterSeconds);
        parts.push({ store, position: store.committed });
        bus.logs.push(log);
      }
      bus.topics.set(topic, parts);
    }
    return bus;
  }

  private readonly logs: DurableLog[] = [];

  /** Bytes held (published, not yet committed; on disk: the segment files). */
  get bufferedBytes(): number {
    let n = 0;
    for (const parts of this.topics.values()) for (const p of parts) n += p.store.bytes;
    return n;
  }

  /** The durable logs (metrics: fsync in progress, bytes). */
  get durableLogs(): readonly DurableLog[] {
    return this.logs;
  }

  private topic(name: string): Partition[] {
    let t = this.topics.get(name);
    if (!t) {
      t = Array.from({ length: this.partitions }, () => ({ store: new MemoryPartition(this.maxBatchMessages), position: 0n }));
      this.topics.set(name, t);
    }
    return t;
  }

  publisher(): Publisher {
    return {
      publish: async (topic, messages) => this.append(topic, messages),
      isReady: async () => !this.closed && this.bufferedBytes < this.maxBytes,
      close: async () => {},
    };
  }

  private async append(topic: string, messages: BusMessage[]): Promise<void> {
    if (this.closed) throw new BusUnavailableError('in-process queue is closed', this.retryAfterSeconds);
    const size = messages.reduce((n, m) => n + m.value.byteLength, 0);
    const held = this.bufferedBytes;
    if (held + size > this.maxBytes && held > 0) {
      throw new BusUnavailableError(`in-process queue full (${held} of ${this.maxBytes} bytes awaiting the consumers)`, this.retryAfterSeconds);
    }
    const parts = this.topic(topic);
    const partitionMetadata = parts.map((_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
    const byPartition = new Map<number, BusMessage[]>();
    for (const m of messages) {
      const partition = partitioner({ topic, partitionMetadata, message: { key: m.key, value: Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength) } });
      const list = byPartition.get(partition);
      if (list) list.push(m);
      else byPartition.set(partition, [m]);
    }
    // On disk the partitions' fsyncs run side by side; all must succeed before the caller answers 200.
    await Promise.all([...byPartition].map(([partition, ms]) => parts[partition]!.store.append(ms, topic, partition)));
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
          for (const p of parts()) p.position = p.store.committed;
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
          const end = p.store.end;
          if (to > end) throw new RangeError(`in-process queue: commit of offset ${to} past the end (${end}) of ${topic}/${o.partition}`);
          if (to <= p.store.committed) continue;
          await p.store.commit(to);
          if (p.position < to) p.position = to;
        }
      },
      lag: async (): Promise<PartitionLag[]> =>
        parts().map((p, partition) => ({ topic, partition, lag: Number(p.store.end - p.store.committed) })),
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
          if (p.position >= p.store.end) continue;
          const messages = await p.store.read(p.position, this.maxBatchMessages, topic, partition);
          if (messages.length === 0) {
            // offsets lost to a corrupt record (reported at open): nothing readable up to the end
            p.position = p.store.end;
            continue;
          }
          await handlers.onBatch({ topic, partition, messages });
          p.position = BigInt(messages.at(-1)!.offset) + 1n;
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
          for (const p of parts) p.position = p.store.committed;
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
    return this.topic(topic).some((p) => p.position < p.store.end);
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

  /** Refuses further publishes and closes the durable logs (after the subscribers stopped). */
  async shutdown(): Promise<void> {
    this.closed = true;
    for (const log of this.logs.splice(0)) await log.close();
  }
}
