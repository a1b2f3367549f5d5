/**
 * What the rules read from ClickHouse. Every query is dedup-safe (the
 * tables are ReplacingMergeTree: `FINAL`, or the views that use it) and
 * takes its values as parameters; the only identifiers spliced into SQL are
 * group-by columns, checked against the allow-lists of config.ts.
 */
import type { ClickHouseSettings } from '@clickhouse/client';
import { formatInstant, parseInstant } from '../contract/rows.ts';
import { ATTEMPT_SUMS } from '../storage/rollups.ts';
import type { Store } from '../storage/store.ts';
import { ATTEMPT_COLUMNS, CALL_COLUMNS } from './config.ts';
import type { AttemptWindows, CacheWindows, UnpricedSeries, Windows } from './decide.ts';

const FINAL_SETTINGS: ClickHouseSettings = { do_not_merge_across_partitions_select_final: 1 };

/** ms since the epoch → DateTime64(9) parameter text. */
export const instant = (ms: number): string => formatInstant(BigInt(Math.round(ms)) * 1_000_000n);
/** DateTime64 text from ClickHouse → ms since the epoch. */
export const fromInstant = (text: string): number => Number(parseInstant(text) / 1_000_000n);

function columns(list: readonly string[], allowed: readonly string[]): string[] {
  for (const c of list) if (!allowed.includes(c)) throw new RangeError(`cannot group or filter by ${JSON.stringify(c)} (allowed: ${allowed.join(', ')})`);
  return [...list];
}

/** ` AND has({f_col:Array(String)}, col)` per filtered column, and the parameters. */
function filterSql(filter: Partial<Record<string, string[]>>, allowed: readonly string[]): { sql: string; params: Record<string, unknown> } {
  let sql = '';
  const params: Record<string, unknown> = {};
  for (const [col, values] of Object.entries(filter)) {
    if (!values) continue;
    columns([col], allowed);
    sql += ` AND has({f_${col}:Array(String)}, ${col})`;
    params[`f_${col}`] = values;
  }
  return { sql, params };
}

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v ?? 0));

const DAY_MS = 86_400_000;
/** The sums of one window's groups: from the blocks, or from every attempt with FINAL. */
const SUM_COLUMNS = 'n_attempts, n_passes, n_unpriced, n_priced_passes, sum_cost, sum_pass_cost, sum_cost_sq';

/** attemptWindows' SELECT and parameters (the query benchmark times it as the rules send it). */
export function attemptWindowsQuery(
  db: string,
  groupBy: readonly string[],
  filter: Partial<Record<string, string[]>>,
  w: Windows,
  options: { raw?: boolean } = {},
): { sql: string; params: Record<string, unknown>; columns: string[] } {
  const cols = columns(groupBy, ATTEMPT_COLUMNS);
  const f = filterSql(filter, ATTEMPT_COLUMNS);
  const raw = options.raw || cols.includes('pool') || filter.pool !== undefined;
  const list = cols.join(', ');
  // Blocks are whole UTC days: a window holding none (the usual recent hour) is read raw without a plan.
  const holdsDay = (since: number, until: number) => Math.ceil(since / DAY_MS) * DAY_MS + DAY_MS <= until;
  const window = (recent: boolean, since: string, until: string, preaggregated: boolean) =>
    preaggregated
      ? `SELECT ${list}, ${recent} AS recent, ${SUM_COLUMNS}
         FROM ${db}.attempt_window_sums(since = {${since}:DateTime64(9)}, until = {${until}:DateTime64(9)})
         WHERE true${f.sql}`
      : `SELECT ${list}, ${recent} AS recent, ${SUM_COLUMNS} FROM (
           SELECT ${list}, ${ATTEMPT_SUMS}
           FROM ${db}.attempts FINAL
           WHERE started_at >= {${since}:DateTime64(9)} AND started_at < {${until}:DateTime64(9)}${f.sql}
           GROUP BY ${list}
           SETTINGS do_not_merge_across_partitions_select_final = 1)`;
  const agg = (prefix: string, cond: string) => `
    sumIf(n_attempts, ${cond})                           AS ${prefix}_attempts,
    sumIf(n_passes, ${cond})                             AS ${prefix}_passes,
    sumIf(n_attempts - n_unpriced, ${cond})              AS ${prefix}_priced,
    sumIf(n_priced_passes, ${cond})                      AS ${prefix}_priced_passes,
    toFloat64(ifNull(sumIf(sum_cost, ${cond}), 0))       AS ${prefix}_cost,
    toFloat64(ifNull(sumIf(sum_cost_sq, ${cond}), 0))    AS ${prefix}_cost_sq,
    toFloat64(ifNull(sumIf(sum_pass_cost, ${cond}), 0))  AS ${prefix}_pass_cost,
    fleet_cost_per_pass(sumIf(sum_cost, ${cond}), ${prefix}_attempts, ${prefix}_priced, ${prefix}_passes) AS ${prefix}_cost_per_pass`;
  return {
    sql: `SELECT ${list},${agg('recent', 'recent')},${agg('baseline', 'NOT recent')}
          FROM (
            ${window(true, 'recent_since', 'until', !raw && holdsDay(w.recentSince, w.until))}
            UNION ALL
            ${window(false, 'since', 'recent_since', !raw && holdsDay(w.baselineSince, w.recentSince))})
          GROUP BY ${list}
          ORDER BY ${list}`,
    params: { since: instant(w.baselineSince), recent_since: instant(w.recentSince), until: instant(w.until), ...f.params },
    columns: cols,
  };
}

