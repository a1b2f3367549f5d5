/**
 * The views as they were before pre-aggregation (sql/migrations/0002_views.sql):
 * every attempt of the window read with FINAL. The exactness test compares the
 * views against them row for row, and `npm run bench -- query` times them as
 * the baseline.
 */

/** v_cost_per_pass_window over raw `attempts FINAL`; the window's bounds are SQL (query parameters by default). */
export function rawCostPerPassSql(db: string, since = '{since:DateTime64(9)}', until = '{until:DateTime64(9)}'): string {
  return `
SELECT
    tenant, model, spec_tier, canary, variant,
    n_attempts AS attempts, n_passes AS passes, n_passes / n_attempts AS pass_rate,
    fleet_wilson_low(n_passes, n_attempts, 1.959963984540054)  AS pass_rate_low,
    fleet_wilson_high(n_passes, n_attempts, 1.959963984540054) AS pass_rate_high,
    sum_cost AS cost_usd,
    sum_cost / nullIf(n_attempts - n_unpriced, 0) AS cost_per_call,
    fleet_cost_per_pass(sum_cost, n_attempts, n_attempts - n_unpriced, n_passes) AS cost_per_pass,
    if(n_passes = 0, NULL, n_attempts / n_passes) AS expected_attempts,
    n_unpriced AS unpriced_attempts, sum_unpriced_calls AS unpriced_calls, sum_reported_cost AS reported_cost_usd,
    sum_llm_calls AS llm_calls, sum_tool_calls AS tool_calls,
    sum_input AS input_tokens, sum_cache_read AS cache_read_tokens, sum_cache_write AS cache_write_tokens,
    sum_output AS output_tokens, sum_reasoning AS reasoning_tokens,
    first_started_at, last_started_at
FROM
(
    SELECT
        tenant, model, spec_tier, canary, variant,
        count() AS n_attempts, countIf(outcome = 'pass') AS n_passes, sum(cost_usd) AS sum_cost,
        countIf(cost_usd IS NULL) AS n_unpriced, sum(unpriced_calls) AS sum_unpriced_calls,
        sum(reported_cost_usd) AS sum_reported_cost, sum(llm_calls) AS sum_llm_calls, sum(tool_calls) AS sum_tool_calls,
        sum(input_tokens) AS sum_input, sum(cache_read_tokens) AS sum_cache_read, sum(cache_write_tokens) AS sum_cache_write,
        sum(output_tokens) AS sum_output, sum(reasoning_tokens) AS sum_reasoning,
        min(started_at) AS first_started_at, max(started_at) AS last_started_at
    FROM ${db}.attempts FINAL
    WHERE started_at >= ${since} AND started_at < ${until}
    GROUP BY tenant, model, spec_tier, canary, variant
    SETTINGS do_not_merge_across_partitions_select_final = 1
)`;
}
