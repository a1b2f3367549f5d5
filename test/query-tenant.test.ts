/**
 * Tenant-scoped readers of the embedded query endpoint: a read token bound
 * to a tenant sees only that tenant's rows in every perpass table and view,
 * whatever the statement — raw tables, views, parameterized views, window
 * functions, joins, UNION, subqueries, CTEs, query parameters naming
 * tables, system tables — and an unscoped read token still sees all.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatInstant, type AttemptRow } from '../contract/rows.ts';
import { startQueryEndpoint, type RunningQueryEndpoint } from '../query/endpoint.ts';
import type { Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

const ACME = 'acme-token-0001';
const ALL = 'all-tenants-token';
/** Every value of the other tenant carries this marker, so any leak of its rows shows in the answer's text. */
const MARK = 'globexsecret';
const now = BigInt(Date.now()) * 1_000_000n;

function attempt(tenant: string, id: string, model: string, outcome: AttemptRow['outcome'], cost: string, minutesAgo: number): AttemptRow {
  const started = now - BigInt(minutesAgo) * 60_000_000_000n;
  return {
    attempt_id: id, tenant, spec_id: `spec-${id}`, spec_tier: 'tier-2', canary: `${tenant}-canary`, variant: 'base', pool: 'builder', model,
    attempt_number: 1, outcome, reason: '', started_at: formatInstant(started), ended_at: formatInstant(started + 60_000_000_000n), duration_ms: 60_000,
    llm_calls: 1, tool_calls: 1, input_tokens: 10, cache_read_tokens: 0, cache_write_tokens: 0, output_tokens: 5, reasoning_tokens: 0,
    cost_usd: cost, reported_cost_usd: null, unpriced_calls: 0, trace_id: `trace-${id}`, span_id: `span-${id}`, sampled: true, sampling_rate: 1,
    decision: 'ended', version: 1,
  };
}

const ACME_ROWS = [attempt('acme', 'acme-1', 'acme-model', 'pass', '0.5', 30), attempt('acme', 'acme-2', 'acme-model', 'fail', '0.25', 20)];
// The other tenant's rows are older, costlier and more numerous, so min/max/count leaks would show.
const GLOBEX_ROWS = [1, 2, 3, 4, 5].map((i) => attempt(`${MARK}-tenant`, `${MARK}-${i}`, `${MARK}-model`, 'pass', '99', 600 + i));

let store: Store;
let endpoint: RunningQueryEndpoint;

beforeAll(async () => {
  store = await freshStore('fleet');
  await store.insert('attempts', [...ACME_ROWS, ...GLOBEX_ROWS]);
  await store.command(`INSERT INTO fleet.dead_letters (source, key, error, value) VALUES ('otlp', '${MARK}', 'bad', '${MARK}')`);
  // Views with a tenant column over a table without one: the row filter cannot reach their rows.
  await store.command("CREATE VIEW fleet.v_leak AS SELECT 'acme' AS tenant, key FROM fleet.dead_letters");
  await store.command("CREATE VIEW fleet.v_leak_nested AS SELECT * FROM fleet.v_leak WHERE tenant = 'acme'");
  await store.command('CREATE VIEW fleet.v_leak_param AS SELECT tenant, key FROM fleet.v_leak WHERE key != {k:String}');
  endpoint = await startQueryEndpoint({ store, port: 0, readToken: ALL, tenantTokens: { [ACME]: 'acme' } });
}, 120_000);

afterAll(async () => {
  await endpoint?.close();
  await store?.close();
});

