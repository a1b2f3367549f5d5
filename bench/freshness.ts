/**
 * Freshness: time from an attempt span's end at the SDK (a separate agent
 * process, bench/procs/fresh-agent.ts) to its row being visible in
 * v_cost_per_pass, polled through the ClickHouse-compatible query endpoint
 * every `poll` ms (default 50). Each attempt has its own variant, so its
 * row appears the moment its attempt is written.
 *
 * - embedded: `fleet start` (collector, in-process queue, consumers, chDB).
 * - kafka: `fleet collector` → Kafka → `fleet consumer` → the chDB owner
 *   (`fleet start` in write mode, as in test/e2e.kafka.test.ts), whose query
 *   endpoint is polled.
 *
 * The visible time is when the poll that first returned the row answered,
 * so a sample is an upper bound, at most one poll interval plus one query
 * late (both reported).
 */
import { percentile, round, type Benchmark } from './lib/common.ts';
import { event, events, spawnFleet, spawnNode, stop, tempDir, type Child } from './lib/child.ts';
import { benchBroker, uniqueTopic } from './lib/kafka.ts';

const WRITE_TOKEN = 'bench-write-token-0123456789';

interface Sampled {
  latenciesMs: number[];
  missing: number;
  queryMs: number[];
}

/** Runs the agent against `endpoint` and polls `queryUrl` until every attempt's row is visible. */
async function measure(endpoint: string, queryUrl: string, tenant: string, o: { attempts: number; rate: number; pollMs: number; run: string }): Promise<Sampled> {
  const seen = new Map<string, number>();
  const queryMs: number[] = [];
  let polling = true;
  const sql = `SELECT variant FROM fleet.v_cost_per_pass WHERE tenant = '${tenant}' FORMAT TabSeparated`;
  const url = `${queryUrl}/?query=${encodeURIComponent(sql)}`;
  const poller = (async () => {
    while (polling) {
      const t = performance.now();
      try {
        const text = await (await fetch(url, { signal: AbortSignal.timeout(10_000) })).text();
        const now = Date.now();
        for (const v of text.split('\n')) if (v && !seen.has(v)) seen.set(v, now);
      } catch {
        // a slow or failed poll just delays the next one
      }
      const took = performance.now() - t;
      queryMs.push(took);
      if (took < o.pollMs) await new Promise((r) => setTimeout(r, o.pollMs - took));
    }
  })();
  const agent = spawnNode('bench/procs/fresh-agent.ts', [JSON.stringify({ endpoint, tenant, attempts: o.attempts, rate: o.rate, calls: 6, run: o.run })], { env: { OTEL_EXPORTER_OTLP_TIMEOUT: '30000' } });
  await event(agent, 'done', 60_000 + (o.attempts / o.rate) * 1000);
  const ended = events<{ variant: string; t: number }>(agent, 'ended');
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline && ended.some((e) => !seen.has(e.variant))) await new Promise((r) => setTimeout(r, 100));
  polling = false;
  await poller;
  const latenciesMs = ended.filter((e) => seen.has(e.variant)).map((e) => seen.get(e.variant)! - e.t);
  return { latenciesMs, missing: ended.length - latenciesMs.length, queryMs };
}

function summary(s: Sampled, pollMs: number) {
  return {
    p50Ms: round(percentile(s.latenciesMs, 50)),
    p90Ms: round(percentile(s.latenciesMs, 90)),
    p99Ms: round(percentile(s.latenciesMs, 99)),
    maxMs: round(Math.max(...s.latenciesMs)),
    minMs: round(Math.min(...s.latenciesMs)),
    samples: s.latenciesMs.length,
    missing: s.missing,
    pollIntervalMs: pollMs,
    pollQueryP50Ms: round(percentile(s.queryMs, 50), 1),
    pollQueryP99Ms: round(percentile(s.queryMs, 99), 1),
  };
}

