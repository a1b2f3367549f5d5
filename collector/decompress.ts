/**
 * Streaming decoders for every Content-Encoding the OTLP ecosystem sends
 * (otelcol's confighttp: gzip, zstd, deflate/zlib, snappy, x-snappy-framed,
 * lz4), each a Transform whose output arrives in bounded pieces, so the
 * body reader's cap on decompressed bytes stops a decompression bomb after
 * at most one piece: zlib's 16 KiB chunks (gzip, deflate, zstd: Node's own
 * zlib), one ≤ 64 KiB chunk of framed snappy, one LZ4 block (≤ 4 MiB, its
 * frame says which). Block snappy has no pieces: its declared length is
 * checked against the cap before anything is decompressed.
 * The block codecs are the `snappy` and `lz4-napi` packages (Rust, via napi-rs);
 * the framing around them is parsed here so it can be bounded.
 */
import { Transform, type TransformCallback } from 'node:stream';
import zlib from 'node:zlib';
import * as lz4 from 'lz4-napi';
import * as snappy from 'snappy';

/** The codings decoded; `snappy` is block or framed, told apart by the stream identifier (as otelcol does). */
export type ContentCoding = 'identity' | 'gzip' | 'deflate' | 'zstd' | 'snappy' | 'x-snappy-framed' | 'lz4';

/** A corrupt or truncated body in a coding; the body reader answers 400 with this message. */
export class CodingError extends Error {
  override name = 'CodingError';
}

/**
 * The decoder for a coding, or undefined for identity. `maxBytes` is the cap
 * on the decompressed body: the codings whose sizes are declared up front
 * refuse more at once (the reader's running check stops the rest).
 */
export function createDecoder(coding: ContentCoding, maxBytes: number): Transform | undefined {
  switch (coding) {
    case 'identity':
      return undefined;
    case 'gzip':
      return zlib.createGunzip();
    // HTTP's "deflate" is the zlib format (RFC 9110 §8.4.1.2), which otelcol also sends as "zlib".
    case 'deflate':
      return zlib.createInflate();
    case 'zstd':
      return zlib.createZstdDecompress();
    case 'snappy':
      return new SnappyDecoder(maxBytes, 'detect');
    case 'x-snappy-framed':
      return new SnappyDecoder(maxBytes, 'framed');
    case 'lz4':
      return new Lz4FrameDecoder();
  }
}

/** A Transform that parses its input in self-delimiting units: `parse` consumes what it can from the buffered bytes. */
abstract class UnitDecoder extends Transform {
  private pending: Buffer = Buffer.alloc(0);

  /** Decodes the complete units at the start of `input`, pushing their output; returns how many bytes it consumed. */
  protected abstract parse(input: Buffer): number;
  /** Called at the end of the input with the bytes no unit took; throws when the stream is incomplete. */
  protected abstract finishUnits(rest: Buffer): void;

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    try {
      const used = this.parse(this.pending);
      this.pending = this.pending.subarray(used);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }

  override _flush(callback: TransformCallback): void {
    try {
      this.finishUnits(this.pending);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }
}

// ------------------------------------------------------------------ snappy

/** The stream identifier chunk every framed snappy stream starts with (framing_format.txt). */
const SNAPPY_STREAM_ID = Buffer.from([0xff, 0x06, 0x00, 0x00, 0x73, 0x4e, 0x61, 0x50, 0x70, 0x59]);
/** Uncompressed data in one framed chunk is at most 64 KiB (framing_format.txt §4.2). */
const SNAPPY_MAX_CHUNK = 65_536;

/** The uncompressed length a snappy block declares (its varint prefix), or undefined when the prefix is incomplete. */
function snappyDeclaredLength(block: Buffer): number | undefined {
  let value = 0;
  for (let i = 0; i < 5 && i < block.length; i++) {
    value += (block[i]! & 0x7f) * 2 ** (7 * i);
    if ((block[i]! & 0x80) === 0) return value;
  }
  return undefined;
}

function unsnappy(block: Buffer, max: number, what: string): Buffer {
  const declared = snappyDeclaredLength(block);
  if (declared === undefined) throw new CodingError(`${what}: truncated snappy length prefix`);
  if (declared > max) return tooLarge(declared, max, what);
  try {
    return snappy.uncompressSync(block, { asBuffer: true }) as Buffer;
  } catch (err) {
    throw new CodingError(`${what}: ${(err as Error).message}`);
  }
}

/** Thrown when a declared size exceeds the cap; the body reader turns it into 413 like any other overflow. */
export class DeclaredTooLargeError extends Error {
  override name = 'DeclaredTooLargeError';
}

function tooLarge(declared: number, max: number, what: string): never {
  throw new DeclaredTooLargeError(`${what} declares ${declared} decompressed bytes, more than the limit of ${max} bytes`);
}

/** CRC-32C (Castagnoli), which framed snappy masks into each chunk. */
const CRC32C_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
  return c;
});
function maskedCrc32c(data: Uint8Array): number {
  let crc = -1;
  for (const byte of data) crc = CRC32C_TABLE[(crc ^ byte) & 0xff]! ^ (crc >>> 8);
  crc = (crc ^ -1) >>> 0;
  return (((crc >>> 15) | (crc << 17)) + 0xa282ead8) >>> 0;
}

