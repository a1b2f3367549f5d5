/**
 * The views group attempts by `group_key` (0005_group_key.sql), one
 * LowCardinality column standing for (tenant, model, spec_tier, canary,
 * variant). These tests hold it to the five-column GROUP BY it replaces:
 * the same groups for keys that a naive join would confuse, the same
 * exact sums, FINAL still picking one version per attempt before grouping,
 * filters on the decoded columns, and a database created before the column
 * existed upgraded in place.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatInstant, type AttemptRow } from '../contract/rows.ts';
import { formatUsd, parseUsd } from '../pricing/index.ts';
import { migrate } from '../sql/migrate.ts';
import type { Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

const now = BigInt(Date.now()) * 1_000_000n;
const minutes = (m: number) => BigInt(m) * 60_000_000_000n;

type Key = Pick<AttemptRow, 'tenant' | 'model' | 'spec_tier' | 'canary' | 'variant'>;

/** Keys that collide under a plain ':'- or ''-join, empty parts, non-ASCII, the separator and hex-looking text. */
const KEYS: Key[] = [
  { tenant: 'a:b', model: 'c', spec_tier: 't', canary: '', variant: '' },
  { tenant: 'a', model: 'b:c', spec_tier: 't', canary: '', variant: '' },
  { tenant: 'a', model: 'b', spec_tier: 'c:t', canary: '', variant: '' },
  { tenant: 'ab', model: 'c', spec_tier: 't', canary: '', variant: '' },
  { tenant: 'a', model: 'bc', spec_tier: 't', canary: '', variant: '' },
  { tenant: '', model: '', spec_tier: '', canary: '', variant: '' },
  { tenant: '', model: '', spec_tier: '', canary: '', variant: ':' },
  { tenant: '', model: '', spec_tier: '', canary: ':', variant: '' },
  { tenant: 'équipe', model: 'gpt-5.1', spec_tier: 'tier-2', canary: 'tier-2/ü:∞', variant: 'd4-rich' },
  { tenant: '3A', model: '3A3A', spec_tier: 'tier-2', canary: '\\', variant: "'\"" },
];

function row(key: Key, i: number, n: number, over: Partial<AttemptRow> = {}): AttemptRow {
  const started = now - minutes(120 - i);
  const cost = i % 7 === 3 ? null : formatUsd(parseUsd('0.000000000000000001') * BigInt(1 + n * 1_000_003 + i * 999_999_937));
  return {
    attempt_id: `att-${n}-${i}`,
    spec_id: `spec-${n}-${Math.floor(i / 2)}`,
    pool: 'p',
    attempt_number: 1 + (i % 2),
    outcome: i % 3 === 0 ? 'fail' : 'pass',
    reason: '',
    started_at: formatInstant(started),
    ended_at: formatInstant(started + minutes(1)),
    duration_ms: 60_000,
    llm_calls: 1 + i,
    tool_calls: i,
    input_tokens: 1000 + n,
    cache_read_tokens: 10 * i,
    cache_write_tokens: n,
    output_tokens: 100 + i,
    reasoning_tokens: i * n,
    cost_usd: cost,
    reported_cost_usd: null,
    unpriced_calls: cost === null ? 1 : 0,
    trace_id: `t-${n}-${i}`,
    span_id: `s-${i}`,
    sampled: false,
    sampling_rate: 1,
    decision: 'ended',
    version: 10,
    ...key,
    ...over,
  };
}

const rows: AttemptRow[] = KEYS.flatMap((key, n) => Array.from({ length: 3 + n }, (_, i) => row(key, i, n)));
/** Partial re-assemblies of some attempts: lower version, another model and outcome. They must lose to the rows above. */
const partials: AttemptRow[] = rows.filter((_, j) => j % 4 === 0).map((r) => ({ ...r, model: `${r.model}:partial`, outcome: 'fail' as const, cost_usd: '1', version: 3 }));

