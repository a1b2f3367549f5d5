/**
 * Memory: RSS of `fleet collector` and `fleet consumer` (and the chDB owner,
 * `fleet start` in write mode) over phases of load, sampled every 250 ms
 * from /proc/<pid>/status, with each process's own gauges of what it buffers
 * (collector in-flight bytes; consumer buffered spans/bytes, pending rows)
 * scraped every second:
 *
 * - sustained: `rate` requests/s of 512 realistic spans, below capacity,
 *   every request new traces (so the consumer has real work, not duplicates);
 * - overload: `overloadRate` requests/s, far above what the collector can
 *   take (its in-flight byte budget must refuse with 429, not grow); cycles
 *   24 request bodies, so the consumer sees duplicates;
 * - kafka-down: the broker stopped (scripts/kafka.sh stop --keep) under the
 *   sustained rate (collector: 503 + Retry-After; consumer: nothing to read);
 * - kafka-back: the broker restarted;
 * - store-down: the chDB owner stopped (consumer writes fail and retry; its
 *   pending rows and buffers must stop growing: it stops fetching);
 * - store-back: the owner restarted on the same port and data;
 * - then the overloads of the abuse suite against a `fleet start` with a
 *   memory budget (`--set budgetMiB=`, default 1280): slow-bodies,
 *   slow-headers, giants, connection-flood, tenant-flood, nested — peak
 *   RSS of each against the budget (bench/memory-abuse.ts).
 */
import net from 'node:net';
import { round, RssSampler, sleep, type Benchmark } from './lib/common.ts';
import { event, events, spawnFleet, spawnNode, stop, tempDir, type Child } from './lib/child.ts';
import { benchBroker, uniqueTopic } from './lib/kafka.ts';
import { metricValue, scrape } from './lib/metrics.ts';
import { ABUSE_PHASES, isAbusePhase, runAbusePhases } from './memory-abuse.ts';

const WRITE_TOKEN = 'bench-write-token-0123456789';
const MiB = 2 ** 20;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

interface Gauges {
  t: number;
  collectorInflightMiB?: number;
  consumerBufferedSpans?: number;
  consumerBufferedMiB?: number;
  consumerPendingRows?: number;
  consumerDecidedAttempts?: number;
  consumerSpansRead?: number;
  consumerAttemptRows?: number;
}

