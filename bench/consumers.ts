/**
 * Consumers: one `fleet consumer` process (kafkajs group member → decode →
 * assemble → price → tail-sample → embedded chDB in the same process)
 * draining a topic pre-filled with a large planned fleet, as the collector
 * would have published it. Each repeat is a fresh consumer group and a fresh
 * chDB directory over the same topic.
 *
 * Rates come from the consumer's own /metrics, scraped every 250 ms:
 * spans/s (steady) = spans read between 10 % and 90 % of the topic ÷ the
 * time between; drain = from the first scrape that saw spans until every
 * attempt row is written. CPU: /proc/<pid>/stat over the steady window
 * (chDB's insert threads included: it runs in the consumer process).
 *
 * Knobs (--set): attempts (80,000), partitions (6), spansPerRequest (512),
 * profile=1 (V8 CPU profile of the first repeat), store=remote — the
 * production topology: the consumer writes over HTTP to a ClickHouse
 * server (here a `fleet start` owning chDB in another process, in its
 * write mode), so its own CPU is the consumer's work alone;
 * fleet=<another checkout's bin/fleet.js> runs that build's consumer (the
 * store's owner stays this checkout's), for a side-by-side comparison.
 */
const WRITE_TOKEN = 'bench-write-token-0123456789';
import { CpuWindow, percentile, round, sleep, summarizeRuns, type Benchmark } from './lib/common.ts';
import path from 'node:path';
import { newestProfile, profilesDir, spawnFleet, spawnNode, stop, tempDir, type Child } from './lib/child.ts';
import { benchBroker, createTopic, uniqueTopic } from './lib/kafka.ts';
import { metricSeries, metricValue, scrape } from './lib/metrics.ts';
import { prefill } from './lib/prefill.ts';
import { topSelfTime } from './lib/profile.ts';

