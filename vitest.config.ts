import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    // Integration tests share one Kafka broker and write their own chDB
    // directories; run files in separate forks for isolation (chDB binds one
    // data directory per process).
    pool: 'forks',
    // The JSON report is what .ci/run summarises ("N passed, N failed").
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    // A real Kafka broker for the run (scripts/kafka.sh, or KAFKA_BROKERS);
    // tests get its address from kafkaBrokers() in test/support/kafka.ts.
    globalSetup: ['test/support/kafka-global-setup.ts'],
    // The global teardown stops the broker (SIGTERM, controlled shutdown).
    teardownTimeout: 60_000,
  },
});