async function ask(token: string, query: string, params: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(`${endpoint.url}/?${new URLSearchParams({ default_format: 'TSVRaw', ...params })}`, {
    method: 'POST',
    body: query,
    headers: { Authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: await res.text() };
}

const window = `since = now64(9) - INTERVAL 1 YEAR, until = now64(9) + INTERVAL 1 DAY`;

/** Statements a scoped reader may run; each must answer, and answer acme's rows only. */
const ANSWERED: Array<[string, string, Record<string, string>?]> = [
  ['raw table', 'SELECT * FROM fleet.attempts'],
  ['FINAL', 'SELECT * FROM fleet.attempts FINAL'],
  ['unqualified name', 'SELECT * FROM attempts'],
  ['count()', 'SELECT count(), uniqExact(tenant), groupArray(tenant) FROM fleet.attempts'],
  ['min/max of the sort key', 'SELECT min(started_at), max(started_at), max(cost_usd), sum(cost_usd) FROM fleet.attempts'],
  ['view', 'SELECT * FROM fleet.v_cost_per_pass'],
  ['parameterized view', `SELECT * FROM fleet.v_cost_per_pass_window(${window})`],
  ['routing view', 'SELECT * FROM fleet.v_routing_window(since = now64(9) - INTERVAL 1 YEAR, until = now64(9), min_pass_rate = 0, z = 0)'],
  ['spec outcomes', 'SELECT * FROM fleet.v_spec_outcomes'],
  ['pass rate', `SELECT * FROM fleet.v_pass_rate_window(${window}, bucket_seconds = 3600)`],
  ['projection', 'SELECT * FROM fleet.v_projection'],
  ['window functions', 'SELECT attempt_id, count() OVER (), sum(cost_usd) OVER (), row_number() OVER (ORDER BY started_at) FROM fleet.attempts'],
  ['self join', 'SELECT a.attempt_id, b.model, b.tenant FROM fleet.attempts AS a INNER JOIN fleet.attempts AS b ON a.spec_tier = b.spec_tier'],
  ['cross join', 'SELECT a.attempt_id, b.attempt_id FROM fleet.attempts AS a CROSS JOIN fleet.attempts AS b'],
  ['join with a view', 'SELECT a.attempt_id, v.model FROM fleet.attempts AS a LEFT JOIN fleet.v_cost_per_pass AS v ON 1 = 1'],
  ['UNION', 'SELECT attempt_id FROM fleet.attempts UNION ALL SELECT model FROM fleet.attempts UNION DISTINCT SELECT tenant FROM fleet.v_spec_outcomes'],
  ['IN subquery', "SELECT * FROM fleet.attempts WHERE attempt_id IN (SELECT attempt_id FROM fleet.attempts WHERE tenant != '')"],
  ['scalar subquery', 'SELECT (SELECT max(attempt_id) FROM fleet.attempts), (SELECT count() FROM fleet.llm_calls), (SELECT groupArray(model) FROM fleet.attempts)'],
  ['CTE', 'WITH x AS (SELECT * FROM fleet.attempts) SELECT * FROM x'],
  ['view() table function', 'SELECT * FROM view(SELECT * FROM fleet.attempts)'],
  ['filter on the other tenant', `SELECT * FROM fleet.attempts WHERE tenant LIKE '${MARK}%'`],
  ['EXISTS', `SELECT exists(SELECT 1 FROM fleet.attempts WHERE tenant LIKE '${MARK}%')`],
  ['virtual columns', 'SELECT _part, _partition_id, attempt_id FROM fleet.attempts'],
  ['table by query parameter', 'SELECT * FROM {t:Identifier}', { param_t: 'attempts' }],
  ['spans and llm_calls', 'SELECT count() FROM fleet.spans UNION ALL SELECT count() FROM fleet.llm_calls'],
  ['shared catalog', 'SELECT count() > 0 FROM fleet.prices'],
  ['harmless system table', 'SELECT name FROM system.databases'],
];

/** Statements refused to a scoped reader: they would read other tenants' rows, counts or sizes. */
const REFUSED: Array<[string, string, Record<string, string>?]> = [
  ['system.parts', 'SELECT sum(rows) FROM system.parts'],
  ['system.tables', "SELECT total_rows FROM system.tables WHERE name = 'attempts'"],
  ['system.columns', 'SELECT data_compressed_bytes FROM system.columns'],
  ['system.processes', 'SELECT query FROM system.processes'],
  ['system.query_log', 'SELECT query FROM system.query_log'],
  ['SHOW PROCESSLIST', 'SHOW PROCESSLIST'],
  ['merge()', "SELECT * FROM merge('fleet', '^attempts$')"],
  ['remote()', "SELECT * FROM remote('127.0.0.1', fleet.attempts)"],
  ['mergeTreeIndex()', "SELECT * FROM mergeTreeIndex('fleet', 'attempts')"],
  ['loop()', 'SELECT * FROM loop(fleet.attempts) LIMIT 10'],
  ['table without a tenant column', 'SELECT * FROM fleet.dead_letters'],
  ['view over a table without a tenant column', 'SELECT * FROM fleet.v_leak'],
  ['view over such a view', 'SELECT * FROM fleet.v_leak_nested'],
  ['parameterized view over such a view', "SELECT * FROM fleet.v_leak_param(k = 'x')"],
  ['CTE shadowing a name only inside its subquery', 'SELECT * FROM (WITH v_leak AS (SELECT 1) SELECT * FROM v_leak), v_leak'],
  ['another database', 'SELECT * FROM default.whatever'],
  ['EXPLAIN ESTIMATE', 'EXPLAIN ESTIMATE SELECT * FROM fleet.attempts'],
  ['lifting the filter', 'SELECT * FROM fleet.attempts SETTINGS additional_table_filters = {}'],
  ['lifting the filter by URL', 'SELECT * FROM fleet.attempts', { additional_table_filters: "{'fleet.attempts':'1'}" }],
  ['trivial count', 'SELECT count() FROM fleet.attempts SETTINGS optimize_trivial_count_query = 1'],
  ['system table by query parameter', 'SELECT * FROM {t:Identifier}', { param_t: 'system.parts' }],
  ['joinGet', "SELECT joinGet('fleet.attempts', 'model', 'x')"],
  ['IN a table without a tenant column', "SELECT count() FROM fleet.attempts WHERE spec_id NOT IN fleet.dead_letters"],
  ['IN a system table', "SELECT 'x' IN system.tables"],
  ['hasColumnInTable', "SELECT hasColumnInTable('fleet', 'attempts', 'tenant')"],
];

describe('a tenant-scoped read token', () => {
  it.each(ANSWERED)('answers %s with its own tenant\'s rows only', async (_, query, params) => {
    const scoped = await ask(ACME, query, params);
    expect(scoped.status, scoped.body).toBe(200);
    expect(scoped.body).not.toContain(MARK);
    expect(scoped.body).not.toMatch(/\b99(\.0+)?\b/); // the other tenant's cost
    // The same statement, unscoped, does see the other tenant (where the statement reads attempts at all).
    const unscoped = await ask(ALL, query, params);
    expect(unscoped.status, unscoped.body).toBe(200);
  });

  it('sees exactly its rows: counts, sums and ranges computed on them', async () => {
    const scoped = await ask(ACME, 'SELECT count(), sum(cost_usd), min(started_at) = (SELECT min(started_at) FROM fleet.attempts FINAL) FROM fleet.attempts FINAL');
    expect(scoped.body).toBe('2\t0.75\t1\n');
    const all = await ask(ALL, 'SELECT count(), uniqExact(tenant) FROM fleet.attempts FINAL');
    expect(all.body).toBe('7\t2\n');
    const mine = await ask(ACME, "SELECT attempt_id FROM fleet.attempts FINAL ORDER BY attempt_id");
    expect(mine.body).toBe('acme-1\nacme-2\n');
  });

  it.each(REFUSED)('is refused %s', async (_, query, params) => {
    const scoped = await ask(ACME, query, params);
    expect(scoped.status, scoped.body).not.toBe(200);
    expect(scoped.body).toMatch(/\((ACCESS_DENIED|READONLY)\)/);
    expect(scoped.body).not.toContain(MARK);
  });

  it('an unscoped token is not a tenant token, and a wrong token is refused', async () => {
    expect((await ask(ALL, `SELECT count() FROM fleet.attempts WHERE tenant LIKE '${MARK}%'`)).body).toBe('5\n');
    const wrong = await ask('acme-token-0002', 'SELECT 1');
    expect(wrong.status).toBe(403);
    expect(wrong.body).toContain('AUTHENTICATION_FAILED');
  });
});
