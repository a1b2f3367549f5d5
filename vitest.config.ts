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
  },
});
