/**
 * The production bus: Kafka through kafkajs 2.2.4 (pure JavaScript, no
 * native client). See docs/kafka.md for the broker versions this was tested
 * against and the kafkajs caveats handled here.
 *
 * - KafkaPublisher: idempotent producer, acks=all, every publish settled
 *   within a bounded time; retryable failures surface as BusUnavailableError
 *   so the collector can answer 503 + Retry-After.
 * - KafkaSubscriber: one consumer-group member reading one topic, manual
 *   commits, onAssign after every rebalance, survives broker outages.
 * - ensureTopics: creates missing topics.
 */
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import kafkajs from 'kafkajs';
import type {
  Admin,
  CompressionTypes,
  Consumer,
  EachBatchPayload,
  IHeaders,
  Kafka,
  KafkaMessage,
  LogEntry,
  Message,
  Producer,
  RetryOptions,
  logCreator as LogCreator,
  logLevel as LogLevel,
} from 'kafkajs';
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

export type KafkaLogLevel = 'nothing' | 'error' | 'warn' | 'info' | 'debug';

export interface KafkaClientOptions {
  /** Bootstrap servers, `host:port`. */
  brokers: string[];
  /** Kafka client id (shows in broker logs and quotas; default `perpass`). */
  clientId?: string;
  /** TCP connect timeout per broker (default 3000 ms). */
  connectionTimeoutMs?: number;
  /** Log level of kafkajs's own messages (default `warn`), written to stderr. */
  logLevel?: KafkaLogLevel;
  /** Replaces the stderr logger entirely. */
  logCreator?: LogCreator;
}

const LEVELS: Record<KafkaLogLevel, LogLevel> = {
  nothing: kafkajs.logLevel.NOTHING,
  error: kafkajs.logLevel.ERROR,
  warn: kafkajs.logLevel.WARN,
  info: kafkajs.logLevel.INFO,
  debug: kafkajs.logLevel.DEBUG,
};

/**
 * kafkajs warns on every producer created with limited retries ("Limiting
 * retries for the idempotent producer may invalidate EoS guarantees"). The
 * publisher limits them on purpose (a publish must fail in bounded time) and
 * restores the guarantee another way: after any failed send the producer is
 * discarded and the next send gets a new producer id, so no batch is ever
 * resent with a sequence number the broker may already have seen.
 */
const SUPPRESSED_WARNINGS = ['Limiting retries for the idempotent producer'];

/**
 * kafkajs 2.2.4 (unmaintained) schedules request-queue timers with a delay
 * that can be negative; Node ≥ 24 then prints a TimeoutNegativeWarning for
 * every such timer (it runs them at once, as kafkajs expects). Only that
 * warning type is dropped; every other process warning is printed as usual.
 */
const emitWarning = process.emitWarning;
process.emitWarning = function (this: NodeJS.Process, warning: string | Error, ...rest: unknown[]) {
  const type = typeof rest[0] === 'string' ? rest[0] : (rest[0] as { type?: string } | undefined)?.type;
  if (type === 'TimeoutNegativeWarning' || (warning instanceof Error && warning.name === 'TimeoutNegativeWarning')) return;
  return (emitWarning as (...args: unknown[]) => void).call(this, warning, ...rest);
} as typeof process.emitWarning;

/**
 * A collector and a consumer starting together both create the topics; the
 * one that loses gets TOPIC_ALREADY_EXISTS, which kafkajs's admin treats as
 * success but its connection still logs at ERROR ("Response CreateTopics …
 * Topic creation errors"). Any other creation error is thrown to ensureTopics,
 * which reports it, so this log line never carries news.
 */
const isCreateTopicsRace = (message: string, extra: Record<string, unknown>): boolean =>
  message.startsWith('Response CreateTopics') && extra.error === 'Topic creation errors';

const stderrLogCreator: LogCreator = () => (entry: LogEntry) => {
  const { message, timestamp: _t, ...extra } = entry.log;
  if (SUPPRESSED_WARNINGS.some((w) => message.startsWith(w)) || isCreateTopicsRace(message, extra)) return;
  const rest = Object.keys(extra).length ? ` ${JSON.stringify(extra)}` : '';
  process.stderr.write(`kafkajs ${entry.label} [${entry.namespace}] ${message}${rest}\n`);
};

function createKafka(options: KafkaClientOptions, requestTimeoutMs: number, retry?: RetryOptions): Kafka {
  if (options.brokers.length === 0) throw new Error('Kafka: no brokers given');
  return new kafkajs.Kafka({
    clientId: options.clientId ?? 'perpass',
    brokers: options.brokers,
    connectionTimeout: options.connectionTimeoutMs ?? 3000,
    requestTimeout: requestTimeoutMs,
    enforceRequestTimeout: true,
    logLevel: LEVELS[options.logLevel ?? 'warn'],
    logCreator: options.logCreator ?? stderrLogCreator,
    // Explicit, so behaviour does not change with NODE_ENV (kafkajs swaps in
    // much shorter retry defaults when NODE_ENV=test).
    retry: retry ?? { initialRetryTime: 300, maxRetryTime: 10_000, factor: 0.2, multiplier: 2, retries: 5 },
  });
}

