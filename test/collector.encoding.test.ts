/**
 * Every Content-Encoding an OTLP/HTTP sender may use, compressed by the real
 * codec libraries (Node's zlib for gzip/deflate/zstd, `snappy` for block and
 * framed snappy, `lz4-napi` for LZ4 frames): the spans land exactly, a bomb
 * is refused with 413 after at most the cap, a corrupt body gets 400 naming
 * the coding.
 */
import zlib from 'node:zlib';
import * as lz4 from 'lz4-napi';
import * as snappy from 'snappy';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/memory.ts';
import { startCollector, type RunningCollector } from '../collector/index.ts';
import { decodeStatus } from '../otlp/status.ts';
import { decodeTraceRequest, encodeTraceRequest } from '../otlp/codec.ts';
import { canonicalSpans, decodeMessages, metricValue, mixedRequest, postTraces, published } from './collector.fixtures.ts';

const TOPIC = 'otlp_spans';
const running: RunningCollector[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.close()));
});

async function start(bus: MemoryBus, maxBodyBytes?: number): Promise<RunningCollector> {
  const c = await startCollector({ publisher: bus.publisher(), port: 0, host: '127.0.0.1', ...(maxBodyBytes && { maxBodyBytes }) });
  running.push(c);
  return c;
}

async function framedSnappy(data: Buffer): Promise<Buffer> {
  const compressor = new snappy.Compressor();
  return Buffer.concat([compressor.update(data), await compressor.finish()]);
}

/** Content-Encoding header → a compressor of that coding. */
const CODECS: [string, (data: Buffer) => Buffer | Promise<Buffer>][] = [
  ['gzip', (d) => zlib.gzipSync(d)],
  ['deflate', (d) => zlib.deflateSync(d)],
  ['zlib', (d) => zlib.deflateSync(d)],
  ['zstd', (d) => zlib.zstdCompressSync(d)],
  ['snappy', (d) => snappy.compressSync(d)],
  ['snappy', framedSnappy], // otelcol before the framed/block fix sent framed data as "snappy"
  ['x-snappy-framed', framedSnappy],
  ['lz4', (d) => lz4.compressFrameSync(d)],
];

describe.each(CODECS)('Content-Encoding %s', (coding, compress) => {
  it('delivers every span exactly, also of a body spanning many blocks/chunks', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const request = mixedRequest();
    // ~300 KiB of attributes: several 64 KiB snappy chunks and LZ4 blocks, many zlib chunks.
    const span0 = request.resourceSpans![0]!.scopeSpans![0]!.spans![1]!;
    span0.attributes = Array.from({ length: 3000 }, (_, i) => ({ key: `k${i}`, value: { stringValue: `value ${i} ${'abcdefghij'.repeat(i % 17)}` } }));
    const body = Buffer.from(encodeTraceRequest(request));
    const res = await postTraces(c.url, await compress(body), { 'Content-Encoding': coding });
    expect(res.status).toBe(200);
    expect(canonicalSpans(decodeMessages(await published(bus, TOPIC)))).toEqual(canonicalSpans([decodeTraceRequest(body)]));
    const metrics = await c.registry.metrics();
    expect(metricValue(metrics, 'fleet_collector_request_bytes_total{stage="wire"}')).toBeLessThan(metricValue(metrics, 'fleet_collector_request_bytes_total{stage="decoded"}')!);
  });

  it('413 for a bomb (64 MiB of zeros) with a 1 MiB cap; 400 naming the coding for a corrupt body', async () => {
    const bus = new MemoryBus();
    const cap = 1024 * 1024;
    const c = await start(bus, cap);
    const bomb = await compress(Buffer.alloc(64 * 1024 * 1024));
    const refused = await postTraces(c.url, bomb, { 'Content-Encoding': coding });
    expect(refused.status).toBe(413);
    expect(decodeStatus(refused.body).message).toMatch(/exceeds the limit of 1048576 bytes|more than the limit of 1048576 bytes/);

    const good = await compress(Buffer.from(encodeTraceRequest(mixedRequest())));
    const corrupt = Buffer.from(good);
    for (let i = 0; i < corrupt.length; i += 7) corrupt[i] = corrupt[i]! ^ 0x5a;
    const broken = await postTraces(c.url, corrupt, { 'Content-Encoding': coding });
    expect(broken.status).toBe(400);
    expect(await published(bus, TOPIC)).toEqual([]);
    const truncated = await postTraces(c.url, good.subarray(0, good.length - 5), { 'Content-Encoding': coding });
    expect(truncated.status).toBe(400);
  });
});
