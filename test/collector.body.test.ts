/**
 * collector/body.ts over a real HTTP connection: how much of a body is ever
 * held, whatever the client sends.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import zlib from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { BodyError, contentCoding, readBody, type ContentCoding } from '../collector/body.ts';
import { gzipZeros, request } from './collector.fixtures.ts';

interface Outcome {
  /** Largest running total reported to onBytes: what the reader held at its peak. */
  peak: number;
  result: { length: number } | { status: number; message: string };
}

const servers: http.Server[] = [];
afterEach(() =>
  Promise.all(
    servers.splice(0).map((s) => {
      const closed = new Promise((r) => s.close(r));
      s.closeAllConnections();
      return closed;
    }),
  ),
);

/** Starts a server that reads each body with readBody and reports what happened. */
async function reader(maxBytes: number, coding: ContentCoding): Promise<{ url: string; outcomes: Outcome[] }> {
  const outcomes: Outcome[] = [];
  const server = http.createServer(async (req, res) => {
    let peak = 0;
    try {
      const { body } = await readBody(req, { coding, maxBytes, onBytes: (total) => (peak = Math.max(peak, total)) });
      outcomes.push({ peak, result: { length: body.length } });
    } catch (err) {
      const e = err as BodyError;
      outcomes.push({ peak, result: { status: e.status, message: e.message } });
    }
    req.resume();
    res.end();
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, outcomes };
}

describe('readBody', () => {
  it('holds no more than the cap (plus one zlib chunk) of a 1 GiB gzip bomb', async () => {
    const cap = 1024 * 1024;
    const { url, outcomes } = await reader(cap, 'gzip');
    await request(url, { body: gzipZeros(1024 * 1024 * 1024) });
    expect(outcomes).toHaveLength(1);
    expect(outcomes[0]!.result).toEqual({ status: 413, message: `decompressed request body exceeds the limit of ${cap} bytes` });
    expect(outcomes[0]!.peak).toBeLessThanOrEqual(cap);
  });

  it('returns the decompressed body of a multi-member gzip stream', async () => {
    const { url, outcomes } = await reader(1024 * 1024, 'gzip');
    const body = Buffer.concat([zlib.gzipSync(Buffer.from('hello ')), zlib.gzipSync(Buffer.from('world'))]);
    await request(url, { body });
    expect(outcomes).toEqual([{ peak: 11, result: { length: 11 } }]);
  });

  it('accepts a body of exactly the cap and refuses one byte more', async () => {
    const { url, outcomes } = await reader(1000, 'identity');
    await request(url, { body: Buffer.alloc(1000) });
    await request(url, { body: Buffer.alloc(1001) });
    expect(outcomes.map((o) => o.result)).toEqual([{ length: 1000 }, { status: 413, message: 'request body exceeds the limit of 1000 bytes' }]);
  });

  it('knows the codings OTLP senders use and nothing else', () => {
    expect(contentCoding(undefined)).toBe('identity');
    expect(contentCoding('Identity')).toBe('identity');
    expect(contentCoding('GZIP')).toBe('gzip');
    expect(contentCoding('zlib')).toBe('deflate');
    expect(contentCoding(' zstd ')).toBe('zstd');
    expect(() => contentCoding('br')).toThrow('unsupported Content-Encoding "br": use one of identity, gzip, x-gzip, deflate, zlib, zstd, snappy, x-snappy-framed, lz4');
  });
});