// ---------------------------------------------------------------- errors

/** kafkajs errors that mean "Kafka cannot take this now, try again later". */
const UNAVAILABLE_ERROR_NAMES = new Set([
  'KafkaJSConnectionError',
  'KafkaJSConnectionClosedError',
  'KafkaJSRequestTimeoutError',
  'KafkaJSBrokerNotFound',
  'KafkaJSMetadataNotLoaded',
  'KafkaJSTopicMetadataNotLoaded',
  'KafkaJSStaleTopicMetadataAssignment',
  'KafkaJSNoBrokerAvailableError',
  'KafkaJSLockTimeout',
  'KafkaJSTimeout',
  'KafkaJSGroupCoordinatorNotFound',
]);

function rootCause(e: unknown): unknown {
  let cur = e;
  for (let i = 0; i < 10 && cur instanceof Error && cur.cause instanceof Error && cur.cause !== cur; i++) cur = cur.cause;
  return cur;
}

/**
 * True when a kafkajs error is transient: connection refused/closed/timed
 * out, no leader, not enough in-sync replicas (NOT_ENOUGH_REPLICAS*), request
 * timed out, retries exhausted on any of those. kafkajs wraps the original
 * error (KafkaJSNumberOfRetriesExceeded, KafkaJSNonRetriableError) so the
 * cause chain is inspected.
 */
export function isKafkaUnavailable(e: unknown): boolean {
  if (e instanceof BusUnavailableError) return true;
  const chain: unknown[] = [];
  for (let cur: unknown = e, i = 0; cur instanceof Error && i < 10; cur = cur.cause, i++) {
    chain.push(cur);
    if (cur.cause === cur) break;
  }
  if (e && typeof e === 'object' && 'errors' in e && Array.isArray((e as { errors: unknown }).errors)) {
    const errors = (e as { errors: unknown[] }).errors;
    return errors.length > 0 && errors.every(isKafkaUnavailable);
  }
  const root = rootCause(e);
  if (root instanceof Error) {
    if (UNAVAILABLE_ERROR_NAMES.has(root.name)) return true;
    if (root.name === 'KafkaJSProtocolError' && (root as { retriable?: boolean }).retriable === true) return true;
    // Node socket errors that kafkajs did not wrap.
    const code = (root as { code?: unknown }).code;
    if (typeof code === 'string' && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|EAI_AGAIN)$/.test(code)) return true;
  }
  return chain.some((c) => c instanceof Error && UNAVAILABLE_ERROR_NAMES.has(c.name));
}

function describe(e: unknown): string {
  const root = rootCause(e);
  const outer = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  if (root !== e && root instanceof Error && root.message && !outer.includes(root.message)) {
    return `${outer} (cause: ${root.name}: ${root.message})`;
  }
  return outer;
}

function toBusError(e: unknown, what: string, retryAfterSeconds: number): Error {
  if (e instanceof BusUnavailableError) return e;
  if (isKafkaUnavailable(e)) {
    return new BusUnavailableError(`Kafka unavailable: ${what} failed: ${describe(e)}`, retryAfterSeconds, { cause: e });
  }
  return new Error(`Kafka: ${what} failed: ${describe(e)}`, { cause: e });
}