export const consumersBenchmark: Benchmark = {
  name: 'consumers',
  description: 'Kafka → fleet consumer (assemble, price, tail-sample) → chDB: spans/s and attempts/s per process',
  async run(o) {
    const smoke = o.smoke;
    const repeats = o.repeats ?? (smoke ? 1 : 3);
    const attempts = Number(o.set.attempts ?? (smoke ? 300 : 80_000));
    const partitions = Number(o.set.partitions ?? 6);
    const spansPerRequest = Number(o.set.spansPerRequest ?? 512);
    const profile = o.set.profile === '1';
    const remote = o.set.store === 'remote';
    const broker = await benchBroker('consumers', o.kafkaBrokers, o.log);
    const runs: Record<string, number>[] = [];
    const details: Record<string, unknown> = {};
    const profDir = profile ? profilesDir('consumer') : undefined;
    try {
      const topic = uniqueTopic('bench_consumers');
      await createTopic(broker.brokers, topic, partitions);
      await createTopic(broker.brokers, `${topic}_dlq`, 1);
      const filled = await prefill(broker.brokers, topic, { attempts, spansPerRequest }, o.log);
      details.prefill = { ...filled, seconds: round(filled.seconds, 1), spansPerMessage: round(filled.spans / filled.messages, 2), bytesPerMessage: Math.round(filled.bytes / filled.messages) };
      o.log(`prefilled ${topic}: ${JSON.stringify(details.prefill)}`);
      for (let r = 0; r < repeats; r++) {
        const data = tempDir('consumer');
        let consumer: Child | undefined;
        let owner: Child | undefined;
        let stopping = false;
        try {
          let storeArgs = ['--data-dir', data.dir];
          if (remote) {
            owner = spawnFleet(['start', '--data-dir', data.dir, '--collector-port', '0', '--query-port', '0', '--query-write-token', WRITE_TOKEN]);
            const queryUrl = (await owner.waitFor(/query (http:\/\/[\d.]+:\d+)/, 120_000))[1]!;
            storeArgs = ['--clickhouse-url', queryUrl, '--clickhouse-user', 'perpass_writer', '--clickhouse-password', WRITE_TOKEN];
          }
          const spawnConsumer = (args: string[], opts: Parameters<typeof spawnFleet>[1]) =>
            o.set.fleet ? spawnNode(path.relative(process.cwd(), path.resolve(o.set.fleet)), args, opts) : spawnFleet(args, opts);
          consumer = spawnConsumer(
            ['consumer', '--kafka-brokers', broker.brokers.join(','), '--topic', topic, '--dead-letter-topic', `${topic}_dlq`, '--topic-partitions', String(partitions), '--group-id', `${topic}-g${r}`, ...storeArgs, '--metrics-port', '0'],
            { ...(profDir && r === 0 && { cpuProfDir: profDir }) },
          );
          const c = consumer;
          void c.exited.then((code) => {
            if (!stopping) o.log(`consumer exited early (${code}); output tail:\n${c.output().slice(-3000)}`);
          });
          const port = (await consumer.waitFor(/consumer: group .* metrics :(\d+)\/metrics/, 120_000))[1];
          const url = `http://127.0.0.1:${port}/metrics`;
          const samples: { t: number; spans: number; attempts: number }[] = [];
          let first: number | undefined;
          let cpu: CpuWindow | undefined;
          let steady: ReturnType<CpuWindow['end']> | undefined;
          let t10: number | undefined;
          let t90: number | undefined;
          let s10 = 0;
          let s90 = 0;
          const deadline = Date.now() + (smoke ? 120_000 : 900_000);
          let text = '';
          const scrapeMs: number[] = [];
          const stalls: { atS: number; ms: number; spansBefore: number }[] = [];
          let loopMaxS = 0;
          const loopSeries: { atS: number; maxMs: number }[] = [];
          let loopP99S = 0;
          for (;;) {
            const ts = performance.now();
            text = await scrape(url);
            const t = performance.now();
            scrapeMs.push(t - ts);
            // the scrape is answered by the consumer's event loop: a slow one means the loop was blocked that long
            if (t - ts > 1000) stalls.push({ atS: round((ts - (first ?? ts)) / 1000, 1), ms: Math.round(t - ts), spansBefore: samples.at(-1)?.spans ?? 0 });
            const spans = metricValue(text, 'fleet_consumer_spans_total');
            const written = metricValue(text, 'fleet_consumer_rows_written_total', { table: 'attempts' });
            samples.push({ t, spans, attempts: written });
            // prom-client's default metrics: event-loop delay since the previous scrape
            const lagMax = metricValue(text, 'nodejs_eventloop_lag_max_seconds');
            loopSeries.push({ atS: round((t - (first ?? t)) / 1000, 1), maxMs: round(lagMax * 1000) });
            // the first scrape's figure covers the process's start (module loading, chDB, migrations): not counted
            if (samples.length > 1) loopMaxS = Math.max(loopMaxS, lagMax);
            if (samples.length > 1) loopP99S = Math.max(loopP99S, metricValue(text, 'nodejs_eventloop_lag_p99_seconds'));
            if (spans > 0 && first === undefined) first = t;
            if (t10 === undefined && spans >= 0.1 * filled.spans) {
              t10 = t;
              s10 = spans;
              cpu = new CpuWindow({ consumer: consumer.proc.pid!, ...(owner && { store: owner.proc.pid! }) });
            }
            if (t90 === undefined && spans >= 0.9 * filled.spans) {
              t90 = t;
              s90 = spans;
              steady = cpu?.end();
            }
            if (written >= filled.attempts && spans >= filled.spans) break;
            if (Date.now() > deadline) throw new Error(`consumer did not finish: ${spans}/${filled.spans} spans, ${written}/${filled.attempts} attempt rows`);
            await sleep(250);
          }
          const end = performance.now();
          const drainS = (end - first!) / 1000;
          const steadyS = t90 !== undefined && t10 !== undefined && t90 > t10 ? (t90 - t10) / 1000 : drainS;
          const steadySpans = t90 !== undefined && t10 !== undefined && t90 > t10 ? s90 - s10 : filled.spans;
          const decisions = metricSeries(text, 'fleet_consumer_decisions_total');
          const byDecision: Record<string, number> = {};
          for (const d of decisions) {
            const k = /decision="([^"]+)"/.exec(d.labels)?.[1] ?? '?';
            byDecision[k] = (byDecision[k] ?? 0) + d.value;
          }
          // a window under 1 s (a small topic) says nothing about steady CPU: leave those numbers out
          if (steady && steady.wallS < 1) steady = undefined;
          const run = {
            spansPerSecond: round(steadySpans / steadyS),
            attemptsPerSecond: round((steadySpans / steadyS) * (filled.attempts / filled.spans)),
            drainSpansPerSecond: round(filled.spans / drainS),
            drainAttemptsPerSecond: round(filled.attempts / drainS),
            drainSeconds: round(drainS, 1),
            ...(steady && {
              consumerCoresUsed: round(steady.cpuS.consumer! / steady.wallS, 2),
              spansPerConsumerCpuSecond: round(steadySpans / steady.cpuS.consumer!),
              ...(steady.cpuS.store !== undefined && { storeCoresUsed: round(steady.cpuS.store / steady.wallS, 2) }),
              machineBusyCores: steady.machineBusyCores,
            }),
            overflowDecisions: byDecision.overflow ?? 0,
            eventLoopDelayMaxMs: round(loopMaxS * 1000),
            eventLoopDelayP99MaxMs: round(loopP99S * 1000),
            rowsWrittenSpans: metricValue(text, 'fleet_consumer_rows_written_total', { table: 'spans' }),
            rowsWrittenLlmCalls: metricValue(text, 'fleet_consumer_rows_written_total', { table: 'llm_calls' }),
          };
          details[`decisions_run${r + 1}`] = byDecision;
          details[`eventLoopDelayMaxMs_run${r + 1}`] = loopSeries.filter((x) => x.maxMs > 500);
          details[`scrapeMs_run${r + 1}`] = { p50: round(percentile(scrapeMs, 50), 1), max: round(Math.max(...scrapeMs), 1), over1s: stalls };
          o.log(`run ${r + 1}/${repeats}: ${JSON.stringify(run)}`);
          runs.push(run);
        } finally {
          stopping = true;
          await stop(consumer, 60_000);
          await stop(owner, 60_000);
          data.remove();
        }
      }
    } finally {
      await broker.close();
    }
    const file = profDir ? newestProfile(profDir) : undefined;
    if (file) details.profile = { file, ...topSelfTime(file) };
    return {
      config: {
        repeats,
        attempts,
        partitions,
        spansPerRequest,
        consumer: 'fleet consumer, defaults (decision wait 500 ms, trace timeout 60 s, writer 20k rows / 200 ms)',
        fleet: o.set.fleet ?? 'bin/fleet.js',
        store: remote ? 'remote: a fleet start in another process (chDB), written over HTTP in its write mode' : 'embedded chDB in the consumer process',
        broker: broker.owned ? 'scripts/kafka.sh (Kafka 4.4, single node, same machine)' : broker.brokers.join(',') },
      metrics: summarizeRuns(runs),
      units: {
        spansPerSecond: 'spans/s',
        attemptsPerSecond: 'attempts/s',
        drainSpansPerSecond: 'spans/s',
        drainAttemptsPerSecond: 'attempts/s',
        drainSeconds: 's',
        consumerCoresUsed: 'cores',
        spansPerConsumerCpuSecond: 'spans/CPU-s',
        storeCoresUsed: 'cores',
        machineBusyCores: 'cores',
        overflowDecisions: 'attempts',
        eventLoopDelayMaxMs: 'ms',
        eventLoopDelayP99MaxMs: 'ms',
        rowsWrittenSpans: 'rows',
        rowsWrittenLlmCalls: 'rows',
      },
      targets: [{ metric: 'spansPerSecond', op: '>=', target: 100_000, unit: 'spans/s' }],
      runs,
      details,
      notes: [
        'spansPerSecond = spans read between 10 % and 90 % of the pre-filled topic ÷ that time (consumer /metrics, 250 ms scrapes); drain* = first span seen → every attempt row written',
        remote
          ? 'two processes: the consumer, and the store it writes to over HTTP (storeCoresUsed); spansPerConsumerCpuSecond is what one consumer core does'
          : 'one process: the consumer process also runs chDB (inserts, merges) — its CPU counts in consumerCoresUsed',
        "eventLoopDelay*: the consumer's own nodejs_eventloop_lag_{max,p99}_seconds (prom-client, reset at each scrape), the worst over the run",
      ],
    };
  },
};
