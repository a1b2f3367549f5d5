/**
 * otelcol: `fleet collector` beside the OpenTelemetry Collector (0.165,
 * built from bench/otelcol: OTLP receiver, batch processor, contrib kafka
 * exporter), both taking OTLP/HTTP protobuf (realistic agent spans, 512 per
 * request, closed loop) and publishing to the same Kafka broker what the
 * consumers read (one otlp_proto message per trace, key = trace id, murmur2
 * partitioning, the same compression, acks=all). Three variants, run alternately (each
 * round starts with the next one, so none always runs first):
 *
 *   fleet           `fleet collector`: answers 200 once Kafka acknowledged
 *   otelcolBatch    otlp → batch (defaults) → kafka (sending queue on, defaults)
 *   otelcolNoQueue  otlp → kafka with sending_queue disabled: answers once
 *                   Kafka acknowledged, as perpass does
 *
 * Every run is a fresh process on a fresh topic (the partitions of the
 * collector benchmark). Per core = spans answered 200 in the measured window
 * ÷ CPU-seconds of the collector process in that window (/proc/<pid>/stat,
 * all threads: Node's and Go's alike). After each run the collector is
 * stopped gracefully (SIGTERM, waited for: the batch processor and the
 * queue flush), the topic is read back and every message decoded: the run
 * fails unless it holds exactly the spans answered 200 over the whole run,
 * warm-up included, each message keyed by its trace id on the partition
 * murmur2 of the key picks. The ratios divide fleet's median spans per
 * CPU-second by each otelcol variant's.
 *
 * Needs `go` (the first run builds otelcol from the Go module proxy into
 * .cache/go-bin, a few minutes); without it the benchmark is skipped.
 *
 * Knobs (--set): concurrency (8), duration (15 s measured), warmup (5 s),
 * partitions (6), gzip=1 (gzip request bodies), compression (of the Kafka
 * record batches, both collectors: zstd, gzip or none; zstd), variants (comma-separated
 * subset of fleet,otelcolBatch,otelcolNoQueue). --repeats N: rounds (3).
 */
import { round, summarizeRuns, type Benchmark, type Target } from './lib/common.ts';
import { stop, type Child } from './lib/child.ts';
import { CLOSED_LOOP_UNITS, closedLoop, collectorKnobs, type LoadRequest } from './lib/closed-loop.ts';
import { startFleetCollector } from './lib/fleet-collector.ts';
import { benchBroker, createTopic, deleteTopics, uniqueTopic } from './lib/kafka.ts';
import { buildOtelcol, goMissing, kafkaExporter, startOtelcol, type OtelcolPipeline } from './lib/otelcol.ts';
import { topicSpans } from './lib/topic-spans.ts';
import { PER_CORE_TARGET } from './collector.ts';

const VARIANTS = {
  fleet: 'fleet collector (kafkajs, acks=all): 200 once Kafka acknowledged',
  otelcolBatch: 'otelcol: otlp → batch (defaults) → kafka, sending queue on (defaults): 200 once batched',
  otelcolNoQueue: 'otelcol: otlp → kafka, sending_queue disabled: 200 once Kafka acknowledged',
} as const;
type Variant = keyof typeof VARIANTS;

/** The otelcol pipelines, by variant. */
const PIPELINES: Record<Exclude<Variant, 'fleet'>, Pick<OtelcolPipeline, 'batch' | 'sendingQueue'>> = {
  otelcolBatch: { batch: true, sendingQueue: true },
  otelcolNoQueue: { batch: false, sendingQueue: false },
};

/** Per variant in the table: median (min–max over the rounds). Every run's numbers are in `runs`. */
const HEADLINE = ['spansPerCollectorCpuSecond', 'spansPerSecond', 'latencyP50Ms', 'latencyP99Ms', 'collectorCoresUsed', 'machineBusyCores', 'non200'];