/** Races `p` against a timer; the timer is cleared either way. `p` keeps running on timeout. */
async function withTimeout<T>(p: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

// ---------------------------------------------------------------- publisher

export interface KafkaPublisherOptions extends KafkaClientOptions {
  /**
   * Upper bound for one publish() call, from call to settle, including
   * waiting behind other sends, connecting and kafkajs's retries (default
   * 5000 ms). While the broker is down, publish rejects with
   * BusUnavailableError no later than this.
   */
  publishTimeoutMs?: number;
  /** Retry-After given with BusUnavailableError (default 5 s). */
  retryAfterSeconds?: number;
  /** Compression of record batches (default `zstd`, see the comment on KafkaPublisher). */
  compression?: KafkaCompression;
  /**
   * Most uncompressed bytes (keys + values) sent in one produce request
   * (default 768 KiB). Concurrent publish() calls are merged up to this;
   * a larger publish is split. Keep it under the broker's / topic's
   * `max.message.bytes` (1 MiB by default) for uncompressible payloads.
   */
  maxRequestBytes?: number;
  /**
   * The topic this publisher writes. When set, isReady() also requires it to
   * exist with a leader for every partition.
   */
  topic?: string;
  /** isReady() answers from a cached probe this young (default 1000 ms). */
  readyCacheMs?: number;
}

interface Pending {
  topic: string;
  messages: Message[];
  bytes: number;
  state: 'queued' | 'sending' | 'settled';
  resolve(): void;
  reject(e: Error): void;
}

function messageBytes(m: BusMessage): number {
  let n = Buffer.byteLength(m.key) + m.value.byteLength;
  if (m.headers) for (const [k, v] of Object.entries(m.headers)) n += Buffer.byteLength(k) + Buffer.byteLength(v);
  return n;
}

export function toKafkaMessage(m: BusMessage): Message {
  // The key as bytes once: kafkajs would convert a string key twice (murmur2 partitioner, record encoder).
  const key = Buffer.from(m.key);
  const value = Buffer.from(m.value.buffer, m.value.byteOffset, m.value.byteLength);
  return m.headers ? { key, value, headers: m.headers } : { key, value };
}

/** The record-batch codecs a publisher can use. */
export type KafkaCompression = 'zstd' | 'gzip' | 'none';

const builtinGzip = kafkajs.CompressionCodecs[kafkajs.CompressionTypes.GZIP]() as { decompress(buffer: Buffer): Promise<Buffer> };

/**
 * kafkajs's GZIP codec with compression done synchronously (same zlib, same
 * level, same bytes). kafkajs compresses each partition's records with
 * zlib.gzip, the asynchronous stream API: a zlib stream per batch, whose
 * native state is only freed after garbage collection, so the publisher
 * spent more CPU on stream bookkeeping and GC than on compressing (produce
 * request encoding as in bench/procs/collector-stages.ts: ~13 µs of CPU per
 * span with kafkajs's codec, ~8 with this one). The synchronous call holds
 * the event loop about a millisecond per 100 KB partition batch.
 * Decompression (the consumers) stays kafkajs's own. kafkajs keeps codecs in
 * a global table, so this applies to every kafkajs producer of the process.
 */
const syncGzip = {
  compress: async (encoder: { buffer: Buffer }): Promise<Buffer> => zlib.gzipSync(encoder.buffer),
  decompress: builtinGzip.decompress,
};
kafkajs.CompressionCodecs[kafkajs.CompressionTypes.GZIP] = () => syncGzip;

/**
 * ZSTD, which kafkajs leaves to add-ons, from Node's own zlib (libzstd;
 * Node ≥ 22.15), at zstd's default level 3. On agent traces, in 100 KB
 * batches: 8.2× smaller (gzip's default level: 7.9×) for 0.7 µs of CPU per
 * span to compress (gzip: 3.5) and 0.4 to decompress (gzip: 1.3). Kafka
 * frames each batch as one standard zstd frame, which this writes and reads.
 * The batch's size is told up front (pledgedSrcSize) so zstd sizes its
 * window and tables to it rather than to level 3's 2 MiB: on 32 KB batches
 * that halves the CPU (1.6 → 0.9 µs per span).
 */
const zstd = {
  compress: async (encoder: { buffer: Buffer }): Promise<Buffer> => zlib.zstdCompressSync(encoder.buffer, { pledgedSrcSize: encoder.buffer.length }),
  decompress: promisify(zlib.zstdDecompress),
};
kafkajs.CompressionCodecs[kafkajs.CompressionTypes.ZSTD] = () => zstd;

const COMPRESSION_TYPES: Record<KafkaCompression, CompressionTypes> = {
  zstd: kafkajs.CompressionTypes.ZSTD,
  gzip: kafkajs.CompressionTypes.GZIP,
  none: kafkajs.CompressionTypes.None,
};

/**
 * Publisher over an idempotent kafkajs producer (acks=all).
 *
 * Sends are serialised: kafkajs's idempotent producer reads and advances the
 * per-partition sequence numbers around each request, so two concurrent
 * sends to one partition get the same sequence and the broker silently drops
 * one as a "duplicate" (kafkajs issue #1005). Instead, publish() calls queue
 * up and each produce request carries every queued message up to
 * maxRequestBytes — concurrent publishes are batched together rather than
 * raced, which is also what gives good batching without a linger timer.
 *
 * Compression: ZSTD by default (see zstd above). OTLP protobuf compresses
 * well (repeated attribute keys, resource attributes, ids: ~8× on agent
 * traffic), which cuts broker disk, replication and consumer fetch traffic
 * — for a retention-bound topic that outweighs the collector CPU. It even
 * saves the publisher CPU: kafkajs's CRC32C (pure JavaScript, byte by byte)
 * and its buffer copies then run over an eighth of the bytes. Every Kafka
 * client since Kafka 2.1 reads ZSTD (Java, librdkafka, otelcol, the
 * ClickHouse Kafka engine, and perpass through the codec above — but not a
 * perpass consumer older than that codec: docs/operations.md, upgrade order);
 * `compression: 'gzip'` is for older readers, `'none'` turns it off.
 */
export class KafkaPublisher implements Publisher {
  private readonly kafka: Kafka;
  private readonly publishTimeoutMs: number;
  private readonly retryAfterSeconds: number;
  private readonly compression: CompressionTypes;
  private readonly maxRequestBytes: number;
  private readonly topic: string | undefined;
  private readonly readyCacheMs: number;
  private producer: Producer | undefined;
  private producerConnecting: Promise<Producer> | undefined;
  private readonly queue: Pending[] = [];
  private draining: Promise<void> | undefined;
  private admin: Admin | undefined;
  private ready: { at: number; value: boolean } | undefined;
  private readyProbe: Promise<boolean> | undefined;
  private closed = false;
  /** The last send failed because Kafka was unavailable (cleared by the next success). */
  private suspect = false;
  private readonly brokers: string;
  /** Client for readiness probes: few, short retries, so a refused connection fails in ~0.1 s. */
  private readonly probeKafka: Kafka;

  constructor(options: KafkaPublisherOptions) {
    this.publishTimeoutMs = options.publishTimeoutMs ?? 5000;
    this.retryAfterSeconds = options.retryAfterSeconds ?? 5;
    this.compression = COMPRESSION_TYPES[options.compression ?? 'zstd'];
    this.maxRequestBytes = options.maxRequestBytes ?? 768 * 1024;
    this.topic = options.topic;
    this.readyCacheMs = options.readyCacheMs ?? 1000;
    // A produce request that takes longer than the publish bound is useless.
    this.kafka = createKafka(options, this.publishTimeoutMs);
    this.probeKafka = createKafka(options, Math.min(this.publishTimeoutMs, 3000), { retries: 1, initialRetryTime: 100, maxRetryTime: 300 });
    this.brokers = options.brokers.join(',');
  }

  async publish(topic: string, messages: BusMessage[]): Promise<void> {
    if (this.closed) throw new BusUnavailableError('Kafka publisher is closed', this.retryAfterSeconds);
    if (messages.length === 0) return;
    const entries: Pending[] = [];
    const settled: Promise<void>[] = [];
    let chunk: Message[] = [];
    let chunkBytes = 0;
    const flush = () => {
      if (chunk.length === 0) return;
      const messagesOfChunk = chunk;
      const bytes = chunkBytes;
      settled.push(
        new Promise<void>((resolve, reject) => {
          entries.push({ topic, messages: messagesOfChunk, bytes, state: 'queued', resolve, reject });
        }),
      );
      chunk = [];
      chunkBytes = 0;
    };
    for (const m of messages) {
      const size = messageBytes(m);
      if (chunkBytes > 0 && chunkBytes + size > this.maxRequestBytes) flush();
      chunk.push(toKafkaMessage(m));
      chunkBytes += size;
    }
    flush();
    let abandoned = false;
    const work = async () => {
      // While Kafka is known to be down, answer at once from the (cached,
      // cheap) readiness probe instead of holding every caller for the whole
      // bound; the first probe that succeeds lets sends through again.
      if (this.suspect && !(await this.isReady())) {
        throw new BusUnavailableError(`Kafka unavailable: no broker of ${this.brokers} answers`, this.retryAfterSeconds);
      }
      if (abandoned) return;
      this.queue.push(...entries);
      this.kick();
      await Promise.all(settled);
    };
    try {
      await withTimeout(
        work(),
        this.publishTimeoutMs,
        () =>
          new BusUnavailableError(
            `Kafka unavailable: ${messages.length} message(s) to ${topic} not acknowledged within ${this.publishTimeoutMs} ms`,
            this.retryAfterSeconds,
          ),
      );
    } catch (e) {
      // Whatever of this call has not been handed to kafkajs yet is dropped
      // from the queue: the caller is told it failed and will retry.
      abandoned = true;
      for (const entry of entries) {
        if (entry.state === 'queued') {
          entry.state = 'settled';
          const i = this.queue.indexOf(entry);
          if (i >= 0) this.queue.splice(i, 1);
        }
      }
      for (const p of settled) p.catch(() => {});
      throw e;
    }
  }

  private kick(): void {
    if (this.draining) return;
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
      if (this.queue.length > 0) this.kick();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch: Pending[] = [];
      let bytes = 0;
      while (this.queue.length > 0) {
        const next = this.queue[0]!;
        if (batch.length > 0 && bytes + next.bytes > this.maxRequestBytes) break;
        this.queue.shift();
        if (next.state !== 'queued') continue;
        next.state = 'sending';
        batch.push(next);
        bytes += next.bytes;
      }
      if (batch.length === 0) continue;
      const byTopic = new Map<string, Message[]>();
      for (const entry of batch) {
        const list = byTopic.get(entry.topic);
        if (list) list.push(...entry.messages);
        else byTopic.set(entry.topic, [...entry.messages]);
      }
      const topicMessages = [...byTopic].map(([topic, messages]) => ({ topic, messages }));
      try {
        await withTimeout(
          (async () => {
            const producer = await this.getProducer();
            await producer.sendBatch({ acks: -1, compression: this.compression, timeout: this.publishTimeoutMs, topicMessages });
          })(),
          this.publishTimeoutMs,
          () =>
            new BusUnavailableError(
              `Kafka unavailable: produce request not acknowledged within ${this.publishTimeoutMs} ms`,
              this.retryAfterSeconds,
            ),
        );
        for (const entry of batch) {
          entry.state = 'settled';
          entry.resolve();
        }
        this.ready = { at: Date.now(), value: true };
        this.suspect = false;
      } catch (e) {
        // The send may or may not have been written: never reuse this
        // producer's sequence numbers (see SUPPRESSED_WARNINGS).
        this.resetProducer();
        const error = toBusError(e, 'publish', this.retryAfterSeconds);
        if (error instanceof BusUnavailableError) {
          this.ready = { at: Date.now(), value: false };
          this.suspect = true;
        }
        for (const entry of batch) {
          entry.state = 'settled';
          entry.reject(error);
        }
      }
    }
  }

  private getProducer(): Promise<Producer> {
    if (this.producer) return Promise.resolve(this.producer);
    if (!this.producerConnecting) {
      const producer = this.kafka.producer({
        idempotent: true,
        maxInFlightRequests: 1,
        // murmur2 of the key, as the Java client, librdkafka's
        // murmur2_random, otelcol and MemoryBus: a trace id maps to the same
        // partition whoever produces it.
        createPartitioner: kafkajs.Partitioners.DefaultPartitioner,
        allowAutoTopicCreation: false,
        // Bounded: a down broker must fail the publish within
        // publishTimeoutMs, not after kafkajs's endless idempotent retries.
        retry: { initialRetryTime: 100, maxRetryTime: 1000, factor: 0.2, multiplier: 2, retries: 3 },
      });
      const connecting = producer.connect().then(
        () => {
          if (this.producerConnecting === connecting) {
            this.producer = producer;
            this.producerConnecting = undefined;
          }
          return producer;
        },
        (e: unknown) => {
          if (this.producerConnecting === connecting) this.producerConnecting = undefined;
          producer.disconnect().catch(() => {});
          throw e;
        },
      );
      this.producerConnecting = connecting;
    }
    return this.producerConnecting;
  }

  private resetProducer(): void {
    const old = this.producer;
    const connecting = this.producerConnecting;
    this.producer = undefined;
    this.producerConnecting = undefined;
    old?.disconnect().catch(() => {});
    connecting?.then((p) => p.disconnect()).catch(() => {});
  }

  /**
   * True when the broker answers a metadata request now (and, with `topic`,
   * that topic has a leader for every partition). Probes are cheap (one
   * Metadata request), shared between concurrent callers and cached for
   * readyCacheMs; a publish outcome also refreshes the cache.
   */
  async isReady(): Promise<boolean> {
    if (this.closed) return false;
    if (this.ready && Date.now() - this.ready.at < this.readyCacheMs) return this.ready.value;
    this.readyProbe ??= this.probe().finally(() => {
      this.readyProbe = undefined;
    });
    return this.readyProbe;
  }

  private async probe(): Promise<boolean> {
    let value = false;
    try {
      value = await withTimeout(
        (async () => {
          if (!this.admin) {
            const admin = this.probeKafka.admin({ retry: { retries: 0 } });
            await admin.connect();
            this.admin = admin;
          }
          if (this.topic) {
            const { topics } = await this.admin.fetchTopicMetadata({ topics: [this.topic] });
            const t = topics.find((x) => x.name === this.topic);
            return !!t && t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0);
          }
          const cluster = await this.admin.describeCluster();
          return cluster.brokers.length > 0;
        })(),
        Math.min(this.publishTimeoutMs, 3000),
        () => new Error('readiness probe timed out'),
      );
    } catch {
      value = false;
    }
    if (!value) {
      this.suspect = true;
      // Reconnect from scratch next time; a half-dead admin may linger.
      this.admin?.disconnect().catch(() => {});
      this.admin = undefined;
    }
    this.ready = { at: Date.now(), value };
    return value;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.draining) await this.draining;
    const producer = this.producer ?? (await this.producerConnecting?.catch(() => undefined));
    this.producer = undefined;
    this.producerConnecting = undefined;
    await Promise.allSettled([producer?.disconnect(), this.admin?.disconnect()]);
    this.admin = undefined;
  }
}

