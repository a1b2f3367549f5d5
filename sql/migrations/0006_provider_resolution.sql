-- Provider resolution and re-pricing (pricing/providers.ts, fleet prices
-- reprice). An LLM call records how its provider was found and the evidence
-- it was found from, so a later catalog can re-price it exactly: the
-- instrumentation's provider, the host the request went to, the requested
-- model. Rows written before this migration read as resolved from the
-- instrumentation with no host known (their provider is what it said).

ALTER TABLE {{db}}.llm_calls {{on_cluster}}
    ADD COLUMN IF NOT EXISTS provider_source LowCardinality(String) DEFAULT 'instrumentation' AFTER provider,
    ADD COLUMN IF NOT EXISTS instrumented_provider LowCardinality(String) DEFAULT provider AFTER provider_source,
    ADD COLUMN IF NOT EXISTS server_address LowCardinality(String) DEFAULT '' AFTER instrumented_provider,
    ADD COLUMN IF NOT EXISTS request_model LowCardinality(String) DEFAULT '' AFTER model;

-- The catalog's resellers and declared API hosts, so the loaded catalog can
-- be read back whole (fleet prices check / reprice default to it).
ALTER TABLE {{db}}.prices {{on_cluster}}
    ADD COLUMN IF NOT EXISTS providers Array(String) AFTER aliases,
    ADD COLUMN IF NOT EXISTS hosts Array(String) AFTER providers;
