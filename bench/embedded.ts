/**
 * Embedded: `fleet start` (collector, durable queue, consumers, chDB in one
 * process) under steady load at 80 % of its maximum sustained ingest rate —
 * is the main thread still responsive? Two phases, each on a fresh `fleet
 * start` with a fresh data directory:
 *
 * 1. Maximum sustained rate: a closed-loop load generator (new traces in
 *    every request, `concurrency` in flight) for `findS` seconds after a
 *    warm-up. Sustained = what the consumers take off the queue
 *    (fleet_consumer_spans_total from its /metrics), not what the collector
 *    accepts: the durable queue absorbs a surplus until backpressure.
 * 2. Steady load: an open-loop load generator at `load` × that rate for
 *    `durationS` (after a warm-up). Meanwhile GET /healthz every 50 ms and
 *    /metrics every second (event-loop delay, spans taken). Afterwards, every
 *    span the collector accepted must reach the consumers (lostSpans = 0).
 *
 * Knobs (--set): rate (spans/s: skip phase 1), load (0.8), findS (20),
 * durationS (60), warmupS (5), concurrency (8), spansPerRequest (512).
 */
import { CpuWindow, percentile, round, sleep, summarizeRuns, type Benchmark } from './lib/common.ts';
import { event, spawnFleet, spawnNode, stop, tempDir, type Child } from './lib/child.ts';
import { histogramQuantile, metricValue, scrape } from './lib/metrics.ts';

interface Latency {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

interface OpenLoopDone {
  statuses: Record<string, number>;
  unanswered: number;
  window: { seconds: number; sent: number; skipped: number; latencyMs: Record<string, Latency> };
  loadgenDelayMs: { p99: number; max: number };
  bodyUnderruns: number;
}

interface Fleet {
  child: Child;
  tracesUrl: string;
  /** The collector's port: /healthz and /metrics. */
  base: string;
  /** Rejects when the process exits: raced against every wait, so a crash fails the run at once, with its output. */
  died: Promise<never>;
  close(): Promise<void>;
}

async function startFleet(prefix: string): Promise<Fleet> {
  const data = tempDir(prefix);
  const child = spawnFleet(['start', '--data-dir', data.dir, '--collector-port', '0', '--collector-host', '127.0.0.1', '--query-port', '0']);
  let stopping = false;
  const died = child.exited.then((code) => {
    throw new Error(stopping ? 'fleet start stopped' : `fleet start exited (${code}) during the run; output tail:\n${child.output().slice(-3000)}`);
  });
  died.catch(() => {}); // only an error where it is raced
  const close = async () => {
    stopping = true;
    await stop(child);
    data.remove();
  };
  try {
    const m = await child.waitFor(/OTLP\/HTTP (http:\/\/\S+?\/v1\/traces) .*· metrics (http:\/\/\S+?)\/metrics/, 120_000);
    return { child, tracesUrl: m[1]!, base: m[2]!, died, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** One GET on a fresh connection (as a kubelet probe or Prometheus would), with a timeout: its time, whether it answered 200, the body. */
async function timedGet(url: string, timeoutMs: number): Promise<{ ms: number; ok: boolean; text: string }> {
  const t = performance.now();
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), headers: { connection: 'close' } });
    const text = await res.text();
    return { ms: performance.now() - t, ok: res.status === 200, text };
  } catch {
    return { ms: performance.now() - t, ok: false, text: '' };
  }
}

/** Phase 1: spans/s the consumers take off the queue while a closed loop pushes as hard as it can. */
async function maxSustained(o: { concurrency: number; spansPerRequest: number; warmupS: number; findS: number; log(m: string): void }) {
  const fleet = await startFleet('embedded-max');
  let load: Child | undefined;
  try {
    const metricsUrl = `${fleet.base}/metrics`;
    load = spawnNode('bench/procs/loadgen.ts', [JSON.stringify({ url: fleet.tracesUrl, concurrency: o.concurrency, spansPerRequest: o.spansPerRequest, warmupS: o.warmupS, durationS: o.findS, unique: true, seed: 23 })]);
    await Promise.race([event(load, 'measuring', 120_000 + o.warmupS * 1000), fleet.died]);
    const t0 = performance.now();
    const before = await scrape(metricsUrl);
    await Promise.race([event(load, 'window-end', 60_000 + o.findS * 1000), fleet.died]);
    const t1 = performance.now();
    const after = await scrape(metricsUrl);
    const done = await event<{ spans: number; seconds: number; statuses: Record<string, number> }>(load, 'done');
    const taken = metricValue(after, 'fleet_consumer_spans_total') - metricValue(before, 'fleet_consumer_spans_total');
    const spansPerSecond = taken / ((t1 - t0) / 1000);
    if (!(spansPerSecond > 0)) throw new Error(`the consumers took no spans off the queue in ${o.findS} s; fleet start output tail:\n${fleet.child.output().slice(-3000)}`);
    const r = {
      takenSpansPerSecond: round(spansPerSecond),
      acceptedSpansPerSecond: round(done.spans / done.seconds),
      queueBacklogSpans: metricValue(after, 'fleet_collector_spans_accepted_total') - metricValue(after, 'fleet_consumer_spans_total'),
      statuses: done.statuses,
    };
    o.log(`max sustained: ${JSON.stringify(r)}`);
    return r;
  } finally {
    await stop(load);
    await fleet.close();
  }
}