// ---------------------------------------------------------------- subscriber

export interface KafkaSubscriberOptions extends KafkaClientOptions {
  groupId: string;
  topic: string;
  /** Group session timeout (default 30000 ms; the broker's group.min/max.session.timeout.ms bound it). */
  sessionTimeoutMs?: number;
  /** Heartbeat interval (default 3000 ms; keep it under a third of the session timeout). */
  heartbeatIntervalMs?: number;
  /** Longest a fetch waits at the broker for new data (default 1000 ms); also bounds how fast a rebalance is noticed. */
  maxWaitTimeMs?: number;
  /** Most bytes fetched per partition per request (default 1 MiB). */
  maxBytesPerPartition?: number;
  /** Partitions whose batches may be handed to onBatch at the same time (default 1; always one at a time per partition). */
  partitionsConsumedConcurrently?: number;
  /** start() rejects when the member has not joined the group within this (default 60000 ms). */
  startTimeoutMs?: number;
  /** Retry-After on BusUnavailableError from commit()/lag() (default 5 s). */
  retryAfterSeconds?: number;
  /** Told about every crash of the kafkajs consumer; it is restarted in any case while the subscriber runs. */
  onCrash?: (error: Error) => void;
}

function headerString(v: Buffer | string | (Buffer | string)[] | undefined): string | undefined {
  if (v === undefined) return undefined;
  const first = Array.isArray(v) ? v[0] : v;
  if (first === undefined) return undefined;
  return typeof first === 'string' ? first : first.toString('utf8');
}

