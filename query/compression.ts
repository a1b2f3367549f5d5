/**
 * ClickHouse's own compressed transfer over HTTP (`compress=1` for the
 * response, `decompress=1` for the request body): a sequence of blocks,
 * each
 *
 *     checksum   16 bytes  CityHash128 v1.0.2 of everything after it
 *     method      1 byte   0x82 LZ4, 0x90 ZSTD, 0x02 none
 *     size_comp   4 bytes  LE, the block without its checksum (header included)
 *     size_raw    4 bytes  LE, the data once decompressed
 *     payload              the data, compressed by `method`
 *
 * (CompressedWriteBuffer / CompressedReadBufferBase in ClickHouse). JDBC
 * asks for it by default, clickhouse-go with `Compression: LZ4|ZSTD`.
 * LZ4 blocks come from lz4-napi (lz4_flex; its "size-prepended" form is the
 * raw block after a 4-byte length), ZSTD from Node's zlib.
 */
import zlib from 'node:zlib';
import { compressSync as lz4Compress, uncompressSync as lz4Uncompress } from 'lz4-napi';
import { cityHash128 } from './cityhash.ts';
import { ClickHouseHttpError } from './errors.ts';

const CHECKSUM = 16;
const HEADER = 9;
/** ClickHouse's max_compress_block_size: how much raw data one block holds. */
const BLOCK = 1024 * 1024;

export const METHODS = { NONE: 0x02, LZ4: 0x82, ZSTD: 0x90 } as const;
export type Method = keyof typeof METHODS;

export interface CompressionChoice {
  method: Method;
  /** ZSTD level (network_zstd_compression_level); ClickHouse's default is 1. */
  level: number;
}

/**
 * The method a request asks for with `network_compression_method` /
 * `network_zstd_compression_level` (ClickHouse's defaults: LZ4, level 1).
 * LZ4HC writes LZ4 blocks (the level only changes the compressor's effort).
 */
export function compressionChoice(method: string | null, level: string | null): CompressionChoice {
  const name = (method ?? 'LZ4').trim().toUpperCase();
  const m: Method | undefined = name === 'LZ4HC' ? 'LZ4' : name in METHODS ? (name as Method) : undefined;
  if (m === undefined) {
    throw ClickHouseHttpError.of('UNKNOWN_COMPRESSION_METHOD', `Unknown network_compression_method '${method}': LZ4, LZ4HC, ZSTD and NONE are supported`);
  }
  const l = level === null ? 1 : Number(level);
  if (!Number.isInteger(l) || l < 1 || l > 22) throw ClickHouseHttpError.of('BAD_ARGUMENTS', `network_zstd_compression_level must be an integer from 1 to 22, not '${level}'`);
  return { method: m, level: l };
}

function compressBlock(raw: Uint8Array, choice: CompressionChoice): Buffer {
  let payload: Uint8Array;
  if (choice.method === 'LZ4') payload = lz4Compress(Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength)).subarray(4);
  else if (choice.method === 'ZSTD') payload = zlib.zstdCompressSync(raw, { params: { [zlib.constants.ZSTD_c_compressionLevel]: choice.level } });
  else payload = raw;
  const block = Buffer.allocUnsafe(CHECKSUM + HEADER + payload.byteLength);
  block[CHECKSUM] = METHODS[choice.method];
  block.writeUInt32LE(HEADER + payload.byteLength, CHECKSUM + 1);
  block.writeUInt32LE(raw.byteLength, CHECKSUM + 5);
  block.set(payload, CHECKSUM + HEADER);
  cityHash128(block.subarray(CHECKSUM)).copy(block, 0);
  return block;
}

/** `data` as ClickHouse's compressed blocks of at most 1 MiB raw each (nothing for no data, as a server sends). */
export function compressBlocks(data: Uint8Array, choice: CompressionChoice): Buffer {
  const blocks: Buffer[] = [];
  for (let at = 0; at < data.byteLength; at += BLOCK) blocks.push(compressBlock(data.subarray(at, at + BLOCK), choice));
  return Buffer.concat(blocks);
}

const corrupt = (at: number, what: string) =>
  ClickHouseHttpError.of('CANNOT_DECOMPRESS', `Cannot decompress the request body (decompress=1): ${what} in the compressed block at byte ${at}`);

/**
 * The data of a `decompress=1` request body: every block's checksum
 * verified (unless `verify` is false, ClickHouse's
 * http_native_compression_disable_checksumming_on_decompress), and the
 * total held to `max` bytes before anything is inflated.
 */
export function decompressBlocks(body: Uint8Array, max: number, verify = true): Buffer {
  const buf = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const parts: Buffer[] = [];
  let total = 0;
  for (let at = 0; at < buf.length; ) {
    if (buf.length - at < CHECKSUM + HEADER) throw corrupt(at, `${buf.length - at} bytes are too few for a block header`);
    const method = buf[at + CHECKSUM]!;
    const sizeCompressed = buf.readUInt32LE(at + CHECKSUM + 1);
    const sizeRaw = buf.readUInt32LE(at + CHECKSUM + 5);
    if (sizeCompressed < HEADER || at + CHECKSUM + sizeCompressed > buf.length) throw corrupt(at, `a compressed size of ${sizeCompressed} bytes that the body does not hold`);
    const block = buf.subarray(at + CHECKSUM, at + CHECKSUM + sizeCompressed);
    if (verify && !cityHash128(block).equals(buf.subarray(at, at + CHECKSUM))) {
      throw ClickHouseHttpError.of('CHECKSUM_DOESNT_MATCH', `Checksum doesn't match: corrupted data in the compressed block at byte ${at} of the request body (decompress=1)`);
    }
    total += sizeRaw;
    if (total > max) throw ClickHouseHttpError.of('QUERY_IS_TOO_LARGE', `Request body is larger than the endpoint's limit of ${max} bytes once decompressed`);
    const payload = block.subarray(HEADER);
    let raw: Buffer;
    try {
      if (method === METHODS.LZ4) {
        const sized = Buffer.allocUnsafe(4 + payload.length);
        sized.writeUInt32LE(sizeRaw, 0);
        payload.copy(sized, 4);
        raw = lz4Uncompress(sized);
      } else if (method === METHODS.ZSTD) raw = zlib.zstdDecompressSync(payload, { maxOutputLength: Math.max(1, sizeRaw) });
      else if (method === METHODS.NONE) raw = Buffer.from(payload);
      else throw ClickHouseHttpError.of('UNKNOWN_COMPRESSION_METHOD', `Unknown compression method byte 0x${method.toString(16)} in the compressed block at byte ${at} of the request body`);
    } catch (err) {
      if (err instanceof ClickHouseHttpError) throw err;
      throw corrupt(at, (err as Error).message);
    }
    if (raw.length !== sizeRaw) throw corrupt(at, `${raw.length} bytes decompressed where the header says ${sizeRaw}`);
    parts.push(raw);
    at += CHECKSUM + sizeCompressed;
  }
  return Buffer.concat(parts, total);
}
