-- Pre-aggregated attempts: v_cost_per_pass_window (and v_cost_per_pass,
-- v_routing, v_projection, which read it) answered from per-block sums plus
-- an exact raw tail, so a query's cost follows the groups and blocks it
-- reads instead of the attempts behind them. docs/performance.md ("Query")
-- says why it is exact; in short:
--
-- 1. Fingerprints. Every (tenant, spec_tier, day of started_at) of
--    `attempts` has a fingerprint: its raw rows (every version, not FINAL)
--    and the sum mod 2^64 of a hash of each row. A projection keeps them in
--    every part, so they are read from a few thousand rows and change in the
--    same commit as the rows (an insert adds rows; a merge that drops
--    superseded versions removes some). All versions of an attempt share
--    its day (started_at is in the key's inputs), so a day's FINAL result
--    is a function of that day's raw rows.
-- 2. Blocks. A block is 2^level aligned days (level 0–5: 1 to 32 days) of
--    one (tenant, spec_tier). A refresher (storage/rollups.ts) writes a
--    block's sums per (model, canary, variant) under a new computation id,
--    then the block's row in attempt_rollup_blocks naming that computation
--    and the fingerprint it was computed for: a day's fingerprint read
--    before its FINAL sums, a parent's the sum of its children's.
-- 3. Reads. A block is used only while the fingerprint stored with it
--    equals the live one, which holds exactly when no row of its days was
--    added or dropped since (up to a 2^-64 hash coincidence); every other
--    day of the window — dirty, not refreshed yet, today, or cut by the
--    window's edge — is read raw with FINAL. Which blocks and which raw
--    days is decided once per query (a scalar subquery, evaluated once and
--    shared by both reads), so no day is counted twice or missed.

ALTER TABLE {{db}}.attempts {{on_cluster}} MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

-- The hash of a row: what identifies it and everything the views read.
ALTER TABLE {{db}}.attempts {{on_cluster}}
    ADD COLUMN IF NOT EXISTS fingerprint UInt64 ALIAS cityHash64(
        attempt_id, version, inserted_at, started_at, model, canary, variant, pool, spec_id, attempt_number, outcome,
        ifNull(toString(cost_usd), '-'), ifNull(toString(reported_cost_usd), '-'), unpriced_calls, llm_calls, tool_calls,
        input_tokens, cache_read_tokens, cache_write_tokens, output_tokens, reasoning_tokens);

ALTER TABLE {{db}}.attempts {{on_cluster}}
    ADD PROJECTION IF NOT EXISTS day_fingerprints
    (SELECT tenant, spec_tier, toDate(started_at), count(), sum(fingerprint) GROUP BY tenant, spec_tier, toDate(started_at));

-- Rows written before this migration: a background mutation. Until it is
-- done their parts are read in full for fingerprints (slower, still exact).
ALTER TABLE {{db}}.attempts {{on_cluster}} MATERIALIZE PROJECTION day_fingerprints;

-- The blocks' current computations. A row replaces its block's previous one.
CREATE TABLE IF NOT EXISTS {{db}}.attempt_rollup_blocks {{on_cluster}}
(
    tenant       LowCardinality(String),
    spec_tier    LowCardinality(String),
    level        UInt8,
    first_day    Date,
    -- the fingerprint the sums were computed for
    rows         UInt64,
    hash         UInt64,
    computation  UInt64,
    computed_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(computed_at)
ORDER BY (tenant, spec_tier, level, first_day);

-- Sums per (block, computation, model, canary, variant), typed as the raw
-- aggregates are so both reads union. A computation id names one block's
-- sums (a hash of the block and a per-refresh nonce), so a read selects
-- them by id alone: sorted by it, in small granules, a window reads its few
-- hundred computations' granules, not every block of the history. Rows of
-- superseded computations are deleted by the refresher once no query can
-- still be reading them.
CREATE TABLE IF NOT EXISTS {{db}}.attempt_rollups {{on_cluster}}
(
    tenant             LowCardinality(String),
    spec_tier          LowCardinality(String),
    level              UInt8,
    first_day          Date,
    computation        UInt64,
    model              LowCardinality(String),
    canary             LowCardinality(String),
    variant            LowCardinality(String),
    n_attempts         UInt64,
    n_passes           UInt64,
    sum_cost           Nullable(Decimal(38, 18)),
    n_unpriced         UInt64,
    sum_unpriced_calls UInt64,
    sum_reported_cost  Nullable(Decimal(38, 18)),
    sum_llm_calls      UInt64,
    sum_tool_calls     UInt64,
    sum_input          UInt64,
    sum_cache_read     UInt64,
    sum_cache_write    UInt64,
    sum_output         UInt64,
    sum_reasoning      UInt64,
    first_started_at   DateTime64(9, 'UTC'),
    last_started_at    DateTime64(9, 'UTC'),
    computed_at        DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY computation
SETTINGS index_granularity = 256;

-- Live fingerprints of the blocks at every level whose days all start at or
-- after `since_day` (from the projection: a few rows per tenant, tier and day).
CREATE OR REPLACE VIEW {{db}}.attempt_block_fingerprints {{on_cluster}} AS
SELECT tenant, spec_tier, level,
       toDate(bitShiftLeft(bitShiftRight(toUInt16(day), level), level)) AS first_day,
       sum(day_rows) AS rows, sum(day_hash) AS hash
FROM
(
    SELECT tenant, spec_tier, toDate(started_at) AS day, count() AS day_rows, sum(fingerprint) AS day_hash
    FROM {{db}}.attempts
    WHERE toDate(started_at) >= {since_day:Date}
    GROUP BY tenant, spec_tier, day
)
ARRAY JOIN [0, 1, 2, 3, 4, 5] AS level
GROUP BY tenant, spec_tier, level, first_day
HAVING first_day >= {since_day:Date};

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
        ) AS s ON s.tenant = f.tenant AND s.spec_tier = f.spec_tier AND s.level = f.level AND s.first_day = f.first_day
    )
    GROUP BY tenant, spec_tier
)
ARRAY JOIN arrayMap((d, i) -> if(i = 0, (d, toUInt8(255), toUInt64(0)), blocks[i]),
                    days, arrayMap(d -> arrayFirstIndex(b -> b.1 <= d AND d < b.1 + bitShiftLeft(1, b.2), blocks), days)) AS choice;

