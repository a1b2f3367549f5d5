/**
 * The query endpoint's policy on what clients send every day: the
 * per-query settings accepted as URL parameters and in a SETTINGS clause
 * (and those refused), functions however they are spelled (case, aliases,
 * aggregate combinators, backquotes), and the statement shapes Grafana,
 * `@clickhouse/client` and curl users write.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startQueryEndpoint, type RunningQueryEndpoint } from '../query/endpoint.ts';
import type { Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

let store: Store;
let endpoint: RunningQueryEndpoint;

beforeAll(async () => {
  store = await freshStore('fleet');
  endpoint = await startQueryEndpoint({ store, port: 0, maxExecutionTimeSec: 30, maxThreads: 4 });
}, 120_000);

afterAll(async () => {
  await endpoint?.close();
  await store?.close();
});

async function ask(query: string, params: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(`${endpoint.url}/?${new URLSearchParams(params)}`, { method: 'POST', body: query });
  return { status: res.status, body: await res.text() };
}

const ok = async (query: string, params: Record<string, string> = {}): Promise<string> => {
  const a = await ask(query, params);
  expect(a.status, `${query} ${JSON.stringify(params)}: ${a.body}`).toBe(200);
  return a.body;
};

describe('per-query settings, as URL parameters and in SETTINGS', () => {
  it('accepts the harmless ones and they take effect', async () => {
    expect(await ok('SELECT number FROM numbers(10) FORMAT TSV', { limit: '2', offset: '3' })).toBe('3\n4\n');
    expect(await ok('SELECT number FROM numbers(10) SETTINGS limit = 2, offset = 3 FORMAT TSV')).toBe('3\n4\n');
    expect(await ok('SELECT number FROM numbers(100) FORMAT TSV', { max_result_rows: '5', result_overflow_mode: 'break' })).not.toBe('');
    expect(await ok("SELECT getSetting('max_threads') FORMAT TSV", { max_threads: '2' })).toBe('2\n');
    expect(await ok("SELECT getSetting('max_threads') FORMAT TSV SETTINGS max_threads = 3")).toBe('3\n');
    expect(await ok("SELECT getSetting('max_threads') FORMAT TSV")).toBe('4\n'); // the cap, whatever the core count
    expect(await ok("SELECT toDateTime('2026-01-01 00:00:00', 'UTC') FORMAT TSV", { session_timezone: 'Asia/Tokyo', date_time_output_format: 'iso' })).toBe('2026-01-01T00:00:00Z\n');
    expect(await ok('SELECT toUInt64(1) AS n FORMAT JSONEachRow SETTINGS output_format_json_quote_64bit_integers = 1')).toBe('{"n":"1"}\n');
    expect(await ok('SELECT toDecimal64(1.5, 2) AS d FORMAT JSONEachRow', { output_format_json_quote_decimals: '1' })).toBe('{"d":"1.5"}\n');
    expect(await ok('SELECT number FROM numbers(3) FORMAT JSON SETTINGS extremes = 1')).toContain('"extremes"');
    expect(await ok('SELECT 1 FORMAT TSV SETTINGS readonly = 1', { readonly: '1', join_use_nulls: '1', max_execution_time: '5' })).toBe('1\n');
    expect(await ok('SELECT 1 FORMAT TSV', { wait_end_of_query: '1', send_progress_in_http_headers: '1', enable_http_compression: '1', http_zlib_compression_level: '3' })).toBe('1\n');
    expect(await ok('SELECT * FROM (SELECT 1 SETTINGS max_threads = 2) FORMAT TSV SETTINGS max_threads = 2')).toBe('1\n');
  });

  it('refuses the others, as URL parameters and in SETTINGS, naming them', async () => {
    const refused: Array<[string, Record<string, string>?]> = [
      ['SELECT 1 SETTINGS max_threads = 64'],
      ['SELECT 1', { max_threads: '64' }],
      ['SELECT 1 SETTINGS max_execution_time = 3600'],
      ['SELECT 1 SETTINGS readonly = 0'],
      ['SELECT 1 SETTINGS max_memory_usage = 0'],
      ['SELECT 1 SETTINGS allow_introspection_functions = 1'],
      ['SELECT 1', { allow_introspection_functions: '1' }],
      ['SELECT 1 SETTINGS format_schema = \'/etc/passwd\''],
      ['SELECT 1', { max_result_bytes: '0' }],
      ['SELECT * FROM (SELECT 1 SETTINGS max_memory_usage = 1)'],
      ['SELECT 1 SETTINGS http_zlib_compression_level = 42'],
    ];
    for (const [query, params] of refused) {
      const a = await ask(query, params);
      expect(a.status, `${query} ${JSON.stringify(params)}`).not.toBe(200);
      expect(a.body).toMatch(/\(READONLY\)|\(ACCESS_DENIED\)/);
    }
  });
});

describe('functions however they are written', () => {
  it('runs allowed ones by case-insensitive name, alias, combinator', async () => {
    expect(await ok("SELECT LOWER('A'), lcase('B'), CoUnT(), sumIf(number, number > 1), uniqExactStateIf(number, 1) IS NOT NULL, `length`('abc') FROM numbers(3) FORMAT TSV")).toBe('a\tb\t3\t2\t1\t3\n');
    expect(await ok('SELECT finalizeAggregation(quantilesState(0.5)(number)), arrayMap(x -> x * 2, [1, 2]) FROM numbers(3) FORMAT TSV')).toBe('[1]\t[2,4]\n');
    expect(await ok('SELECT number, row_number() OVER (ORDER BY number DESC), lagInFrame(number) OVER (ORDER BY number) FROM numbers(2) ORDER BY number FORMAT TSV')).toBe('0\t2\t0\n1\t1\t0\n');
  });

  it('refuses host-reaching ones however spelled, and keeps the engine\'s answer for unknown ones', async () => {
    // `file` is case-sensitive: FILE is no function at all, and the engine's answer says so.
    const upper = await ask("SELECT FILE('/etc/passwd')");
    expect(upper.body).toContain('(UNKNOWN_FUNCTION)');
    expect(await ok("SELECT getSetting('allow_introspection_functions') FORMAT TSV")).toBe('false\n');
    for (const query of ["SELECT `file`('/etc/passwd')", "SELECT * APPLY(file) FROM (SELECT '/etc/passwd' AS p)", "SELECT arrayMap(x -> file(x), ['/etc/passwd'])", "SELECT hostName()", "SELECT getServerSetting('path')"]) {
      const a = await ask(query);
      expect(a.status, query).toBe(403);
      expect(a.body).toContain('(ACCESS_DENIED)');
      expect(a.body).not.toContain('root:x:0:0');
    }
    const unknown = await ask('SELECT no_such_function(1)');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain('(UNKNOWN_FUNCTION)');
  });
});

describe('statement shapes of clients', () => {
  it('answers CTEs, UNION, subqueries, parameterized views, SHOW, DESCRIBE, EXISTS, EXPLAIN', async () => {
    for (const query of [
      'WITH t AS (SELECT number FROM numbers(3)) SELECT sum(number) FROM t',
      'SELECT 1 UNION ALL SELECT 2 EXCEPT SELECT 2',
      'SELECT count() FROM fleet.attempts WHERE attempt_id IN (SELECT attempt_id FROM fleet.attempts)',
      'SELECT * FROM fleet.v_cost_per_pass_window(since = now64(9) - INTERVAL 1 DAY, until = now64(9))',
      'SHOW TABLES FROM fleet',
      'SHOW DATABASES',
      'DESCRIBE TABLE fleet.attempts',
      'EXISTS TABLE fleet.attempts',
      'EXPLAIN SELECT count() FROM fleet.attempts',
      'SELECT * FROM system.one',
    ]) await ok(query);
  });

  it('refuses server-wide and host statements to readers', async () => {
    for (const query of ['SHOW PROCESSLIST', 'SHOW MERGES', 'SHOW FILESYSTEM CACHES', 'SHOW CLUSTERS', 'SYSTEM STOP MERGES', 'KILL QUERY WHERE 1', 'SET max_threads = 1', 'SELECT * FROM system.stack_trace', 'SELECT * FROM system.disks', "SELECT '/' IN system.disks", "BACKUP TABLE fleet.attempts TO File('/tmp/x')"]) {
      const a = await ask(query);
      expect(a.status, query).not.toBe(200);
      expect(a.body, query).toMatch(/\((READONLY|ACCESS_DENIED)\)/);
    }
  });
});
