/**
 * The pre-aggregated read path is exact: after every step of a seeded,
 * randomized history — duplicates, out-of-order inserts, partial-then-complete
 * versions, late spans rolled into old attempts, a stale partial arriving
 * after the complete one, re-pricing, a consumer crash mid-batch, merges, a
 * refresh racing inserts — v_cost_per_pass_window answers exactly what the
 * raw FINAL computation answers, row for row, decimals to the last digit,
 * for several windows and a tenant filter. And it does read the blocks.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatInstant, type AttemptRow } from '../contract/rows.ts';
import { attemptWindows } from '../alerting/queries.ts';
import { refreshRollups, startRollupRefresher, sweepRollups } from '../storage/rollups.ts';
import type { Store } from '../storage/store.ts';
import { rawCostPerPassSql } from './support/reference-views.ts';
import { freshStore } from './support/store.ts';

let store: Store;
beforeAll(async () => {
  store = await freshStore('rollups');
});
afterAll(async () => {
  await store?.close();
});

/** mulberry32: a small seeded generator, so a failure replays. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (n: number) => Math.floor(next() * n), pick: <T>(xs: readonly T[]) => xs[Math.floor(next() * xs.length)]! };
}

const SEED = 20261207;
const r = rng(SEED);
const DAY_NS = 86_400_000_000_000n;
const now = BigInt(Date.now()) * 1_000_000n;
const TENANTS = ['acme', 'globex', 'initech'];
const TIERS = ['small', 'medium', 'large'];
const MODELS = ['gpt-5', 'claude-sonnet-4', 'gemini-2.5-pro', 'qwen3-coder'];
const CANARIES = ['refactor', 'bugfix', 'docs'];
const VARIANTS = ['baseline', 'terse'];
const POOLS = ['pool-a', 'pool-b'];
const OUTCOMES = ['pass', 'pass', 'pass', 'fail', 'error', 'timeout'] as const;

/** A cost with 18 decimals, sometimes NULL (unpriced). */
const cost = () => (r.next() < 0.06 ? null : `${r.int(3)}.${String(r.int(1e9)).padStart(9, '0')}${String(r.int(1e9)).padStart(9, '0')}`);

let serial = 0;
function attempt(daysAgo: number, version: number): AttemptRow {
  const started = now - BigInt(daysAgo) * DAY_NS - BigInt(r.int(86_400)) * 1_000_000_000n - BigInt(r.int(1e9));
  const c = cost();
  const id = `a-${++serial}`;
  return {
    attempt_id: id,
    tenant: r.pick(TENANTS),
    spec_id: `spec-${r.int(400)}`,
    spec_tier: r.pick(TIERS),
    canary: r.pick(CANARIES),
    variant: r.pick(VARIANTS),
    pool: r.pick(POOLS),
    model: r.pick(MODELS),
    attempt_number: 1 + r.int(4),
    outcome: r.pick(OUTCOMES),
    reason: '',
    started_at: formatInstant(started),
    ended_at: formatInstant(started + 60_000_000_000n),
    duration_ms: 60_000,
    llm_calls: 1 + r.int(8),
    tool_calls: r.int(10),
    input_tokens: r.int(100_000),
    cache_read_tokens: r.int(50_000),
    cache_write_tokens: r.int(5_000),
    output_tokens: r.int(20_000),
    reasoning_tokens: r.int(10_000),
    cost_usd: c,
    reported_cost_usd: r.next() < 0.5 ? null : cost(),
    unpriced_calls: c === null ? 1 + r.int(2) : 0,
    trace_id: `t-${id}`,
    span_id: `s-${id}`,
    sampled: true,
    sampling_rate: 1,
    decision: 'ended',
    version,
  };
}

/** The same attempt re-assembled: a higher (or lower) version with other figures; model, canary and variant may move. */
function reassembled(a: AttemptRow, version: number): AttemptRow {
  const c = cost();
  return {
    ...a,
    model: r.next() < 0.3 ? r.pick(MODELS) : a.model,
    canary: r.next() < 0.1 ? r.pick(CANARIES) : a.canary,
    outcome: r.pick(OUTCOMES),
    llm_calls: a.llm_calls + r.int(3),
    output_tokens: a.output_tokens + r.int(1_000),
    cost_usd: c,
    unpriced_calls: c === null ? 1 : 0,
    version,
  };
}