const UNITS: Record<string, string> = { ...CLOSED_LOOP_UNITS, acceptedSpans: 'spans', publishedSpans: 'spans', publishedMessages: 'messages', misplacedMessages: 'messages', keyMismatches: 'messages' };

export const otelcolBenchmark: Benchmark = {
  name: 'otelcol',
  description: 'fleet collector vs the OpenTelemetry Collector (batch → kafka; kafka without queue), same load and broker: spans per collector CPU-second, spans/s, latency, every span checked in Kafka',
  async run(o) {
    const { repeats, concurrency, durationS, warmupS, gzip, partitions, compression } = collectorKnobs(o);
    const variants = (o.set.variants?.split(',') ?? Object.keys(VARIANTS)) as Variant[];
    const unknown = variants.filter((v) => !(v in VARIANTS));
    if (unknown.length) throw new Error(`otelcol bench: --set variants: unknown ${unknown.join(', ')}; known: ${Object.keys(VARIANTS).join(', ')}`);
    const config = { repeats, concurrency, warmupS, durationS, partitions, requestGzip: gzip, publisherCompression: compression, variants: Object.fromEntries(variants.map((v) => [v, VARIANTS[v]])) };

    const missing = await goMissing();
    if (missing) {
      o.log(`otelcol: skipped: ${missing}`);
      return { config, metrics: {}, units: {}, runs: [], details: { skipped: missing }, notes: [`skipped: ${missing}`] };
    }
    const started = performance.now();
    const binary = await buildOtelcol();
    o.log(`otelcol binary ${binary} (${((performance.now() - started) / 1000).toFixed(1)} s to build or find)`);

    const broker = await benchBroker('otelcol', o.kafkaBrokers, o.log);
    const runs: Record<string, number>[] = [];
    const details: Record<string, unknown> = {
      otelcolBinary: binary,
      otelcolExporter: Object.fromEntries(Object.entries(PIPELINES).map(([v, p]) => [v, kafkaExporter({ brokers: broker.brokers, topic: '<fresh per run>', compression, ...p })])),
    };
    try {
      for (let r = 0; r < repeats; r++) {
        const row: Record<string, number> = {};
        for (let i = 0; i < variants.length; i++) {
          const variant = variants[(r + i) % variants.length]!;
          const one = await measure(variant, { brokers: broker.brokers, binary, partitions, concurrency, warmupS, durationS, gzip, compression, seed: 11 + r });
          details.request = one.request;
          details[`${variant}_round${r + 1}`] = one.details;
          o.log(`round ${r + 1}/${repeats} ${variant}: ${JSON.stringify(one.numbers)}`);
          for (const [k, v] of Object.entries(one.numbers)) row[`${variant}_${k}`] = v;
        }
        runs.push(row);
      }
    } finally {
      await broker.close();
    }

    const all = summarizeRuns(runs);
    const metrics = Object.fromEntries(Object.entries(all).filter(([k]) => HEADLINE.includes(k.slice(k.indexOf('_') + 1).replace(/_(min|max)$/, ''))));
    const perCore = (v: Variant) => all[`${v}_spansPerCollectorCpuSecond`];
    const fleet = perCore('fleet');
    const ratios: Record<string, number> = {};
    for (const [v, name] of [['otelcolBatch', 'fleetOverOtelcolBatch'], ['otelcolNoQueue', 'fleetOverOtelcolNoQueue']] as const) {
      const other = perCore(v);
      if (fleet !== undefined && other !== undefined) ratios[name] = round(fleet / other, 2);
    }
    const units: Record<string, string> = { fleetOverOtelcolBatch: '×', fleetOverOtelcolNoQueue: '×' };
    for (const v of variants) for (const [k, u] of Object.entries(UNITS)) units[`${v}_${k}`] = u;
    const targets: Target[] = variants.includes('fleet') ? [{ ...PER_CORE_TARGET, metric: `fleet_${PER_CORE_TARGET.metric}` }] : [];
    return {
      config,
      metrics: { ...metrics, ...ratios },
      units,
      targets,
      runs,
      details,
      notes: [
        'per core = spans answered 200 in the measured window ÷ CPU-seconds (utime+stime, all threads) of the collector process in the same window, from /proc/<pid>/stat',
        'fleetOverOtelcol* = median spans per CPU-second of fleet ÷ that of the otelcol variant',
        'every run: a fresh collector process and topic; afterwards the collector is stopped gracefully and the topic read back: it held exactly the spans answered 200 over the run (warm-up included), each message decoded as the consumers do',
        'load generator, Kafka broker and collector share the machine; machineBusyCores is everything (other processes included)',
        'latency* is at full load (closed loop of `concurrency` requests: queueing included)',
      ],
    };
  },
};

