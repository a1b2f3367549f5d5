/**
 * What test/support/kafka-global-setup.ts hands to the test files (vitest
 * provide/inject). Shared by the global setup and test/support/kafka.ts.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface KafkaTestContext {
  /** Bootstrap servers, comma-separated; '' when no broker is available. */
  brokers: string;
  /** Why no broker is available ('' when one is). Tests that need Kafka fail with it. */
  error: string;
  /** scripts/kafka.sh instance of the shared broker; '' when KAFKA_BROKERS points elsewhere. */
  instance: string;
  /** Prefix of this run's scripts/kafka.sh instances (all stopped by the global teardown). */
  runPrefix: string;
  /** The vitest main process: brokers of this run stop by themselves once it is gone (kafka.sh --owner-pid). */
  ownerPid: number;
}

declare module 'vitest' {
  export interface ProvidedContext {
    kafka: KafkaTestContext;
  }
}

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const kafkaScript = path.join(repoRoot, 'scripts', 'kafka.sh');
/** Suffix of the run's shared broker instance (`<runPrefix>shared`). */
export const SHARED_INSTANCE = 'shared';
