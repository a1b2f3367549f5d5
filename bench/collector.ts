/**
 * Collector: OTLP/HTTP protobuf (realistic agent spans, 512 per request) →
 * `fleet collector` → Kafka (a real broker), or with `--set mode=embedded`
 * → `fleet start` (its durable on-disk queue: a 200 only after fsync). The load generator is a separate
 * process (bench/procs/loadgen.ts, closed loop). Per core = spans accepted ÷
 * CPU-seconds the collector process used in the measured window (utime +
 * stime of all its threads from /proc/<pid>/stat, so gzip on the libuv pool
 * counts too).
 */
import path from 'node:path';
import { CpuWindow, median, round, summarizeRuns, type Benchmark, type Target } from './lib/common.ts';
import { event, newestProfile, profilesDir, spawnFleet, spawnNode, stop, tempDir, type Child } from './lib/child.ts';
import { CLOSED_LOOP_UNITS, closedLoop, collectorKnobs, type Latency } from './lib/closed-loop.ts';
import { startFleetCollector } from './lib/fleet-collector.ts';
import { benchBroker, uniqueTopic } from './lib/kafka.ts';
import { topSelfTime } from './lib/profile.ts';

/** The collector's throughput target (docs/performance.md), also checked by the otelcol comparison. */
export const PER_CORE_TARGET: Target = { metric: 'spansPerCollectorCpuSecond', op: '>=', target: 50_000, unit: 'spans/s/core' };

export const collectorBenchmark: Benchmark = {
  name: 'collector',
  description: 'OTLP/HTTP protobuf → fleet collector → Kafka (or --set mode=embedded: fleet start, durable queue): spans/s per collector core, request latency',
  async run(o) {
    const { repeats, concurrency, durationS, warmupS, gzip, partitions, compression } = collectorKnobs(o);
    /** kafkajs (the bus) or, as an experiment, @platformatic/kafka behind the same collector. */
    const client = o.set.client ?? 'kafkajs';
    const profile = o.set.profile === '1';
    /**
     * kafka: `fleet collector` → Kafka. embedded: `fleet start` (the collector
     * publishing to its durable on-disk queue, consumers and chDB in the same
     * process); `--set fleet=<path to another checkout's bin/fleet.js>` runs
     * that build instead, for a side-by-side comparison.
     */
    const mode = o.set.mode ?? 'kafka';
    if (mode !== 'kafka' && mode !== 'embedded') throw new Error(`collector bench: --set mode=${mode}: kafka or embedded`);
    const broker = mode === 'kafka' ? await benchBroker('collector', o.kafkaBrokers, o.log) : undefined;
    let collector: Child | undefined;
    const runs: Record<string, number>[] = [];
    const details: Record<string, unknown> = {};
    let halfLoad: Record<string, number> = {};
    const profDir = profile ? profilesDir('collector') : undefined;
    const dataDir = mode === 'embedded' ? tempDir('bench-collector-embedded') : undefined;
    try {
      let url: string;
      if (broker) {
        const topic = uniqueTopic('bench_collector');
        const started = await startFleetCollector({ brokers: broker.brokers, topic, partitions, compression, client, ...(profDir && { cpuProfDir: profDir }) });
        collector = started.child;
        url = started.url;
        o.log(`collector pid ${collector.proc.pid} on ${url}, topic ${topic} (${partitions} partitions), publisher ${client} compression ${compression}`);
      } else {
        const args = ['start', '--data-dir', dataDir!.dir, '--collector-port', '0', '--collector-host', '127.0.0.1', '--query-port', '0'];
        collector = o.set.fleet
          ? spawnNode(path.relative(process.cwd(), path.resolve(o.set.fleet)), args, { ...(profDir && { cpuProfDir: profDir }) })
          : spawnFleet(args, { ...(profDir && { cpuProfDir: profDir }) });
        url = `${(await collector.waitFor(/OTLP\/HTTP (http:\/\/\S+?\/v1\/traces)/, 120_000))[1]}`;
        o.log(`fleet start pid ${collector.proc.pid} (${o.set.fleet ?? 'bin/fleet.js'}) on ${url}, data in ${dataDir!.dir}`);
      }
      for (let r = 0; r < repeats; r++) {
        const { numbers, request } = await closedLoop({ url, pid: collector.proc.pid!, concurrency, durationS, warmupS, gzip, seed: 11 + r });
        details.request = request;
        o.log(`run ${r + 1}/${repeats}: ${JSON.stringify(numbers)}`);
        runs.push(numbers);
      }
      // latency under normal load: open loop at half the throughput just measured
      const halfRate = Math.max(1, Math.round(median(runs.map((x) => x.requestsPerSecond ?? 0)) / 2));
      const half = spawnNode('bench/procs/loadgen.ts', [JSON.stringify({ url, rate: halfRate, warmupS: 0, durationS, seed: 99 })]);
      const cpu = new CpuWindow({ collector: collector.proc.pid! });
      const done = await event<{ statuses: Record<string, number>; latencyMs: Latency }>(half, 'done', 60_000 + durationS * 1000);
      const w = cpu.end();
      await half.exited;
      halfLoad = {
        halfLoadRequestsPerSecond: halfRate,
        halfLoadLatencyP50Ms: round(done.latencyMs.p50, 2),
        halfLoadLatencyP99Ms: round(done.latencyMs.p99, 2),
        halfLoadCollectorCoresUsed: round(w.cpuS.collector! / w.wallS, 2),
      };
      details.halfLoadStatuses = done.statuses;
      o.log(`half load: ${JSON.stringify(halfLoad)}`);
    } finally {
      await stop(collector);
      await broker?.close();
      dataDir?.remove();
    }
    const file = profDir ? newestProfile(profDir) : undefined;
    if (file) details.profile = { file, ...topSelfTime(file) };
    const metrics = { ...summarizeRuns(runs), ...halfLoad };
    return {
      config: broker
        ? { mode, repeats, concurrency, warmupS, durationS, requestGzip: gzip, partitions, publisherCompression: compression, kafkaClient: client, broker: broker.owned ? 'scripts/kafka.sh (Kafka 4.4, single node, same machine)' : broker.brokers.join(',') }
        : { mode, repeats, concurrency, warmupS, durationS, requestGzip: gzip, fleet: o.set.fleet ?? 'bin/fleet.js', queue: 'durable (fsync before 200) in this checkout; whatever the given build does otherwise' },
      metrics,
      units: {
        ...CLOSED_LOOP_UNITS,
        halfLoadRequestsPerSecond: 'req/s',
        halfLoadLatencyP50Ms: 'ms',
        halfLoadLatencyP99Ms: 'ms',
        halfLoadCollectorCoresUsed: 'cores',
      },
      targets: [PER_CORE_TARGET],
      runs,
      details,
      notes: [
        'per core = spans answered 200 in the window ÷ CPU-seconds (utime+stime, all threads) of the collector process in the same window, from /proc/<pid>/stat',
        broker ? 'load generator, Kafka broker and collector share the machine; machineBusyCores is everything (other processes included)' : 'load generator and fleet start (collector, durable queue, consumers, chDB: all its CPU counts as the collector) share the machine; machineBusyCores is everything (other processes included)',
        'latency* is at full load (closed loop of `concurrency` requests: queueing included); halfLoad* is an open loop at half the measured request rate',
      ],
    };
  },
};
