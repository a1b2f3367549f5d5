/**
 * The ClickHouse clients people look at data with, for real, each with its
 * default settings, against a child `fleet start` after `fleet demo`:
 *
 * - clickhouse-go v2 over HTTP (Grafana's ClickHouse datasource): its native
 *   API (plain, LZ4 and ZSTD `compress=1`) and database/sql, under
 *   Grafana's 60 s query deadline; the plugin's own connection (gzip, its
 *   `limit` "Row limit" setting) for its metadata queries;
 * - clickhouse-connect in a virtualenv (pandas, Superset): query, query_df,
 *   query_arrow, with the session_id it generates;
 * - ClickHouse JDBC v2 via Maven (DBeaver, Metabase): metadata,
 *   PreparedStatement, BigDecimal, over its default `compress=1`.
 *
 * Each must read exactly what @clickhouse/client reads (embedded.test.ts
 * checks that against the demo's ground truth): $/pass as exact decimals,
 * a Map and a DateTime64(9) column, and a bad query's error code.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cityHash128 } from '../query/cityhash.ts';
import { startFleet, type Child } from './support/processes.ts';
import { tempDir } from './support/store.ts';
import { goBuild, mavenBuild, pythonVenv } from './support/toolchains.ts';

const run = promisify(execFile);

const COST_SQL = 'SELECT model, spec_tier, cost_per_pass FROM fleet.v_cost_per_pass ORDER BY model, spec_tier';
const PREPARED_SQL = 'SELECT model, spec_tier, cost_per_pass FROM fleet.v_cost_per_pass WHERE spec_tier = ? ORDER BY model';
const SPAN_SQL = 'SELECT span_id, start_time, attributes FROM fleet.spans WHERE length(attributes) > 0 ORDER BY start_time, span_id LIMIT 1';
const BAD_SQL = 'SELECT * FROM fleet.no_such_table';
const UNKNOWN_TABLE = 60;
/** What Grafana's datasource asks while one browses the query builder. */
const METADATA = ['SHOW DATABASES', 'SHOW TABLES FROM "fleet"', "SELECT name FROM system.columns WHERE database = 'fleet' AND table = 'spans'"];
const ROW_LIMIT = 1000;
const LIMIT_SQL = 'SELECT number FROM numbers(5000)';
/** Several Native blocks of the types the walker must frame, each value derived from n (the probe checks every row). */
const BIG_ROWS = 200_000;
const BIG_SQL = `SELECT number, toString(number), toLowCardinality(toString(number % 7)), map(toLowCardinality('k'), toString(number)),
  [fromUnixTimestamp64Nano(toInt64(number * 1000), 'UTC')], if(number % 2 = 0, NULL, toDecimal128(number + 0.5, 9)) FROM numbers(${BIG_ROWS})`;

const PYTHON_PACKAGES = ['clickhouse-connect==1.13.0', 'pandas==3.1.1', 'pyarrow==26.0.1', 'clickhouse-cityhash==1.0.2.4'];

type Cost = [string, string, string | null];
type Span = [string, string, Record<string, string>];

let fleet: Child | undefined;
let reference: ClickHouseClient | undefined;
let hostPort = '';
let expected: { cost: Cost[]; span: Span; metadata: Record<string, string[]> };
let tools: { go: string; python: string; java: string };

/** A decimal's exact value as text: trailing fractional zeros are a scale, not a value. */
const exact = (d: string | null) => (d === null ? null : d.includes('.') ? d.replace(/0+$/, '').replace(/\.$/, '') : d);
const exactCost = (rows: Cost[]) => rows.map(([m, t, c]) => [m, t, exact(c)]);

