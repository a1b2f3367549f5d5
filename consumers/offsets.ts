/**
 * Which Kafka offsets may be committed: a message stays pending while any
 * span it carried is undecided (buffered in its trace), its rows are not yet
 * written, or it was decided less than DEFAULT_SETTLE_MS ago. The
 * committable position of a partition is its lowest pending offset (or one
 * past the last message seen), so a crash never skips undecided data.
 *
 * So consumer lag (end offset − committed offset) counts exactly: messages
 * not read yet, messages holding a span of an attempt still running or
 * within its decision wait, rows not yet in the store, and what was decided
 * in the last few seconds — it returns to ~0 within seconds of the last
 * write once every attempt has ended, instead of holding every message for
 * the trace timeout. The trace-timeout window stays where it matters: a
 * trace not yet decided is re-read whole by whoever takes its partition.
 * What it gives up: a span arriving more than DEFAULT_SETTLE_MS after its
 * attempt was decided *and* after a crash or rebalance moved the partition
 * is written outside its attempt (sample_reason `outside_attempt`) instead
 * of rolled into it.
 */
import type { TopicPartitionOffset } from '../bus/types.ts';

/**
 * How long decided spans keep their messages uncommitted after the last
 * span joined them: long enough for the late spans of real exporters
 * (batching delays), short enough that lag means what is not yet done.
 */
export const DEFAULT_SETTLE_MS = 2_000;

export interface MessageRef {
  partition: number;
  offset: bigint;
  /** The assignment of the partition the message was read under (see OffsetTracker.epoch). */
  epoch: number;
}

interface PartitionState {
  epoch: number;
  /** offset → references not yet released */
  pending: Map<bigint, number>;
  /** one past the highest offset seen */
  next: bigint;
  /** last position committed (or known committed) */
  committed: bigint;
}

export class OffsetTracker {
  private readonly partitions = new Map<number, PartitionState>();
  private epochs = 0;
  private readonly topic: string;

  constructor(topic: string) {
    this.topic = topic;
  }

  /**
   * The reference for a message of `partition`. A partition lost at a
   * rebalance and assigned again starts a new epoch, so releases still in
   * flight from before cannot free messages read again since.
   */
  ref(partition: number, offset: bigint): MessageRef {
    let s = this.partitions.get(partition);
    if (!s) {
      s = { epoch: ++this.epochs, pending: new Map(), next: -1n, committed: -1n };
      this.partitions.set(partition, s);
    }
    return { partition, offset, epoch: s.epoch };
  }

  /** A message was received; `refs` is how many releases it waits for (0 = done at once). */
  received(ref: MessageRef, refs: number): void {
    const s = this.partitions.get(ref.partition);
    if (!s || s.epoch !== ref.epoch) return;
    if (ref.offset + 1n > s.next) s.next = ref.offset + 1n;
    if (refs > 0) s.pending.set(ref.offset, (s.pending.get(ref.offset) ?? 0) + refs);
  }

  release(ref: MessageRef): void {
    const s = this.partitions.get(ref.partition);
    const n = s?.pending.get(ref.offset);
    if (s === undefined || n === undefined || s.epoch !== ref.epoch) return; // partition dropped at a rebalance
    if (n <= 1) s.pending.delete(ref.offset);
    else s.pending.set(ref.offset, n - 1);
  }

  /** Forgets partitions this member no longer owns. */
  retainOnly(partitions: Set<number>): void {
    for (const p of [...this.partitions.keys()]) if (!partitions.has(p)) this.partitions.delete(p);
  }

  /** Positions that moved since the last call, to commit. */
  committable(): TopicPartitionOffset[] {
    const out: TopicPartitionOffset[] = [];
    for (const [partition, s] of this.partitions) {
      if (s.next < 0n) continue;
      let position = s.next;
      for (const o of s.pending.keys()) if (o < position) position = o;
      if (position > s.committed) out.push({ topic: this.topic, partition, offset: position.toString() });
    }
    return out;
  }

  /** Records a successful commit. */
  committed(offsets: TopicPartitionOffset[]): void {
    for (const o of offsets) {
      const s = this.partitions.get(o.partition);
      if (s && BigInt(o.offset) > s.committed) s.committed = BigInt(o.offset);
    }
  }

  pendingMessages(): number {
    let n = 0;
    for (const s of this.partitions.values()) n += s.pending.size;
    return n;
  }
}