/**
 * Snappy: `framed` parses the framing format chunk by chunk (CRCs checked);
 * `detect` (Content-Encoding "snappy") reads a body starting with the stream
 * identifier as framed and anything else as one block, which it must collect
 * whole (its length is checked before it is decompressed).
 */
class SnappyDecoder extends UnitDecoder {
  private mode: 'detect' | 'framed' | 'block';
  private readonly maxBytes: number;
  private started = false;

  constructor(maxBytes: number, mode: 'detect' | 'framed') {
    super();
    this.maxBytes = maxBytes;
    this.mode = mode;
  }

  protected parse(input: Buffer): number {
    if (this.mode === 'detect') {
      if (input.length < SNAPPY_STREAM_ID.length && SNAPPY_STREAM_ID.subarray(0, input.length).equals(input)) return 0;
      this.mode = input.subarray(0, SNAPPY_STREAM_ID.length).equals(SNAPPY_STREAM_ID) ? 'framed' : 'block';
    }
    if (this.mode === 'block') {
      // Refuse a block declaring too much as soon as its prefix is here, before collecting the rest.
      const declared = snappyDeclaredLength(input);
      if (declared !== undefined && declared > this.maxBytes) tooLarge(declared, this.maxBytes, 'snappy body');
      return 0;
    }
    let at = 0;
    while (input.length - at >= 4) {
      const type = input[at]!;
      const length = input.readUIntLE(at + 1, 3);
      if (input.length - at - 4 < length) break;
      const data = input.subarray(at + 4, at + 4 + length);
      at += 4 + length;
      if (!this.started && type !== 0xff) throw new CodingError('framed snappy body does not start with the stream identifier');
      this.started = true;
      if (type === 0xff) {
        if (!data.equals(SNAPPY_STREAM_ID.subarray(4))) throw new CodingError('framed snappy body has a bad stream identifier');
      } else if (type === 0x00 || type === 0x01) {
        if (length < 4) throw new CodingError(`framed snappy chunk of ${length} bytes is too short for its checksum`);
        const payload = type === 0x00 ? unsnappy(data.subarray(4), SNAPPY_MAX_CHUNK, 'framed snappy chunk') : data.subarray(4);
        if (payload.length > SNAPPY_MAX_CHUNK) throw new CodingError(`framed snappy chunk holds ${payload.length} bytes, more than 65536`);
        if (maskedCrc32c(payload) !== data.readUInt32LE(0)) throw new CodingError('framed snappy chunk fails its CRC-32C check');
        this.push(payload);
      } else if (type < 0x80) {
        throw new CodingError(`framed snappy body has a reserved unskippable chunk type 0x${type.toString(16)}`);
      } // 0x80–0xfe: skippable and padding chunks
    }
    return at;
  }

  protected finishUnits(rest: Buffer): void {
    if (this.mode === 'block' || (this.mode === 'detect' && rest.length > 0)) {
      if (rest.length === 0) throw new CodingError('empty snappy body');
      this.push(unsnappy(rest, this.maxBytes, 'snappy body'));
    } else if (rest.length > 0) {
      throw new CodingError(`framed snappy body ends inside a chunk (${rest.length} bytes left over)`);
    }
  }
}

// ------------------------------------------------------------------ lz4

const LZ4_MAGIC = 0x184d2204;
/** Block maximum sizes by the BD byte's code (LZ4 frame format §"Block Maximum Size"). */
const LZ4_BLOCK_MAX: Record<number, number> = { 4: 64 * 1024, 5: 256 * 1024, 6: 1024 * 1024, 7: 4 * 1024 * 1024 };
/** Linked blocks may refer back this far into the output before them. */
const LZ4_WINDOW = 64 * 1024;