function toConsumed(topic: string, partition: number, m: KafkaMessage): ConsumedMessage {
  const value = m.value ?? Buffer.alloc(0);
  const out: ConsumedMessage = {
    topic,
    partition,
    offset: m.offset,
    key: m.key ? m.key.toString('utf8') : '',
    value: new Uint8Array(value.buffer, value.byteOffset, value.byteLength),
  };
  const headers: IHeaders | undefined = m.headers;
  if (headers && Object.keys(headers).length > 0) {
    const h: Record<string, string> = {};
    for (const [k, v] of Object.entries(headers)) {
      const s = headerString(v);
      if (s !== undefined) h[k] = s;
    }
    out.headers = h;
  }
  return out;
}

/**
 * One member of a Kafka consumer group reading one topic.
 *
 * Delivery: kafkajs eachBatch with autoCommit off; each batch is handed to
 * onBatch only after the onAssign call of the generation that delivered it
 * has completed. A new group (no committed offsets) starts at the earliest
 * offset.
 *
 * Rebalances: kafkajs (eager protocol) restarts every partition it is
 * assigned from the group's committed offset, even partitions this member
 * kept. For kept partitions, messages below what this member already
 * delivered are filtered out, so a consumer that keeps its state for the
 * partitions listed by onAssign sees each partition as one gap-free,
 * duplicate-free stream while it owns it. A partition that is (re)assigned
 * after this member lost it starts at the committed offset.
 *
 * Crashes: kafkajs "crashes" its consumer on errors it gives up on (e.g. a
 * broker outage longer than its retries) and restarts it only for errors it
 * deems retriable. Here a crash always ends the membership: onAssign([]) is
 * called (drop all state), and the consumer is restarted — by kafkajs, or by
 * this class with exponential backoff when kafkajs would not — until stop().
 */