export const memoryBenchmark: Benchmark = {
  name: 'memory',
  description: 'RSS of collector and consumer under sustained load, overload, Kafka down and store down: plateaus at the configured bounds',
  async run(o) {
    const smoke = o.smoke;
    const phaseS = Number(o.set.phase ?? (smoke ? 3 : 30));
    const rate = Number(o.set.rate ?? (smoke ? 4 : 10));
    const overloadRate = Number(o.set.overloadRate ?? (smoke ? 20 : 200));
    const allPhases = (o.set.phases ?? ['sustained,overload,kafka-down,kafka-back,store-down,store-back', ...ABUSE_PHASES].join(',')).split(',');
    const phases = allPhases.filter((p) => !isAbusePhase(p));
    const abusePhases = allPhases.filter(isAbusePhase);
    const budgetMiB = Number(o.set.budgetMiB ?? 1280);
    const abuse = abusePhases.length ? await runAbusePhases({ phases: abusePhases, phaseS, smoke, budgetMiB, log: o.log }) : undefined;
    if (phases.length === 0) {
      return {
        config: { phaseSeconds: phaseS, phases: abusePhases, budgetMiB },
        metrics: abuse!.metrics,
        units: Object.fromEntries(Object.keys(abuse!.metrics).map((k) => [k, 'MiB'])),
        targets: [{ metric: 'abusePeakMiB', op: '<', target: budgetMiB, unit: 'MiB' }],
        runs: [],
        details: abuse!.details,
        notes: ['RSS of fleet start from /proc/<pid>/status every 250 ms while each attack runs'],
      };
    }
    const inflightMiB = o.set.collectorMaxInflightMiB ? Number(o.set.collectorMaxInflightMiB) : undefined;
    const broker = await benchBroker('memory', o.kafkaBrokers, o.log, true);
    const data = tempDir('memory');
    const children: Record<string, Child> = {};
    let sampler: RssSampler | undefined;
    const gauges: Gauges[] = [];
    const phaseTimes: Record<string, { from: number; to: number }> = {};
    const loadTicks: Record<string, unknown[]> = {};
    let gaugeTimer: NodeJS.Timeout | undefined;
    const logs: Record<string, string> = {};
    try {
      const topic = uniqueTopic('bench_memory');
      const kafka = ['--kafka-brokers', broker.brokers.join(','), '--topic', topic, '--dead-letter-topic', `${topic}_dlq`, '--topic-partitions', '6'];
      const queryPort = await freePort();
      const startOwner = async () => {
        children.owner = spawnFleet(['start', '--data-dir', data.dir, '--collector-port', '0', '--query-port', String(queryPort), '--query-write-token', WRITE_TOKEN]);
        await children.owner.waitFor(/query (http:\/\/[\d.]+:\d+)/, 120_000);
      };
      await startOwner();
      const queryUrl = `http://127.0.0.1:${queryPort}`;
      // --set collectorMaxInflightMiB=N: the same collector with another in-flight budget (bench/procs/collector.ts)
      children.collector = inflightMiB
        ? spawnNode('bench/procs/collector.ts', [...kafka, '--collector-port', '0', '--collector-host', '127.0.0.1', '--max-inflight-bytes', String(inflightMiB * MiB)])
        : spawnFleet(['collector', ...kafka, '--collector-port', '0', '--collector-host', '127.0.0.1']);
      const collectorBase = (await children.collector.waitFor(/collector: (http:\/\/\S+?)\/v1\/traces/, 120_000))[1]!;
      children.consumer = spawnFleet(['consumer', ...kafka, '--group-id', `${topic}-g`, '--clickhouse-url', queryUrl, '--clickhouse-user', 'perpass_writer', '--clickhouse-password', WRITE_TOKEN, '--metrics-port', '0']);
      const consumerPort = (await children.consumer.waitFor(/consumer: group .* metrics :(\d+)\/metrics/, 120_000))[1]!;
      const pids = { collector: children.collector.proc.pid!, consumer: children.consumer.proc.pid! };
      sampler = new RssSampler(pids, 250);
      const t0 = performance.now();
      gaugeTimer = setInterval(() => {
        const g: Gauges = { t: round((performance.now() - t0) / 1000, 1) };
        void Promise.allSettled([
          scrape(`${collectorBase}/metrics`).then((t) => (g.collectorInflightMiB = round(metricValue(t, 'fleet_collector_inflight_bytes') / MiB, 1))),
          scrape(`http://127.0.0.1:${consumerPort}/metrics`).then((t) => {
            g.consumerBufferedSpans = metricValue(t, 'fleet_consumer_buffered_spans');
            g.consumerBufferedMiB = round(metricValue(t, 'fleet_consumer_buffered_bytes') / MiB, 1);
            g.consumerPendingRows = metricValue(t, 'fleet_consumer_pending_rows');
            g.consumerDecidedAttempts = metricValue(t, 'fleet_consumer_decision_cache_attempts');
            g.consumerSpansRead = metricValue(t, 'fleet_consumer_spans_total');
            g.consumerAttemptRows = metricValue(t, 'fleet_consumer_rows_written_total', { table: 'attempts' });
          }),
        ]).then(() => gauges.push(g));
      }, 1000);
      let seed = 21;
      const load = (r: number, seconds: number, unique: boolean, maxInflight = 256) =>
        spawnNode('bench/procs/loadgen.ts', [JSON.stringify({ url: `${collectorBase}/v1/traces`, rate: r, warmupS: 0, durationS: seconds, maxInflight, seed: seed++, unique })]);
      for (const phase of phases) {
        const from = (performance.now() - t0) / 1000;
        sampler.mark(phase);
        o.log(`phase ${phase} (${phaseS} s)`);
        let gen: Child;
        // overload cycles 24 request bodies (fresh ones cannot be generated that fast); everything else is new traffic
        if (phase === 'overload') gen = load(overloadRate, phaseS, false, 1024);
        else gen = load(rate, phaseS, true);
        if (phase === 'kafka-down') await broker.pause();
        if (phase === 'kafka-back') await broker.resume();
        if (phase === 'store-down') await stop(children.owner);
        if (phase === 'store-back') await startOwner();
        await event(gen, 'done', (phaseS + 120) * 1000);
        loadTicks[phase] = events(gen, 'tick');
        await gen.exited;
        phaseTimes[phase] = { from, to: (performance.now() - t0) / 1000 };
      }
      // let the pipeline catch up after the last phase, then a final sample
      await sleep(smoke ? 500 : 5000);
      logs.collector = children.collector.output().slice(-2000);
      logs.consumer = children.consumer.output().slice(-2000);
    } finally {
      clearInterval(gaugeTimer);
      sampler?.stop();
      for (const name of ['collector', 'consumer', 'owner']) await stop(children[name]);
      data.remove();
      await broker.close();
    }
    const metrics: Record<string, number> = {};
    const summaries: Record<string, unknown> = {};
    for (const proc of ['collector', 'consumer']) {
      const all = sampler!.summary(proc);
      metrics[`${proc}StartMiB`] = all.startMiB;
      metrics[`${proc}MaxMiB`] = all.maxMiB;
      metrics[`${proc}EndMiB`] = all.endMiB;
      for (const [phase, { from, to }] of Object.entries(phaseTimes)) {
        const s = sampler!.summary(proc, from, to);
        const half = sampler!.summary(proc, (from + to) / 2, to);
        const firstHalf = sampler!.summary(proc, from, (from + to) / 2);
        summaries[`${proc}/${phase}`] = { ...s, maxFirstHalfMiB: firstHalf.maxMiB, maxSecondHalfMiB: half.maxMiB };
        const key = phase.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
        metrics[`${proc}_${key}_maxMiB`] = s.maxMiB;
        // plateau: how much higher the second half of the phase went than the first
        metrics[`${proc}_${key}_growthMiB`] = round(half.maxMiB - firstHalf.maxMiB, 1);
      }
    }
    const statusTotals: Record<string, Record<string, number>> = {};
    for (const [phase, ticks] of Object.entries(loadTicks)) {
      const tot: Record<string, number> = {};
      for (const t of ticks as { statuses: Record<string, number> }[]) for (const [k, v] of Object.entries(t.statuses)) tot[k] = (tot[k] ?? 0) + v;
      statusTotals[phase] = tot;
    }
    const peak = (k: keyof Gauges) => Math.max(0, ...gauges.map((g) => (g[k] as number | undefined) ?? 0));
    metrics.collectorInflightPeakMiB = peak('collectorInflightMiB');
    metrics.consumerBufferedSpansPeak = peak('consumerBufferedSpans');
    metrics.consumerBufferedPeakMiB = peak('consumerBufferedMiB');
    metrics.consumerPendingRowsPeak = peak('consumerPendingRows');
    Object.assign(metrics, abuse?.metrics);
    const units: Record<string, string> = {};
    for (const k of Object.keys(metrics)) units[k] = k.includes('MiB') ? 'MiB' : k.includes('Rows') ? 'rows' : 'spans';
    return {
      config: {
        phaseSeconds: phaseS,
        collector: inflightMiB ? `bench/procs/collector.ts --max-inflight-bytes ${inflightMiB} MiB` : 'fleet collector',
        sustainedRate: `${rate} req/s × 512 spans = ${rate * 512} spans/s`,
        overloadRate: `${overloadRate} req/s × 512 spans (up to 1024 requests in flight)`,
        phases,
        bounds: {
          collector: 'maxInflightBytes 256 MiB of decoded request bodies (default; 429 beyond), maxBodyBytes 64 MiB, publishTimeoutMs 5 s',
          consumer: 'assembler: maxTraces 20,000, maxSpans 500,000, maxBytes 256 MiB, decision cache 1,000,000 spans; writer: 20,000 rows per insert, onBatch stops taking messages at 80,000 pending rows; kafkajs fetch ≤ 1 MiB per partition',
        },
      },
      metrics,
      units,
      // what the processes themselves hold must stay inside their configured bounds
      targets: [
        { metric: 'collectorInflightPeakMiB', op: '<', target: inflightMiB ?? 256, unit: 'MiB' },
        { metric: 'consumerBufferedSpansPeak', op: '<', target: 500_000, unit: 'spans' },
        { metric: 'consumerBufferedPeakMiB', op: '<', target: 256, unit: 'MiB' },
        ...(abuse ? [{ metric: 'abusePeakMiB', op: '<' as const, target: budgetMiB, unit: 'MiB' }] : []),
      ],
      runs: [],
      details: { phases: phaseTimes, rss: summaries, loadStatuses: statusTotals, gauges, logTails: logs, ...abuse?.details },
      notes: ['RSS from /proc/<pid>/status every 250 ms; growthMiB = max RSS in the second half of a phase − max in its first half (≈ 0 on a plateau)'],
    };
  },
};
