-- Faster live $/pass, same numbers: v_cost_per_pass and v_pass_rate group
-- by one LowCardinality column instead of five.
--
-- Why. GROUP BY tenant, model, spec_tier, canary, variant over five
-- LowCardinality columns makes ClickHouse drop LowCardinality, materialise
-- five full String columns and hash the serialised tuple per row: on 5M
-- attempts that GROUP BY alone cost ~1.2 s of CPU (bench/query.ts), more
-- than FINAL, the Decimal sums and the reads together on merged data.
-- GROUP BY of a single LowCardinality column aggregates on the part's
-- dictionary positions instead: ~0.14 s for the same rows and groups.
--
-- The column. `group_key` is the five columns, each hex-encoded, joined by
-- ':' — an injective, settings-independent encoding (hex never contains
-- ':'), so grouping by it makes exactly the groups of the five columns and
-- the views decode the five values back with unhex(substringIndex(…)).
-- Those functions return String, so on a LowCardinality column ClickHouse
-- runs them once per dictionary entry, not per row: a filter on the view
-- (WHERE tenant = … AND spec_tier = …), pushed below the GROUP BY, costs a
-- dictionary lookup per row — as cheap as the primary-key pruning the
-- five-column GROUP BY allowed (bench/query.ts v_cost_per_pass_tier).
-- MATERIALIZED: computed by ClickHouse on every insert (writers do not
-- send it, `SELECT *` does not show it). It is a function of the row, so
-- every version of an attempt carries the key of its own values and FINAL
-- still picks one version per attempt_id before anything is grouped.
--
-- This migration is the upgrade of a database created before it: new
-- databases get the column from 0001_tables.sql and the views from
-- 0002_views.sql, where this file's statements are no-ops (ADD COLUMN IF NOT
-- EXISTS, MATERIALIZE on an empty table, the same views again — the cluster
-- test checks every definition of a view is the same). ADD COLUMN is
-- instant; parts written before it compute the key on read (same values,
-- slower) until MATERIALIZE COLUMN — a background mutation — or a merge
-- writes it into them.

ALTER TABLE {{db}}.attempts {{on_cluster}}
    ADD COLUMN IF NOT EXISTS group_key LowCardinality(String)
    MATERIALIZED concat(hex(tenant), ':', hex(model), ':', hex(spec_tier), ':', hex(canary), ':', hex(variant));

ALTER TABLE {{db}}.attempts {{on_cluster}} MATERIALIZE COLUMN group_key;

-- The views of 0002_views.sql as they are now, grouped by group_key.
CREATE OR REPLACE VIEW {{db}}.v_cost_per_pass_window {{on_cluster}} AS
SELECT
    unhex(substringIndex(group_key, ':', 1))                   AS tenant,
    unhex(substringIndex(substringIndex(group_key, ':', 2), ':', -1)) AS model,
    unhex(substringIndex(substringIndex(group_key, ':', 3), ':', -1)) AS spec_tier,
    unhex(substringIndex(substringIndex(group_key, ':', 4), ':', -1)) AS canary,
    unhex(substringIndex(group_key, ':', -1))                  AS variant,
    n_attempts                                                 AS attempts,
    n_passes                                                   AS passes,
    n_passes / n_attempts                                      AS pass_rate,
    fleet_wilson_low(n_passes, n_attempts, 1.959963984540054)  AS pass_rate_low,
    fleet_wilson_high(n_passes, n_attempts, 1.959963984540054) AS pass_rate_high,
    sum_cost                                                   AS cost_usd,
    sum_cost / nullIf(n_attempts - n_unpriced, 0)              AS cost_per_call,
    fleet_cost_per_pass(sum_cost, n_attempts, n_attempts - n_unpriced, n_passes) AS cost_per_pass,
    if(n_passes = 0, NULL, n_attempts / n_passes)              AS expected_attempts,
    n_unpriced                                                 AS unpriced_attempts,
    sum_unpriced_calls                                         AS unpriced_calls,
    sum_reported_cost                                          AS reported_cost_usd,
    sum_llm_calls AS llm_calls, sum_tool_calls AS tool_calls,
    sum_input AS input_tokens, sum_cache_read AS cache_read_tokens, sum_cache_write AS cache_write_tokens,
    sum_output AS output_tokens, sum_reasoning AS reasoning_tokens,
    first_started_at, last_started_at
FROM
(
    SELECT
        group_key,
        count()                   AS n_attempts,
        countIf(outcome = 'pass') AS n_passes,
        sum(cost_usd)             AS sum_cost,
        countIf(cost_usd IS NULL) AS n_unpriced,
        sum(unpriced_calls)       AS sum_unpriced_calls,
        sum(reported_cost_usd)    AS sum_reported_cost,
        sum(llm_calls)            AS sum_llm_calls,
        sum(tool_calls)           AS sum_tool_calls,
        sum(input_tokens)         AS sum_input,
        sum(cache_read_tokens)    AS sum_cache_read,
        sum(cache_write_tokens)   AS sum_cache_write,
        sum(output_tokens)        AS sum_output,
        sum(reasoning_tokens)     AS sum_reasoning,
        min(started_at)           AS first_started_at,
        max(started_at)           AS last_started_at
    FROM {{db}}.attempts FINAL
    WHERE started_at >= {since:DateTime64(9)} AND started_at < {until:DateTime64(9)}
    GROUP BY group_key
    SETTINGS do_not_merge_across_partitions_select_final = 1
);

CREATE OR REPLACE VIEW {{db}}.v_pass_rate_window {{on_cluster}} AS
SELECT
    unhex(substringIndex(group_key, ':', 1))                   AS tenant,
    unhex(substringIndex(substringIndex(group_key, ':', 2), ':', -1)) AS model,
    unhex(substringIndex(substringIndex(group_key, ':', 3), ':', -1)) AS spec_tier,
    unhex(substringIndex(substringIndex(group_key, ':', 4), ':', -1)) AS canary,
    unhex(substringIndex(group_key, ':', -1))                  AS variant,
    bucket,
    n_attempts                                                 AS attempts,
    n_passes                                                   AS passes,
    n_passes / n_attempts                                      AS pass_rate,
    fleet_wilson_low(n_passes, n_attempts, 1.959963984540054)  AS pass_rate_low,
    fleet_wilson_high(n_passes, n_attempts, 1.959963984540054) AS pass_rate_high,
    sum_cost                                                   AS cost_usd,
    n_unpriced                                                 AS unpriced_attempts,
    fleet_cost_per_pass(sum_cost, n_attempts, n_attempts - n_unpriced, n_passes) AS cost_per_pass,
    sum_input AS input_tokens, sum_cache_read AS cache_read_tokens, sum_cache_write AS cache_write_tokens
FROM
(
    SELECT
        group_key,
        toStartOfInterval(started_at, toIntervalSecond({bucket_seconds:UInt32})) AS bucket,
        count()                   AS n_attempts,
        countIf(outcome = 'pass') AS n_passes,
        sum(cost_usd)             AS sum_cost,
        countIf(cost_usd IS NULL) AS n_unpriced,
        sum(input_tokens)         AS sum_input,
        sum(cache_read_tokens)    AS sum_cache_read,
        sum(cache_write_tokens)   AS sum_cache_write
    FROM {{db}}.attempts FINAL
    WHERE started_at >= {since:DateTime64(9)} AND started_at < {until:DateTime64(9)}
    GROUP BY group_key, bucket
    SETTINGS do_not_merge_across_partitions_select_final = 1
);