export class KafkaSubscriber implements Subscriber {
  private readonly kafka: Kafka;
  private readonly options: KafkaSubscriberOptions;
  private readonly topic: string;
  private readonly retryAfterSeconds: number;
  private consumer: Consumer | undefined;
  private admin: Admin | undefined;
  private handlers: SubscriberHandlers | undefined;
  private running = false;
  private memberId: string | undefined;
  /** Owned partitions → next offset to deliver (undefined: whatever kafkajs fetches, i.e. the committed offset). */
  private owned = new Map<number, bigint | undefined>();
  /** Bumped whenever the membership (and so all partition state) ends. */
  private epoch = 0;
  private assignChain: Promise<void> = Promise.resolve();
  private joined: (() => void) | undefined;
  private relaunchTimer: NodeJS.Timeout | undefined;
  private relaunches = 0;

  constructor(options: KafkaSubscriberOptions) {
    this.options = options;
    this.topic = options.topic;
    this.retryAfterSeconds = options.retryAfterSeconds ?? 5;
    this.kafka = createKafka(options, 30_000);
  }

  /** Partitions this member owns now (as last passed to onAssign). */
  assignment(): TopicPartition[] {
    return [...this.owned.keys()].sort((a, b) => a - b).map((partition) => ({ topic: this.topic, partition }));
  }

  async start(handlers: SubscriberHandlers): Promise<void> {
    if (this.running) throw new Error(`Kafka subscriber of ${this.topic} (group ${this.options.groupId}) is already running`);
    this.running = true;
    this.handlers = handlers;
    this.assignChain = Promise.resolve();
    const joined = new Promise<void>((resolve) => (this.joined = resolve));
    const timeoutMs = this.options.startTimeoutMs ?? 60_000;
    try {
      await withTimeout(
        (async () => {
          await this.launch();
          await joined;
          await this.assignChain;
        })(),
        timeoutMs,
        () =>
          new BusUnavailableError(
            `Kafka unavailable: consumer group ${this.options.groupId} not joined within ${timeoutMs} ms`,
            this.retryAfterSeconds,
          ),
      );
    } catch (e) {
      await this.stop();
      throw toBusError(e, `joining consumer group ${this.options.groupId}`, this.retryAfterSeconds);
    }
  }

