-- The views users query for live $/pass. Each windowed view has a
-- parameterised form (`*_window(since=…, until=…)`) and a plain form over a
-- default window. They read attempts with FINAL (see 0001_tables.sql), so a
-- row inserted twice is counted once.
--
-- Unpriced attempts (cost_usd NULL: some LLM call had no price card in
-- force) are counted in `attempts`, `passes` and `unpriced_attempts` but
-- left out of cost: `cost_usd` sums priced attempts only, `cost_per_call`
-- is its mean over priced attempts, and `cost_per_pass` is
-- cost_per_call ÷ pass_rate — exactly Σcost ÷ passes when every attempt is
-- priced, NULL when no attempt is priced or nothing passed (∞).

-- Wilson score interval for k passes of n at z standard deviations
-- (z = 1.959963984540054 for 95 %; z = 0 gives the point estimate).
-- The bounds are exactly 0 at k = 0 and 1 at k = n, and clamped to [0, 1]
-- elsewhere: the float formula lands a hair outside (-1e-17 at k = 0, n = 21),
-- which would drop a model from a routing bar of 0.
CREATE OR REPLACE FUNCTION fleet_wilson_low {{on_cluster}} AS (k, n, z) ->
    if(n = 0, NULL, if(k = 0, 0, greatest(0, least(1,
        ((k / n) + z * z / (2 * n) - z * sqrt((k / n) * (1 - k / n) / n + z * z / (4 * n * n))) / (1 + z * z / n)))));

CREATE OR REPLACE FUNCTION fleet_wilson_high {{on_cluster}} AS (k, n, z) ->
    if(n = 0, NULL, if(k = n, 1, greatest(0, least(1,
        ((k / n) + z * z / (2 * n) + z * sqrt((k / n) * (1 - k / n) / n + z * z / (4 * n * n))) / (1 + z * z / n)))));

-- Σcost over priced attempts, scaled to all attempts, per pass. Multiplying
-- before dividing keeps it exact (Decimal division truncates at 1e-18 USD).
CREATE OR REPLACE FUNCTION fleet_cost_per_pass {{on_cluster}} AS (cost, attempts, priced_attempts, passes) ->
    if(passes = 0, NULL, cost * attempts / nullIf(priced_attempts * passes, 0));

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
    GROUP BY tenant, model, spec_tier, canary, variant
    SETTINGS do_not_merge_across_partitions_select_final = 1
);

-- Default window: the last 30 days.
CREATE OR REPLACE VIEW {{db}}.v_cost_per_pass {{on_cluster}} AS
SELECT * FROM {{db}}.v_cost_per_pass_window(since = now64(9) - INTERVAL 30 DAY, until = toDateTime64('2262-01-01 00:00:00', 9, 'UTC'));

-- Per tier: models whose pass rate, at its Wilson lower bound for z, meets
-- min_pass_rate, ranked by $/pass (rank 1 = route here). Models that never
-- pass rank last (∞). z = 0 compares the point estimate instead.
CREATE OR REPLACE VIEW {{db}}.v_routing_window {{on_cluster}} AS
SELECT
    tenant, spec_tier, model,
    row_number() OVER (PARTITION BY tenant, spec_tier ORDER BY cost_per_pass ASC NULLS LAST, model ASC) AS rank,
    attempts, passes, pass_rate, pass_rate_low,
    cost_usd, cost_per_call, cost_per_pass, expected_attempts, unpriced_attempts
FROM
(
    SELECT
        tenant, spec_tier, model,
        n_attempts                                        AS attempts,
        n_passes                                          AS passes,
        n_passes / n_attempts                             AS pass_rate,
        fleet_wilson_low(n_passes, n_attempts, {z:Float64}) AS pass_rate_low,
        sum_cost                                          AS cost_usd,
        sum_cost / nullIf(n_attempts - n_unpriced, 0)     AS cost_per_call,
        fleet_cost_per_pass(sum_cost, n_attempts, n_attempts - n_unpriced, n_passes) AS cost_per_pass,
        if(n_passes = 0, NULL, n_attempts / n_passes)     AS expected_attempts,
        n_unpriced                                        AS unpriced_attempts
    FROM
    (
        SELECT tenant, spec_tier, model,
               sum(attempts) AS n_attempts, sum(passes) AS n_passes,
               sum(cost_usd) AS sum_cost, sum(unpriced_attempts) AS n_unpriced
        FROM {{db}}.v_cost_per_pass_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)})
        GROUP BY tenant, spec_tier, model
    )
)
WHERE pass_rate_low >= {min_pass_rate:Float64}
ORDER BY tenant, spec_tier, rank;

