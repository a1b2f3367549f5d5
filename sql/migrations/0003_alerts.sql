-- Alerting: the lifecycle of every alert, the outcome of every notification
-- and the pipeline-health samples the rules compare over time.
-- Placeholders: {{db}}, {{on_cluster}}. Every statement is idempotent.
--
-- `alerts` is the event log (firing, renotify, update, resolved). Each row
-- carries the alert's complete state after the event, so the current state
-- of an alert is its latest row (v_alerts: argMax by `at`) and the alerts
-- service reloads it on restart instead of notifying again. The service
-- writes an event before it notifies, and one evaluation writes at most one
-- row per alert, so (fingerprint, at) identifies a row: a retried insert
-- replaces itself (ReplacingMergeTree), and `at` is in the partition key's
-- input so both copies always meet in one partition.

CREATE TABLE IF NOT EXISTS {{db}}.alerts {{on_cluster}}
(
    fingerprint      String,
    -- evaluation time of the event
    at               DateTime64(3, 'UTC'),
    event            Enum8('firing' = 1, 'renotify' = 2, 'update' = 3, 'resolved' = 4),
    rule             LowCardinality(String),
    kind             LowCardinality(String),
    severity         LowCardinality(String),
    labels           Map(LowCardinality(String), String),
    state            Enum8('firing' = 1, 'resolved' = 2),
    started_at       DateTime64(3, 'UTC'),
    ended_at         Nullable(DateTime64(3, 'UTC')),
    last_notified_at DateTime64(3, 'UTC'),
    -- consecutive evaluations with the condition cleared (hysteresis)
    clear_count      UInt32,
    -- the headline number (recent pass rate, $/pass ratio, calls, lag …),
    -- ±∞ stored as ±max Float64 (`details` has the exact statistics)
    value            Float64,
    summary          String,
    description      String CODEC(ZSTD(1)),
    -- JSON object: every statistic behind the decision
    details          String CODEC(ZSTD(1)),
    resolve_reason   LowCardinality(String),
    -- sinks the notification was queued for (empty for update events)
    sinks            Array(LowCardinality(String)),
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (fingerprint, at);

-- Current state per alert: its latest event.
CREATE OR REPLACE VIEW {{db}}.v_alerts {{on_cluster}} AS
SELECT
    fingerprint,
    s.1 AS rule, s.2 AS kind, s.3 AS severity, s.4 AS labels, s.5 AS state,
    s.6 AS started_at, s.7 AS ended_at, s.8 AS last_notified_at, s.9 AS clear_count,
    s.10 AS value, s.11 AS summary, s.12 AS description, s.13 AS details, s.14 AS resolve_reason,
    updated_at, notifications
FROM
(
    SELECT
        fingerprint,
        argMax((rule, kind, severity, labels, state, started_at, ended_at, last_notified_at, clear_count,
                value, summary, description, details, resolve_reason), at) AS s,
        max(at) AS updated_at,
        countIf(event != 'update') AS notifications
    FROM {{db}}.alerts FINAL
    GROUP BY fingerprint
    SETTINGS do_not_merge_across_partitions_select_final = 1
);

-- One row per (notification, sink): delivered, failed after every retry, or
-- dropped from a full queue. A notification in `alerts` with a sink in its
-- `sinks` but no row here for it was still queued when its process stopped:
-- the next start sends it (within delivery.redeliverWithin).
CREATE TABLE IF NOT EXISTS {{db}}.alert_deliveries {{on_cluster}}
(
    fingerprint String,
    event_at    DateTime64(3, 'UTC'),
    event       LowCardinality(String),
    sink        LowCardinality(String),
    status      Enum8('delivered' = 1, 'failed' = 2, 'dropped' = 3),
    attempts    UInt32,
    error       String,
    at          DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_at)
ORDER BY (fingerprint, event_at, sink)
TTL toDateTime(event_at) + INTERVAL 90 DAY;

-- Pipeline-health samples (consumer lag per topic, cumulative dead letters
-- per scraped target), one per evaluation, so growth and "for how long" are
-- computed across evaluations, restarts and one-shot `fleet alerts check`.
CREATE TABLE IF NOT EXISTS {{db}}.alert_samples {{on_cluster}}
(
    rule   LowCardinality(String),
    target String,
    series String,
    at     DateTime64(3, 'UTC'),
    value  Float64
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(at)
ORDER BY (rule, series, target, at)
TTL toDateTime(at) + INTERVAL 7 DAY
SETTINGS ttl_only_drop_parts = 1;