const shuffle = <T>(xs: T[]) => {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
};

async function insertInBatches(rows: AttemptRow[], batches: number): Promise<void> {
  const size = Math.ceil(rows.length / batches);
  for (let i = 0; i < rows.length; i += size) await store.insert('attempts', rows.slice(i, i + size));
}

const windows = () => {
  const inst = (ns: bigint) => formatInstant(ns);
  return [
    { name: 'default 30 days', since: inst(now - 30n * DAY_NS), until: '2262-01-01 00:00:00.000000000' },
    { name: 'mid-day edges', since: inst(now - 23n * DAY_NS - 7_777_000_000_000n), until: inst(now - 3n * DAY_NS + 1_234_000_000_000n) },
    { name: 'all history', since: '1970-01-01 00:00:00.000000000', until: '2262-01-01 00:00:00.000000000' },
    { name: 'closed days only', since: inst(now - 45n * DAY_NS), until: inst(now - 2n * DAY_NS) },
  ];
};

const ORDER = 'ORDER BY tenant, model, spec_tier, canary, variant';

/** Every window (and one tenant of the default window) through the view equals the raw reference. */
async function expectExact(step: string): Promise<void> {
  for (const w of windows()) {
    const params = { since: w.since, until: w.until };
    const [view, raw] = await Promise.all([
      store.query(`SELECT * FROM ${store.database}.v_cost_per_pass_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)}) ${ORDER}`, params),
      store.query(`SELECT * FROM (${rawCostPerPassSql(store.database)}) ${ORDER}`, params),
    ]);
    expect(raw.length, `${step}, ${w.name}: the reference has rows`).toBeGreaterThan(0);
    expect(view, `${step}, ${w.name}`).toEqual(raw);
  }
  // the alert rules' windows: a recent half day after a 7-day baseline (an hour holds too few of these attempts), and windows with days of blocks on both sides
  const ms = Number(now / 1_000_000n);
  const DAY_MS = 86_400_000;
  const ruleWindows = [
    { until: ms, recentSince: ms - DAY_MS / 2, baselineSince: ms - DAY_MS / 2 - 7 * DAY_MS },
    { until: ms - 3_600_000, recentSince: ms - 3 * DAY_MS - 5 * 3_600_000, baselineSince: ms - 20 * DAY_MS - 777_000 },
  ];
  const rules: { groupBy: string[]; filter: Partial<Record<string, string[]>> }[] = [
    { groupBy: ['tenant', 'model', 'spec_tier'], filter: {} },
    { groupBy: ['canary', 'variant'], filter: { tenant: ['globex'], spec_tier: ['small', 'large'] } },
  ];
  let judged = 0;
  for (const w of ruleWindows) {
    for (const rule of rules) {
      const [rolled, raw] = await Promise.all([
        attemptWindows(store, rule.groupBy, rule.filter, w),
        attemptWindows(store, rule.groupBy, rule.filter, w, { raw: true }),
      ]);
      judged += raw.filter((x) => x.baseline.attempts > 0 && x.recent.attempts > 0).length;
      expect(rolled, `${step}, rule ${rule.groupBy.join('/')} over ${JSON.stringify(w)}`).toEqual(raw);
    }
  }
  expect(judged, `${step}: the rules' reference has groups with attempts in both windows`).toBeGreaterThan(0);
  const tenant = `SELECT * FROM ${store.database}.v_cost_per_pass WHERE tenant = 'globex' ${ORDER}`;
  const rawTenant = `SELECT * FROM (${rawCostPerPassSql(store.database)}) WHERE tenant = 'globex' ${ORDER}`;
  const since = formatInstant(now - 30n * DAY_NS);
  // the plain view's window ends at now64(9): both read the same attempts as long as none starts in the future
  expect(await store.query(tenant), `${step}, one tenant`).toEqual(
    await store.query(rawTenant, { since, until: '2262-01-01 00:00:00.000000000' }),
  );
}

/** What the default window reads: blocks by level, and raw days. */
async function plan(): Promise<{ blocks: number; raw: number; levels: number[] }> {
  const rows = await store.query<{ level: number }>(
    `SELECT level FROM ${store.database}.attempt_window_plan(since = {since:DateTime64(9)}, until = {until:DateTime64(9)})`,
    { since: formatInstant(now - 30n * DAY_NS), until: '2262-01-01 00:00:00.000000000' },
  );
  const levels = rows.map((x) => Number(x.level));
  return { blocks: levels.filter((l) => l !== 255).length, raw: levels.filter((l) => l === 255).length, levels };
}

