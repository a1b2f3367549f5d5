/**
 * vitest globalSetup: a real Kafka broker for the test run.
 *
 * - KAFKA_BROKERS=host:port[,host:port]: that cluster is used as is (tests
 *   create their own uniquely named topics; nothing is stopped).
 * - Otherwise scripts/kafka.sh starts a single-node broker for this run
 *   (instance "t<run id>-shared", jars cached in .kafka/, ~5 s) and stops it
 *   on teardown. Each run has its own, so concurrent runs (two developers in
 *   one tree, watch mode next to CI) never stop each other's broker.
 * - If the broker cannot start: with CI=true the whole run fails right here;
 *   locally the tests that need Kafka fail with the script's message (what is
 *   missing: Java 17, mvn, …) while the others run. Nothing is skipped.
 *
 * Tests read the address with kafkaBrokers() from test/support/kafka.ts.
 */
import { randomBytes } from 'node:crypto';
import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { SHARED_INSTANCE, repoRoot, type KafkaTestContext } from './kafka-context.ts';
import { runKafkaScript } from './kafka-script.ts';

const isCI = () => /^(1|true|yes)$/i.test(process.env.CI ?? '');

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const runPrefix = `t${randomBytes(3).toString('hex')}-`;
  const external = (process.env.KAFKA_BROKERS ?? '').trim();
  if (external) {
    const context: KafkaTestContext = { brokers: external, error: '', instance: '', runPrefix, ownerPid: process.pid };
    project.provide('kafka', context);
    return () => stopPrivateBrokers(runPrefix);
  }

  await pruneOldLogs();
  const instance = `${runPrefix}${SHARED_INSTANCE}`;
  const started = Date.now();
  let context: KafkaTestContext;
  try {
    const { stdout } = await runKafkaScript(['start', '--name', instance, '--owner-pid', String(process.pid)]);
    const brokers = stdout.split('\n').pop() ?? '';
    if (!/^[\w.-]+:\d+$/.test(brokers)) throw new Error(`scripts/kafka.sh start printed no address: ${JSON.stringify(stdout)}`);
    context = { brokers, error: '', instance, runPrefix, ownerPid: process.pid };
    process.stderr.write(`kafka: test broker ${brokers} started in ${Date.now() - started} ms\n`);
  } catch (e) {
    // A half-started broker must not outlive the run.
    await runKafkaScript(['stop', '--name', instance], 120_000).catch(() => {});
    const message =
      `No Kafka broker for the tests: ${e instanceof Error ? e.message : String(e)}\n` +
      'Install what is named above (the broker needs Java 17+, and mvn to fetch its jars once), ' +
      'or point KAFKA_BROKERS at a running cluster.';
    if (isCI()) throw new Error(`CI=true: ${message}`);
    context = { brokers: '', error: message, instance: '', runPrefix, ownerPid: process.pid };
  }
  project.provide('kafka', context);

  return () => stopPrivateBrokers(runPrefix);
}

const kafkaDir = () => process.env.PERPASS_KAFKA_DIR ?? path.join(repoRoot, '.kafka');

/** Broker logs of stopped test instances (tNNNNNN-*.last.log) are kept a day for post-mortems. */
async function pruneOldLogs(): Promise<void> {
  const dir = kafkaDir();
  const dayAgo = Date.now() - 86_400_000;
  try {
    for (const name of await readdir(dir)) {
      if (!/^t[0-9a-f]{6}-.*\.last\.log$/.test(name)) continue;
      const file = path.join(dir, name);
      if ((await stat(file)).mtimeMs < dayAgo) await rm(file, { force: true });
    }
  } catch {
    // no .kafka yet
  }
}

/** Stops this run's brokers: the shared one and those tests started for themselves and left behind. */
async function stopPrivateBrokers(runPrefix: string): Promise<void> {
  const dir = kafkaDir();
  let names: string[] = [];
  try {
    names = (await readdir(dir, { withFileTypes: true })).filter((d) => d.isDirectory() && d.name.startsWith(runPrefix)).map((d) => d.name);
  } catch {
    return;
  }
  await Promise.all(names.map((name) => runKafkaScript(['stop', '--name', name], 120_000).catch(() => {})));
}