beforeAll(async () => {
  // The client toolchains build while the fleet starts; each is cached under .cache/ after its first build.
  const building = Promise.all([
    goBuild('clickhouse-go-probe', 'test/fixtures/clickhouse-go'),
    pythonVenv('clickhouse-connect', PYTHON_PACKAGES),
    mavenBuild('clickhouse-jdbc-probe', 'test/fixtures/clickhouse-jdbc'),
  ]);
  fleet = startFleet(['start', '--data-dir', tempDir('clients'), '--collector-port', '0', '--query-port', '0']);
  const m = await fleet.waitFor(/OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query (http:\/\/([\d.]+:\d+))/);
  hostPort = m[3]!;
  const demo = startFleet(['demo', '--endpoint', m[1]!, '--query-port', new URL(m[2]!).port, '--specs', '2']);
  await demo.waitFor(/all \d+ attempts visible/, 240_000);
  expect(await demo.exited).toBe(0);

  reference = createClient({ url: m[2]!, log: { level: ClickHouseLogLevel.OFF } });
  const rows = async <T>(query: string) =>
    (await reference!.query({ query, format: 'JSONEachRow', clickhouse_settings: { output_format_json_quote_decimals: 1 } })).json<T>();
  const cost = (await rows<{ model: string; spec_tier: string; cost_per_pass: string | null }>(COST_SQL)).map((r): Cost => [r.model, r.spec_tier, r.cost_per_pass]);
  const [span] = await rows<{ span_id: string; start_time: string; attributes: Record<string, string> }>(SPAN_SQL);
  const metadata: Record<string, string[]> = {};
  for (const q of METADATA) metadata[q] = (await (await reference.query({ query: q, format: 'JSONCompactEachRow' })).json<[string]>()).map((r) => r[0]).sort();
  expected = { cost, span: [span!.span_id, span!.start_time, span!.attributes], metadata };
  // The demo must have produced what the clients are checked on: priced cells, an unpriced one (NULL), a span with attributes.
  expect(cost.some((c) => c[2] !== null && /\.\d{4,}/.test(c[2]))).toBe(true);
  expect(cost.some((c) => c[2] === null)).toBe(true);
  expect(expected.span[1]).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9}$/);

  const [go, python, java] = await building;
  tools = { go, python, java };
}, 1_500_000);

afterAll(async () => {
  await reference?.close();
  await fleet?.kill();
});

async function probe(command: string, args: string[]): Promise<Record<string, unknown>> {
  try {
    const { stdout } = await run(command, args, { timeout: 180_000, maxBuffer: 16 * 1024 * 1024 });
    return JSON.parse(stdout) as Record<string, unknown>;
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    throw new Error(`${command} failed: ${err.message}\n${err.stdout ?? ''}\n${err.stderr ?? ''}`);
  }
}