/**
 * Per group: attempts, passes and cost moments of both windows, plus the
 * exact $/pass of each window (fleet_cost_per_pass, the views' definition).
 * A window holding a whole UTC day is summed from the pre-aggregated
 * blocks and the raw tail (attempt_window_sums, 0008), so a 7-day baseline
 * costs the days no block covers, not seven days of attempts; a shorter one
 * (the usual recent hour) is summed from `attempts FINAL`. The blocks are not
 * kept per pool: a rule grouped or filtered by pool reads both windows raw
 * (`raw`, also what the tests compare with). Both sum cost and cost² exactly
 * in Decimal and convert once, so the two agree to the last bit.
 */
export async function attemptWindows(
  store: Store,
  groupBy: readonly string[],
  filter: Partial<Record<string, string[]>>,
  w: Windows,
  options: { raw?: boolean } = {},
): Promise<AttemptWindows[]> {
  const { sql, params, columns: cols } = attemptWindowsQuery(store.database, groupBy, filter, w, options);
  const rows = await store.query<Record<string, unknown>>(sql, params);
  return rows.map((row) => {
    const moments = (p: string) => ({
      attempts: num(row[`${p}_attempts`]),
      passes: num(row[`${p}_passes`]),
      priced: num(row[`${p}_priced`]),
      pricedPasses: num(row[`${p}_priced_passes`]),
      costSum: num(row[`${p}_cost`]),
      costSqSum: num(row[`${p}_cost_sq`]),
      passCostSum: num(row[`${p}_pass_cost`]),
    });
    return {
      labels: Object.fromEntries(cols.map((c) => [c, String(row[c] ?? '')])),
      baseline: moments('baseline'),
      recent: moments('recent'),
      baselineCostPerPass: (row.baseline_cost_per_pass as string | null) ?? null,
      recentCostPerPass: (row.recent_cost_per_pass as string | null) ?? null,
    };
  });
}

/**
 * Per group: prompt-cache token moments of both windows from `llm_calls
 * FINAL`, one cluster per (attempt, window) — the attempt is the
 * independent unit of the variance.
 */
export async function cacheWindows(
  store: Store,
  groupBy: readonly string[],
  filter: Partial<Record<string, string[]>>,
  w: Windows,
): Promise<CacheWindows[]> {
  const cols = columns(groupBy, CALL_COLUMNS);
  const f = filterSql(filter, CALL_COLUMNS);
  const agg = (prefix: string, cond: string) => `
    countIf(${cond})          AS ${prefix}_clusters,
    sumIf(r, ${cond})         AS ${prefix}_read,
    sumIf(t, ${cond})         AS ${prefix}_total,
    sumIf(r * r, ${cond})     AS ${prefix}_read_sq,
    sumIf(t * t, ${cond})     AS ${prefix}_total_sq,
    sumIf(r * t, ${cond})     AS ${prefix}_read_total`;
  const rows = await store.query<Record<string, unknown>>(
    `SELECT ${cols.join(', ')},${agg('recent', 'recent')},${agg('baseline', 'NOT recent')}
     FROM (
       SELECT ${cols.join(', ')}, attempt_id, started_at >= {recent_since:DateTime64(9)} AS recent,
              toFloat64(sum(cache_read_tokens))                                        AS r,
              toFloat64(sum(input_tokens) + sum(cache_read_tokens) + sum(cache_write_tokens)) AS t
       FROM ${store.database}.llm_calls FINAL
       WHERE started_at >= {since:DateTime64(9)} AND started_at < {until:DateTime64(9)}${f.sql}
       GROUP BY ${cols.join(', ')}, attempt_id, recent
     )
     GROUP BY ${cols.join(', ')}
     ORDER BY ${cols.join(', ')}`,
    { since: instant(w.baselineSince), recent_since: instant(w.recentSince), until: instant(w.until), ...f.params },
    FINAL_SETTINGS,
  );
  return rows.map((row) => {
    const moments = (p: string) => ({
      clusters: num(row[`${p}_clusters`]),
      readSum: num(row[`${p}_read`]),
      totalSum: num(row[`${p}_total`]),
      readSqSum: num(row[`${p}_read_sq`]),
      totalSqSum: num(row[`${p}_total_sq`]),
      readTotalSum: num(row[`${p}_read_total`]),
    });
    return { labels: Object.fromEntries(cols.map((c) => [c, String(row[c] ?? '')])), baseline: moments('baseline'), recent: moments('recent') };
  });
}

