/**
 * The embedded ClickHouse-compatible query endpoint, end to end: real chDB
 * (a migrated store in this process), real HTTP, the real
 * @clickhouse/client, curl-shaped fetches, and a separate writer process.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { get as httpGet } from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ClickHouseError, ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatInstant, type AttemptRow } from '../contract/rows.ts';
import { startQueryEndpoint, type RunningQueryEndpoint } from '../query/endpoint.ts';
import type { Store } from '../storage/store.ts';
import { freshStore, tempDir } from './support/store.ts';

const READ_TOKEN = 'reader-secret-1';
const WRITE_TOKEN = 'writer-secret-0123456789';
const now = BigInt(Date.now()) * 1_000_000n;
const minutes = (m: number) => BigInt(m) * 60_000_000_000n;

function attempt(id: string, model: string, outcome: AttemptRow['outcome'], cost: string | null, ago: number): AttemptRow {
  const started = now - minutes(ago);
  return {
    attempt_id: id,
    tenant: 'default',
    spec_id: `spec-${id}`,
    spec_tier: 'tier-2',
    canary: 'tier-2/query-endpoint',
    variant: 'base',
    pool: 'builder',
    model,
    attempt_number: 1,
    outcome,
    reason: outcome === 'pass' ? '' : 'tests failed',
    started_at: formatInstant(started),
    ended_at: formatInstant(started + minutes(2)),
    duration_ms: 120_000,
    llm_calls: 3,
    tool_calls: 5,
    input_tokens: 1000,
    cache_read_tokens: 2000,
    cache_write_tokens: 0,
    output_tokens: 300,
    reasoning_tokens: 100,
    cost_usd: cost,
    reported_cost_usd: null,
    unpriced_calls: cost === null ? 3 : 0,
    trace_id: `trace-${id}`,
    span_id: `span-${id}`,
    sampled: outcome !== 'pass',
    sampling_rate: 1,
    decision: 'ended',
    version: 7,
  };
}

const ROWS = [
  attempt('a1', 'model-a', 'pass', '0.5', 30),
  attempt('a2', 'model-a', 'fail', '0.25', 20),
  attempt('b1', 'model-b', 'pass', '0.125', 10),
];

let store: Store;
/** No tokens: read-only, anyone on 127.0.0.1. */
let open: RunningQueryEndpoint;
/** Read token and write mode. */
let guarded: RunningQueryEndpoint;
let client: ClickHouseClient;
const clients: ClickHouseClient[] = [];

function newClient(options: Parameters<typeof createClient>[0]): ClickHouseClient {
  // refused requests are the point of several tests: keep the client from logging each
  const c = createClient({ log: { level: ClickHouseLogLevel.OFF }, ...options });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  store = await freshStore('fleet');
  await store.insert('attempts', ROWS);
  open = await startQueryEndpoint({ store, port: 0, maxExecutionTimeSec: 30 });
  guarded = await startQueryEndpoint({ store, port: 0, readToken: READ_TOKEN, writeToken: WRITE_TOKEN });
  client = newClient({ url: open.url });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await open?.close();
  await guarded?.close();
  await store?.close();
});

const get = (base: string, params: Record<string, string>, init: RequestInit = {}) => fetch(`${base}/?${new URLSearchParams(params)}`, init);
const post = (base: string, body: string | Uint8Array, params: Record<string, string> = {}, init: RequestInit = {}) =>
  fetch(`${base}/?${new URLSearchParams(params)}`, { method: 'POST', body, ...init });

/** What a refused statement must leave untouched. */
async function snapshot() {
  const [tables] = await store.query<{ t: string[] }>("SELECT groupArray(name) AS t FROM (SELECT name FROM system.tables WHERE database = 'fleet' ORDER BY name)");
  const [columns] = await store.query<{ c: string[] }>("SELECT groupArray(name) AS c FROM (SELECT name FROM system.columns WHERE database = 'fleet' AND table = 'attempts' ORDER BY position)");
  const rows = await store.query<{ attempt_id: string; cost_usd: string | null }>('SELECT attempt_id, cost_usd FROM fleet.attempts FINAL ORDER BY attempt_id');
  const databases = await store.query<{ name: string }>('SELECT name FROM system.databases ORDER BY name');
  return { tables: tables!.t, columns: columns!.c, rows, databases };
}