describe('real ClickHouse clients against fleet start', () => {
  it("clickhouse-go v2 over HTTP (Grafana): native API plain/LZ4/ZSTD and database/sql read exact $/pass, Map, DateTime64(9), errors, 200k rows in many blocks; the plugin's gzip connection its metadata and row limit", async () => {
    const plan = { costSql: COST_SQL, spanSql: SPAN_SQL, badSql: BAD_SQL, metadata: METADATA, limitSql: LIMIT_SQL, limit: ROW_LIMIT, bigSql: BIG_SQL };
    type Big = { rows: number; sum: number; wrong: number; sample: string };
    const out = (await probe(tools.go, [JSON.stringify(plan), hostPort])) as Record<
      string,
      { cost: Cost[]; span: Span; badCode: number; limited: number; big: Big; metadata?: Record<string, string[]> }
    >;
    expect(Object.keys(out).sort()).toEqual(['database/sql', 'native', 'native-lz4', 'native-zstd']);
    for (const [api, got] of Object.entries(out)) {
      expect(exactCost(got.cost), api).toEqual(exactCost(expected.cost));
      expect(got.span, api).toEqual(expected.span);
      expect(got.badCode, api).toBe(UNKNOWN_TABLE);
      expect(got.limited, api).toBe(ROW_LIMIT);
      expect(got.big, api).toEqual({ rows: BIG_ROWS, sum: (BIG_ROWS * (BIG_ROWS - 1)) / 2, wrong: 0, sample: '' });
      if (api !== 'database/sql') expect(got.metadata, api).toEqual(expected.metadata);
    }
  }, 300_000);

  it('clickhouse-connect (pandas, Superset) with its generated session_id: query, query_df, query_arrow', async () => {
    const plan = { costSql: COST_SQL, spanSql: SPAN_SQL, badSql: BAD_SQL };
    const out = (await probe(tools.python, ['test/fixtures/clickhouse-connect/probe.py', JSON.stringify(plan), hostPort])) as {
      session_id: string;
      compression: string | null;
      badCode: number;
      query_arrow: { types: string[] };
    } & Record<'query' | 'query_df' | 'query_arrow', { cost: Cost[]; span: Span }>;
    expect(out.session_id).toMatch(/^[0-9a-f-]{36}$/); // the default it sends with every query
    // It saw enable_http_compression on in system.settings, so every query above offered its codecs.
    expect(out.compression?.split(',')).toEqual(expect.arrayContaining(['lz4', 'zstd', 'gzip']));
    for (const api of ['query', 'query_df', 'query_arrow'] as const) {
      expect(exactCost(out[api].cost), api).toEqual(exactCost(expected.cost));
      expect(out[api].span[0], api).toBe(expected.span[0]);
      expect(out[api].span[2], api).toEqual(expected.span[2]);
    }
    // Python's datetime holds microseconds; pandas and Arrow keep all nine digits.
    expect(out.query.span[1]).toBe(expected.span[1].slice(0, -3));
    expect(out.query_df.span[1]).toBe(expected.span[1]);
    expect(out.query_arrow.span[1]).toBe(expected.span[1]);
    expect(out.query_arrow.types[2]).toMatch(/^decimal/);
    expect(out.badCode).toBe(UNKNOWN_TABLE);
  }, 300_000);

  it('ClickHouse JDBC v2 (DBeaver, Metabase) over compress=1: metadata, PreparedStatement, BigDecimal', async () => {
    const out = (await probe('java', ['-cp', tools.java, 'perpass.Probe', COST_SQL, PREPARED_SQL, 'tier-3', SPAN_SQL, BAD_SQL, hostPort])) as {
      cost: Cost[];
      prepared: Cost[];
      span: Span;
      tables: string[];
      columns: string[];
      schemas: string[];
      badCode: number;
    };
    expect(exactCost(out.cost)).toEqual(exactCost(expected.cost));
    expect(exactCost(out.prepared)).toEqual(exactCost(expected.cost.filter((c) => c[1] === 'tier-3')));
    expect(out.span).toEqual(expected.span);
    expect(out.schemas).toEqual(expect.arrayContaining(['fleet', 'system']));
    expect(out.tables).toEqual(expect.arrayContaining(['spans', 'attempts', 'v_cost_per_pass']));
    expect(out.columns).toEqual(expect.arrayContaining(["start_time DateTime64(9, 'UTC')", 'attributes Map(LowCardinality(String), String)']));
    expect(out.badCode).toBe(UNKNOWN_TABLE);
  }, 300_000);

  it('answers Accept-Encoding: lz4 (clickhouse-connect\'s first choice) in LZ4 frames its lz4 package reads', async () => {
    const query = `${COST_SQL} FORMAT TSV`;
    const plain = await (await fetch(`http://${hostPort}/?${new URLSearchParams({ query })}`)).text();
    const script = [
      'import sys, urllib.request, lz4.frame',
      "req = urllib.request.Request(sys.argv[1], headers={'Accept-Encoding': 'lz4'})",
      'with urllib.request.urlopen(req) as r:',
      "    assert r.headers['Content-Encoding'] == 'lz4', r.headers['Content-Encoding']",
      '    sys.stdout.write(lz4.frame.decompress(r.read()).decode())',
    ].join('\n');
    const url = `http://${hostPort}/?${new URLSearchParams({ query, enable_http_compression: '1' })}`;
    const { stdout } = await run(tools.python, ['-c', script, url]);
    expect(stdout).toBe(plain);
    expect(plain.split('\n').length).toBeGreaterThan(expected.cost.length);
  });

  it('checksums compressed blocks with the CityHash128 v1.0.2 of clickhouse-cityhash (the Python driver\'s)', async () => {
    const lengths = [0, 1, 7, 8, 15, 16, 17, 31, 64, 100, 127, 128, 129, 255, 256, 1000, 4097];
    const script = [
      'import sys, json',
      'from clickhouse_cityhash.cityhash import CityHash128',
      'out = []',
      'for n in json.loads(sys.argv[1]):',
      '    h = CityHash128(bytes((i * 7 + 3) % 256 for i in range(n)))',
      // The binding's integer holds the word ClickHouse writes first in its high 64 bits.
      "    out.append((h >> 64).to_bytes(8, 'little').hex() + (h & (2**64 - 1)).to_bytes(8, 'little').hex())",
      'print(json.dumps(out))',
    ].join('\n');
    const { stdout } = await run(tools.python, ['-c', script, JSON.stringify(lengths)]);
    const theirs = JSON.parse(stdout) as string[];
    const ours = lengths.map((n) => cityHash128(Buffer.from(Array.from({ length: n }, (_, i) => (i * 7 + 3) % 256))).toString('hex'));
    expect(ours).toEqual(theirs);
  });
});