  private async launch(): Promise<void> {
    const o = this.options;
    const consumer = this.kafka.consumer({
      groupId: o.groupId,
      sessionTimeout: o.sessionTimeoutMs ?? 30_000,
      heartbeatInterval: o.heartbeatIntervalMs ?? 3000,
      maxWaitTimeInMs: o.maxWaitTimeMs ?? 1000,
      maxBytesPerPartition: o.maxBytesPerPartition ?? 1024 * 1024,
      allowAutoTopicCreation: false,
      // Ride out a broker outage of ~2 minutes as the same member: a consumer
      // that gives up (the client's default budget is ~10 s) rejoins under a
      // new member id, and the group then waits a whole session timeout for
      // the old one before it assigns partitions again.
      retry: { initialRetryTime: 300, maxRetryTime: 5000, factor: 0.2, multiplier: 2, retries: 25 },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (event) => this.onJoin(consumer, event.payload.memberId, event.payload.memberAssignment));
    consumer.on(consumer.events.CRASH, (event) => this.onCrash(consumer, event.payload.error, event.payload.restart));
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [this.topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        partitionsConsumedConcurrently: o.partitionsConsumedConcurrently ?? 1,
        eachBatch: (payload) => this.eachBatch(consumer, payload),
      });
    } catch (e) {
      if (this.consumer === consumer) this.consumer = undefined;
      await consumer.disconnect().catch(() => {});
      throw e;
    }
  }

  private onJoin(consumer: Consumer, memberId: string, memberAssignment: Record<string, number[]>): void {
    if (consumer !== this.consumer || !this.running || !this.handlers) return;
    const handlers = this.handlers;
    const partitions = [...(memberAssignment[this.topic] ?? [])].sort((a, b) => a - b);
    const sameMember = memberId === this.memberId;
    // A new member id means the old membership ended without us seeing it
    // (e.g. kafkajs re-joined after UNKNOWN_MEMBER_ID): nothing is kept.
    const dropAllFirst = !sameMember && this.owned.size > 0;
    if (!sameMember) this.epoch++;
    this.memberId = memberId;
    const next = new Map<number, bigint | undefined>();
    for (const p of partitions) next.set(p, sameMember ? this.owned.get(p) : undefined);
    this.owned = next;
    this.relaunches = 0;
    const assigned = partitions.map((partition): TopicPartition => ({ topic: this.topic, partition }));
    this.assignChain = this.assignChain
      .catch(() => {})
      .then(async () => {
        if (dropAllFirst) await handlers.onAssign([]);
        await handlers.onAssign(assigned);
      });
    this.assignChain.catch(() => {}); // surfaced through eachBatch
    this.joined?.();
    this.joined = undefined;
  }

  private onCrash(consumer: Consumer, error: Error, kafkajsRestarts: boolean): void {
    if (consumer !== this.consumer || !this.running || !this.handlers) return;
    const handlers = this.handlers;
    this.options.onCrash?.(error);
    // The member left (kafkajs disconnected it): its partitions may go to
    // others and will be re-read from the committed offsets.
    this.epoch++;
    this.memberId = undefined;
    const hadPartitions = this.owned.size > 0;
    this.owned = new Map();
    if (hadPartitions) {
      this.assignChain = this.assignChain.catch(() => {}).then(() => handlers.onAssign([]));
      this.assignChain.catch(() => {});
    }
    if (!kafkajsRestarts) this.scheduleRelaunch(consumer);
  }

  private scheduleRelaunch(old: Consumer): void {
    if (!this.running || this.relaunchTimer) return;
    const backoff = Math.min(30_000, 500 * 2 ** Math.min(this.relaunches, 6));
    this.relaunches++;
    this.relaunchTimer = setTimeout(() => {
      this.relaunchTimer = undefined;
      if (!this.running) return;
      void (async () => {
        await old.disconnect().catch(() => {});
        if (!this.running) return;
        try {
          await this.launch();
        } catch (e) {
          this.options.onCrash?.(e instanceof Error ? e : new Error(String(e)));
          const failed = this.consumer;
          this.scheduleRelaunch(failed ?? old);
        }
      })();
    }, backoff);
  }

  private async eachBatch(consumer: Consumer, payload: EachBatchPayload): Promise<void> {
    if (consumer !== this.consumer || !this.running || !this.handlers) return;
    const handlers = this.handlers;
    const epoch = this.epoch;
    // onAssign of this generation first; if it failed, fail the batch so
    // kafkajs retries / restarts (and onAssign is called again).
    await this.assignChain;
    const { batch } = payload;
    if (!payload.isRunning() || payload.isStale() || epoch !== this.epoch) return;
    const partition = batch.partition;
    if (!this.owned.has(partition)) return;
    const from = this.owned.get(partition);
    const messages = from === undefined ? batch.messages : batch.messages.filter((m) => BigInt(m.offset) >= from);
    if (messages.length === 0) return;
    await handlers.onBatch({
      topic: batch.topic,
      partition,
      messages: messages.map((m) => toConsumed(batch.topic, partition, m)),
      heartbeat: () => payload.heartbeat(),
    });
    if (epoch === this.epoch && this.owned.has(partition)) {
      this.owned.set(partition, BigInt(messages[messages.length - 1]!.offset) + 1n);
    }
  }

  async commit(offsets: TopicPartitionOffset[]): Promise<void> {
    const mine = offsets.filter((o) => o.topic === this.topic && this.owned.has(o.partition));
    if (mine.length === 0) return;
    const consumer = this.consumer;
    if (!consumer || !this.running) throw new BusUnavailableError('Kafka subscriber is not running', this.retryAfterSeconds);
    try {
      await consumer.commitOffsets(mine.map((o) => ({ topic: o.topic, partition: o.partition, offset: o.offset })));
    } catch (e) {
      throw toBusError(e, `committing offsets of group ${this.options.groupId}`, this.retryAfterSeconds);
    }
  }

  async lag(): Promise<PartitionLag[]> {
    try {
      if (!this.admin) {
        const admin = this.kafka.admin();
        await admin.connect();
        this.admin = admin;
      }
      return await groupLag(this.admin, this.options.groupId, this.topic);
    } catch (e) {
      this.admin?.disconnect().catch(() => {});
      this.admin = undefined;
      throw toBusError(e, `reading the lag of group ${this.options.groupId}`, this.retryAfterSeconds);
    }
  }

  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.relaunchTimer);
    this.relaunchTimer = undefined;
    const consumer = this.consumer;
    this.consumer = undefined;
    const admin = this.admin;
    this.admin = undefined;
    // disconnect() waits for the batch in progress, then leaves the group
    // (no commit: autoCommit is off), so the partitions move on at once.
    await Promise.allSettled([consumer?.disconnect(), admin?.disconnect()]);
    this.owned = new Map();
    this.memberId = undefined;
    this.epoch++;
    this.joined = undefined;
  }
}