-- Default: last 30 days, Wilson 95 % lower bound ≥ 0.8.
CREATE OR REPLACE VIEW {{db}}.v_routing {{on_cluster}} AS
SELECT * FROM {{db}}.v_routing_window(
    since = now64(9) - INTERVAL 30 DAY, until = toDateTime64('2262-01-01 00:00:00', 9, 'UTC'),
    min_pass_rate = 0.8, z = 1.959963984540054);

-- Per spec: how many attempts it took and what it cost to get a pass.
-- Costs are NULL when an attempt they include is unpriced, and
-- cost_until_first_pass is NULL while the spec has not passed (∞).
CREATE OR REPLACE VIEW {{db}}.v_spec_outcomes {{on_cluster}} AS
SELECT
    tenant, spec_id,
    any(tier)                                         AS spec_tier,
    any(canary_)                                      AS canary,
    count()                                           AS attempts,
    countIf(outcome = 'pass')                         AS passes,
    toBool(passes > 0)                                AS passed,
    any(first_pass)                                   AS first_pass_attempt,
    -- first-pass yield inputs: did the first try pass, and on which model
    toBool(countIf(attempt_number = 1 AND outcome = 'pass') > 0) AS first_attempt_passed,
    argMin(model_, attempt_number)                    AS first_attempt_model,
    if(NOT passed OR countIf(attempt_number <= first_pass AND cost IS NULL) > 0, NULL,
       sumIf(cost, attempt_number <= first_pass))     AS cost_until_first_pass,
    if(countIf(cost IS NULL) > 0, NULL, sum(cost))    AS total_cost_usd,
    countIf(cost IS NULL)                             AS unpriced_attempts,
    groupUniqArray(model_)                            AS models,
    min(started)                                      AS first_started_at,
    max(ended)                                        AS last_ended_at
FROM
(
    SELECT tenant, spec_id, spec_tier AS tier, canary AS canary_, model AS model_, attempt_number, outcome,
           cost_usd AS cost, started_at AS started, ended_at AS ended,
           nullIf(minIf(attempt_number, outcome = 'pass') OVER (PARTITION BY tenant, spec_id), 0) AS first_pass
    FROM {{db}}.attempts FINAL
    SETTINGS do_not_merge_across_partitions_select_final = 1
)
GROUP BY tenant, spec_id;

-- Pass rate and $/pass per time bucket, for charts and regression alerts.
CREATE OR REPLACE VIEW {{db}}.v_pass_rate_window {{on_cluster}} AS
SELECT
    tenant, model, spec_tier, canary, variant, bucket,
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
        tenant, model, spec_tier, canary, variant,
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
    GROUP BY tenant, model, spec_tier, canary, variant, bucket
    SETTINGS do_not_merge_across_partitions_select_final = 1
);

-- Default: hourly buckets over the last 7 days.
CREATE OR REPLACE VIEW {{db}}.v_pass_rate {{on_cluster}} AS
SELECT * FROM {{db}}.v_pass_rate_window(
    since = toStartOfHour(now64(9)) - INTERVAL 7 DAY, until = toDateTime64('2262-01-01 00:00:00', 9, 'UTC'), bucket_seconds = 3600);

-- What N dispatches would cost per row of v_cost_per_pass, retrying until
-- each passes (geometric expectation: N ÷ pass_rate attempts).
CREATE OR REPLACE VIEW {{db}}.v_projection_window {{on_cluster}} AS
SELECT
    tenant, model, spec_tier, canary, variant, attempts, passes, pass_rate, cost_per_call, cost_per_pass,
    {dispatches:UInt32}                                      AS dispatches,
    if(passes = 0, NULL, dispatches * attempts / passes)     AS expected_attempts_total,
    if(passes = 0, NULL, dispatches * attempts / passes - dispatches) AS expected_retries,
    cost_per_pass * dispatches                               AS projected_cost_usd
FROM {{db}}.v_cost_per_pass_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)});

-- Default: 100 dispatches at the last 30 days' rates.
CREATE OR REPLACE VIEW {{db}}.v_projection {{on_cluster}} AS
SELECT * FROM {{db}}.v_projection_window(
    since = now64(9) - INTERVAL 30 DAY, until = toDateTime64('2262-01-01 00:00:00', 9, 'UTC'), dispatches = 100);
