/**
 * The bus between collector and consumers: Kafka in production, an
 * in-process bounded queue in the embedded mode. Both keep Kafka's model
 * (topic → partitions → offsets, partition chosen by key, a committed
 * position per partition) so the consumers' exactly-once logic is the same
 * on both.
 */

/** One message: key = trace id (hex), value = OTLP ExportTraceServiceRequest protobuf holding one trace's spans. */
export interface BusMessage {
  key: string;
  value: Uint8Array;
  headers?: Record<string, string>;
}

/** The downstream is not accepting now; the caller should answer 503/429 with Retry-After. */
export class BusUnavailableError extends Error {
  override name = 'BusUnavailableError';
  readonly retryAfterSeconds: number;
  constructor(message: string, retryAfterSeconds = 5, options?: ErrorOptions) {
    super(message, options);
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export interface Publisher {
  /** Resolves once every message is durably accepted; rejects (BusUnavailableError when retryable) otherwise. */
  publish(topic: string, messages: BusMessage[]): Promise<void>;
  /** True when the downstream accepts writes now (drives /readyz). */
  isReady(): Promise<boolean>;
  /** Flushes what was accepted, then releases resources. */
  close(): Promise<void>;
}

/** A message as a consumer sees it. */
export interface ConsumedMessage extends BusMessage {
  topic: string;
  partition: number;
  /** Kafka offset as a decimal string (int64). */
  offset: string;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** A position to commit: `offset` is the next offset to read (Kafka's convention). */
export interface TopicPartitionOffset extends TopicPartition {
  offset: string;
}

/** Messages of one partition, in offset order. */
export interface PartitionBatch extends TopicPartition {
  messages: ConsumedMessage[];
  /**
   * Tells the group this member is alive while it takes long over a batch
   * (e.g. waiting for ClickHouse); without it the member is evicted after
   * the session timeout and the group rebalances over and over. Absent on
   * buses without membership.
   */
  heartbeat?(): Promise<void>;
}

export interface SubscriberHandlers {
  /**
   * Called with the batches of each assigned partition, one call at a time
   * per partition. Resolve once the batch is taken into the consumer's state;
   * commits are separate (see Subscriber.commit).
   */
  onBatch(batch: PartitionBatch): Promise<void>;
  /**
   * Called after every (re)assignment with the partitions this member now
   * owns. State of any other partition must be dropped without committing:
   * its new owner reads again from the last committed offset.
   */
  onAssign(assigned: TopicPartition[]): Promise<void> | void;
}

export interface PartitionLag extends TopicPartition {
  /** Messages between the committed offset and the end of the partition. */
  lag: number;
}

/** A member of a consumer group reading one topic. */
export interface Subscriber {
  /** Joins the group and starts delivering; resolves once running. */
  start(handlers: SubscriberHandlers): Promise<void>;
  /** Commits positions (next offset to read) of partitions this member owns. */
  commit(offsets: TopicPartitionOffset[]): Promise<void>;
  /** Lag per partition of the topic, from the group's committed offsets. */
  lag(): Promise<PartitionLag[]>;
  /** Stops fetching and leaves the group; uncommitted messages are redelivered to whoever reads next. */
  stop(): Promise<void>;
}