/** Phase 2: the open loop at `rate` spans/s, with /healthz and /metrics probes. */
async function steady(o: { rate: number; spansPerRequest: number; warmupS: number; durationS: number; drainS: number; seed: number; log(m: string): void }) {
  const fleet = await startFleet('embedded-steady');
  let load: Child | undefined;
  let probing = true;
  const probes: Promise<void>[] = [];
  try {
    const metricsUrl = `${fleet.base}/metrics`;
    const requestsPerSecond = o.rate / o.spansPerRequest;
    load = spawnNode('bench/procs/loadgen.ts', [JSON.stringify({ url: fleet.tracesUrl, rate: requestsPerSecond, spansPerRequest: o.spansPerRequest, warmupS: o.warmupS, durationS: o.durationS, unique: true, settleS: 30, seed: o.seed })]);
    await Promise.race([event(load, 'measuring', 120_000 + o.warmupS * 1000), fleet.died]);
    const cpu = new CpuWindow({ fleet: fleet.child.proc.pid! });
    const healthz: number[] = [];
    let healthzFailures = 0;
    probes.push(
      (async () => {
        while (probing) {
          const r = await timedGet(`${fleet.base}/healthz`, 2000);
          // a failed or timed-out probe counts with the time it took, so it cannot flatter the percentiles
          healthz.push(r.ms);
          if (!r.ok) healthzFailures++;
          if (r.ms < 50) await sleep(50 - r.ms);
        }
      })(),
    );
    const scrapes: { t: number; ms: number; taken: number; lagP99: number; lagMax: number }[] = [];
    let scrapeFailures = 0;
    // the window's first and last scrapes, for the histograms' deltas
    let firstText = '';
    let lastText = '';
    probes.push(
      (async () => {
        while (probing) {
          const r = await timedGet(metricsUrl, 10_000);
          if (r.ok) {
            const v = (name: string) => metricValue(r.text, name);
            scrapes.push({ t: performance.now(), ms: r.ms, taken: v('fleet_consumer_spans_total'), lagP99: v('nodejs_eventloop_lag_p99_seconds') * 1000, lagMax: v('nodejs_eventloop_lag_max_seconds') * 1000 });
            firstText ||= r.text;
            lastText = r.text;
          } else scrapeFailures++;
          if (r.ms < 1000) await sleep(1000 - r.ms);
        }
      })(),
    );
    await Promise.race([event(load, 'window-end', 60_000 + o.durationS * 1000), fleet.died]);
    const w = cpu.end();
    probing = false;
    await Promise.all(probes);
    const done = await Promise.race([event<OpenLoopDone>(load, 'done', 60_000), fleet.died]);
    if (scrapes.length < 2) throw new Error(`only ${scrapes.length} /metrics scrape(s) answered in the window (${scrapeFailures} failed)`);
    // the first scrape's event-loop figures cover the process's start and the warm-up: not counted
    const windows = scrapes.slice(1);
    const first = scrapes[0]!;
    const last = scrapes.at(-1)!;
    const ok = done.window.latencyMs['200'];
    if (!ok) throw new Error(`no request answered 200 in the window: ${JSON.stringify(done.window)}`);
    const backpressure = (done.window.latencyMs['429']?.count ?? 0) + (done.window.latencyMs['503']?.count ?? 0);
    const failed = Object.entries(done.window.latencyMs).filter(([s]) => !['200', '429', '503'].includes(s)).reduce((n, [, l]) => n + l.count, 0);

    // every span the collector acknowledged (warm-up included) must reach the consumers
    const deadline = Date.now() + o.drainS * 1000;
    let accepted = 0;
    let taken = 0;
    for (;;) {
      const text = await Promise.race([scrape(metricsUrl), fleet.died]);
      accepted = metricValue(text, 'fleet_collector_spans_accepted_total');
      taken = metricValue(text, 'fleet_consumer_spans_total');
      if (taken >= accepted || Date.now() > deadline) break;
      await sleep(500);
    }
    const run = {
      offeredSpansPerSecond: round((done.window.sent * o.spansPerRequest) / done.window.seconds),
      acceptedSpansPerSecond: round((ok.count * o.spansPerRequest) / done.window.seconds),
      writtenSpansPerSecond: round((last.taken - first.taken) / ((last.t - first.t) / 1000)),
      eventLoopDelayP99Ms: round(Math.max(...windows.map((s) => s.lagP99)), 1),
      eventLoopDelayMaxMs: round(Math.max(...windows.map((s) => s.lagMax)), 1),
      eventLoopDelayP99MedianMs: round(percentile(windows.map((s) => s.lagP99), 50), 1),
      healthzP50Ms: round(percentile(healthz, 50), 2),
      healthzP99Ms: round(percentile(healthz, 99), 2),
      healthzMaxMs: round(Math.max(...healthz), 1),
      healthzFailures,
      otlpP50Ms: round(ok.p50, 2),
      otlpP99Ms: round(ok.p99, 2),
      otlpMaxMs: round(ok.max, 1),
      backpressureAnswers: backpressure,
      failedRequests: failed + done.window.skipped + done.unanswered,
      // the load generator's own event-loop delay: the error bar on the OTLP latencies it measured
      loadgenDelayP99Ms: done.loadgenDelayMs.p99,
      loadgenDelayMaxMs: done.loadgenDelayMs.max,
      metricsScrapeMaxMs: round(Math.max(...scrapes.map((s) => s.ms)), 1),
      metricsScrapeFailures: scrapeFailures,
      // where an OTLP answer's time goes: waiting for the durable queue's group commit (publish), and the commit itself
      publishP50Ms: round(histogramQuantile(firstText, lastText, 'fleet_collector_publish_duration_seconds', 0.5) * 1000, 2),
      publishP99Ms: round(histogramQuantile(firstText, lastText, 'fleet_collector_publish_duration_seconds', 0.99) * 1000, 2),
      fsyncP99Ms: round(histogramQuantile(firstText, lastText, 'fleet_queue_fsync_seconds', 0.99) * 1000, 2),
      cpuCoresUsed: round(w.cpuS.fleet! / w.wallS, 2),
      machineBusyCores: w.machineBusyCores,
      lostSpans: Math.max(0, accepted - taken),
    };
    const detail = {
      requestsPerSecond: round(requestsPerSecond, 2),
      windowStatuses: Object.fromEntries(Object.entries(done.window.latencyMs).map(([s, l]) => [s, l.count])),
      unanswered: done.unanswered,
      bodyUnderruns: done.bodyUnderruns,
      acceptedTotalSpans: accepted,
      takenTotalSpans: taken,
      healthzProbes: healthz.length,
      metricsScrapes: scrapes.length,
      // the windows whose delay broke a target, to tell a steady state from a few stalls
      eventLoopWindowsOverTarget: windows.filter((s) => s.lagP99 >= 50 || s.lagMax >= 250).map((s) => ({ atS: round((s.t - first.t) / 1000, 1), p99Ms: round(s.lagP99, 1), maxMs: round(s.lagMax, 1) })),
      eventLoopWindows: windows.length,
    };
    o.log(`steady: ${JSON.stringify(run)}`);
    return { run, detail };
  } finally {
    probing = false;
    await Promise.allSettled(probes);
    await stop(load);
    await fleet.close();
  }
}

