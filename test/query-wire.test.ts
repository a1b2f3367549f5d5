/**
 * The query endpoint's wire protocol byte for byte, over real HTTP against
 * real chDB: Native as a server writes it for `client_protocol_version`,
 * ClickHouse's compressed transfer (`compress=1`, `decompress=1`), reader
 * sessions, and JSON defaults. query-clients.test.ts drives the real
 * clients over the same paths.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compressBlocks, decompressBlocks, METHODS } from '../query/compression.ts';
import { startQueryEndpoint, type RunningQueryEndpoint } from '../query/endpoint.ts';
import type { Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

let store: Store;
let open: RunningQueryEndpoint;
let writable: RunningQueryEndpoint;
const WRITE_TOKEN = 'writer-secret-0123456789';

beforeAll(async () => {
  store = await freshStore('fleet');
  open = await startQueryEndpoint({ store, port: 0 });
  writable = await startQueryEndpoint({ store, port: 0, writeToken: WRITE_TOKEN });
});

afterAll(async () => {
  await open?.close();
  await writable?.close();
  await store?.close();
});

const get = (params: Record<string, string>) => fetch(`${open.url}/?${new URLSearchParams(params)}`);
const bytes = async (res: Response) => Buffer.from(await res.arrayBuffer());

async function expectError(res: Response, status: number, code: number, type: string, body?: Buffer): Promise<string> {
  const text = (body ?? (await bytes(res))).toString('utf8');
  expect(res.status, text).toBe(status);
  expect(res.headers.get('x-clickhouse-exception-code')).toBe(String(code));
  expect(text).toMatch(new RegExp(`^Code: ${code}\\. DB::Exception: .*\\(${type}\\) \\(version [\\d.]+\\)\\n$`, 's'));
  return text;
}

/** BlockInfo::write of a plain block: field 1 is_overflows = 0, field 2 bucket_num = -1, end. */
const BLOCK_INFO = [0x01, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff, 0x00];
const str = (s: string) => [s.length, ...Buffer.from(s)];

describe('Native for client_protocol_version', () => {
  it('writes one block as a server of each revision does', async () => {
    const query = 'SELECT 7 AS x FORMAT Native';
    const plain = [0x01, 0x01, ...str('x'), ...str('UInt8'), 0x07];
    expect([...(await bytes(await get({ query })))]).toEqual(plain);
    // Revision 54453: block info, no custom-serialization byte yet.
    expect([...(await bytes(await get({ query, client_protocol_version: '54453' })))]).toEqual([...BLOCK_INFO, ...plain]);
    // From 54454 on (clickhouse-go sends 54460): a 0 after the type, then the data.
    expect([...(await bytes(await get({ query, client_protocol_version: '54460' })))]).toEqual([...BLOCK_INFO, 0x01, 0x01, ...str('x'), ...str('UInt8'), 0x00, 0x07]);
  });

  it('frames every block of a multi-block result, whatever the column types', async () => {
    const res = await get({
      query:
        "SELECT number AS n, toString(number) AS s, toLowCardinality(toString(number % 7)) AS lc, map(toLowCardinality('k'), toString(number)) AS m, [(number, toDateTime64(number, 9, 'UTC'))] AS a, if(number % 2 = 0, NULL, toDecimal128(number, 9)) AS d FROM numbers(150000)",
      default_format: 'Native',
      client_protocol_version: '54460',
    });
    expect(res.status).toBe(200);
    const buf = await bytes(res);
    // Walk it as clickhouse-go reads it, knowing only the first column's layout: every block
    // starts with the block info, and its UInt64 column n continues where the last block ended.
    let at = 0;
    let next = 0;
    const varUInt = () => {
      let v = 0;
      for (let shift = 0; ; shift += 7) {
        const b = buf[at++]!;
        v += (b & 0x7f) * 2 ** shift;
        if (!(b & 0x80)) return v;
      }
    };
    const blocks: number[] = [];
    while (at < buf.length) {
      expect([...buf.subarray(at, at + 8)]).toEqual(BLOCK_INFO);
      at += 8;
      expect(varUInt()).toBe(6);
      const rows = varUInt();
      blocks.push(rows);
      expect(buf.subarray(at, at + 1 + 1 + 1 + 6).toString('latin1')).toBe('\x01n\x06UInt64');
      at += 9;
      expect(buf[at++]).toBe(0); // no custom serialization
      expect(buf.readBigUInt64LE(at)).toBe(BigInt(next));
      next += rows;
      // The other columns' bytes: up to the next block's info (the walker found them); check where it says.
      const following = buf.indexOf(Buffer.from(BLOCK_INFO), at + rows * 8);
      at = following < 0 ? buf.length : following;
    }
    expect(next).toBe(150000);
    expect(blocks.length).toBeGreaterThan(1);
  });

  it('refuses a column it cannot frame by name, and a bad revision', async () => {
    const text = await expectError(await get({ query: 'SELECT 1::Dynamic AS dyn FORMAT Native', client_protocol_version: '54460' }), 501, 48, 'NOT_IMPLEMENTED');
    expect(text).toContain('column "dyn" of type Dynamic');
    // Without a revision chDB's own Native output goes out as it is.
    expect((await get({ query: 'SELECT 1::Dynamic AS dyn FORMAT Native' })).status).toBe(200);
    await expectError(await get({ query: 'SELECT 1', client_protocol_version: 'new' }), 400, 36, 'BAD_ARGUMENTS');
  });
});

