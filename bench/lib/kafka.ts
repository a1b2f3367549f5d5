/**
 * Kafka for the benchmarks: a broker of the benchmark's own, started with
 * scripts/kafka.sh (the same single-node KRaft broker the tests use: Kafka
 * 4.4, 512 MiB heap, SerialGC, C1 only), or the cluster named by
 * KAFKA_BROKERS / --kafka. The broker runs on this machine and competes for
 * its cores; per-core numbers divide by the CPU time of the measured process only.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { ensureTopics } from '../../bus/kafka.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function kafkaScript(args: string[], timeoutMs = 300_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', [path.join(ROOT, 'scripts/kafka.sh'), ...args], { cwd: ROOT, timeout: timeoutMs, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`scripts/kafka.sh ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout.trim());
    });
  });
}

export interface BenchBroker {
  brokers: string[];
  /** True when started here (and so may be stopped and restarted). */
  owned: boolean;
  /** Stops it keeping data and port: an outage. */
  pause(): Promise<void>;
  /** Ends the outage (same address). */
  resume(): Promise<void>;
  /** Stops and deletes it (no-op for an external cluster). */
  close(): Promise<void>;
}

/**
 * `external` (KAFKA_BROKERS) is used when given, unless `mustOwn` (a benchmark
 * that stops the broker needs one of its own).
 */
export async function benchBroker(name: string, external: string[] | undefined, log: (m: string) => void, mustOwn = false): Promise<BenchBroker> {
  if (external?.length && !mustOwn) {
    return { brokers: external, owned: false, pause: async () => { throw new Error('cannot stop an external broker'); }, resume: async () => {}, close: async () => {} };
  }
  const instance = `bench-${name}-${process.pid}`;
  const started = performance.now();
  const out = await kafkaScript(['start', '--name', instance, '--owner-pid', String(process.pid)]);
  const address = out.split('\n').pop()!;
  log(`Kafka broker ${instance} on ${address} (${((performance.now() - started) / 1000).toFixed(1)} s to start)`);
  return {
    brokers: [address],
    owned: true,
    pause: async () => {
      await kafkaScript(['stop', '--keep', '--name', instance]);
    },
    resume: async () => {
      const again = (await kafkaScript(['start', '--name', instance, '--owner-pid', String(process.pid)])).split('\n').pop();
      if (again !== address) throw new Error(`broker ${instance} came back on ${again}, not ${address}`);
    },
    close: async () => {
      await kafkaScript(['stop', '--name', instance], 120_000).catch((e: Error) => log(`stopping ${instance}: ${e.message}`));
    },
  };
}

export const uniqueTopic = (prefix: string): string => `${prefix}_${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;

export async function createTopic(brokers: string[], topic: string, partitions: number): Promise<void> {
  await ensureTopics(brokers, [{ topic, partitions }], { logLevel: 'error' });
}

/** Deletes topics a benchmark filled and has read back, so runs on a shared broker leave no gigabytes behind. */
export async function deleteTopics(brokers: string[], topics: string[]): Promise<void> {
  const admin = new kafkajs.Kafka({ brokers, logLevel: kafkajs.logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.deleteTopics({ topics });
  } finally {
    await admin.disconnect();
  }
}