async function expectClickHouseError(p: Promise<unknown>, code: string, type: string): Promise<ClickHouseError> {
  const err = await p.then(
    () => {
      throw new Error(`expected ClickHouseError ${code} (${type}), the request succeeded`);
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ClickHouseError);
  expect((err as ClickHouseError).code).toBe(code);
  expect((err as ClickHouseError).type).toBe(type);
  return err as ClickHouseError;
}

async function expectHttpError(res: Response, status: number, code: number, type: string): Promise<string> {
  const body = await res.text();
  expect(res.status, body).toBe(status);
  expect(res.headers.get('x-clickhouse-exception-code')).toBe(String(code));
  expect(body).toMatch(new RegExp(`^Code: ${code}\\. DB::Exception: .*\\(${type}\\) \\(version [\\d.]+\\)\\n$`, 's'));
  return body;
}

describe('@clickhouse/client against the endpoint', () => {
  it('pings, with and without a query', async () => {
    expect(await client.ping()).toEqual({ success: true });
    expect(await client.ping({ select: true })).toEqual({ success: true });
  });

  it('queries JSONEachRow with query_params and gets the exact rows', async () => {
    const rs = await client.query({
      query: 'SELECT attempt_id, outcome, cost_usd FROM fleet.attempts FINAL WHERE model = {model:String} ORDER BY attempt_id',
      format: 'JSONEachRow',
      query_params: { model: 'model-a' },
      clickhouse_settings: { output_format_json_quote_decimals: 1 },
    });
    expect(await rs.json()).toEqual([
      { attempt_id: 'a1', outcome: 'pass', cost_usd: '0.5' },
      { attempt_id: 'a2', outcome: 'fail', cost_usd: '0.25' },
    ]);
    expect(rs.response_headers['x-clickhouse-format']).toBe('JSONEachRow');
  });

  it('queries JSON with meta, data and rows', async () => {
    const rs = await client.query({
      query: 'SELECT count() AS n, countIf(outcome = {o:String}) AS passes FROM fleet.attempts FINAL',
      format: 'JSON',
      query_params: { o: 'pass' },
    });
    const json = await rs.json<{ n: string; passes: string }>();
    expect(json.meta).toEqual([
      { name: 'n', type: 'UInt64' },
      { name: 'passes', type: 'UInt64' },
    ]);
    // UInt64 quoted, as a server's default output_format_json_quote_64bit_integers=1 writes it
    expect(json.data).toEqual([{ n: '3', passes: '2' }]);
    expect(json.rows).toBe(1);
  });

  it('queries CSV and TabSeparated with query_params', async () => {
    const csv = await client.query({
      query: 'SELECT attempt_id, model FROM fleet.attempts FINAL WHERE attempt_id IN {ids:Array(String)} ORDER BY attempt_id',
      format: 'CSV',
      query_params: { ids: ['a1', 'b1'] },
    });
    expect(await csv.text()).toBe('"a1","model-a"\n"b1","model-b"\n');
    const tsv = await client.query({
      query: 'SELECT {s:String} AS s, {n:UInt32} + 1 AS n',
      format: 'TabSeparated',
      query_params: { s: "it's\ta\\b", n: 41 },
    });
    // TabSeparated escapes the quote, the tab and the backslash
    expect(await tsv.text()).toBe("it\\'s\\ta\\\\b\t42\n");
  });

  it('sends query parameters as multipart form data when asked', async () => {
    const multipart = newClient({ url: open.url, use_multipart_params: true });
    const rs = await multipart.query({ query: 'SELECT {a:String} AS a, {b:Array(UInt8)} AS b', format: 'JSONEachRow', query_params: { a: 'x', b: [1, 2] } });
    expect(await rs.json()).toEqual([{ a: 'x', b: [1, 2] }]);
  });

  it('compresses requests and responses with gzip', async () => {
    const gz = newClient({ url: open.url, compression: { request: true, response: true } });
    const rs = await gz.query({ query: 'SELECT number FROM system.numbers LIMIT 3', format: 'JSONEachRow' });
    expect(await rs.json()).toEqual([{ number: '0' }, { number: '1' }, { number: '2' }]);
    const raw = await post(open.url, 'SELECT 42 FORMAT TSV', { enable_http_compression: '1' }, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(raw.headers.get('content-encoding')).toBe('gzip');
    // fetch decompresses transparently
    expect(await raw.text()).toBe('42\n');
    const gzipped = await post(open.url, gzipSync('SELECT 7 FORMAT TSV'), {}, { headers: { 'Content-Encoding': 'gzip' } });
    expect(await gzipped.text()).toBe('7\n');
  });

  it('raises ClickHouseError with the code and type of a bad query', async () => {
    const syntax = await expectClickHouseError(client.query({ query: 'SELEC 1 FROM', format: 'JSONEachRow' }), '62', 'SYNTAX_ERROR');
    expect(syntax.message).toMatch(/Syntax error/);
    await expectClickHouseError(client.query({ query: 'SELECT * FROM fleet.no_such_table', format: 'JSONEachRow' }), '60', 'UNKNOWN_TABLE');
    await expectClickHouseError(client.query({ query: 'SELECT {x:UInt8}', format: 'JSONEachRow' }), '456', 'UNKNOWN_QUERY_PARAMETER');
  });

  it('reads a Store over HTTP, as another process does (openStore({ url }))', async () => {
    const { openStore } = await import('../storage/store.ts');
    const remote = openStore({ url: open.url, database: 'fleet' });
    try {
      const rows = await remote.query<{ model: string; attempts: number; passes: number; cost_per_pass: string | null }>(
        'SELECT model, attempts, passes, cost_per_pass FROM fleet.v_cost_per_pass_window(since = {s:DateTime64(9)}, until = {u:DateTime64(9)}) ORDER BY model',
        { s: formatInstant(now - minutes(60)), u: formatInstant(now) },
      );
      expect(rows).toEqual([
        { model: 'model-a', attempts: 2, passes: 1, cost_per_pass: '0.75' },
        { model: 'model-b', attempts: 1, passes: 1, cost_per_pass: '0.125' },
      ]);
    } finally {
      await remote.close();
    }
  });
});

describe('plain HTTP (curl-shaped)', () => {
  it('answers GET /?query=… FORMAT CSV with the exact bytes and ClickHouse headers', async () => {
    const res = await get(open.url, { query: "SELECT attempt_id, toString(cost_usd) AS cost FROM fleet.attempts FINAL ORDER BY attempt_id FORMAT CSV" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('"a1","0.5"\n"a2","0.25"\n"b1","0.125"\n');
    expect(res.headers.get('content-type')).toBe('text/csv; charset=UTF-8; header=absent');
    expect(res.headers.get('x-clickhouse-format')).toBe('CSV');
    expect(res.headers.get('x-clickhouse-query-id')).toMatch(/^[0-9a-f-]{36}$/);
    expect(res.headers.get('x-clickhouse-timezone')).toBeTruthy();
    const summary = JSON.parse(res.headers.get('x-clickhouse-summary')!) as Record<string, string>;
    expect(Object.keys(summary)).toEqual(expect.arrayContaining(['read_rows', 'read_bytes', 'written_rows', 'result_rows', 'elapsed_ns']));
  });

  it('takes the query from a POST body, or from ?query= continued by the body', async () => {
    const body = await post(open.url, 'SELECT attempt_id FROM fleet.attempts FINAL ORDER BY attempt_id FORMAT TSV', { query_id: 'my-query' });
    expect(await body.text()).toBe('a1\na2\nb1\n');
    expect(body.headers.get('x-clickhouse-query-id')).toBe('my-query');
    const split = await post(open.url, "WHERE model = 'model-b' FORMAT TSV", { query: 'SELECT attempt_id FROM fleet.attempts FINAL' });
    expect(await split.text()).toBe('b1\n');
  });

  it('uses default_format, the TabSeparated default and database for unqualified names', async () => {
    const json = await get(open.url, { query: 'SELECT 1 AS one', default_format: 'JSONEachRow' });
    expect(await json.text()).toBe('{"one":1}\n');
    expect(json.headers.get('x-clickhouse-format')).toBe('JSONEachRow');
    const tsv = await get(open.url, { query: "SELECT 'x' AS a, 2 AS b" });
    expect(await tsv.text()).toBe('x\t2\n');
    expect(tsv.headers.get('content-type')).toBe('text/tab-separated-values; charset=UTF-8');
    const unqualified = await get(open.url, { query: 'SELECT count() FROM attempts FINAL', database: 'fleet' });
    expect(await unqualified.text()).toBe('3\n');
    await expectHttpError(await get(open.url, { query: 'SELECT 1', database: 'no_such_db' }), 404, 81, 'UNKNOWN_DATABASE');
  });

  it('writes any engine format verbatim: Native for clickhouse-go (Grafana over HTTP), HEAD, header forms of database and format', async () => {
    const native = await get(open.url, { query: 'SELECT 1 AS a', default_format: 'Native', wait_end_of_query: '1', send_progress_in_http_headers: '1' });
    expect(native.headers.get('content-type')).toBe('application/octet-stream');
    // 1 column, 1 row, "a", "UInt8", the value 1: the bytes a ClickHouse server sends
    expect([...new Uint8Array(await native.arrayBuffer())]).toEqual([1, 1, 1, 0x61, 5, ...Buffer.from('UInt8'), 1]);
    const viaHeaders = await post(open.url, 'SELECT count() AS n FROM attempts FINAL', {}, { headers: { 'X-ClickHouse-Database': 'fleet', 'X-ClickHouse-Format': 'JSONEachRow' } });
    expect(await viaHeaders.text()).toBe('{"n":"3"}\n');
    const head = await fetch(`${open.url}/?query=SELECT+1`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('binds param_* URL parameters in their text (Escaped) form', async () => {
    const res = await get(open.url, {
      query: 'SELECT {s:String} AS s, {a:Array(String)} AS a, {d:DateTime64(3)} AS d, {m:Map(String, UInt8)} AS m FORMAT JSONEachRow',
      param_s: "it\\'s\\ta",
      param_a: "['x','y\\'z']",
      param_d: '2026-05-01 12:00:00.250',
      param_m: "{'k':1}",
    });
    expect(await res.json()).toEqual({ s: "it's\ta", a: ['x', "y'z"], d: '2026-05-01 12:00:00.250', m: { k: 1 } });
  });

  it('runs the parameterised view with DateTime64 parameters', async () => {
    const res = await get(open.url, {
      query:
        'SELECT model, attempts, passes, pass_rate, cost_usd, cost_per_pass FROM fleet.v_cost_per_pass_window(since = {s:DateTime64(9)}, until = {u:DateTime64(9)}) ORDER BY model FORMAT JSONEachRow',
      param_s: formatInstant(now - minutes(25)),
      param_u: formatInstant(now),
      output_format_json_quote_decimals: '1',
      output_format_json_quote_64bit_integers: '0',
    });
    const lines = (await res.text()).trim().split('\n').map((l) => JSON.parse(l) as unknown);
    // a1 started 30 minutes ago: outside the window
    expect(lines).toEqual([
      { model: 'model-a', attempts: 1, passes: 0, pass_rate: 0, cost_usd: '0.25', cost_per_pass: null },
      { model: 'model-b', attempts: 1, passes: 1, pass_rate: 1, cost_usd: '0.125', cost_per_pass: '0.125' },
    ]);
  });

  it('words errors as a server does: the client\'s statement as scope, one Code prefix', async () => {
    for (const query of ['SELEC 1', "SELECT 1 FROM numbers(10) WHERE x = 'a"]) {
      const body = await expectHttpError(await get(open.url, { query }), 400, 62, 'SYNTAX_ERROR');
      expect(body).toMatch(/^Code: 62\. DB::Exception: [^\n]*Syntax error: failed at position \d+/);
      expect(body).not.toMatch(/formatQuerySingleLine|In scope/);
    }
    const scoped = await expectHttpError(await get(open.url, { query: 'SELECT no_such_function(1)' }), 404, 46, 'UNKNOWN_FUNCTION');
    expect(scoped).toMatch(/In scope SELECT no_such_function\(1\)\. \(UNKNOWN_FUNCTION\)/); // the client's own statement stays
    const unknownFormat: Record<string, string>[] = [{ query: 'SELECT 1 FORMAT NoSuchFormat' }, { query: 'SELECT 1', default_format: 'NoSuchFormat' }];
    for (const params of unknownFormat) {
      const body = await expectHttpError(await get(open.url, params), 404, 73, 'UNKNOWN_FORMAT');
      expect(body).toMatch(/^Code: 73\. DB::Exception: Unknown format NoSuchFormat\. \(UNKNOWN_FORMAT\) \(version [\d.]+\)\n$/);
    }
  });

  it('answers /ping, GET / and unknown paths as a server does', async () => {
    const ping = await fetch(`${open.url}/ping`);
    expect(await ping.text()).toBe('Ok.\n');
    expect(await (await fetch(`${open.url}/`)).text()).toBe('Ok.\n');
    const missing = await fetch(`${open.url}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toMatch(/^There is no handle \/nope/);
    await expectHttpError(await post(open.url, ''), 400, 62, 'SYNTAX_ERROR');
  });
});

describe('read-only, enforced by the engine', () => {
  const writes: Array<[string, string]> = [
    ['INSERT … VALUES', "INSERT INTO fleet.attempts (attempt_id, tenant, spec_id, spec_tier) VALUES ('x1', 'default', 's', 'tier-2')"],
    ['INSERT … SELECT', 'INSERT INTO fleet.attempts SELECT * FROM fleet.attempts'],
    ['INSERT … FORMAT JSONEachRow', `INSERT INTO fleet.attempts FORMAT JSONEachRow\n${JSON.stringify(attempt('x2', 'model-z', 'pass', '9', 1))}`],
    ['DROP TABLE', 'DROP TABLE fleet.attempts'],
    ['DROP DATABASE', 'DROP DATABASE fleet'],
    ['TRUNCATE', 'TRUNCATE TABLE fleet.attempts'],
    ['ALTER … ADD COLUMN', 'ALTER TABLE fleet.attempts ADD COLUMN hacked UInt8'],
    ['ALTER … DELETE', "ALTER TABLE fleet.attempts DELETE WHERE attempt_id = 'a1'"],
    ['lightweight DELETE', "DELETE FROM fleet.attempts WHERE attempt_id = 'a1'"],
    ['CREATE TABLE', 'CREATE TABLE fleet.evil (x UInt8) ENGINE = Memory'],
    ['CREATE VIEW', 'CREATE OR REPLACE VIEW fleet.v_cost_per_pass AS SELECT 1'],
    ['CREATE DATABASE', 'CREATE DATABASE evil'],
    ['RENAME', 'RENAME TABLE fleet.attempts TO fleet.gone'],
    ['OPTIMIZE', 'OPTIMIZE TABLE fleet.attempts FINAL'],
    ['SYSTEM', 'SYSTEM DROP MARK CACHE'],
    ['SET readonly = 0', 'SET readonly = 0'],
    ['SETTINGS readonly = 0', 'SELECT 1 SETTINGS readonly = 0'],
    ['SETTINGS max_execution_time', 'SELECT 1 SETTINGS max_execution_time = 1000'],
  ];

  it.each(writes)('refuses %s with READONLY (164) and changes nothing', async (_, sql) => {
    const before = await snapshot();
    await expectHttpError(await post(open.url, sql), 500, 164, 'READONLY');
    expect(await snapshot()).toEqual(before);
  });

  it('refuses setting overrides in the URL with READONLY (164)', async () => {
    const before = await snapshot();
    for (const [name, value] of [
      ['readonly', '0'],
      ['readonly', '2'],
      ['max_execution_time', '0'],
      ['max_memory_usage', '1'],
      ['allow_introspection_functions', '0'],
      ['max_threads', '64'],
    ] as const) {
      const res = await get(open.url, { query: 'SELECT 1', [name]: value });
      expect(res.status, `${name}=${value}`).toBe(500);
      const body = await expectHttpError(res, 500, 164, 'READONLY');
      expect(body).toContain(`'${name}'`);
    }
    await expectHttpError(await post(open.url, 'DROP TABLE fleet.attempts', { readonly: '0' }), 500, 164, 'READONLY');
    await expectHttpError(await get(open.url, { query: 'SELECT 1', no_such_setting: '1' }), 404, 115, 'UNKNOWN_SETTING');
    // a setting sent with the value it already has changes nothing, and the engine lets it pass
    expect(await (await get(open.url, { query: 'SELECT 1', allow_ddl: '1' })).text()).toBe('1\n');
    expect(await snapshot()).toEqual(before);
  });

  it('lets a reader send output-format settings and tighten max_execution_time', async () => {
    const quoted = await get(open.url, { query: 'SELECT toUInt64(5) AS n FORMAT JSONEachRow', output_format_json_quote_64bit_integers: '1' });
    expect(await quoted.text()).toBe('{"n":"5"}\n');
    const plain = await get(open.url, { query: 'SELECT toUInt64(5) AS n FORMAT JSONEachRow', output_format_json_quote_64bit_integers: '0' });
    expect(await plain.text()).toBe('{"n":5}\n');
    const limited = await get(open.url, { query: "SELECT getSetting('max_execution_time') FORMAT TSV", max_execution_time: '5' });
    expect(await limited.text()).toBe('5\n');
    const capped = await get(open.url, { query: "SELECT getSetting('max_execution_time'), getSetting('readonly') FORMAT TSV" });
    expect(await capped.text()).toBe('30\t1\n');
    // Asking for more than the cap (Grafana: its 60 s deadline + 5) runs with the cap.
    const lifted = await get(open.url, { query: "SELECT getSetting('max_execution_time') FORMAT TSV", max_execution_time: '3600' });
    expect(await lifted.text()).toBe('30\n');
    const same = await get(open.url, { query: 'SELECT 1', readonly: '1' });
    expect(await same.text()).toBe('1\n');
    await expectHttpError(await get(open.url, { query: 'SELECT 1', output_format_json_quote_64bit_integers: 'maybe' }), 500, 467, 'CANNOT_PARSE_BOOL');
  });

  it('refuses writes from @clickhouse/client with ClickHouseError 164', async () => {
    const before = await snapshot();
    await expectClickHouseError(client.command({ query: 'DROP TABLE fleet.attempts' }), '164', 'READONLY');
    await expectClickHouseError(client.insert({ table: 'fleet.attempts', values: [attempt('x3', 'model-z', 'pass', '1', 1)], format: 'JSONEachRow' }), '164', 'READONLY');
    await expectClickHouseError(
      client.query({ query: 'SELECT 1', format: 'JSONEachRow', clickhouse_settings: { max_memory_usage: '1' } }),
      '164',
      'READONLY',
    );
    expect(await snapshot()).toEqual(before);
  });

  it('refuses what clickhouse-local would do on the host, KILL and multi-statements', async () => {
    const outfile = path.join(tempDir('outfile'), 'leak.csv');
    await expectHttpError(await post(open.url, `SELECT * FROM fleet.attempts INTO OUTFILE '${outfile}'`), 500, 358, 'INTO_OUTFILE_NOT_ALLOWED');
    // hidden behind a comment, a heredoc and odd casing: the engine's rendering still has it
    await expectHttpError(await post(open.url, `select 1 /* x */ into   /* y */ outfile $$${outfile}$$`), 500, 358, 'INTO_OUTFILE_NOT_ALLOWED');
    expect(existsSync(outfile)).toBe(false);
    await expectHttpError(await post(open.url, 'KILL QUERY WHERE 1'), 500, 164, 'READONLY');
    await expectHttpError(await post(open.url, `SELECT 1; SELECT 2 INTO OUTFILE '${outfile}'`), 400, 62, 'SYNTAX_ERROR');
    // an INSERT's inline VALUES data cannot smuggle a second statement: the INSERT itself is refused first
    await expectHttpError(await post(open.url, `INSERT INTO fleet.attempts (attempt_id) VALUES ('z'); SELECT 1 INTO OUTFILE '${outfile}'`), 500, 164, 'READONLY');
    expect(existsSync(outfile)).toBe(false);
  });
});

describe('authentication', () => {
  it('asks for a password when none is sent (401, REQUIRED_PASSWORD) and refuses a wrong one (403, AUTHENTICATION_FAILED)', async () => {
    const missing = await get(guarded.url, { query: 'SELECT 1' });
    expect(missing.headers.get('www-authenticate')).toMatch(/^Basic realm="ClickHouse server HTTP API"/);
    await expectHttpError(missing, 401, 194, 'REQUIRED_PASSWORD');
    await expectHttpError(await get(guarded.url, { query: 'SELECT 1', user: 'default', password: 'wrong' }), 403, 516, 'AUTHENTICATION_FAILED');
    const basicWrong = { Authorization: `Basic ${Buffer.from('default:wrong').toString('base64')}` };
    await expectHttpError(await get(guarded.url, { query: 'SELECT 1' }, { headers: basicWrong }), 403, 516, 'AUTHENTICATION_FAILED');
    // the writer's password is not a reader's
    await expectHttpError(await get(guarded.url, { query: 'SELECT 1', user: 'default', password: WRITE_TOKEN }), 403, 516, 'AUTHENTICATION_FAILED');
    await expectHttpError(
      await get(guarded.url, { query: 'SELECT 1', user: 'default', password: READ_TOKEN }, { headers: { 'X-ClickHouse-User': 'default', 'X-ClickHouse-Key': READ_TOKEN } }),
      403,
      516,
      'AUTHENTICATION_FAILED',
    );
    await expectClickHouseError(newClient({ url: guarded.url, username: 'default', password: 'wrong' }).query({ query: 'SELECT 1' }), '516', 'AUTHENTICATION_FAILED');
  });

  it('accepts the read token by Basic auth, X-ClickHouse headers and ?user=&password=', async () => {
    const basic = { Authorization: `Basic ${Buffer.from(`grafana:${READ_TOKEN}`).toString('base64')}` };
    expect(await (await get(guarded.url, { query: 'SELECT 1' }, { headers: basic })).text()).toBe('1\n');
    const xHeaders = { 'X-ClickHouse-User': 'default', 'X-ClickHouse-Key': READ_TOKEN };
    expect(await (await get(guarded.url, { query: 'SELECT 2' }, { headers: xHeaders })).text()).toBe('2\n');
    expect(await (await get(guarded.url, { query: 'SELECT 3', user: 'someone', password: READ_TOKEN })).text()).toBe('3\n');
    const reader = newClient({ url: guarded.url, username: 'default', password: READ_TOKEN });
    expect(await (await reader.query({ query: 'SELECT count() AS n FROM fleet.attempts FINAL', format: 'JSONEachRow' })).json()).toEqual([{ n: '3' }]);
    // /ping needs no credentials, as on a server
    expect(await (await fetch(`${guarded.url}/ping`)).text()).toBe('Ok.\n');
    // a read token never writes
    await expectClickHouseError(reader.command({ query: 'DROP TABLE fleet.attempts' }), '164', 'READONLY');
  });
});

describe('write mode', () => {
  const writerScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'query-endpoint-writer.ts');
  const runWriter = async (url: string, user: string, password: string, database: string, rows: AttemptRow[]) => {
    const { stdout } = await promisify(execFile)(process.execPath, [writerScript, url, user, password, database, JSON.stringify(rows)], { timeout: 120_000 }).catch(
      (e: { stdout?: string; stderr?: string }) => {
        if (!e.stdout) throw new Error(`writer process failed: ${e.stderr ?? String(e)}`);
        return { stdout: e.stdout };
      },
    );
    return JSON.parse(stdout.trim().split('\n').pop()!) as {
      migrated?: { applied: number[]; alreadyApplied: number[] };
      count?: number;
      costPerPass?: Array<{ model: string; cost_per_pass: string | null }>;
      error?: { message: string; code?: string; type?: string };
    };
  };
  const remoteRows = [attempt('r1', 'model-r', 'pass', '0.3', 5), attempt('r2', 'model-r', 'fail', '0.3', 4)];

  it('lets a separate process migrate a database and insert through openStore({ url }) with the write token', async () => {
    const out = await runWriter(guarded.url, 'perpass_writer', WRITE_TOKEN, 'fleet_remote', remoteRows);
    expect(out.error).toBeUndefined();
    expect(out.migrated!.applied.length).toBeGreaterThan(0);
    expect(out.migrated!.alreadyApplied).toEqual([]);
    expect(out.count).toBe(2);
    expect(out.costPerPass).toEqual([{ model: 'model-r', cost_per_pass: '0.6' }]);
    // visible to this process's store and to readers
    const rows = await store.query<{ attempt_id: string }>('SELECT attempt_id FROM fleet_remote.attempts FINAL ORDER BY attempt_id');
    expect(rows.map((r) => r.attempt_id)).toEqual(['r1', 'r2']);
    const viaReader = await get(guarded.url, { query: 'SELECT count() FROM fleet_remote.attempts FINAL', user: 'default', password: READ_TOKEN });
    expect(await viaReader.text()).toBe('2\n');
    // running the migrations again through the endpoint is a no-op, as against a server
    const again = await runWriter(guarded.url, 'perpass_writer', WRITE_TOKEN, 'fleet_remote', remoteRows);
    expect(again.migrated!.applied).toEqual([]);
    expect(again.count).toBe(2);
  });

  it('refuses writes without the write token', async () => {
    const before = await snapshot();
    const wrong = await runWriter(guarded.url, 'perpass_writer', 'not-the-write-token', 'fleet_denied', remoteRows);
    expect(wrong.error).toMatchObject({ code: '516', type: 'AUTHENTICATION_FAILED' });
    const reader = await runWriter(guarded.url, 'default', READ_TOKEN, 'fleet_denied', remoteRows);
    expect(reader.error).toMatchObject({ code: '164', type: 'READONLY' });
    // an endpoint without write mode: the writer's name gains nothing
    const noWriteMode = await runWriter(open.url, 'perpass_writer', WRITE_TOKEN, 'fleet_denied', remoteRows);
    expect(noWriteMode.error).toMatchObject({ code: '164', type: 'READONLY' });
    expect(await snapshot()).toEqual(before);
  });

  it('keeps GET read-only and host-side and admin statements out of write mode', async () => {
    const writer = { user: 'perpass_writer', password: WRITE_TOKEN };
    await expectHttpError(await get(guarded.url, { query: 'DROP TABLE fleet_remote.attempts', ...writer }), 500, 164, 'READONLY');
    await expectHttpError(await post(guarded.url, 'SYSTEM DROP MARK CACHE', writer), 403, 497, 'ACCESS_DENIED');
    await expectHttpError(await post(guarded.url, 'KILL QUERY WHERE 1', writer), 403, 497, 'ACCESS_DENIED');
    await expectHttpError(await post(guarded.url, "INSERT INTO FUNCTION file('x.csv', 'CSV', 'a UInt8') SELECT 1", writer), 403, 497, 'ACCESS_DENIED');
    await expectHttpError(await post(guarded.url, "INSERT INTO fleet_remote.attempts (attempt_id) FROM INFILE '/etc/hostname' FORMAT LineAsString", writer), 500, 344, 'SUPPORT_IS_DISABLED');
    const outfile = path.join(tempDir('outfile'), 'w.csv');
    await expectHttpError(await post(guarded.url, `INSERT INTO fleet_remote.attempts (attempt_id, tenant, spec_id, spec_tier) VALUES ('v1', 'default', 's', 't'); SELECT 1 INTO OUTFILE '${outfile}'`, writer), 501, 48, 'NOT_IMPLEMENTED');
    expect(existsSync(outfile)).toBe(false);
    // inline VALUES without a second statement are fine
    const ok = await post(guarded.url, "INSERT INTO fleet_remote.attempts (attempt_id, tenant, spec_id, spec_tier, started_at, version) VALUES ('v1', 'default', 's', 't', '2026-11-01 00:00:00', 1);", writer);
    expect(ok.status, await ok.text()).toBe(200);
    const [n] = await store.query<{ n: number }>("SELECT count() AS n FROM fleet_remote.attempts FINAL WHERE attempt_id = 'v1'");
    expect(n!.n).toBe(1);
  });
});

describe('limits and robustness', () => {
  it('caps the body before and after decompression (413) and survives bad bodies', async () => {
    const small = await startQueryEndpoint({ store, port: 0, maxBodyBytes: 1024, maxResultBytes: 1024 * 1024 });
    try {
      await expectHttpError(await post(small.url, `SELECT '${'x'.repeat(2000)}'`), 413, 229, 'QUERY_IS_TOO_LARGE');
      await expectHttpError(await post(small.url, gzipSync(`SELECT '${'x'.repeat(5000)}'`), {}, { headers: { 'Content-Encoding': 'gzip' } }), 413, 229, 'QUERY_IS_TOO_LARGE');
      await expectHttpError(await post(small.url, Buffer.from('not gzip'), {}, { headers: { 'Content-Encoding': 'gzip' } }), 500, 271, 'CANNOT_DECOMPRESS');
      await expectHttpError(await post(small.url, 'SELECT 1', {}, { headers: { 'Content-Encoding': 'lzma' } }), 500, 89, 'UNKNOWN_COMPRESSION_METHOD');
      await expectHttpError(await post(small.url, Buffer.from([0x53, 0x45, 0xff, 0xfe])), 400, 36, 'BAD_ARGUMENTS');
      await expectHttpError(await get(small.url, { query: 'SELECT 1', session_id: 's1', session_timeout: 'soon' }), 400, 36, 'BAD_ARGUMENTS');
      await expectHttpError(await fetch(`${small.url}/?query=SELECT+1`, { method: 'PUT', body: 'x' }), 405, 1, 'UNSUPPORTED_METHOD');
      await expectHttpError(await get(small.url, { query: 'SELECT concat(toString(number), repeat(\'x\', 100)) FROM numbers(100000)' }), 500, 396, 'TOO_MANY_ROWS_OR_BYTES');
      expect(await (await get(small.url, { query: 'SELECT 1' })).text()).toBe('1\n');
    } finally {
      await small.close();
    }
  });

  it('bounds concurrent queries and answers each of many parallel requests', async () => {
    const busy = await startQueryEndpoint({ store, port: 0, maxConcurrentQueries: 1, maxQueuedQueries: 1, queueTimeoutMs: 60_000 });
    try {
      const results = await Promise.all(Array.from({ length: 6 }, (_, i) => get(busy.url, { query: `SELECT sleep(0.2), ${i} FORMAT TSV` })));
      const statuses = results.map((r) => r.status).sort();
      // one runs, one waits, the rest are told to come back
      expect(statuses.filter((s) => s === 200).length).toBeGreaterThanOrEqual(2);
      for (const r of results.filter((x) => x.status !== 200)) {
        expect(r.status).toBe(503);
        expect(r.headers.get('retry-after')).toBe('1');
        await expectHttpError(r, 503, 202, 'TOO_MANY_SIMULTANEOUS_QUERIES');
      }
      expect(await (await get(busy.url, { query: 'SELECT 1' })).text()).toBe('1\n');
    } finally {
      await busy.close();
    }
    const parallel = await Promise.all(Array.from({ length: 20 }, (_, i) => client.query({ query: `SELECT ${i} AS i`, format: 'JSONEachRow' }).then((r) => r.json())));
    expect(parallel).toEqual(Array.from({ length: 20 }, (_, i) => [{ i }]));
  });

  it('stops a query at the execution time cap (TIMEOUT_EXCEEDED, 408)', async () => {
    const quick = await startQueryEndpoint({ store, port: 0, maxExecutionTimeSec: 1 });
    try {
      await expectHttpError(await get(quick.url, { query: 'SELECT count() FROM system.numbers_mt WHERE NOT ignore(sipHash64(number))' }), 408, 159, 'TIMEOUT_EXCEEDED');
    } finally {
      await quick.close();
    }
  });

  it('caps the memory of a reader\'s query, which the reader cannot lift', async () => {
    const lean = await startQueryEndpoint({ store, port: 0, maxMemoryUsageBytes: 16 * 1024 * 1024 });
    try {
      const hungry = 'SELECT length(groupArray(number)) FROM numbers(20000000) FORMAT TSV'; // ~160 MB of array
      await expectHttpError(await get(lean.url, { query: hungry }), 500, 241, 'MEMORY_LIMIT_EXCEEDED');
      await expectHttpError(await get(lean.url, { query: hungry, max_memory_usage: '0' }), 500, 164, 'READONLY');
      expect(await (await get(lean.url, { query: 'SELECT count() FROM numbers(20000000) FORMAT TSV' })).text()).toBe('20000000\n');
      expect(await (await get(open.url, { query: hungry })).text()).toBe('20000000\n'); // the default cap: a quarter of the machine's memory
    } finally {
      await lean.close();
    }
  });

  it('compresses a response in the codec offered, as its profile says, unless the request turns it off', async () => {
    const res = await fetch(`${open.url}/?${new URLSearchParams({ query: 'SELECT 1 FORMAT TSV', enable_http_compression: '1' })}`, {
      headers: { 'Accept-Encoding': 'gzip' },
    });
    expect(res.headers.get('content-encoding')).toBe('gzip');
    const raw = await new Promise<Buffer>((resolve, reject) => {
      httpGet(`${open.url}/?${new URLSearchParams({ query: 'SELECT 99 FORMAT TSV', enable_http_compression: '1' })}`, { headers: { 'Accept-Encoding': 'gzip' } }, (r) => {
        const chunks: Buffer[] = [];
        r.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks))).on('error', reject);
      }).on('error', reject);
    });
    expect(gunzipSync(raw).toString()).toBe('99\n');
    const byProfile = await get(open.url, { query: 'SELECT 1 FORMAT TSV' }, { headers: { 'Accept-Encoding': 'zstd' } });
    expect(byProfile.headers.get('content-encoding')).toBe('zstd');
    expect(await byProfile.text()).toBe('1\n');
    const off = await get(open.url, { query: 'SELECT 1 FORMAT TSV', enable_http_compression: '0' }, { headers: { 'Accept-Encoding': 'gzip' } });
    expect(off.headers.get('content-encoding')).toBeNull();
    expect(await off.text()).toBe('1\n');
    // What clickhouse-connect reads to decide whether to ask for compression: on, in a readonly session.
    const shown = await get(open.url, { query: "SELECT value, changed, readonly FROM system.settings WHERE name = 'enable_http_compression' FORMAT TSV" });
    expect(await shown.text()).toBe('1\t1\t1\n');
  });
});

describe('options', () => {
  it('are validated, naming the bad one', async () => {
    await expect(startQueryEndpoint({ store, port: 70_000 })).rejects.toThrow(/port:/);
    await expect(startQueryEndpoint({ store, port: 0, write: true })).rejects.toThrow(/writeToken: write mode needs a write token/);
    await expect(startQueryEndpoint({ store, port: 0, writeToken: 'short' })).rejects.toThrow(/writeToken: must be at least 16 characters/);
    await expect(startQueryEndpoint({ store, port: 0, readToken: WRITE_TOKEN, writeToken: WRITE_TOKEN })).rejects.toThrow(/writeToken: must differ from readToken/);
    await expect(startQueryEndpoint({ port: 0 })).rejects.toThrow(/store: give the embedded store/);
    // @ts-expect-error an unknown option is refused, not ignored
    await expect(startQueryEndpoint({ store, port: 0, readtoken: 'x' })).rejects.toThrow(/readtoken/);
  });

  it('serve a chDB directory given as dataDir', async () => {
    const byDir = await startQueryEndpoint({ dataDir: store.dataDir!, database: 'fleet', port: 0 });
    try {
      expect(await (await get(byDir.url, { query: 'SELECT count() FROM attempts FINAL' })).text()).toBe('3\n');
    } finally {
      await byDir.close();
    }
  });

  it('is read-only unless a write token is given, and binds 127.0.0.1 by default', () => {
    expect(open.writeMode).toBe(false);
    expect(guarded.writeMode).toBe(true);
    expect(open.host).toBe('127.0.0.1');
    expect(open.url).toBe(`http://127.0.0.1:${open.port}`);
  });
});