describe('compressed transfer (compress=1, decompress=1)', () => {
  const big = "SELECT number, 'fleet.v_cost_per_pass' FROM numbers(150000) FORMAT TSV";

  it('answers in checksummed LZ4, ZSTD or uncompressed blocks of at most 1 MiB', async () => {
    const plain = await bytes(await get({ query: big }));
    expect(plain.length).toBeGreaterThan(2 * 1024 * 1024);
    for (const [method, byte] of [[undefined, METHODS.LZ4], ['ZSTD', METHODS.ZSTD], ['lz4hc', METHODS.LZ4], ['NONE', METHODS.NONE]] as const) {
      const res = await get({ query: big, compress: '1', ...(method && { network_compression_method: method }) });
      expect(res.status).toBe(200);
      const body = await bytes(res);
      expect(body[16], String(method)).toBe(byte);
      if (byte !== METHODS.NONE) expect(body.length).toBeLessThan(plain.length / 2);
      expect(decompressBlocks(body, 64 * 1024 * 1024).equals(plain), String(method)).toBe(true);
      // Three blocks: 1 MiB, 1 MiB and the rest.
      expect(body.readUInt32LE(16 + 5)).toBe(1024 * 1024);
    }
    await expectError(await get({ query: 'SELECT 1', compress: '1', network_compression_method: 'LZMA' }), 500, 89, 'UNKNOWN_COMPRESSION_METHOD');
  });

  it('compresses an error body too, as a server does for compress=1', async () => {
    const res = await get({ query: 'SELECT * FROM fleet.no_such_table', compress: '1' });
    const body = await bytes(res);
    expect(body[16]).toBe(METHODS.LZ4);
    await expectError(res, 404, 60, 'UNKNOWN_TABLE', decompressBlocks(body, 1 << 20));
  });

  it('reads a compressed request body and refuses a corrupt one', async () => {
    const post = (body: Uint8Array, params: Record<string, string> = {}) =>
      fetch(`${open.url}/?${new URLSearchParams({ decompress: '1', ...params })}`, { method: 'POST', body });
    for (const method of ['LZ4', 'ZSTD', 'NONE'] as const) {
      const res = await post(compressBlocks(Buffer.from('SELECT 6 * 7 FORMAT TSV'), { method, level: 1 }));
      expect(await res.text(), method).toBe('42\n');
    }
    const corrupt = compressBlocks(Buffer.from('SELECT 6 * 7 FORMAT TSV'), { method: 'LZ4', level: 1 });
    corrupt[corrupt.length - 1]! ^= 0x01;
    await expectError(await post(corrupt), 500, 40, 'CHECKSUM_DOESNT_MATCH');
    // http_native_compression_disable_checksumming_on_decompress skips the check: the flipped last
    // literal of this match-less LZ4 block arrives, and TSV becomes TSW.
    expect(await expectError(await post(corrupt, { http_native_compression_disable_checksumming_on_decompress: '1' }), 404, 73, 'UNKNOWN_FORMAT')).toContain('TSW');
    await expectError(await post(corrupt.subarray(0, 20)), 500, 271, 'CANNOT_DECOMPRESS');
    const unknown = compressBlocks(Buffer.from('SELECT 1'), { method: 'NONE', level: 1 });
    unknown[16] = 0x91;
    await expectError(await post(unknown, { http_native_compression_disable_checksumming_on_decompress: '1' }), 500, 89, 'UNKNOWN_COMPRESSION_METHOD');
  });
});

