/**
 * A partition of the embedded bus kept in a DurableLog: each bus message is
 * one log record (key, headers, value), so what the collector acknowledged
 * survives a crash and is read again from the committed offset on start.
 */
import { DurableLog, LogFullError } from './log.ts';
import { BusUnavailableError, type BusMessage, type ConsumedMessage } from './types.ts';

/** What the bus needs of a partition, in memory or on disk. Offsets are Kafka's: `end` is the next one to be written. */
export interface PartitionStore {
  readonly end: bigint;
  readonly committed: bigint;
  /** Bytes held (memory: message values not yet committed; disk: segment files). */
  readonly bytes: number;
  /** Resolves once the messages are readable (on disk: fsynced). */
  append(messages: BusMessage[], topic: string, partition: number): Promise<void> | void;
  read(from: bigint, max: number, topic: string, partition: number): Promise<ConsumedMessage[]> | ConsumedMessage[];
  commit(to: bigint): Promise<void> | void;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** u16 key length, key, u32 headers length, headers (JSON, empty when none), value. */
export function encodeMessage(m: BusMessage): Uint8Array {
  const key = enc.encode(m.key);
  const headers = m.headers ? enc.encode(JSON.stringify(m.headers)) : new Uint8Array(0);
  if (key.byteLength > 0xffff) throw new RangeError(`bus message key of ${key.byteLength} bytes (at most 65535)`);
  const buf = Buffer.allocUnsafe(6 + key.byteLength + headers.byteLength + m.value.byteLength);
  buf.writeUInt16LE(key.byteLength, 0);
  buf.set(key, 2);
  buf.writeUInt32LE(headers.byteLength, 2 + key.byteLength);
  buf.set(headers, 6 + key.byteLength);
  buf.set(m.value, 6 + key.byteLength + headers.byteLength);
  return buf;
}

export function decodeMessage(data: Buffer): BusMessage {
  const keyLen = data.readUInt16LE(0);
  const key = dec.decode(data.subarray(2, 2 + keyLen));
  const headersLen = data.readUInt32LE(2 + keyLen);
  const at = 6 + keyLen;
  const value = new Uint8Array(data.buffer, data.byteOffset + at + headersLen, data.length - at - headersLen);
  if (headersLen === 0) return { key, value };
  return { key, value, headers: JSON.parse(dec.decode(data.subarray(at, at + headersLen))) as Record<string, string> };
}

export class DiskPartition implements PartitionStore {
  readonly log: DurableLog;
  private readonly retryAfterSeconds: number;
  constructor(log: DurableLog, retryAfterSeconds: number) {
    this.log = log;
    this.retryAfterSeconds = retryAfterSeconds;
  }
  get end(): bigint {
    return BigInt(this.log.end);
  }
  get committed(): bigint {
    return BigInt(this.log.committed);
  }
  get bytes(): number {
    return this.log.bytes;
  }
  async append(messages: BusMessage[]): Promise<void> {
    try {
      await this.log.append(messages.map(encodeMessage));
    } catch (err) {
      // Full, or the disk failed: either way the client must retry later, never take a 500 as final.
      const why = err instanceof LogFullError ? err.message : `queue log cannot write: ${(err as Error).message}`;
      throw new BusUnavailableError(why, this.retryAfterSeconds, { cause: err });
    }
  }
  async read(from: bigint, max: number, topic: string, partition: number): Promise<ConsumedMessage[]> {
    const records = await this.log.read(Number(from), max);
    return records.map((r) => ({ ...decodeMessage(r.data), topic, partition, offset: String(r.offset) }));
  }
  commit(to: bigint): Promise<void> {
    return this.log.commit(Number(to));
  }
}