/** Lag per partition: end offset − committed offset (or − start offset when the group has not committed). */
export async function groupLag(admin: Admin, groupId: string, topic: string): Promise<PartitionLag[]> {
  const [committed, ends] = await Promise.all([admin.fetchOffsets({ groupId, topics: [topic] }), admin.fetchTopicOffsets(topic)]);
  const byPartition = new Map<number, bigint>();
  for (const t of committed) {
    if (t.topic !== topic) continue;
    for (const p of t.partitions) byPartition.set(p.partition, BigInt(p.offset));
  }
  return ends
    .map((e) => {
      const c = byPartition.get(e.partition) ?? -1n;
      const from = c >= 0n ? c : BigInt(e.low);
      const lag = BigInt(e.high) - from;
      return { topic, partition: e.partition, lag: Number(lag > 0n ? lag : 0n) };
    })
    .sort((a, b) => a.partition - b.partition);
}

// ---------------------------------------------------------------- topics

export interface TopicSpec {
  topic: string;
  partitions: number;
  /** Default: min(3, brokers in the cluster). */
  replicationFactor?: number;
  /** Topic configs, e.g. { 'retention.ms': '86400000' }. */
  config?: Record<string, string>;
}

/**
 * Creates the topics that do not exist yet and waits until each has a leader
 * for every partition. Existing topics are left as they are (a different
 * partition count is an operator's decision: it changes which partition a
 * trace id maps to). Returns the names of the topics it created.
 */
export async function ensureTopics(
  brokers: string[],
  topics: TopicSpec[],
  options: Omit<KafkaClientOptions, 'brokers'> & { timeoutMs?: number } = {},
): Promise<string[]> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const kafka = createKafka({ ...options, brokers }, timeoutMs);
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.topic));
    if (missing.length === 0) return [];
    const cluster = await admin.describeCluster();
    const defaultReplication = Math.max(1, Math.min(3, cluster.brokers.length));
    await admin.createTopics({
      waitForLeaders: true,
      timeout: timeoutMs,
      topics: missing.map((t) => ({
        topic: t.topic,
        numPartitions: t.partitions,
        // kafkajs speaks CreateTopics v3, where -1 ("broker default") is not allowed.
        replicationFactor: t.replicationFactor ?? defaultReplication,
        configEntries: Object.entries(t.config ?? {}).map(([name, value]) => ({ name, value })),
      })),
    });
    return missing.map((t) => t.topic);
  } catch (e) {
    throw toBusError(e, `creating topics ${topics.map((t) => t.topic).join(', ')}`, 5);
  } finally {
    await admin.disconnect().catch(() => {});
  }
}