describe('pre-aggregated attempts (seeded randomized history)', () => {
  let history: AttemptRow[] = [];

  it('a plan scalar written twice in one query is evaluated once (the views rely on it)', async () => {
    // rand() would differ between two evaluations: the halves would not partition the numbers
    for (let i = 0; i < 3; i++) {
      const [row] = await store.query<{ a: number; b: number }>(
        `SELECT countIf(k = 'a') AS a, countIf(k = 'b') AS b FROM (
           SELECT 'a' AS k FROM numbers(100000) WHERE number IN (SELECT arrayJoin((SELECT groupArray(number) FROM numbers(100000) WHERE rand() % 2 = 0)))
           UNION ALL
           SELECT 'b' AS k FROM numbers(100000) WHERE number NOT IN (SELECT arrayJoin((SELECT groupArray(number) FROM numbers(100000) WHERE rand() % 2 = 0))))`,
      );
      expect(Number(row!.a) + Number(row!.b)).toBe(100000);
    }
  });

  it('history inserted out of order, partial versions first, then refreshed', async () => {
    // 2,400 attempts over 70 days; 15 % first arrive as a partial (lower version) assembly
    for (let i = 0; i < 2400; i++) history.push(attempt(r.int(70), 10 + r.int(5)));
    const partials = history.filter(() => r.next() < 0.15).map((a) => reassembled(a, a.version - 3));
    await insertInBatches(shuffle([...partials]), 5);
    await expectExact('partials only');
    await insertInBatches(shuffle([...history]), 12);
    await expectExact('before any refresh');
    expect((await plan()).blocks).toBe(0);

    const first = await refreshRollups(store);
    expect(first.computed[0], 'every closed day summed').toBeGreaterThan(150);
    expect(first.computed.slice(1).reduce((a, b) => a + b), 'and blocks above days').toBeGreaterThan(100);
    await expectExact('after the first refresh');
    const p = await plan();
    // 30 days of 9 tenant-tiers from a few blocks each; raw: today and the window's first (partial) day
    expect(p.levels.some((l) => l >= 3)).toBe(true);
    expect(p.raw).toBeLessThanOrEqual(2 * TENANTS.length * TIERS.length);
    expect(await refreshRollups(store), 'a second refresh has nothing to do').toEqual({ computed: [0, 0, 0, 0, 0, 0], rawRows: 0, pending: 0 });
  });

  it('Kafka redelivery and OTLP retries: the same rows again', async () => {
    const again = history.filter(() => r.next() < 0.2);
    await insertInBatches(shuffle([...again]), 3);
    await expectExact('duplicates, before refresh');
    expect((await plan()).raw).toBeGreaterThan(2 * TENANTS.length * TIERS.length);
    await refreshRollups(store);
    await expectExact('duplicates, refreshed');
  });

  it('late spans roll into old attempts (higher versions, model may change); a stale partial comes after', async () => {
    const late = history.filter(() => r.next() < 0.05).map((a) => reassembled(a, a.version + 5));
    await insertInBatches(late, 2);
    await expectExact('late versions');
    await refreshRollups(store);
    await expectExact('late versions, refreshed');
    history = history.map((a) => late.find((l) => l.attempt_id === a.attempt_id) ?? a);
    const stale = history.filter(() => r.next() < 0.05).map((a) => reassembled(a, a.version - 1));
    await insertInBatches(stale, 2);
    await expectExact('stale partials after the complete ones');
    await refreshRollups(store);
    await expectExact('stale partials, refreshed');
  });

  it('re-pricing writes version + 1 with the new cost', async () => {
    const repriced = history.filter((a) => a.cost_usd === null || r.next() < 0.1).map((a) => ({ ...a, cost_usd: cost(), version: a.version + 1 }));
    await store.insert('attempts', repriced);
    await expectExact('repriced');
    history = history.map((a) => repriced.find((x) => x.attempt_id === a.attempt_id) ?? a);
    await refreshRollups(store);
    await expectExact('repriced, refreshed');
  });

  it('a consumer crashes mid-batch and its successor writes the whole batch again', async () => {
    const batch = Array.from({ length: 300 }, () => attempt(r.int(40), 20));
    await store.insert('attempts', batch.slice(0, 170));
    await expectExact('half a batch');
    await refreshRollups(store);
    await store.insert('attempts', batch);
    await expectExact('the batch again');
    history.push(...batch);
  });

  it('a refresh racing inserts, then merges that drop superseded versions', async () => {
    const more = Array.from({ length: 400 }, () => attempt(r.int(35), 30));
    const newer = history.filter(() => r.next() < 0.05).map((a) => reassembled(a, a.version + 2));
    await Promise.all([refreshRollups(store), insertInBatches([...more, ...newer], 8), refreshRollups(store, { maxRawRows: 200 })]);
    await expectExact('refresh raced inserts');
    await refreshRollups(store);
    await expectExact('after the race, refreshed');
    await store.command(`OPTIMIZE TABLE ${store.database}.attempts FINAL`);
    await expectExact('merged');
    const merged = await refreshRollups(store);
    expect(merged.computed[0], 'merges changed the days that held superseded versions').toBeGreaterThan(0);
    await expectExact('merged, refreshed');
    expect((await plan()).raw).toBeLessThanOrEqual(2 * TENANTS.length * TIERS.length);
  });

  it('a refresh with a small budget leaves the rest pending and stays exact', async () => {
    await insertInBatches(Array.from({ length: 600 }, () => attempt(1 + r.int(60), 40)), 4);
    const partial = await refreshRollups(store, { maxRawRows: 100 });
    expect(partial.pending).toBeGreaterThan(0);
    await expectExact('partly refreshed');
    let rounds = 0;
    while ((await refreshRollups(store, { maxRawRows: 2_000 })).pending > 0) rounds++;
    expect(rounds).toBeLessThan(50);
    await expectExact('refreshed in rounds');
  });

  it('superseded computations are deleted a grace period after they were first seen, and only they', async () => {
    const count = async (sql: string) => Number((await store.query<{ n: number }>(sql))[0]!.n);
    const db = store.database;
    const current = `SELECT count() AS n FROM ${db}.attempt_rollups WHERE (tenant, spec_tier, level, first_day, computation) IN (SELECT tenant, spec_tier, level, first_day, computation FROM ${db}.attempt_rollup_blocks FINAL)`;
    const all = `SELECT count() AS n FROM ${db}.attempt_rollups`;
    expect(await count(all)).toBeGreaterThan(await count(current));
    const seen = new Map<string, number>();
    expect(await sweepRollups(store, seen, 0), 'first sighting: nothing deleted yet').toBe(0);
    expect(seen.size).toBeGreaterThan(0);
    expect(await sweepRollups(store, seen, 60_000, Date.now() + 1_000), 'within the grace period').toBe(0);
    expect(await sweepRollups(store, seen, 0)).toBeGreaterThan(0);
    expect(await count(all)).toBe(await count(current));
    expect(seen.size).toBe(0);
    await expectExact('swept');
  });

  it('the refresher service catches up at start, refreshes on its interval and stops cleanly', async () => {
    await insertInBatches(Array.from({ length: 200 }, () => attempt(1 + r.int(20), 50)), 2);
    const logs: string[] = [];
    // it catches up at once at start; the interval is long enough that no refresh falls between the insert below and the check that it made its day raw
    const refresher = startRollupRefresher(store, { intervalMs: 5_000, graceMs: 0, log: (m) => logs.push(m) });
    try {
      await expect.poll(async () => (await plan()).raw, { timeout: 20_000, interval: 200 }).toBeLessThanOrEqual(2 * TENANTS.length * TIERS.length);
      // the insert makes its day raw again: more raw days than the caught-up plan had (how many that is depends on the time of day)
      const caughtUp = (await plan()).raw;
      await store.insert('attempts', [attempt(5, 60)]);
      expect((await plan()).raw).toBeGreaterThan(caughtUp);
      await expect.poll(async () => (await plan()).raw, { timeout: 20_000, interval: 200 }).toBeLessThanOrEqual(2 * TENANTS.length * TIERS.length);
    } finally {
      await refresher.stop();
    }
    expect(logs).toEqual([]);
    await expectExact('after the service');
  });
});