export const freshnessBenchmark: Benchmark = {
  name: 'freshness',
  description: 'attempt span end at the SDK → row visible in v_cost_per_pass, embedded and Kafka modes',
  async run(o) {
    const smoke = o.smoke;
    const attempts = Number(o.set.attempts ?? (smoke ? 4 : 150));
    const rate = Number(o.set.rate ?? (smoke ? 8 : 5));
    const pollMs = Number(o.set.poll ?? 50);
    const modes = (o.set.modes ?? 'embedded,kafka').split(',');
    const metrics: Record<string, number> = {};
    const details: Record<string, unknown> = {};
    const runs: Record<string, number>[] = [];
    const record = (mode: 'embedded' | 'kafka', s: ReturnType<typeof summary>) => {
      o.log(`${mode}: ${JSON.stringify(s)}`);
      details[mode] = s;
      runs.push({ mode: mode === 'embedded' ? 0 : 1, ...s });
      metrics[`${mode}P50Ms`] = s.p50Ms;
      metrics[`${mode}P99Ms`] = s.p99Ms;
      metrics[`${mode}MaxMs`] = s.maxMs;
    };
    if (modes.includes('embedded')) {
      const data = tempDir('fresh-embedded');
      let owner: Child | undefined;
      try {
        owner = spawnFleet(['start', '--data-dir', data.dir, '--collector-port', '0', '--collector-host', '127.0.0.1', '--query-port', '0']);
        const [, collectorUrl, queryUrl] = await owner.waitFor(/OTLP\/HTTP (http:\/\/\S+?)\/v1\/traces · query (http:\/\/[\d.]+:\d+)/, 120_000);
        record('embedded', summary(await measure(collectorUrl!, queryUrl!, 'bench-fresh-embedded', { attempts, rate, pollMs, run: 'e' }), pollMs));
      } finally {
        await stop(owner);
        data.remove();
      }
    }
    if (modes.includes('kafka')) {
      const broker = await benchBroker('freshness', o.kafkaBrokers, o.log);
      const data = tempDir('fresh-kafka');
      const children: Child[] = [];
      try {
        const topic = uniqueTopic('bench_fresh');
        const kafka = ['--kafka-brokers', broker.brokers.join(','), '--topic', topic, '--dead-letter-topic', `${topic}_dlq`, '--topic-partitions', '6'];
        const owner = spawnFleet(['start', '--data-dir', data.dir, '--collector-port', '0', '--query-port', '0', '--query-write-token', WRITE_TOKEN]);
        children.push(owner);
        const queryUrl = (await owner.waitFor(/query (http:\/\/[\d.]+:\d+)/, 120_000))[1]!;
        const collector = spawnFleet(['collector', ...kafka, '--collector-port', '0', '--collector-host', '127.0.0.1']);
        children.push(collector);
        const collectorUrl = (await collector.waitFor(/collector: (http:\/\/\S+?)\/v1\/traces/, 120_000))[1]!;
        const consumer = spawnFleet(['consumer', ...kafka, '--group-id', `${topic}-g`, '--clickhouse-url', queryUrl, '--clickhouse-user', 'perpass_writer', '--clickhouse-password', WRITE_TOKEN, '--metrics-port', '0']);
        children.push(consumer);
        await consumer.waitFor(/consumer: group/, 120_000);
        record('kafka', summary(await measure(collectorUrl, queryUrl, 'bench-fresh-kafka', { attempts, rate, pollMs, run: 'k' }), pollMs));
      } finally {
        for (const c of children.reverse()) await stop(c);
        data.remove();
        await broker.close();
      }
    }
    const units = Object.fromEntries(Object.keys(metrics).map((k) => [k, 'ms']));
    return {
      config: { attempts, ratePerSecond: rate, spansPerAttempt: 13, pollIntervalMs: pollMs, modes, pipeline: 'defaults: SDK batch delay 200 ms, decision wait 500 ms, tick 100 ms, writer 200 ms' },
      metrics,
      units,
      targets: [
        ...(modes.includes('embedded') ? [{ metric: 'embeddedP99Ms', op: '<' as const, target: 2000, unit: 'ms' }] : []),
        ...(modes.includes('kafka') ? [{ metric: 'kafkaP99Ms', op: '<' as const, target: 5000, unit: 'ms' }] : []),
      ],
      runs,
      details,
      notes: [`each sample is an upper bound: visible = when the first poll returning the row answered (poll every ${pollMs} ms; pollQuery* in details is the poll's own latency)`],
    };
  },
};
