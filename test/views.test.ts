import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatInstant, type AttemptRow, type LlmCallRow } from '../contract/rows.ts';
import { SEED_CANARY, SEED_TABLE, SEED_TIER } from './support/seed-canary.ts';
import { buildCatalog, formatUsd, parseUsd } from '../pricing/index.ts';
import { listMigrations, migrate } from '../sql/migrate.ts';
import { loadPrices } from '../storage/prices.ts';
import type { Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

let store: Store;
const now = BigInt(Date.now()) * 1_000_000n;
const minutes = (m: number) => BigInt(m) * 60_000_000_000n;

/** The seed table as attempt rows: each model's attempts are one spec, retried; costs vary around the article's $/call. */
function seedAttempts(): AttemptRow[] {
  const rows: AttemptRow[] = [];
  for (const cell of SEED_TABLE) {
    // passes land on attempts 2.. so that cost until first pass covers a failure where there is one
    const outcomes = Array.from({ length: cell.attempts }, (_, i) => (i < cell.attempts - cell.passes ? cell.failure : 'pass'));
    outcomes.forEach((outcome, i) => {
      const base = cell.costPerCall === null ? null : parseUsd(cell.costPerCall);
      const skew = (i === 0 ? 1n : i === cell.attempts - 1 ? -1n : 0n) * 1_000_000_000_000_000n / 1000n; // ±$0.001, sum unchanged
      const cost = base === null ? null : cell.attempts === 1 ? base : base + skew;
      const started = now - minutes(60 - i * 5);
      rows.push({
        attempt_id: `${cell.model}-${i + 1}`,
        tenant: 'default',
        spec_id: `${SEED_CANARY}@${cell.model}`,
        spec_tier: SEED_TIER,
        canary: SEED_CANARY,
        variant: cell.variant,
        pool: 'builder-heavy-fast',
        model: cell.model,
        attempt_number: i + 1,
        outcome,
        reason: outcome === 'pass' ? '' : `${outcome} on the canary`,
        started_at: formatInstant(started),
        ended_at: formatInstant(started + minutes(3)),
        duration_ms: 180_000,
        llm_calls: 4,
        tool_calls: 7,
        input_tokens: 1000,
        cache_read_tokens: 5000,
        cache_write_tokens: 100,
        output_tokens: 800,
        reasoning_tokens: 200,
        cost_usd: cost === null ? null : formatUsd(cost),
        reported_cost_usd: null,
        unpriced_calls: cost === null ? 4 : 0,
        trace_id: `t-${cell.model}-${i}`,
        span_id: `s-${i}`,
        sampled: outcome !== 'pass',
        sampling_rate: outcome === 'pass' ? 0.05 : 1,
        decision: 'ended',
        version: 12,
      });
    });
  }
  return rows;
}

const attempts = seedAttempts();

beforeAll(async () => {
  store = await freshStore();
  // every row twice, in separate inserts (as a redelivered Kafka range would be) …
  await store.insert('attempts', attempts);
  await store.insert('attempts', attempts);
  // … and a partial, lower-version re-assembly of one attempt that must lose
  const partial = { ...attempts[0]!, cost_usd: '0.001', outcome: 'fail' as const, version: 3 };
  await store.insert('attempts', [partial]);
});
afterAll(async () => store?.close());

/** Hand computation: Σcost ÷ passes as exact decimals (truncated at 1e-18, as Decimal division does). */
function expectedCostPerPass(model: string): string | null {
  const rows = attempts.filter((a) => a.model === model);
  const passes = rows.filter((a) => a.outcome === 'pass').length;
  if (passes === 0 || rows.some((a) => a.cost_usd === null)) return null;
  return formatUsd(rows.reduce((s, a) => s + parseUsd(a.cost_usd!), 0n) / BigInt(passes));
}

describe('migrations', () => {
  it('apply twice without error and record every version', async () => {
    const again = await migrate(store);
    expect(again.applied).toEqual([]);
    expect(again.alreadyApplied).toEqual(listMigrations().map((m) => m.version));
    const recorded = await store.query<{ version: number; checksum: string }>('SELECT version, checksum FROM fleet.schema_migrations FINAL ORDER BY version');
    expect(recorded.map((r) => r.version)).toEqual(listMigrations().map((m) => m.version));
    expect(recorded.map((r) => r.checksum)).toEqual(listMigrations().map((m) => m.checksum));
  });

  it('create the tables and views of the contract', async () => {
    const names = (await store.query<{ name: string }>("SELECT name FROM system.tables WHERE database = 'fleet' ORDER BY name")).map((r) => r.name);
    for (const n of ['attempts', 'llm_calls', 'spans', 'prices', 'v_cost_per_pass', 'v_cost_per_pass_window', 'v_spec_outcomes', 'v_routing', 'v_routing_window', 'v_pass_rate', 'v_pass_rate_window', 'v_projection']) {
      expect(names).toContain(n);
    }
  });
});

describe('migrations', () => {
  it('refuse a database whose applied migration changed since (another schema), naming it', async () => {
    const other = await freshStore('fleet_changed');
    try {
      await other.insert('schema_migrations', [{ version: 1, name: 'tables', checksum: '0000000000000000' }]);
      await expect(migrate(other)).rejects.toThrow(/migration 0001_tables was applied to database fleet_changed .* with checksum 0000000000000000, but the file now has [0-9a-f]{16}/);
    } finally {
      await other.close();
    }
  });
});

describe('v_cost_per_pass', () => {
  it('gives the seed table pass rates and exact $/pass with every row inserted twice', async () => {
    const rows = await store.query<Record<string, string | number | null>>(
      'SELECT * FROM fleet.v_cost_per_pass ORDER BY model',
    );
    expect(rows).toHaveLength(SEED_TABLE.length);
    const byModel = new Map(rows.map((r) => [r.model, r]));
    const expectedRates: Record<string, number> = {
      'deepseek-v4-flash': 1,
      'deepseek-v4-pro': 1,
      'claude-sonnet-4-6': 1,
      'kimi-k2.6': 2 / 3,
      'grok-4.3': 1 / 4,
      'grok-4.20-reasoning': 0,
    };
    for (const cell of SEED_TABLE) {
      const r = byModel.get(cell.model)!;
      expect(r.attempts, cell.model).toBe(cell.attempts);
      expect(r.passes, cell.model).toBe(cell.passes);
      expect(r.pass_rate, cell.model).toBeCloseTo(expectedRates[cell.model]!, 15);
      expect(r.cost_per_pass, cell.model).toBe(expectedCostPerPass(cell.model));
      expect(r.spec_tier).toBe(SEED_TIER);
      expect(r.canary).toBe(SEED_CANARY);
      expect(r.variant).toBe(cell.variant);
    }
    // the article's numbers: $/call ÷ pass rate
    expect(byModel.get('deepseek-v4-flash')!.cost_per_pass).toBe('0.04');
    expect(byModel.get('claude-sonnet-4-6')!.cost_per_pass).toBe('7.73');
    expect(byModel.get('kimi-k2.6')!.cost_per_pass).toBe('2.415');
    expect(byModel.get('grok-4.3')!.cost_per_pass).toBe('0.64');
    expect(byModel.get('grok-4.3')!.cost_per_call).toBe('0.16');
    expect(byModel.get('grok-4.3')!.expected_attempts).toBe(4);
  });

  it('reports Wilson 95 % bounds', async () => {
    const [kimi] = await store.query<{ pass_rate_low: number; pass_rate_high: number }>(
      "SELECT pass_rate_low, pass_rate_high FROM fleet.v_cost_per_pass WHERE model = 'kimi-k2.6'",
    );
    // Wilson interval for 2/3 at z = 1.96: [0.2077, 0.9385]
    expect(kimi!.pass_rate_low).toBeCloseTo(0.20765, 4);
    expect(kimi!.pass_rate_high).toBeCloseTo(0.93851, 4);
  });

  it('counts unpriced attempts and gives NULL cost, never 0, when nothing is priced', async () => {
    const [grok] = await store.query<Record<string, unknown>>("SELECT * FROM fleet.v_cost_per_pass WHERE model = 'grok-4.20-reasoning'");
    expect(grok).toMatchObject({ attempts: 2, passes: 0, pass_rate: 0, unpriced_attempts: 2, unpriced_calls: 8, cost_usd: null, cost_per_call: null, cost_per_pass: null, expected_attempts: null });
  });

  it('takes its window as parameters', async () => {
    const inWindow = await store.query<{ attempts: string }>(
      'SELECT sum(attempts) AS attempts FROM fleet.v_cost_per_pass_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)})',
      { since: formatInstant(now - minutes(60)), until: formatInstant(now - minutes(54)) },
    );
    // attempts started 60 and 55 minutes ago: the first two of every model
    expect(Number(inWindow[0]!.attempts)).toBe(SEED_TABLE.length * 2);
  });
});

describe('v_routing', () => {
  const routing = (min: number, z: number) =>
    store.query<{ model: string; rank: string }>(
      "SELECT model, rank FROM fleet.v_routing_window(since = now64(9) - INTERVAL 1 DAY, until = now64(9) + INTERVAL 1 DAY, min_pass_rate = {min:Float64}, z = {z:Float64}) WHERE spec_tier = 'tier-3' ORDER BY rank",
      { min, z },
    );

  it('ranks models by $/pass for a bar of 0, never-passing last', async () => {
    expect((await routing(0, 1.959963984540054)).map((r) => r.model)).toEqual([
      'deepseek-v4-flash',
      'deepseek-v4-pro',
      'grok-4.3',
      'kimi-k2.6',
      'claude-sonnet-4-6',
      'grok-4.20-reasoning',
    ]);
  });

  it('excludes grok-4.3 and kimi at a 0.9 bar on the point estimate (z = 0)', async () => {
    expect((await routing(0.9, 0)).map((r) => r.model)).toEqual(['deepseek-v4-flash', 'deepseek-v4-pro', 'claude-sonnet-4-6']);
  });

  it('admits nobody at a 0.9 bar on the Wilson 95 % lower bound with N ≤ 4 (too little evidence)', async () => {
    expect(await routing(0.9, 1.959963984540054)).toEqual([]);
  });
});

describe('v_spec_outcomes', () => {
  it('gives attempts, first pass, and the cost until it', async () => {
    const rows = await store.query<Record<string, unknown>>('SELECT * FROM fleet.v_spec_outcomes ORDER BY spec_id');
    expect(rows).toHaveLength(SEED_TABLE.length);
    for (const cell of SEED_TABLE) {
      const mine = attempts.filter((a) => a.model === cell.model);
      const r = rows.find((x) => x.spec_id === mine[0]!.spec_id)!;
      const firstPass = mine.find((a) => a.outcome === 'pass')?.attempt_number ?? null;
      expect(r.attempts).toBe(cell.attempts);
      expect(r.passes).toBe(cell.passes);
      expect(r.passed).toBe(cell.passes > 0);
      expect(r.first_pass_attempt).toBe(firstPass);
      expect(r.first_attempt_passed).toBe(mine[0]!.outcome === 'pass');
      const priced = mine.every((a) => a.cost_usd !== null);
      const sum = (xs: AttemptRow[]) => formatUsd(xs.reduce((s, a) => s + parseUsd(a.cost_usd!), 0n));
      expect(r.total_cost_usd).toBe(priced ? sum(mine) : null);
      expect(r.cost_until_first_pass).toBe(firstPass === null || !priced ? null : sum(mine.filter((a) => a.attempt_number <= firstPass)));
    }
  });
});

describe('v_pass_rate and v_projection', () => {
  it('buckets add up to the window totals', async () => {
    const buckets = await store.query<{ model: string; attempts: string; passes: string }>(
      'SELECT model, sum(attempts) AS attempts, sum(passes) AS passes FROM fleet.v_pass_rate GROUP BY model',
    );
    for (const cell of SEED_TABLE) {
      const b = buckets.find((x) => x.model === cell.model)!;
      expect([Number(b.attempts), Number(b.passes)]).toEqual([cell.attempts, cell.passes]);
    }
  });

  it('projects 100 dispatches as 100 × $/pass with geometric retries', async () => {
    const rows = await store.query<{ model: string; projected_cost_usd: string | null; expected_retries: number | null }>(
      'SELECT model, projected_cost_usd, expected_retries FROM fleet.v_projection ORDER BY model',
    );
    const by = Object.fromEntries(rows.map((r) => [r.model, r]));
    expect(by['deepseek-v4-flash']).toMatchObject({ projected_cost_usd: '4', expected_retries: 0 });
    expect(by['grok-4.3']).toMatchObject({ projected_cost_usd: '64', expected_retries: 300 });
    expect(by['grok-4.20-reasoning']).toMatchObject({ projected_cost_usd: null, expected_retries: null });
  });
});

describe('prices table', () => {
  it('holds the loaded catalog and is replaced as a whole', async () => {
    const two = buildCatalog({
      cards: [
        { provider: 'deepseek', model: 'deepseek-v4-pro', aliases: ['deepseek-reasoner'], periods: [{ from: '2026-01-01', to: '2026-06-01', input: 0.435, output: 0.87 }, { from: '2026-06-01', input: 1.74, output: 3.48 }] },
      ],
    });
    expect(await loadPrices(store, two)).toBe(2);
    const rows = await store.query<Record<string, unknown>>('SELECT model, aliases, valid_from, valid_to, input, cache_read, reasoning, batch_multiplier, flex_multiplier FROM fleet.prices ORDER BY valid_from');
    expect(rows[0]).toMatchObject({ model: 'deepseek-v4-pro', aliases: ['deepseek-reasoner'], valid_from: '2026-01-01 00:00:00.000', valid_to: '2026-06-01 00:00:00.000', input: '0.435', cache_read: '0.435', reasoning: '0.87', batch_multiplier: '0.5', flex_multiplier: null });
    expect(rows[1]).toMatchObject({ valid_to: null, input: '1.74' });
    const one = buildCatalog({ cards: [{ provider: 'x_ai', model: 'grok-4.3', periods: [{ from: '2026-01-01', input: 0.2, output: 1.5 }] }] });
    await loadPrices(store, one);
    expect(await store.query('SELECT model FROM fleet.prices')).toEqual([{ model: 'grok-4.3' }]);
  });
});

describe('Wilson bounds', () => {
  it('are exactly 0 at no pass and 1 at all passes, and within [0, 1] everywhere, for n up to 100,000', async () => {
    const [r] = await store.query<Record<string, number>>(
      `SELECT
         countIf(fleet_wilson_low(0, n, z) != 0) AS low_not_zero,
         countIf(fleet_wilson_high(n, n, z) != 1) AS high_not_one,
         countIf(fleet_wilson_low(k, n, z) < 0 OR fleet_wilson_high(k, n, z) > 1 OR fleet_wilson_low(k, n, z) > k / n OR fleet_wilson_high(k, n, z) < k / n) AS outside,
         countIf(fleet_wilson_low(k, n, 0) != k / n) AS point_estimate_off
       FROM (SELECT number + 1 AS n, cityHash64(number) % (number + 2) AS k, 1.959963984540054 AS z FROM numbers(100000))`,
    );
    expect(r).toEqual({ low_not_zero: 0, high_not_one: 0, outside: 0, point_estimate_off: 0 });
  });
});

describe('a group with an unpriced attempt', () => {
  const tenant = 'mixed';
  const row = (i: number, outcome: AttemptRow['outcome'], cost: string | null): AttemptRow => ({
    ...attempts[0]!,
    attempt_id: `mixed-${i}`,
    tenant,
    spec_id: `mixed-spec-${i}`,
    model: 'm-mixed',
    attempt_number: 1,
    outcome,
    cost_usd: cost,
    unpriced_calls: cost === null ? 1 : 0,
  });
  beforeAll(async () => {
    // 21 never-passing attempts of another model: its Wilson lower bound used to land below 0
    const never = Array.from({ length: 21 }, (_, i) => ({ ...row(100 + i, 'fail', '0.5'), model: 'm-never' }));
    await store.insert('attempts', [row(1, 'fail', null), row(2, 'fail', '1'), row(3, 'pass', '3'), ...never]);
  });

  it('counts it in attempts and passes, leaves it out of cost, and scales $/call by the pass rate (the documented rule)', async () => {
    const [r] = await store.query<Record<string, unknown>>(`SELECT * FROM fleet.v_cost_per_pass WHERE tenant = '${tenant}' AND model = 'm-mixed'`);
    // cost_usd sums the priced attempts; cost_per_call is their mean; cost_per_pass = cost_per_call ÷ pass_rate = 2 ÷ (1/3)
    expect(r).toMatchObject({ attempts: 3, passes: 1, unpriced_attempts: 1, unpriced_calls: 1, cost_usd: '4', cost_per_call: '2', cost_per_pass: '6', expected_attempts: 3 });
  });

  it('keeps a never-passing model in the routing table at a bar of 0 with N = 21', async () => {
    const rows = await store.query<{ model: string; pass_rate_low: number; cost_per_pass: string | null }>(
      `SELECT model, pass_rate_low, cost_per_pass FROM fleet.v_routing_window(since = now64(9) - INTERVAL 1 DAY, until = now64(9) + INTERVAL 1 DAY, min_pass_rate = 0, z = 1.959963984540054)
       WHERE tenant = '${tenant}' ORDER BY rank`,
    );
    expect(rows).toEqual([
      { model: 'm-mixed', pass_rate_low: expect.any(Number), cost_per_pass: '6' },
      { model: 'm-never', pass_rate_low: 0, cost_per_pass: null },
    ]);
  });
});

describe('rows written again', () => {
  const call = (over: Partial<LlmCallRow>): LlmCallRow => ({
    tenant: 'rewrites', attempt_id: 'rw-1', trace_id: 'c'.repeat(32), span_id: '1'.repeat(16),
    started_at: formatInstant(now), ended_at: formatInstant(now + 1_000_000n),
    provider: 'anthropic', model: 'claude-sonnet-4-6', request_model: 'claude-sonnet-4-6', provider_source: 'instrumentation', instrumented_provider: 'anthropic', server_address: '',
    service_tier: 'standard',
    input_tokens: 100, cache_read_tokens: 0, cache_write_tokens: 0, output_tokens: 10, reasoning_tokens: 0, cache_write_1h_tokens: 0,
    cost_usd: '0.00045', reported_cost_usd: null, price_provider: 'anthropic', price_model: 'claude-sonnet-4-6',
    price_from: null, unpriced_reason: '', dialect: 'gen_ai', version: 3, is_deleted: 0, ...over,
  });

  it('llm_calls: the newest version wins, and a wrapper tombstone hides the call under FINAL', async () => {
    const wrapper = '2'.repeat(16);
    const inner = '3'.repeat(16);
    // complete assembly: inner billed, wrapper tombstoned (version 3) …
    await store.insert('llm_calls', [call({ span_id: inner }), call({ span_id: wrapper, is_deleted: 1 })]);
    // … then a partial re-read without the inner call bills the wrapper at a lower version
    await store.insert('llm_calls', [call({ span_id: wrapper, version: 2 })]);
    const rows = await store.query<{ span_id: string }>("SELECT span_id FROM fleet.llm_calls FINAL WHERE tenant = 'rewrites' ORDER BY span_id");
    expect(rows.map((r) => r.span_id)).toEqual([inner]);
  });

  it('spans: a row attributed to its attempt wins over the same span written outside any attempt', async () => {
    const base = { tenant: 'rewrites', trace_id: 'd'.repeat(32), span_id: '4'.repeat(16), parent_span_id: '', name: 'chat m', kind: 'CLIENT', start_time: formatInstant(now), end_time: formatInstant(now), duration_ns: '0', status_code: 'UNSET', status_message: '', attributes: {}, resource_attributes: {}, scope_name: '', scope_version: '', events: [], sampling_rate: 1 };
    await store.insert('spans', [{ ...base, attempt_id: 'rw-2', sample_reason: 'failure', version: 1 }]);
    await store.insert('spans', [{ ...base, attempt_id: '', sample_reason: 'outside_attempt', version: 0 }]);
    expect(await store.query("SELECT attempt_id, sample_reason FROM fleet.spans FINAL WHERE tenant = 'rewrites'")).toEqual([{ attempt_id: 'rw-2', sample_reason: 'failure' }]);
  });
});
