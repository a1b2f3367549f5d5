-- perpass tables. Placeholders: {{db}} (database), {{on_cluster}} (empty on
-- a single node). Every statement is idempotent: a migration may run twice.
--
-- Exactly-once in effect: rows are keyed by what identifies them
-- (attempt_id, span_id) in ReplacingMergeTree tables, and every view reads
-- them with FINAL. Redelivered Kafka ranges, OTLP exporter retries and
-- re-assembly after a consumer crash all rewrite the same keys, so a number
-- never counts a row twice. For attempts and llm_calls the `version` column
-- (spans counted into the attempt's roll-up) makes the most complete assembly
-- win over a partial one made from a redelivered suffix of a partition; for
-- spans, a row attributed to its attempt wins over the same span written as
-- `outside_attempt` by a consumer that re-read it without its attempt.
-- In llm_calls, `is_deleted` marks tombstones (ReplacingMergeTree(version,
-- is_deleted)): FINAL hides a call whose newest row is a tombstone — an LLM span
-- that turned out to wrap another LLM call (a framework span around the
-- provider client's) once the inner call arrived, so it is not billed twice.
--
-- Partitions are by month of the attempt's start, and the start is part of
-- the key's inputs, so all versions of a row share a partition: the views can
-- run FINAL with do_not_merge_across_partitions_select_final = 1.

CREATE DATABASE IF NOT EXISTS {{db}} {{on_cluster}} ENGINE = Atomic;

CREATE TABLE IF NOT EXISTS {{db}}.attempts {{on_cluster}}
(
    attempt_id         String CODEC(ZSTD(1)),
    tenant             LowCardinality(String),
    spec_id            String CODEC(ZSTD(1)),
    spec_tier          LowCardinality(String),
    canary             LowCardinality(String),
    variant            LowCardinality(String),
    pool               LowCardinality(String),
    -- fleet.model, else the model of the attempt's costliest LLM call
    model              LowCardinality(String),
    attempt_number     UInt32,
    outcome            Enum8('pass' = 1, 'fail' = 2, 'error' = 3, 'timeout' = 4, 'cancelled' = 5, 'unknown' = 6),
    reason             String CODEC(ZSTD(1)),
    started_at         DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    ended_at           DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    duration_ms        Float64,
    llm_calls          UInt32,
    tool_calls         UInt32,
    -- exclusive token kinds: input is uncached input, output excludes reasoning
    input_tokens       UInt64 CODEC(T64, ZSTD(1)),
    cache_read_tokens  UInt64 CODEC(T64, ZSTD(1)),
    cache_write_tokens UInt64 CODEC(T64, ZSTD(1)),
    output_tokens      UInt64 CODEC(T64, ZSTD(1)),
    reasoning_tokens   UInt64 CODEC(T64, ZSTD(1)),
    -- exact USD; NULL when any LLM call of the attempt is unpriced
    cost_usd           Nullable(Decimal(38, 18)),
    reported_cost_usd  Nullable(Decimal(38, 18)),
    unpriced_calls     UInt32,
    trace_id           String CODEC(ZSTD(1)),
    span_id            String CODEC(ZSTD(1)),
    sampled            Bool,
    sampling_rate      Float64,
    decision           LowCardinality(String),
    version            UInt64,
    inserted_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(started_at)
-- tenant and tier lead because every view filters or groups by them; the day
-- keeps time-window scans short; attempt_id makes the key the identity.
ORDER BY (tenant, spec_tier, toDate(started_at), attempt_id);

CREATE TABLE IF NOT EXISTS {{db}}.llm_calls {{on_cluster}}
(
    tenant             LowCardinality(String),
    attempt_id         String CODEC(ZSTD(1)),
    trace_id           String CODEC(ZSTD(1)),
    span_id            String CODEC(ZSTD(1)),
    started_at         DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    ended_at           DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    provider           LowCardinality(String),
    model              LowCardinality(String),
    service_tier       LowCardinality(String),
    input_tokens       UInt64 CODEC(T64, ZSTD(1)),
    cache_read_tokens  UInt64 CODEC(T64, ZSTD(1)),
    cache_write_tokens UInt64 CODEC(T64, ZSTD(1)),
    output_tokens      UInt64 CODEC(T64, ZSTD(1)),
    reasoning_tokens   UInt64 CODEC(T64, ZSTD(1)),
    -- of cache_write_tokens, those written to a 1-hour cache (Anthropic), priced at prices.cache_write_1h
    cache_write_1h_tokens UInt64 CODEC(T64, ZSTD(1)),
    cost_usd           Nullable(Decimal(38, 18)),
    reported_cost_usd  Nullable(Decimal(38, 18)),
    -- the card and period that priced the call
    price_provider     LowCardinality(String),
    price_model        LowCardinality(String),
    price_from         Nullable(DateTime64(9, 'UTC')),
    unpriced_reason    String CODEC(ZSTD(1)),
    dialect            LowCardinality(String),
    -- the roll-up version of the attempt that wrote the row (attempts.version)
    version            UInt64,
    -- 1: a wrapper around another LLM call of the attempt, not billed (hidden by FINAL)
    is_deleted         UInt8,
    inserted_at        DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version, is_deleted)
PARTITION BY toYYYYMM(started_at)
ORDER BY (tenant, toDate(started_at), attempt_id, span_id);

-- Spans kept by tail sampling, OpenTelemetry-shaped. Daily partitions so the
-- TTL drops whole parts instead of rewriting them.
CREATE TABLE IF NOT EXISTS {{db}}.spans {{on_cluster}}
(
    tenant              LowCardinality(String),
    trace_id            String CODEC(ZSTD(1)),
    span_id             String CODEC(ZSTD(1)),
    parent_span_id      String CODEC(ZSTD(1)),
    attempt_id          String CODEC(ZSTD(1)),
    name                LowCardinality(String),
    kind                Enum8('UNSPECIFIED' = 0, 'INTERNAL' = 1, 'SERVER' = 2, 'CLIENT' = 3, 'PRODUCER' = 4, 'CONSUMER' = 5),
    start_time          DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    end_time            DateTime64(9, 'UTC') CODEC(Delta, ZSTD(1)),
    duration_ns         UInt64,
    status_code         Enum8('UNSET' = 0, 'OK' = 1, 'ERROR' = 2),
    status_message      String CODEC(ZSTD(1)),
    attributes          Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    resource_attributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    scope_name          LowCardinality(String),
    scope_version       LowCardinality(String),
    events              Array(Tuple(time DateTime64(9, 'UTC'), name String, attributes Map(String, String))) CODEC(ZSTD(1)),
    -- 1 for kept failures and outliers, the configured fraction for sampled passes
    sampling_rate       Float64,
    sample_reason       LowCardinality(String),
    -- 0 = written outside any attempt, 1 = attributed to its attempt
    version             UInt8,
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toDate(start_time)
ORDER BY (tenant, trace_id, span_id)
TTL toDateTime(start_time) + INTERVAL {{spans_ttl_days}} DAY
SETTINGS ttl_only_drop_parts = 1;

-- The price catalog, one row per (provider, model, period), replaced as a
-- whole when a catalog is loaded so history can be re-priced in SQL.
CREATE TABLE IF NOT EXISTS {{db}}.prices {{on_cluster}}
(
    provider            LowCardinality(String),
    model               LowCardinality(String),
    aliases             Array(String),
    valid_from          DateTime64(3, 'UTC'),
    valid_to            Nullable(DateTime64(3, 'UTC')),
    -- USD per million tokens
    input               Decimal(18, 9),
    cache_read          Decimal(18, 9),
    cache_write         Decimal(18, 9),
    cache_write_1h      Decimal(18, 9),
    output              Decimal(18, 9),
    reasoning           Decimal(18, 9),
    batch_multiplier    Nullable(Decimal(9, 3)),
    flex_multiplier     Nullable(Decimal(9, 3)),
    priority_multiplier Nullable(Decimal(9, 3)),
    source              String
)
ENGINE = MergeTree
ORDER BY (provider, model, valid_from);