interface Lz4Frame {
  blockMax: number;
  independent: boolean;
  blockChecksum: boolean;
  contentChecksum: boolean;
}

/**
 * The LZ4 frame format (what otelcol's `lz4` compression writes): frames,
 * possibly several and skippable ones between, of blocks each decompressed
 * with lz4-napi's block decoder bounded by the frame's block maximum size.
 * Checksums are skipped over: xxHash32 is not in Node, and a corrupt block
 * fails to decode or leaves a body the OTLP decoder refuses.
 */
class Lz4FrameDecoder extends UnitDecoder {
  private frame: Lz4Frame | undefined;
  /** The last LZ4_WINDOW bytes of output, the dictionary of a linked block. */
  private window: Buffer = Buffer.alloc(0);
  private sawFrame = false;

  protected parse(input: Buffer): number {
    let at = 0;
    for (;;) {
      const used = this.frame ? this.block(input.subarray(at)) : this.header(input.subarray(at));
      if (used === 0) return at;
      at += used;
    }
  }

  /** A frame header (or a whole skippable frame); 0 until it is complete. */
  private header(input: Buffer): number {
    if (input.length < 4) return 0;
    const magic = input.readUInt32LE(0);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      if (input.length < 8) return 0;
      const size = input.readUInt32LE(4);
      return input.length < 8 + size ? 0 : 8 + size;
    }
    if (magic !== LZ4_MAGIC) throw new CodingError(`not an LZ4 frame (magic 0x${magic.toString(16)})`);
    if (input.length < 7) return 0;
    const flg = input[4]!;
    const bd = input[5]!;
    if (flg >> 6 !== 1) throw new CodingError(`LZ4 frame version ${flg >> 6} is not supported`);
    if (flg & 0x01) throw new CodingError('LZ4 frames with a dictionary id are not supported');
    const blockMax = LZ4_BLOCK_MAX[(bd >> 4) & 0x07];
    if (blockMax === undefined) throw new CodingError(`LZ4 frame has an invalid block maximum size code ${(bd >> 4) & 0x07}`);
    const length = 4 + 2 + (flg & 0x08 ? 8 : 0) + 1;
    if (input.length < length) return 0;
    this.frame = { blockMax, independent: (flg & 0x20) !== 0, blockChecksum: (flg & 0x10) !== 0, contentChecksum: (flg & 0x04) !== 0 };
    this.window = Buffer.alloc(0);
    this.sawFrame = true;
    return length;
  }

  /** One block (or the end mark with its content checksum); 0 until it is complete. */
  private block(input: Buffer): number {
    const frame = this.frame!;
    if (input.length < 4) return 0;
    const word = input.readUInt32LE(0);
    if (word === 0) {
      const length = 4 + (frame.contentChecksum ? 4 : 0);
      if (input.length < length) return 0;
      this.frame = undefined;
      return length;
    }
    const size = word & 0x7fffffff;
    if (size > frame.blockMax) throw new CodingError(`LZ4 block of ${size} bytes exceeds the frame's block maximum of ${frame.blockMax}`);
    const length = 4 + size + (frame.blockChecksum ? 4 : 0);
    if (input.length < length) return 0;
    const data = input.subarray(4, 4 + size);
    let out: Buffer;
    if (word & 0x80000000) {
      out = Buffer.from(data);
    } else {
      // lz4-napi's block format carries the output size up front; the block maximum is the bound it enforces.
      const prefix = Buffer.alloc(4);
      prefix.writeUInt32LE(frame.blockMax);
      try {
        out = lz4.uncompressSync(Buffer.concat([prefix, data]), frame.independent || this.window.length === 0 ? undefined : this.window);
      } catch (err) {
        throw new CodingError(`invalid LZ4 block: ${(err as Error).message}`);
      }
    }
    if (!frame.independent) this.window = Buffer.concat([this.window, out]).subarray(-LZ4_WINDOW);
    this.push(out);
    return length;
  }

  protected finishUnits(rest: Buffer): void {
    if (this.frame || rest.length > 0) throw new CodingError('LZ4 body ends inside a frame');
    if (!this.sawFrame) throw new CodingError('empty LZ4 body');
  }
}
