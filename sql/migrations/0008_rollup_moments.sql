-- The alert rules' cost moments in the blocks (0007), and a window's sums
-- from the blocks and the raw tail for the rules' attempt windows
-- (alerting/queries.ts).
--
-- A block computed before this migration lacks the new sums: the blocks
-- gain `sums_version`, and the plan uses only blocks of version 1. Older
-- blocks (and any an older refresher still writes: the column defaults to 0)
-- are dirty to the refresher and read raw until it recomputes them.

ALTER TABLE {{db}}.attempt_rollups {{on_cluster}}
    ADD COLUMN IF NOT EXISTS n_priced_passes UInt64,
    -- Σ cost over passing attempts, and Σ cost² (exact: 36 decimals)
    ADD COLUMN IF NOT EXISTS sum_pass_cost Nullable(Decimal(38, 18)),
    ADD COLUMN IF NOT EXISTS sum_cost_sq Nullable(Decimal(76, 36));

ALTER TABLE {{db}}.attempt_rollup_blocks {{on_cluster}}
    ADD COLUMN IF NOT EXISTS sums_version UInt8 DEFAULT 0;

-- A window reads a few hundred computations' granules scattered through the
-- table: with small compression blocks a granule read does not decompress
-- 64 KiB of every column (one merged part of a 10M history: 84 → 55 ms for
-- a 30-day window's rows). Parts written from now on; merges rewrite the rest.
ALTER TABLE {{db}}.attempt_rollups {{on_cluster}}
    MODIFY SETTING min_compress_block_size = 4096, max_compress_block_size = 8192;

-- What a window reads: per (tenant, spec_tier, day) with attempts on or
-- after the window's first day and before its end, the largest clean block
-- inside the window that covers the day (the blocks are aligned, so two
-- chosen blocks never overlap), or level 255: read the day raw. One row per
-- chosen block or raw day. The fingerprints are read once here, for both
-- the blocks' check and the list of days.
CREATE OR REPLACE VIEW {{db}}.attempt_window_plan {{on_cluster}} AS
SELECT DISTINCT tenant, spec_tier, choice.1 AS first_day, choice.2 AS level, choice.3 AS computation
FROM
(
    SELECT tenant, spec_tier,
           -- clean blocks inside the window, largest first
           arrayReverseSort(b -> b.2, groupArrayIf((first_day, level, computation), clean)) AS blocks,
           groupArrayIf(first_day, level = 0 AND toDateTime64(first_day, 9, 'UTC') < {until:DateTime64(9)}) AS days
    FROM
    (
        SELECT f.tenant AS tenant, f.spec_tier AS spec_tier, f.level AS level, f.first_day AS first_day, s.computation AS computation,
               s.computation != 0 AND s.rows = f.rows AND s.hash = f.hash
               AND toDateTime64(f.first_day, 9, 'UTC') >= {since:DateTime64(9)}
               AND toDateTime64(f.first_day + bitShiftLeft(1, f.level), 9, 'UTC') <= {until:DateTime64(9)} AS clean
        FROM {{db}}.attempt_block_fingerprints(since_day = toDate({since:DateTime64(9)})) AS f
        LEFT JOIN
        (
            SELECT tenant, spec_tier, level, first_day, rows, hash, computation
            FROM {{db}}.attempt_rollup_blocks FINAL
            WHERE sums_version = 1
        ) AS s ON s.tenant = f.tenant AND s.spec_tier = f.spec_tier AND s.level = f.level AND s.first_day = f.first_day
    )
    GROUP BY tenant, spec_tier
)
ARRAY JOIN arrayMap((d, i) -> if(i = 0, (d, toUInt8(255), toUInt64(0)), blocks[i]),
                    days, arrayMap(d -> arrayFirstIndex(b -> b.1 <= d AND d < b.1 + bitShiftLeft(1, b.2), blocks), days)) AS choice;

-- A window's sums per (tenant, model, spec_tier, canary, variant) from the
-- plan: chosen blocks' sums plus the raw days with FINAL, one GROUP BY over
-- both. The plan is one scalar subquery written identically in both reads:
-- ClickHouse evaluates it once. (v_cost_per_pass_window keeps 0007's
-- definition, the same union with the views' formulas on top, rather than
-- reading this view: through a second parameterized view a caller's tenant
-- and tier filter no longer reaches the inner query, and one tenant and tier
-- took 176 instead of 130 ms at 10M attempts.)
CREATE OR REPLACE VIEW {{db}}.attempt_window_sums {{on_cluster}} AS
SELECT
    tenant, model, spec_tier, canary, variant,
    sum(n_attempts) AS n_attempts, sum(n_passes) AS n_passes, sum(sum_cost) AS sum_cost,
    sum(n_unpriced) AS n_unpriced, sum(sum_unpriced_calls) AS sum_unpriced_calls,
    sum(sum_reported_cost) AS sum_reported_cost, sum(sum_llm_calls) AS sum_llm_calls,
    sum(sum_tool_calls) AS sum_tool_calls, sum(sum_input) AS sum_input, sum(sum_cache_read) AS sum_cache_read,
    sum(sum_cache_write) AS sum_cache_write, sum(sum_output) AS sum_output, sum(sum_reasoning) AS sum_reasoning,
    sum(n_priced_passes) AS n_priced_passes, sum(sum_pass_cost) AS sum_pass_cost, sum(sum_cost_sq) AS sum_cost_sq,
    min(first_started_at) AS first_started_at, max(last_started_at) AS last_started_at
FROM
(
    SELECT tenant, model, spec_tier, canary, variant, n_attempts, n_passes, sum_cost, n_unpriced, sum_unpriced_calls,
           sum_reported_cost, sum_llm_calls, sum_tool_calls, sum_input, sum_cache_read, sum_cache_write, sum_output,
           sum_reasoning, n_priced_passes, sum_pass_cost, sum_cost_sq, first_started_at, last_started_at
    FROM {{db}}.attempt_rollups
    WHERE computation IN (
        SELECT p.5
        FROM (SELECT arrayJoin((SELECT groupArray((tenant, spec_tier, first_day, level, computation))
                                FROM {{db}}.attempt_window_plan(since = {since:DateTime64(9)}, until = {until:DateTime64(9)}))) AS p)
        WHERE p.4 != 255)
    UNION ALL
    SELECT
        tenant, model, spec_tier, canary, variant,
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
        countIf(cost_usd IS NOT NULL AND outcome = 'pass') AS n_priced_passes,
        sumIf(cost_usd, outcome = 'pass') AS sum_pass_cost,
        sum(toDecimal256(cost_usd, 18) * cost_usd) AS sum_cost_sq,
        min(started_at)           AS first_started_at,
        max(started_at)           AS last_started_at
    FROM {{db}}.attempts FINAL
    -- Filtered before FINAL, so only these rows are merged: the days are
    -- of the sorting key, and started_at is the attempt span's start,
    -- the same in every version of an attempt (written by the consumers'
    -- roll-up and kept by re-pricing).
    -- (The days alone first: a cheap test that spares the tuple test most rows.)
    PREWHERE toDate(started_at) IN (
        SELECT p.3
        FROM (SELECT arrayJoin((SELECT groupArray((tenant, spec_tier, first_day, level, computation))
                                FROM {{db}}.attempt_window_plan(since = {since:DateTime64(9)}, until = {until:DateTime64(9)}))) AS p)
        WHERE p.4 = 255)
      AND (tenant, spec_tier, toDate(started_at)) IN (
        SELECT p.1, p.2, p.3
        FROM (SELECT arrayJoin((SELECT groupArray((tenant, spec_tier, first_day, level, computation))
                                FROM {{db}}.attempt_window_plan(since = {since:DateTime64(9)}, until = {until:DateTime64(9)}))) AS p)
        WHERE p.4 = 255)
      AND started_at >= {since:DateTime64(9)} AND started_at < {until:DateTime64(9)}
    GROUP BY tenant, model, spec_tier, canary, variant
    SETTINGS do_not_merge_across_partitions_select_final = 1
)
GROUP BY tenant, model, spec_tier, canary, variant;