/** LLM calls with no price card in force (cost_usd NULL) per (tenant, provider, model) in [since, until). */
export async function unpricedCalls(store: Store, since: number, until: number): Promise<UnpricedSeries[]> {
  const rows = await store.query<{ tenant: string; provider: string; model: string; calls: number; attempts: number; reasons: string[]; first_seen: string; last_seen: string }>(
    `SELECT tenant, provider, model, count() AS calls, uniqExact(attempt_id) AS attempts,
            arraySort(groupUniqArray(5)(unpriced_reason)) AS reasons, min(started_at) AS first_seen, max(started_at) AS last_seen
     FROM ${store.database}.llm_calls FINAL
     WHERE cost_usd IS NULL AND started_at >= {since:DateTime64(9)} AND started_at < {until:DateTime64(9)}
     GROUP BY tenant, provider, model
     ORDER BY tenant, provider, model`,
    { since: instant(since), until: instant(until) },
    FINAL_SETTINGS,
  );
  return rows.map((r) => ({
    tenant: r.tenant,
    provider: r.provider,
    model: r.model,
    calls: num(r.calls),
    attempts: num(r.attempts),
    reasons: r.reasons.filter(Boolean),
    firstSeen: fromInstant(r.first_seen),
    lastSeen: fromInstant(r.last_seen),
  }));
}

export interface FleetGaugeRow {
  tenant: string;
  model: string;
  spec_tier: string;
  attempts: number;
  passes: number;
  /** NULL when nothing passed (∞) or nothing is priced. */
  cost_per_pass: number | null;
  /** Attempts with an unpriced LLM call. */
  unpriced_attempts: number;
  /** USD of the priced attempts (what cost_per_pass divides; summed when series are merged). */
  cost_usd: number;
  cache_read_tokens: number;
  input_tokens_total: number;
}

/** Pass rate, $/pass and cache tokens per (tenant, model, spec_tier) over [since, until), through v_cost_per_pass_window. */
export async function fleetGauges(store: Store, since: number, until: number): Promise<FleetGaugeRow[]> {
  const rows = await store.query<FleetGaugeRow>(
    `SELECT tenant, model, spec_tier, n_attempts AS attempts, n_passes AS passes, n_unpriced AS unpriced_attempts,
            toFloat64(fleet_cost_per_pass(sum_cost, n_attempts, n_attempts - n_unpriced, n_passes)) AS cost_per_pass,
            toFloat64(ifNull(sum_cost, 0)) AS cost_usd,
            n_cache_read AS cache_read_tokens, n_input_total AS input_tokens_total
     FROM (
       SELECT tenant, model, spec_tier,
              sum(attempts) AS n_attempts, sum(passes) AS n_passes, sum(cost_usd) AS sum_cost, sum(unpriced_attempts) AS n_unpriced,
              sum(cache_read_tokens) AS n_cache_read,
              sum(input_tokens) + sum(cache_read_tokens) + sum(cache_write_tokens) AS n_input_total
       FROM ${store.database}.v_cost_per_pass_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)})
       GROUP BY tenant, model, spec_tier
     )
     ORDER BY tenant, model, spec_tier`,
    { since: instant(since), until: instant(until) },
  );
  return rows.map((r) => ({
    ...r,
    attempts: num(r.attempts),
    passes: num(r.passes),
    unpriced_attempts: num(r.unpriced_attempts),
    cost_per_pass: r.cost_per_pass === null ? null : num(r.cost_per_pass),
    cost_usd: num(r.cost_usd),
    cache_read_tokens: num(r.cache_read_tokens),
    input_tokens_total: num(r.input_tokens_total),
  }));
}