describe('sessions, settings and JSON defaults', () => {
  it('accepts a reader\'s session_id (a read-only session holds nothing) and refuses a writer\'s', async () => {
    const res = await get({ query: 'SELECT 1 FORMAT TSV', session_id: 'pandas-1', session_timeout: '60', session_check: '0' });
    expect(await res.text()).toBe('1\n');
    await expectError(await get({ query: 'SELECT 1', session_id: 's', session_timeout: '7200' }), 400, 36, 'BAD_ARGUMENTS');
    const writer = await fetch(`${writable.url}/?${new URLSearchParams({ session_id: 'w1' })}`, {
      method: 'POST',
      body: 'SELECT 1',
      headers: { 'X-ClickHouse-User': 'perpass_writer', 'X-ClickHouse-Key': WRITE_TOKEN },
    });
    expect(await expectError(writer, 501, 48, 'NOT_IMPLEMENTED')).toContain('writer');
  });

  it('checks a request with session_id like any other and keeps nothing for the id (pooled sessions stay clean)', async () => {
    const s = { session_id: 'pandas-2' };
    // The policy still decides: the host's files, SET and settings beyond the caps are refused with a session_id.
    await expectError(await get({ ...s, query: "SELECT * FROM file('/etc/passwd', 'LineAsString')" }), 403, 497, 'ACCESS_DENIED');
    await expectError(await get({ ...s, query: 'SET max_threads = 1' }), 500, 164, 'READONLY');
    await expectError(await get({ ...s, query: 'SELECT 1', max_memory_usage: '0' }), 500, 164, 'READONLY');
    await expectError(await get({ ...s, query: 'SELECT 1 SETTINGS max_threads = 100000' }), 500, 164, 'READONLY');
    // What one request of the session sets is not there for the next of the same session_id.
    const threads = "SELECT getSetting('max_threads'), getSetting('max_execution_time') FORMAT TSV";
    const defaults = await (await get({ ...s, query: threads })).text();
    expect(await (await get({ ...s, query: threads, max_threads: '1', max_execution_time: '7' })).text()).toBe('1\t7\n');
    expect(await (await get({ ...s, query: threads })).text()).toBe(defaults);
    expect(await (await get({ query: threads })).text()).toBe(defaults);
  });

  it("answers clickhouse-go's hello: displayName() is the name every response carries already", async () => {
    const hello = await get({ query: 'SELECT displayName(), version(), revision(), timezone() FORMAT TSV' });
    expect(hello.status).toBe(200);
    expect((await hello.text()).split('\t')[0]).toBe(hello.headers.get('x-clickhouse-server-display-name'));
  });

  it('runs a max_execution_time URL parameter above the cap with the cap, and takes one within it in SETTINGS', async () => {
    const cap = (await (await get({ query: "SELECT getSetting('max_execution_time') FORMAT TSV" })).text()).trim();
    expect(await (await get({ query: "SELECT getSetting('max_execution_time') FORMAT TSV", max_execution_time: '65' })).text()).toBe(`${cap}\n`);
    expect(await (await get({ query: "SELECT getSetting('max_execution_time') FORMAT TSV SETTINGS max_execution_time = 10" })).text()).toBe('10\n');
    expect(await (await get({ query: "SELECT getSetting('max_threads') FORMAT TSV SETTINGS max_threads = 2" })).text()).toBe('2\n');
    // In the statement's own SETTINGS the engine would apply the value as written: above the cap it is refused.
    await expectError(await get({ query: 'SELECT 1 SETTINGS max_execution_time = 65' }), 500, 164, 'READONLY');
    await expectError(await get({ query: 'SELECT 1', max_execution_time: '0' }), 500, 164, 'READONLY');
  });

  it('quotes 64-bit integers in JSON by default as a server does, leaves decimals to output_format_json_quote_decimals', async () => {
    const query = 'SELECT toUInt64(18446744073709551615) AS u, toInt64(-3) AS i, toUInt32(7) AS s, toDecimal64(1.25, 2) AS d FORMAT JSONEachRow';
    expect(await (await get({ query })).text()).toBe('{"u":"18446744073709551615","i":"-3","s":7,"d":1.25}\n');
    expect(await (await get({ query, output_format_json_quote_decimals: '1', output_format_json_quote_64bit_integers: '0' })).text()).toBe(
      '{"u":18446744073709551615,"i":-3,"s":7,"d":"1.25"}\n',
    );
  });

  it('takes Grafana\'s row limit (`limit`) from a reader', async () => {
    expect(await (await get({ query: 'SELECT number FROM numbers(10) FORMAT TSV', limit: '3' })).text()).toBe('0\n1\n2\n');
  });
});