-- v_cost_per_pass_window (0002) from the plan: chosen blocks' sums plus the
-- raw days with FINAL, one GROUP BY over both. The plan is one scalar
-- subquery written identically in both reads: ClickHouse evaluates it once.
CREATE OR REPLACE VIEW {{db}}.v_cost_per_pass_window {{on_cluster}} AS
SELECT
    tenant, model, spec_tier, canary, variant,
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
        tenant, model, spec_tier, canary, variant,
        sum(n_attempts) AS n_attempts, sum(n_passes) AS n_passes, sum(sum_cost) AS sum_cost,
        sum(n_unpriced) AS n_unpriced, sum(sum_unpriced_calls) AS sum_unpriced_calls,
        sum(sum_reported_cost) AS sum_reported_cost, sum(sum_llm_calls) AS sum_llm_calls,
        sum(sum_tool_calls) AS sum_tool_calls, sum(sum_input) AS sum_input, sum(sum_cache_read) AS sum_cache_read,
        sum(sum_cache_write) AS sum_cache_write, sum(sum_output) AS sum_output, sum(sum_reasoning) AS sum_reasoning,
        min(first_started_at) AS first_started_at, max(last_started_at) AS last_started_at
    FROM
    (
        SELECT tenant, model, spec_tier, canary, variant, n_attempts, n_passes, sum_cost, n_unpriced, sum_unpriced_calls,
               sum_reported_cost, sum_llm_calls, sum_tool_calls, sum_input, sum_cache_read, sum_cache_write, sum_output,
               sum_reasoning, first_started_at, last_started_at
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
    GROUP BY tenant, model, spec_tier, canary, variant
);
