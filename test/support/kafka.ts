/**
 * Kafka for tests: the broker started by test/support/kafka-global-setup.ts
 * (or KAFKA_BROKERS), unique topics, and brokers a test may stop and restart.
 *
 * Tests that need Kafka call kafkaBrokers() (or createTopic()); when no
 * broker could be started they FAIL with the reason — never skip.
 */
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { ensureTopics } from '../../bus/kafka.ts';
import { runKafkaScript } from './kafka-script.ts';
import type { KafkaTestContext } from './kafka-context.ts';

function context(): KafkaTestContext {
  const ctx = inject('kafka');
  if (!ctx) {
    throw new Error(
      'Kafka test context missing: the vitest globalSetup test/support/kafka-global-setup.ts did not run (is vitest.config.ts in use?)',
    );
  }
  return ctx;
}

/** Bootstrap servers of the shared test broker; throws, saying what is missing, when there is none. */
export function kafkaBrokers(): string[] {
  const ctx = context();
  if (ctx.error || !ctx.brokers) throw new Error(ctx.error || 'No Kafka broker for the tests (unknown reason)');
  return ctx.brokers.split(',').map((b) => b.trim()).filter(Boolean);
}

/** A name no other test (or earlier run) uses: `${prefix}-<time>-<random>`. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
}

/** Creates a fresh topic `${prefix}-…` with `partitions` partitions on `brokers` (default: the shared broker). */
export async function createTopic(prefix: string, partitions: number, brokers: string[] = kafkaBrokers()): Promise<string> {
  const topic = uniqueName(prefix);
  const created = await ensureTopics(brokers, [{ topic, partitions }], { logLevel: 'error' });
  if (!created.includes(topic)) throw new Error(`topic ${topic} was not created`);
  return topic;
}

/** A broker managed by scripts/kafka.sh that a test may stop and restart. */
export interface TestBroker {
  /** scripts/kafka.sh instance name. */
  readonly instance: string;
  /** Bootstrap servers (the same before and after a restart). */
  readonly brokers: string[];
  /** Stops the broker, keeping its data and port (an outage). */
  stop(): Promise<void>;
  /** Restarts the stopped broker with the same port and data; resolves once it serves. */
  start(): Promise<void>;
  /** Stops it for good and deletes its data. */
  destroy(): Promise<void>;
}

function managedBroker(instance: string, brokers: string[], ownerPid: number): TestBroker {
  return {
    instance,
    brokers,
    stop: async () => {
      await runKafkaScript(['stop', '--keep', '--name', instance], 120_000);
    },
    start: async () => {
      const { stdout } = await runKafkaScript(['start', '--name', instance, '--owner-pid', String(ownerPid)]);
      const address = stdout.split('\n').pop();
      if (address !== brokers.join(',')) throw new Error(`broker ${instance} came back on ${address}, not ${brokers.join(',')}`);
    },
    destroy: async () => {
      await runKafkaScript(['stop', '--name', instance], 120_000);
    },
  };
}

/**
 * Starts a broker of the test's own (a separate scripts/kafka.sh instance,
 * ~5 s) — for tests that stop and restart Kafka without failing the test
 * files that run at the same time against the shared broker. The global
 * teardown stops it if the test does not destroy() it.
 */
export async function privateBroker(name: string): Promise<TestBroker> {
  const ctx = context();
  if (!/^[\w.-]+$/.test(name)) throw new Error(`invalid broker name ${name}`);
  const instance = `${ctx.runPrefix}${name}`;
  let stdout: string;
  try {
    ({ stdout } = await runKafkaScript(['start', '--name', instance, '--owner-pid', String(ctx.ownerPid)]));
  } catch (e) {
    throw new Error(
      `Could not start a private Kafka broker for this test (it needs Java 17+ and the jars mvn fetches): ${e instanceof Error ? e.message : String(e)}`,
      { cause: e },
    );
  }
  return managedBroker(instance, [stdout.split('\n').pop() ?? ''], ctx.ownerPid);
}