/** The hand computation: per five-column key, counts and exact sums over the winning version of each attempt. */
function expected(): Map<string, { attempts: number; passes: number; cost: string | null; unpriced: number; input: number }> {
  const out = new Map<string, { attempts: number; passes: number; cost: bigint | null; unpriced: number; input: number }>();
  for (const r of rows) {
    const k = JSON.stringify([r.tenant, r.model, r.spec_tier, r.canary, r.variant]);
    const e = out.get(k) ?? { attempts: 0, passes: 0, cost: null, unpriced: 0, input: 0 };
    e.attempts++;
    if (r.outcome === 'pass') e.passes++;
    if (r.cost_usd === null) e.unpriced++;
    else e.cost = (e.cost ?? 0n) + parseUsd(r.cost_usd);
    e.input += r.input_tokens;
    out.set(k, e);
  }
  return new Map([...out].map(([k, e]) => [k, { ...e, cost: e.cost === null ? null : formatUsd(e.cost) }]));
}

type ViewRow = Key & { attempts: number; passes: number; cost_usd: string | null; unpriced_attempts: number; input_tokens: number };

async function checkView(store: Store): Promise<void> {
  const got = await store.query<ViewRow>(`SELECT * FROM ${store.database}.v_cost_per_pass`);
  const want = expected();
  expect(got).toHaveLength(want.size);
  for (const r of got) {
    const e = want.get(JSON.stringify([r.tenant, r.model, r.spec_tier, r.canary, r.variant]));
    expect(e, JSON.stringify(r)).toBeDefined();
    expect({ attempts: r.attempts, passes: r.passes, cost: r.cost_usd === null ? null : formatUsd(parseUsd(r.cost_usd)), unpriced: r.unpriced_attempts, input: r.input_tokens }).toEqual(e);
  }
}

let store: Store;

beforeAll(async () => {
  store = await freshStore('gk');
  await store.insert('attempts', partials);
  await store.insert('attempts', rows);
  await store.insert('attempts', rows); // redelivered
});
afterAll(async () => store?.close());