export const embeddedBenchmark: Benchmark = {
  name: 'embedded',
  description: 'fleet start (all-in-one) under steady load at 80 % of its max sustained rate: event-loop delay, /healthz, OTLP and /metrics latency',
  async run(o) {
    const smoke = o.smoke;
    const repeats = o.repeats ?? 1;
    const load = Number(o.set.load ?? 0.8);
    const spansPerRequest = Number(o.set.spansPerRequest ?? 512);
    const concurrency = Number(o.set.concurrency ?? (smoke ? 4 : 8));
    const findS = Number(o.set.findS ?? (smoke ? 4 : 20));
    const durationS = Number(o.set.durationS ?? (smoke ? 5 : 60));
    const warmupS = Number(o.set.warmupS ?? (smoke ? 1 : 5));
    const details: Record<string, unknown> = {};
    let max = Number(o.set.rate ?? 0);
    if (!max) {
      const found = await maxSustained({ concurrency, spansPerRequest, warmupS, findS, log: o.log });
      details.maxSustained = found;
      max = found.takenSpansPerSecond;
    }
    const rate = load * max;
    const runs: Record<string, number>[] = [];
    for (let r = 0; r < repeats; r++) {
      const s = await steady({ rate, spansPerRequest, warmupS, durationS, drainS: smoke ? 60 : 180, seed: 31 + r, log: o.log });
      runs.push({ ...s.run, maxSustainedSpansPerSecond: round(max) });
      details[`steady_run${r + 1}`] = s.detail;
    }
    const ms = ['eventLoopDelayP99Ms', 'eventLoopDelayMaxMs', 'eventLoopDelayP99MedianMs', 'healthzP50Ms', 'healthzP99Ms', 'healthzMaxMs', 'otlpP50Ms', 'otlpP99Ms', 'otlpMaxMs', 'publishP50Ms', 'publishP99Ms', 'fsyncP99Ms', 'loadgenDelayP99Ms', 'loadgenDelayMaxMs', 'metricsScrapeMaxMs'];
    return {
      config: { repeats, load, spansPerRequest, findConcurrency: concurrency, findS, durationS, warmupS, maxSustainedFrom: o.set.rate ? '--set rate' : 'phase 1 (closed loop)', fleetStart: 'defaults, fresh data directory per phase' },
      metrics: summarizeRuns(runs),
      units: {
        offeredSpansPerSecond: 'spans/s',
        acceptedSpansPerSecond: 'spans/s',
        writtenSpansPerSecond: 'spans/s',
        maxSustainedSpansPerSecond: 'spans/s',
        ...Object.fromEntries(ms.map((k) => [k, 'ms'])),
        healthzFailures: 'probes',
        backpressureAnswers: 'requests',
        failedRequests: 'requests',
        metricsScrapeFailures: 'scrapes',
        cpuCoresUsed: 'cores',
        machineBusyCores: 'cores',
        lostSpans: 'spans',
      },
      targets: [
        { metric: 'eventLoopDelayP99Ms', op: '<', target: 50, unit: 'ms' },
        { metric: 'eventLoopDelayMaxMs', op: '<', target: 250, unit: 'ms' },
        { metric: 'healthzP99Ms', op: '<', target: 100, unit: 'ms' },
        { metric: 'otlpP99Ms', op: '<', target: 100, unit: 'ms' },
        { metric: 'metricsScrapeMaxMs', op: '<', target: 500, unit: 'ms' },
        { metric: 'lostSpans', op: '<', target: 1, unit: 'spans' },
      ],
      runs,
      details,
      notes: [
        `maxSustainedSpansPerSecond: spans/s the consumers took off the queue (fleet_consumer_spans_total) under a closed loop of ${concurrency} requests, new traces each; the steady phase offers ${load} × that, open loop, on a fresh fleet start`,
        "eventLoopDelay*: fleet start's nodejs_eventloop_lag_{p99,max}_seconds (prom-client's monitorEventLoopDelay histogram, reset at every /metrics collect, so each 1 s scrape covers the second since the previous one; the first scrape, covering start-up and warm-up, is left out); eventLoopDelayP99Ms is the worst 1 s window, eventLoopDelayP99MedianMs the typical one. The histogram samples every 10 ms and records the whole interval (an idle loop reads ~10 ms), so a window holds ≤ 100 samples and its p99 is close to its max",
        'publish*: fleet_collector_publish_duration_seconds (handing a request to the durable queue until its group commit is on disk), fsyncP99Ms: fleet_queue_fsync_seconds (one write + fdatasync); quantiles over the window from the histograms\' bucket deltas, interpolated inside a bucket',
        'healthz*: GET /healthz every 50 ms on a fresh connection (2 s timeout; failures count with their time); otlp*: 200 answers only, backpressure (429/503) counted apart, failedRequests = other answers, errors, requests skipped at maxInflight or never answered; writtenSpansPerSecond: spans the consumers took in the window; lostSpans: accepted by the collector (warm-up included) − taken by the consumers once drained',
      ],
    };
  },
};
