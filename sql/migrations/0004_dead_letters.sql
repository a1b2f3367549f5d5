-- Messages the consumers could not decode, when the dead-letter queue is the
-- store itself (the embedded mode has no Kafka topic to send them to): the
-- raw bytes, where they came from and why they were refused. Kept 30 days.

CREATE TABLE IF NOT EXISTS {{db}}.dead_letters {{on_cluster}}
(
    received_at DateTime64(3, 'UTC') DEFAULT now64(3),
    source      String,
    key         String,
    error       String,
    value       String CODEC(ZSTD(3))
)
ENGINE = MergeTree
PARTITION BY toDate(received_at)
ORDER BY (received_at, source)
TTL toDateTime(received_at) + INTERVAL 30 DAY
SETTINGS ttl_only_drop_parts = 1;