describe('group_key', () => {
  it('is the five key columns, computed by ClickHouse on insert and hidden from SELECT *', async () => {
    const [r] = await store.query<Record<string, unknown>>('SELECT * FROM gk.attempts LIMIT 1');
    expect(Object.keys(r!)).not.toContain('group_key');
    const decoded = await store.query<{ same: number; n: number }>(
      `SELECT countIf(unhex(substringIndex(group_key, ':', 1)) = tenant
                  AND unhex(substringIndex(substringIndex(group_key, ':', 2), ':', -1)) = model
                  AND unhex(substringIndex(substringIndex(group_key, ':', 3), ':', -1)) = spec_tier
                  AND unhex(substringIndex(substringIndex(group_key, ':', 4), ':', -1)) = canary
                  AND unhex(substringIndex(group_key, ':', -1)) = variant) AS same, count() AS n
       FROM gk.attempts`,
    );
    expect(decoded[0]!.same).toBe(decoded[0]!.n);
    const [u] = await store.query<{ keys: number; tuples: number }>(
      'SELECT uniqExact(group_key) AS keys, uniqExact(tenant, model, spec_tier, canary, variant) AS tuples FROM gk.attempts',
    );
    expect(u!.keys).toBe(u!.tuples);
  });

  it('makes v_cost_per_pass the hand computation: one row per five-column key, exact sums, each attempt once', async () => {
    await checkView(store);
  });

  it('gives the rows of the five-column GROUP BY it replaces, every column', async () => {
    const window = "since = now64(9) - INTERVAL 30 DAY, until = toDateTime64('2262-01-01 00:00:00', 9, 'UTC')";
    const [diff] = await store.query<{ a: number; b: number }>(
      `WITH
         v AS (SELECT tenant, model, spec_tier, canary, variant, attempts, passes, cost_usd, unpriced_attempts, unpriced_calls,
                      llm_calls, tool_calls, input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens,
                      first_started_at, last_started_at
               FROM gk.v_cost_per_pass_window(${window})),
         d AS (SELECT tenant, model, spec_tier, canary, variant, count(), countIf(outcome = 'pass'), sum(cost_usd), countIf(cost_usd IS NULL),
                      sum(unpriced_calls), sum(llm_calls), sum(tool_calls), sum(input_tokens), sum(cache_read_tokens), sum(cache_write_tokens),
                      sum(output_tokens), sum(reasoning_tokens), min(started_at), max(started_at)
               FROM gk.attempts FINAL WHERE started_at >= now64(9) - INTERVAL 30 DAY
               GROUP BY tenant, model, spec_tier, canary, variant)
       SELECT (SELECT count() FROM (SELECT * FROM v EXCEPT SELECT * FROM d)) AS a, (SELECT count() FROM (SELECT * FROM d EXCEPT SELECT * FROM v)) AS b`,
    );
    expect(diff).toEqual({ a: 0, b: 0 });
  });

  it('answers filters on the decoded columns, including values holding the separator', async () => {
    for (const key of KEYS) {
      const got = await store.query<ViewRow>(
        'SELECT * FROM gk.v_cost_per_pass WHERE tenant = {t:String} AND spec_tier = {s:String} AND model = {m:String} AND canary = {c:String} AND variant = {v:String}',
        { t: key.tenant, s: key.spec_tier, m: key.model, c: key.canary, v: key.variant },
      );
      expect(got, JSON.stringify(key)).toHaveLength(1);
      expect(got[0]!.attempts).toBe(rows.filter((r) => r.tenant === key.tenant && r.model === key.model && r.spec_tier === key.spec_tier && r.canary === key.canary && r.variant === key.variant).length);
    }
    const [a] = await store.query<{ n: number }>("SELECT sum(attempts) AS n FROM gk.v_cost_per_pass WHERE tenant = 'a'");
    expect(a!.n).toBe(rows.filter((r) => r.tenant === 'a').length);
  });

  it('keeps v_pass_rate buckets adding up to v_cost_per_pass per key', async () => {
    const [d] = await store.query<{ n: number }>(
      `SELECT count() AS n FROM (
         SELECT tenant, model, spec_tier, canary, variant, sum(attempts) AS a, sum(passes) AS p, sum(cost_usd) AS c
         FROM gk.v_pass_rate_window(since = now64(9) - INTERVAL 30 DAY, until = toDateTime64('2262-01-01 00:00:00', 9, 'UTC'), bucket_seconds = 600)
         GROUP BY tenant, model, spec_tier, canary, variant
         EXCEPT
         SELECT tenant, model, spec_tier, canary, variant, attempts, passes, cost_usd FROM gk.v_cost_per_pass)`,
    );
    expect(d!.n).toBe(0);
  });

  it('upgrades a database created before the column: same answers before and after the column is written into old parts', async () => {
    const old = await freshStore('gk_old');
    try {
      // the schema before 0005: no group_key, migration 5 not recorded
      await old.command('ALTER TABLE gk_old.attempts DROP COLUMN group_key');
      await old.command('TRUNCATE TABLE gk_old.schema_migrations');
      await old.insert('schema_migrations', [1, 2, 3, 4].map((version) => ({ version, name: 'before', checksum: '' })));
      await old.insert('attempts', partials);
      await old.insert('attempts', rows);
      await old.insert('attempts', rows);
      const result = await migrate(old);
      expect(result.applied).toEqual([5]);
      // old parts compute the key on read, or have it written by the mutation: the view is exact either way
      await checkView(old);
      for (let i = 0; i < 200; i++) {
        const [m] = await old.query<{ n: number }>("SELECT count() AS n FROM system.mutations WHERE database = 'gk_old' AND table = 'attempts' AND NOT is_done");
        if (m!.n === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const [p] = await old.query<{ without: number }>(
        "SELECT countIf(NOT has(cols, 'group_key')) AS without FROM (SELECT name, groupArray(column) AS cols FROM system.parts_columns WHERE database = 'gk_old' AND table = 'attempts' AND active GROUP BY name)",
      );
      expect(p!.without).toBe(0);
      await checkView(old);
    } finally {
      await old.close();
    }
  });
});