interface RunOptions {
  brokers: string[];
  binary: string;
  partitions: number;
  concurrency: number;
  warmupS: number;
  durationS: number;
  gzip: boolean;
  compression: string;
  seed: number;
}

/** One run of one variant: a fresh collector on a fresh topic, the closed loop, a graceful stop, the topic read back. */
async function measure(variant: Variant, o: RunOptions): Promise<{ numbers: Record<string, number>; details: Record<string, unknown>; request: LoadRequest }> {
  const topic = uniqueTopic(`bench_otelcol_${variant}`);
  // `fleet collector` creates its topic (and a dead-letter topic); otelcol expects it to exist
  const topics = variant === 'fleet' ? [topic, `${topic}_dlq`] : [topic];
  if (variant !== 'fleet') await createTopic(o.brokers, topic, o.partitions);
  let collector: Child | undefined;
  let verified = false;
  try {
    const started = variant === 'fleet' ? await startFleetCollector({ brokers: o.brokers, topic, partitions: o.partitions, compression: o.compression }) : await startOtelcol(o.binary, { brokers: o.brokers, topic, compression: o.compression, ...PIPELINES[variant] });
    collector = started.child;
    const { numbers, done, request } = await closedLoop({ url: started.url, pid: collector.proc.pid!, concurrency: o.concurrency, warmupS: o.warmupS, durationS: o.durationS, gzip: o.gzip, seed: o.seed });
    // graceful: what otelcol still holds (batch processor, sending queue) is flushed before it exits
    await stop(collector);
    const exit = await collector.exited;
    const published = await topicSpans(o.brokers, topic, o.partitions);
    const run = done.run;
    const details = { topic, exit, statuses: done.statuses, run, published };
    // a request not answered 200 may still have published some of its traces: only those may be extra
    const maxSpans = run.spans + (run.requests - run.okRequests) * request.spansPerRequest;
    if (published.spans < run.spans || published.spans > maxSpans) {
      throw new Error(
        `${variant}: ${published.spans} spans in ${topic} but ${run.spans} answered 200 (${run.okRequests} of ${run.requests} requests, warm-up included)${published.spans < run.spans ? `: ${run.spans - published.spans} spans LOST` : ': more than the requests could have published'}; exit ${exit}, output tail:\n${collector.output().slice(-2000)}`,
      );
    }
    // the consumers rely on it: every span of a trace on the one partition murmur2 of its id picks
    if (published.misplaced || published.keyMismatches) {
      throw new Error(`${variant}: in ${topic}, ${published.misplaced} messages not on the partition murmur2 of their key picks, ${published.keyMismatches} keyed other than by the trace id of their spans`);
    }
    verified = true;
    return {
      numbers: { ...numbers, acceptedSpans: run.spans, publishedSpans: published.spans, publishedMessages: published.messages, misplacedMessages: published.misplaced, keyMismatches: published.keyMismatches },
      details,
      request,
    };
  } finally {
    await stop(collector);
    // a failed run's topic stays for a look at what did land
    if (verified) await deleteTopics(o.brokers, topics);
  }
}
