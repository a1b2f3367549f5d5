/**
 * A durable append-only log in one directory: what the embedded bus keeps
 * per partition so that a 200 from the collector survives a crash, and what
 * any other persisted queue can reuse (it knows nothing of OTLP or Kafka).
 *
 * - Segment files `<first offset, 20 digits>.seg`, rolled at `segmentBytes`.
 * - Each record: u32 length, u32 CRC-32 (of length, offset and payload),
 *   u64 offset, payload. The offset is stored so a record skipped as corrupt
 *   never renumbers the ones after it.
 * - Group commit: appends made while an fsync runs wait for the next one, so
 *   one fdatasync covers every concurrent request; append() resolves only
 *   after the fdatasync that covers its records.
 * - Recovery on open: every segment is scanned; a torn or corrupt tail is
 *   cut off, a corrupt record with valid ones after it is skipped, and both
 *   are logged with what was dropped. Readers only ever see whole, checked
 *   records.
 * - commit(offset) persists the consumer's position (`committed` file) and
 *   deletes segments whose records all lie below it.
 * - Bounded: an append that would take the files past `maxBytes` is refused
 *   whole with LogFullError.
 */
import { mkdir, open, readdir, readFile, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from 'node:zlib';

/** u32 length, u32 crc, u64 offset. */
const HEADER = 16;
const SUFFIX = '.seg';
const COMMITTED = 'committed';

/** An append refused because the log is at its byte bound; retry after the consumer commits. */
export class LogFullError extends Error {
  override name = 'LogFullError';
}

export interface LogRecord {
  offset: number;
  data: Buffer;
}

export interface DurableLogOptions {
  dir: string;
  /** Bound on the bytes of all segment files (default 1 GiB). */
  maxBytes?: number;
  /** A segment is closed and a new one started past this size (default min(64 MiB, maxBytes / 8)). */
  segmentBytes?: number;
  /** Where recovery reports what it dropped (default stderr). */
  log?: (message: string) => void;
  /** Told the duration of every fdatasync (for metrics). */
  onSync?: (seconds: number, records: number) => void;
}

interface Segment {
  base: number;
  file: string;
  fh: FileHandle;
  size: number;
  /** Per record, in offset order: offset, byte position of its header, payload length. */
  offsets: number[];
  positions: number[];
  lengths: number[];
}

interface Pending {
  buf: Buffer;
  first: number;
  count: number;
  /** Per record: position within buf and payload length. */
  rel: number[];
  lens: number[];
  resolve: (first: number) => void;
  reject: (err: Error) => void;
}

const segmentName = (base: number) => `${String(base).padStart(20, '0')}${SUFFIX}`;

function checksum(buf: Buffer, at: number, len: number): number {
  // covers the length, the offset and the payload: a zeroed or shifted header never checks out
  return crc32(buf.subarray(at + 8, at + HEADER + len), crc32(buf.subarray(at, at + 4)));
}

function writeRecord(buf: Buffer, at: number, offset: number, payload: Uint8Array): void {
  buf.writeUInt32LE(payload.byteLength, at);
  buf.writeUInt32LE(Math.floor(offset / 2 ** 32), at + 8);
  buf.writeUInt32LE(offset % 2 ** 32, at + 12);
  buf.set(payload, at + HEADER);
  buf.writeUInt32LE(checksum(buf, at, payload.byteLength), at + 4);
}

const offsetAt = (buf: Buffer, at: number) => buf.readUInt32LE(at + 8) * 2 ** 32 + buf.readUInt32LE(at + 12);

/** The record at `at` if it is whole and its checksum holds, with an offset after `after`. */
function validAt(buf: Buffer, at: number, after: number): { len: number; offset: number } | undefined {
  if (at + HEADER > buf.length) return undefined;
  const len = buf.readUInt32LE(at);
  if (at + HEADER + len > buf.length) return undefined;
  const offset = offsetAt(buf, at);
  if (offset <= after) return undefined;
  return checksum(buf, at, len) === buf.readUInt32LE(at + 4) ? { len, offset } : undefined;
}

export class DurableLog {
  readonly dir: string;
  private readonly maxBytes: number;
  private readonly segmentBytes: number;
  private readonly log: (message: string) => void;
  private readonly onSync: ((seconds: number, records: number) => void) | undefined;
  private segments: Segment[] = [];
  /** Next offset to assign. */
  private next = 0;
  /** Every record below this offset is on disk and fsynced (readable). */
  private durableEnd = 0;
  private committedOffset = 0;
  private fileBytes = 0;
  private pendingBytes = 0;
  private pending: Pending[] = [];
  private syncing: Promise<void> | undefined;
  private failure: Error | undefined;
  private closed = false;
  private committing: Promise<void> = Promise.resolve();

  private constructor(options: DurableLogOptions) {
    this.dir = path.resolve(options.dir);
    this.maxBytes = options.maxBytes ?? 2 ** 30;
    this.segmentBytes = options.segmentBytes ?? Math.max(1024 * 1024, Math.min(64 * 1024 * 1024, Math.floor(this.maxBytes / 8)));
    this.log = options.log ?? ((m) => console.error(m));
    this.onSync = options.onSync;
  }

  /** Opens (creating) the log in `options.dir`, recovering what a crash left. */
  static async open(options: DurableLogOptions): Promise<DurableLog> {
    const log = new DurableLog(options);
    await log.recover();
    return log;
  }

  /** First offset still held. */
  get start(): number {
    return this.segments[0]?.offsets[0] ?? this.durableEnd;
  }
  /** Offset after the last durable record. */
  get end(): number {
    return this.durableEnd;
  }
  /** The persisted consumer position (next offset to read). */
  get committed(): number {
    return this.committedOffset;
  }
  /** Bytes of the segment files plus appends waiting for their fsync. */
  get bytes(): number {
    return this.fileBytes + this.pendingBytes;
  }
  get bound(): number {
    return this.maxBytes;
  }
  /** True while an fdatasync runs (metrics). */
  get syncInProgress(): boolean {
    return this.syncing !== undefined;
  }

  private async recover(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    this.committedOffset = await this.readCommitted();
    const names = (await readdir(this.dir)).filter((n) => n.endsWith(SUFFIX)).sort();
    for (const [i, name] of names.entries()) {
      const base = Number(name.slice(0, -SUFFIX.length));
      const file = path.join(this.dir, name);
      if (!Number.isSafeInteger(base)) {
        this.log(`queue log ${this.dir}: ignoring ${name}, not a segment name`);
        continue;
      }
      const last = i === names.length - 1;
      this.segments.push(await this.scan(file, base, last));
    }
    const tail = this.segments.at(-1);
    const lastOffset = tail?.offsets.at(-1);
    this.next = Math.max(lastOffset === undefined ? (tail?.base ?? 0) : lastOffset + 1, this.committedOffset);
    this.durableEnd = this.next;
    // Segments wholly below the committed position survive a crash between commit and delete.
    await this.trim();
  }

  private async readCommitted(): Promise<number> {
    let text: string;
    try {
      text = await readFile(path.join(this.dir, COMMITTED), 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw err;
    }
    const n = Number(text.trim());
    if (!Number.isSafeInteger(n) || n < 0) {
      this.log(`queue log ${this.dir}: committed position unreadable (${JSON.stringify(text.slice(0, 40))}); reading from the oldest record (redelivery is deduplicated by the store)`);
      return 0;
    }
    return n;
  }

  /** Reads one segment, checking every record; cuts a torn tail of the last segment. */
  private async scan(file: string, base: number, last: boolean): Promise<Segment> {
    const fh = await open(file, last ? 'r+' : 'r');
    const buf = await fh.readFile();
    const seg: Segment = { base, file, fh, size: buf.length, offsets: [], positions: [], lengths: [] };
    const name = path.basename(file);
    let at = 0;
    let prev = base - 1;
    while (at < buf.length) {
      const rec = validAt(buf, at, prev);
      if (rec) {
        seg.offsets.push(rec.offset);
        seg.positions.push(at);
        seg.lengths.push(rec.len);
        prev = rec.offset;
        at += HEADER + rec.len;
        continue;
      }
      // Not a whole, checked record: look for the next one that is.
      let next = at + 1;
      while (next < buf.length && !validAt(buf, next, prev)) next++;
      if (next >= buf.length) {
        this.log(
          `queue log ${this.dir}: segment ${name}: dropped ${buf.length - at} bytes at byte ${at} after offset ${prev} (a record torn or corrupted at the end; it was never acknowledged if torn by a crash)`,
        );
        if (last) {
          await fh.truncate(at);
          await fh.datasync();
        }
        seg.size = at;
        break;
      }
      const skippedTo = offsetAt(buf, next);
      this.log(
        `queue log ${this.dir}: segment ${name}: skipped ${next - at} corrupt bytes at byte ${at}: offsets ${prev + 1}..${skippedTo - 1} are lost (checksum mismatch); reading on from offset ${skippedTo}`,
      );
      at = next;
    }
    this.fileBytes += seg.size;
    return seg;
  }

  /**
   * Appends `payloads` as consecutive records; resolves with the first one's
   * offset once they are fsynced. Refused whole (LogFullError) at the bound.
   */
  append(payloads: Uint8Array[]): Promise<number> {
    if (this.failure) return Promise.reject(new Error(`queue log ${this.dir} failed earlier: ${this.failure.message}`, { cause: this.failure }));
    if (this.closed) return Promise.reject(new Error(`queue log ${this.dir} is closed`));
    const size = payloads.reduce((n, p) => n + HEADER + p.byteLength, 0);
    if (this.bytes + size > this.maxBytes && this.bytes > 0) {
      return Promise.reject(new LogFullError(`queue log full (${this.bytes} of ${this.maxBytes} bytes on disk awaiting the consumers)`));
    }
    const buf = Buffer.allocUnsafe(size);
    const rel: number[] = [];
    const lens: number[] = [];
    const first = this.next;
    let at = 0;
    for (const p of payloads) {
      writeRecord(buf, at, this.next++, p);
      rel.push(at);
      lens.push(p.byteLength);
      at += HEADER + p.byteLength;
    }
    this.pendingBytes += size;
    return new Promise((resolve, reject) => {
      this.pending.push({ buf, first, count: payloads.length, rel, lens, resolve, reject });
      this.syncing ??= this.flush();
    });
  }

  /** Writes and fsyncs everything pending, round after round, one fdatasync per round. */
  private async flush(): Promise<void> {
    while (this.pending.length > 0) {
      const batch = this.pending.splice(0);
      const size = batch.reduce((n, p) => n + p.buf.length, 0);
      try {
        const seg = await this.activeSegment();
        const started = performance.now();
        await seg.fh.writev(batch.map((p) => p.buf), seg.size);
        await seg.fh.datasync();
        this.onSync?.((performance.now() - started) / 1000, batch.reduce((n, p) => n + p.count, 0));
        for (const p of batch) {
          for (let i = 0; i < p.count; i++) {
            seg.offsets.push(p.first + i);
            seg.positions.push(seg.size + p.rel[i]!);
            seg.lengths.push(p.lens[i]!);
          }
          seg.size += p.buf.length;
        }
        this.pendingBytes -= size;
        this.fileBytes += size;
        this.durableEnd = batch.at(-1)!.first + batch.at(-1)!.count;
        for (const p of batch) p.resolve(p.first);
      } catch (err) {
        // After a failed write or fsync the page cache can no longer be trusted
        // (a retried fsync may report success for lost pages): stop accepting.
        this.failure = err as Error;
        const all = [...batch, ...this.pending.splice(0)];
        for (const p of all) p.reject(new Error(`queue log ${this.dir}: write failed: ${(err as Error).message}`, { cause: err }));
        this.pendingBytes = 0;
      }
    }
    this.syncing = undefined;
  }

  /** The segment to append to, rolling to a new file past segmentBytes. */
  private async activeSegment(): Promise<Segment> {
    const tail = this.segments.at(-1);
    if (tail && tail.size < this.segmentBytes) return tail;
    const base = this.durableEnd;
    const file = path.join(this.dir, segmentName(base));
    const fh = await open(file, 'w+');
    // the new file's directory entry must be durable too, before anything in it is acknowledged
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
    const seg: Segment = { base, file, fh, size: 0, offsets: [], positions: [], lengths: [] };
    this.segments.push(seg);
    return seg;
  }

  /** Up to `maxRecords` durable records from offset `from` on (skipping trimmed or lost offsets), at most ~maxBytes of payload. */
  async read(from: number, maxRecords: number, maxBytes = 16 * 1024 * 1024): Promise<LogRecord[]> {
    const out: LogRecord[] = [];
    let bytes = 0;
    let si = this.segmentIndex(from);
    while (si < this.segments.length && out.length < maxRecords && bytes < maxBytes) {
      const seg = this.segments[si]!;
      let i = lowerBound(seg.offsets, from);
      let j = i;
      let want = 0;
      while (j < seg.offsets.length && seg.offsets[j]! < this.durableEnd && out.length + (j - i) < maxRecords && bytes + want < maxBytes) {
        want += seg.lengths[j]!;
        j++;
      }
      if (j > i) {
        const startPos = seg.positions[i]!;
        const endPos = seg.positions[j - 1]! + HEADER + seg.lengths[j - 1]!;
        const buf = Buffer.allocUnsafe(endPos - startPos);
        await seg.fh.read(buf, 0, buf.length, startPos);
        for (; i < j; i++) {
          const at = seg.positions[i]! - startPos;
          const len = seg.lengths[i]!;
          if (checksum(buf, at, len) !== buf.readUInt32LE(at + 4)) {
            throw new Error(`queue log ${this.dir}: segment ${path.basename(seg.file)}: record at offset ${seg.offsets[i]} changed on disk since it was written (checksum mismatch)`);
          }
          out.push({ offset: seg.offsets[i]!, data: buf.subarray(at + HEADER, at + HEADER + len) });
        }
        bytes += want;
        from = out.at(-1)!.offset + 1;
      }
      if (j < seg.offsets.length) break;
      si++;
    }
    return out;
  }

  private segmentIndex(offset: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid]!.base <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /**
   * Persists the consumer position `offset` (next to read) and deletes the
   * segments wholly below it. Commits are serialised and never go back.
   */
  commit(offset: number): Promise<void> {
    if (offset > this.durableEnd) return Promise.reject(new RangeError(`queue log ${this.dir}: commit of offset ${offset} past the end (${this.durableEnd})`));
    this.committing = this.committing.then(async () => {
      if (offset <= this.committedOffset) return;
      this.committedOffset = offset;
      const tmp = path.join(this.dir, `${COMMITTED}.tmp`);
      // Atomic replace; no fsync: a position lost to a power cut only means redelivery, which the store deduplicates.
      await writeFile(tmp, `${offset}\n`);
      await rename(tmp, path.join(this.dir, COMMITTED));
      await this.trim();
    });
    return this.committing;
  }

  /** Deletes closed segments whose records all lie below the committed position. */
  private async trim(): Promise<void> {
    while (this.segments.length > 1) {
      const [seg, following] = this.segments as [Segment, Segment];
      if (following.base > this.committedOffset) break;
      this.segments.shift();
      this.fileBytes -= seg.size;
      await seg.fh.close();
      await rm(seg.file, { force: true });
    }
  }

  /** Waits for pending appends, then closes the files. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.syncing;
    await this.committing.catch(() => {});
    for (const seg of this.segments) await seg.fh.close();
    this.segments = [];
  }
}

function lowerBound(a: number[], x: number): number {
  let lo = 0;
  let hi = a.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (a[mid]! < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
