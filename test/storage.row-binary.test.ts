/**
 * The consumers' insert format (storage/row-binary.ts) against real chDB:
 * rows written as RowBinaryWithDefaults read back exactly as the same rows
 * written as JSONEachRow — edge values (decimals at 38 digits, negative and
 * tiny; instants at the ends of DateTime64(9)'s range, before 1970; UTF-8
 * of every width; strings at the one-byte length boundary and past the
 * buffer's first size; absent keys taking the column's DEFAULT) and seeded
 * random rows — in process and over HTTP through the query endpoint's
 * write mode, whose spooled binary INSERT is attacked here too.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startQueryEndpoint, type RunningQueryEndpoint } from '../query/endpoint.ts';
import { insertColumns, parseType, RowBinaryError, rowBinaryEncoder } from '../storage/row-binary.ts';
import { openStore, type Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

const WRITE_TOKEN = 'row-binary-writer-token-0123';
let viaJson: Store;
let viaBinary: Store;
let endpoint: RunningQueryEndpoint;

beforeAll(async () => {
  viaJson = await freshStore('rb_json');
  viaBinary = await freshStore('rb_binary');
  endpoint = await startQueryEndpoint({ store: viaBinary, port: 0, writeToken: WRITE_TOKEN });
});
afterAll(async () => {
  await endpoint?.close();
  await viaJson?.close();
  await viaBinary?.close();
});

/** A deterministic generator (mulberry32) so a failure reproduces. */
function random(seed: number) {
  let a = seed;
  const next = () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  // code points of every UTF-8 width, quotes, backslashes and control characters; no lone surrogates (OTLP strings are UTF-8)
  const pools = [[0x20, 0x7e], [0x00, 0x1f], [0x80, 0x7ff], [0x800, 0xd7ff], [0xe000, 0xfffd], [0x10000, 0x10ffff]] as const;
  const text = (max: number) => {
    let s = '';
    const n = int(max);
    for (let i = 0; i < n; i++) {
      const [lo, hi] = pools[int(pools.length)]!;
      s += String.fromCodePoint(lo + int(hi - lo + 1));
    }
    return s;
  };
  const map = (max: number) => Object.fromEntries(Array.from({ length: int(max) }, (_, i) => [`${text(12)}#${i}`, text(int(4) === 0 ? 300 : 40)]));
  return { next, int, text, map };
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
/**
 * Any instant of DateTime64(9)'s range; `partition`: one of the last five
 * days (for columns that partition a table: an insert may touch at most 100
 * partitions, and spans older than their TTL would be dropped).
 */
function instant(r: ReturnType<typeof random>, partition = false): string {
  const d = partition
    ? new Date(Math.floor(Date.now() / 1000 - r.int(5 * 86_400)) * 1000)
    : new Date(Date.UTC(1900 + r.int(360), r.int(12), 1 + r.int(28), r.int(24), r.int(60), r.int(60)));
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(r.int(1e9), 9)}`;
}
function decimal(r: ReturnType<typeof random>): string {
  const digits = (n: number) => Array.from({ length: n }, () => r.int(10)).join('');
  return `${r.int(3) === 0 ? '-' : ''}${digits(1 + r.int(20)).replace(/^0+(?=\d)/, '')}.${digits(1 + r.int(18))}`;
}

const EDGE_INSTANTS = ['1900-01-01 00:00:00.000000000', '1969-12-31 23:59:59.999999999', '1970-01-01 00:00:00.000000000', '2026-12-07 21:38:32.123456789', '2106-02-07 06:28:16.000000001', '2262-04-11 23:47:16.854775807'];
const EDGE_DECIMALS = ['0', '7', '12.5', '0.000000000000000001', '-0.000000000000000001', '99999999999999999999.999999999999999999', '-99999999999999999999.999999999999999999', '18446744073709551616', '-12345.678900000000000000'];
const EDGE_TEXTS = ['', 'a', 'x'.repeat(127), 'x'.repeat(128), `${'x'.repeat(126)}é`, 'ünïcødé — 日本語 🎉', 'tab\tnewline\nquote"\'backslash\\', 'y'.repeat(70_000)];

function attemptRows(r: ReturnType<typeof random>, n: number): object[] {
  const outcomes = ['pass', 'fail', 'error', 'timeout', 'cancelled', 'unknown'];
  return Array.from({ length: n }, (_, i) => {
    const cost = i < EDGE_DECIMALS.length ? EDGE_DECIMALS[i]! : r.int(5) === 0 ? null : decimal(r);
    return {
      attempt_id: `a-${i}`, tenant: `t-${r.int(3)}`, spec_id: r.text(20) || 's', spec_tier: `tier-${r.int(3)}`,
      canary: r.text(8), variant: r.text(8), pool: i < EDGE_TEXTS.length ? EDGE_TEXTS[i]! : r.text(8), model: r.text(30),
      attempt_number: i === 0 ? 4294967295 : 1 + r.int(9), outcome: outcomes[i % outcomes.length],
      reason: i < EDGE_TEXTS.length ? EDGE_TEXTS[EDGE_TEXTS.length - 1 - i]! : r.text(200),
      started_at: instant(r, true), ended_at: i < EDGE_INSTANTS.length ? EDGE_INSTANTS[i]! : instant(r),
      duration_ms: i === 1 ? 0.1 + 0.2 : r.next() * 1e6, llm_calls: r.int(100), tool_calls: r.int(100),
      input_tokens: i === 2 ? Number.MAX_SAFE_INTEGER : r.int(1e9), cache_read_tokens: r.int(1e6), cache_write_tokens: r.int(1e6),
      output_tokens: r.int(1e6), reasoning_tokens: r.int(1e6),
      cost_usd: cost, reported_cost_usd: r.int(2) ? null : decimal(r), unpriced_calls: cost === null ? 1 : 0,
      trace_id: r.text(32), span_id: r.text(16), sampled: r.int(2) === 1, sampling_rate: r.next(),
      decision: ['ended', 'late_span', 'overflow', 'timeout', 'shutdown'][r.int(5)], version: i === 3 ? 2 ** 40 : r.int(1000),
    };
  });
}

function callRows(r: ReturnType<typeof random>, n: number): object[] {
  return Array.from({ length: n }, (_, i) => ({
    tenant: 'default', attempt_id: `a-${i % 50}`, trace_id: r.text(32), span_id: `c-${i}`,
    started_at: instant(r, true), ended_at: instant(r), provider: r.text(10),
    provider_source: ['fleet.provider', 'host', 'instrumentation', 'inferred'][r.int(4)],
    // absent: the column's DEFAULT (the provider), as a missing JSON key
    ...(i % 3 !== 0 && { instrumented_provider: r.text(10) }),
    server_address: r.text(20), model: r.text(20), request_model: r.text(20), service_tier: ['standard', 'batch', 'flex', 'priority'][r.int(4)],
    input_tokens: r.int(1e9), cache_read_tokens: r.int(1e6), cache_write_tokens: r.int(1e6), output_tokens: r.int(1e6), reasoning_tokens: r.int(1e6),
    cache_write_1h_tokens: r.int(1e6), cost_usd: r.int(4) === 0 ? null : decimal(r), reported_cost_usd: r.int(2) ? null : decimal(r),
    price_provider: r.text(10), price_model: r.text(10), price_from: r.int(3) === 0 ? null : instant(r), unpriced_reason: r.text(30),
    dialect: 'gen_ai', version: r.int(1000), is_deleted: r.int(2),
  }));
}

function spanRows(r: ReturnType<typeof random>, n: number): object[] {
  const kinds = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
  return Array.from({ length: n }, (_, i) => ({
    tenant: 'default', trace_id: `tr-${i}`, span_id: `sp-${i}`, parent_span_id: r.text(16), attempt_id: r.text(10), name: r.text(40),
    kind: kinds[r.int(kinds.length)], start_time: instant(r, true), end_time: instant(r),
    duration_ns: i === 0 ? '18446744073709551615' : String(r.int(2 ** 52)),
    status_code: ['UNSET', 'OK', 'ERROR'][r.int(3)], status_message: r.text(50),
    attributes: i === 1 ? {} : r.map(30), resource_attributes: r.map(8), scope_name: r.text(20), scope_version: r.text(6),
    events: Array.from({ length: r.int(3) }, () => ({ time: instant(r), name: r.text(20), attributes: r.map(4) })),
    sampling_rate: r.next(), sample_reason: r.text(10), version: r.int(2),
  }));
}

const ORDER: Record<string, string> = { attempts: 'attempt_id', llm_calls: 'span_id', spans: 'span_id' };
const readBack = (store: Store, table: string) => store.query(`SELECT * EXCEPT inserted_at FROM ${store.database}.${table} ORDER BY ${ORDER[table]}`);

async function writeBinary(into: Store, table: string, rows: object[], chunkRows = 64): Promise<void> {
  const encoder = rowBinaryEncoder(table, await insertColumns(viaBinary, table));
  const chunks: Buffer[] = [];
  for (let i = 0; i < rows.length; i += chunkRows) chunks.push(encoder.encode(rows, i, Math.min(rows.length, i + chunkRows)));
  await into.insertRowBinary(table, encoder.columns, chunks);
}

describe('RowBinaryWithDefaults rows', () => {
  const r = random(20261207);
  const tables = { attempts: attemptRows(r, 400), llm_calls: callRows(r, 400), spans: spanRows(r, 400) };

  it('read back exactly as the same rows inserted as JSONEachRow, in process', async () => {
    for (const [table, rows] of Object.entries(tables)) {
      await viaJson.insert(table, rows);
      await writeBinary(viaBinary, table, rows);
      const [json, binary] = [await readBack(viaJson, table), await readBack(viaBinary, table)];
      expect(binary.length, table).toBe(rows.length);
      expect(binary, table).toEqual(json);
    }
    // the absent key took the DEFAULT (the provider), not an empty string
    const [defaulted] = await viaBinary.query<{ same: number }>("SELECT min(instrumented_provider = provider) AS same FROM rb_binary.llm_calls WHERE span_id = 'c-0'");
    expect(defaulted!.same).toBe(1);
    // the spool file is gone once the insert returned
    expect(readdirSync(path.join(viaBinary.dataDir!, 'insert-spool'))).toEqual([]);
  });

  it('read back exactly over HTTP, through the query endpoint in write mode (a spooled binary INSERT)', async () => {
    const remote = openStore({ url: endpoint.url, username: 'perpass_writer', password: WRITE_TOKEN, database: 'rb_binary' });
    try {
      for (const table of Object.keys(tables)) await viaBinary.command(`TRUNCATE TABLE rb_binary.${table}`);
      for (const [table, rows] of Object.entries(tables)) {
        await writeBinary(remote, table, rows, 100);
        expect(await readBack(viaBinary, table), table).toEqual(await readBack(viaJson, table));
      }
    } finally {
      await remote.close();
    }
    expect(readdirSync(path.join(viaBinary.dataDir!, 'insert-spool'))).toEqual([]);
  });

  it('refuses a value its column cannot hold, naming table, column and row', () => {
    const encoder = rowBinaryEncoder('attempts', [
      { name: 'cost_usd', type: 'Nullable(Decimal(38, 18))' },
      { name: 'outcome', type: "Enum8('pass' = 1, 'fail' = 2)" },
      { name: 'started_at', type: "DateTime64(9, 'UTC')" },
      { name: 'attempt_number', type: 'UInt32' },
      { name: 'input_tokens', type: 'UInt64' },
    ]);
    const ok = { cost_usd: '1.5', outcome: 'pass', started_at: '2026-12-07 00:00:00.000000000', attempt_number: 1, input_tokens: 5 };
    expect(encoder.encode([ok]).length).toBe(5 + 1 + 16 + 1 + 8 + 4 + 8);
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ cost_usd: '0.0000000000000000001' }, /row 1: attempts\.cost_usd: expected Decimal\(38, 18\): at most 18 decimal places/],
      [{ cost_usd: '1e5' }, /attempts\.cost_usd: expected Decimal\(38, 18\) as a decimal string, got string "1e5"/],
      [{ cost_usd: '123456789012345678901.5' }, /at most 38 digits/],
      [{ outcome: 'maybe' }, /attempts\.outcome: expected Enum8\(pass, fail\), got string "maybe"/],
      [{ started_at: 'yesterday' }, /attempts\.started_at: expected DateTime64\(9, 'UTC'\) as 'YYYY-MM-DD hh:mm:ss\.nnnnnnnnn' text/],
      [{ started_at: '2026-12-07 00:00:00.0000000001' }, /attempts\.started_at/],
      [{ attempt_number: -1 }, /attempts\.attempt_number: expected UInt32, got number -1/],
      [{ attempt_number: 2 ** 32 }, /expected UInt32/],
      [{ input_tokens: 2 ** 53 }, /attempts\.input_tokens: expected UInt64/],
      [{ input_tokens: '18446744073709551616' }, /expected UInt64/],
      [{ input_tokens: -1 }, /expected UInt64/],
    ];
    for (const [change, message] of cases) expect(() => encoder.encode([ok, { ...ok, ...change }]), JSON.stringify(change)).toThrow(message);
    expect(() => encoder.encode([{ ...ok, outcome: 1 }])).not.toThrow();
    expect(() => encoder.encode([{ ...ok, outcome: null }])).toThrow(RowBinaryError);
  });

  it('refuses to compile a type it cannot write, naming the column', () => {
    expect(() => rowBinaryEncoder('t', [{ name: 'id', type: 'UUID' }])).toThrow(/t\.id \(UUID\): type UUID is not supported/);
    expect(() => rowBinaryEncoder('t', [{ name: 'at', type: "DateTime64(3, 'Europe/Berlin')" }])).toThrow(/t\.at .*must be in 'UTC'/);
    expect(() => rowBinaryEncoder('t', [{ name: 'x', type: 'Decimal(76, 10)' }])).toThrow(/wider than 128 bits/);
    expect(() => parseType('Map(String')).toThrow(/cannot read type/);
    expect(parseType("Array(Tuple(time DateTime64(9, 'UTC'), name String))")).toEqual({
      name: 'Array',
      args: [{ type: { name: 'Tuple', args: [{ label: 'time', type: { name: 'DateTime64', args: [{ number: 9 }, { text: 'UTC' }] } }, { label: 'name', type: { name: 'String', args: [] } }] } }],
    });
  });
});

describe('binary INSERT through the query endpoint', () => {
  const post = (params: Record<string, string>, body: Uint8Array, auth = `perpass_writer:${WRITE_TOKEN}`) =>
    fetch(`${endpoint.url}/?${new URLSearchParams(params)}`, { method: 'POST', body, headers: { Authorization: `Basic ${Buffer.from(auth).toString('base64')}` } });
  const oneRow = () => rowBinaryEncoder('x', [{ name: 'provider', type: 'String' }]).encode([{ provider: 'p' }]);

  it("still refuses a writer's own FROM INFILE, and reads a reader's binary body as text (refused)", async () => {
    const infile = await post({ query: "INSERT INTO rb_binary.prices (provider) FROM INFILE '/etc/passwd' FORMAT RowBinary" }, new Uint8Array());
    expect(infile.status).not.toBe(200);
    expect(await infile.text()).toMatch(/FROM INFILE is not allowed/);
    const reader = await fetch(`${endpoint.url}/?${new URLSearchParams({ query: 'INSERT INTO rb_binary.prices (provider) FORMAT RowBinary' })}`, { method: 'POST', body: Buffer.from([1, 0, 2]) });
    expect(reader.status).not.toBe(200);
  });

  it('spools only a plain INSERT … FORMAT <binary> whose statement is all in the URL', async () => {
    // something after the format's name: the body is the statement's continuation, read as text (a NUL is refused)
    const trailing = await post({ query: 'INSERT INTO rb_binary.prices (provider) FORMAT RowBinary SETTINGS async_insert = 1' }, Buffer.from([0, 1, 0x70]));
    expect(trailing.status).not.toBe(200);
    // an INSERT … SELECT naming a binary format is not an INSERT of data
    const select = await post({ query: 'INSERT INTO rb_binary.prices (provider) SELECT 1 FORMAT RowBinary' }, oneRow());
    expect(select.status).not.toBe(200);
    const before = await viaBinary.query<{ n: number }>('SELECT count() AS n FROM rb_binary.prices');
    const plain = await post({ query: 'INSERT INTO rb_binary.prices (provider) FORMAT RowBinaryWithDefaults' }, oneRow());
    expect(plain.status, await plain.clone().text()).toBe(200);
    const after = await viaBinary.query<{ n: number }>('SELECT count() AS n FROM rb_binary.prices');
    expect(after[0]!.n - before[0]!.n).toBe(1);
    // a table outside the writer's reach is refused like any other INSERT into it
    const system = await post({ query: 'INSERT INTO system.one (dummy) FORMAT RowBinary' }, Buffer.from([0]));
    expect(system.status).not.toBe(200);
    expect(readdirSync(path.join(viaBinary.dataDir!, 'insert-spool'))).toEqual([]);
  });
});
