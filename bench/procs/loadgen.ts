/**
 * OTLP/HTTP load generator: a separate process (so the collector's CPU time
 * is the collector's alone). Posts protobuf ExportTraceServiceRequests of
 * realistic agent spans (bench/lib/traffic.ts) over keep-alive connections.
 *
 *   node bench/procs/loadgen.ts '<json options>'
 *
 * Closed loop (`concurrency` requests in flight, as fast as answered) for
 * throughput, or open loop (`rate` requests/s whatever the answers, up to
 * `maxInflight`) for sustained load and backpressure. Writes JSON lines:
 * ready, measuring (start of the measured window), window-end, tick (open
 * loop, every second), done. The closed loop's done also has `run`: the
 * requests of the whole run, warm-up included, and the spans answered 200.
 * The open loop's done also has `window`: the requests sent after the
 * warm-up, their answers and latencies by status (so backpressure answers
 * do not hide in the 200s' percentiles).
 */
import http from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import zlib from 'node:zlib';
import { percentile } from '../lib/common.ts';
import { FreshBodies } from './fresh-bodies.ts';
import { encode, exportRequests, planAttempts, spanCount } from '../lib/traffic.ts';

interface Options {
  url: string;
  /** Distinct request bodies (cycled). */
  bodies: number;
  spansPerRequest: number;
  concurrency: number;
  warmupS: number;
  durationS: number;
  /** Open loop: requests per second (0 = closed loop). */
  rate: number;
  maxInflight: number;
  gzip: boolean;
  seed: number;
  /**
   * Every request new traces (ids never seen before), generated as it goes —
   * what consumers downstream must process rather than deduplicate. Costs
   * the load generator ~7 ms of CPU per request, on a worker thread
   * (fresh-bodies.ts).
   */
  unique: boolean;
  /** Open loop: after the last request, wait up to this long for the answers still in flight (0: do not wait). */
  settleS: number;
}

const o: Options = { bodies: 24, spansPerRequest: 512, concurrency: 8, warmupS: 3, durationS: 10, rate: 0, maxInflight: 256, gzip: false, seed: 11, unique: false, settleS: 0, ...JSON.parse(process.argv[2] ?? '{}') };
const emit = (event: string, data: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
const summary = (l: readonly number[]) => ({ p50: percentile(l, 50), p90: percentile(l, 90), p99: percentile(l, 99), max: Math.max(...l) });

const plan = planAttempts({ attempts: Math.ceil((o.bodies * o.spansPerRequest) / 11) + 50, seed: o.seed, tenant: 'bench-load' });
const bodies: Buffer[] = [];
let traces = 0;
for (const r of exportRequests(plan, { spansPerRequest: o.spansPerRequest })) {
  if (spanCount(r) !== o.spansPerRequest) continue;
  const ids = new Set(r.resourceSpans![0]!.scopeSpans![0]!.spans!.map((s) => Buffer.from(s.traceId!).toString('hex')));
  traces += ids.size;
  const raw = encode(r);
  bodies.push(o.gzip ? zlib.gzipSync(raw) : raw);
  if (bodies.length === o.bodies) break;
}
if (bodies.length === 0) throw new Error('no request bodies generated');
emit('ready', {
  bodies: bodies.length,
  spansPerRequest: o.spansPerRequest,
  tracesPerRequest: Math.round(traces / bodies.length),
  bodyBytes: Math.round(bodies.reduce((n, b) => n + b.length, 0) / bodies.length),
});

const agent = new http.Agent({ keepAlive: true, maxSockets: Math.max(o.concurrency, o.rate > 0 ? o.maxInflight : 0) });
const url = new URL(o.url);
function post(body: Buffer): Promise<{ status: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const headers: http.OutgoingHttpHeaders = { 'Content-Type': 'application/x-protobuf', 'Content-Length': body.length };
    if (o.gzip) headers['Content-Encoding'] = 'gzip';
    const req = http.request({ host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
      res.on('error', () => resolve({ status: -1, ms: performance.now() - t0 }));
    });
    req.on('error', () => resolve({ status: -1, ms: performance.now() - t0 }));
    req.end(body);
  });
}

let next = 0;
const fresh = o.unique ? new FreshBodies({ seed: o.seed, spansPerRequest: o.spansPerRequest, gzip: o.gzip }) : undefined;
await fresh?.filled();
/** The next body: a fresh one (waiting for it if need be) or the next of the cycled set. */
const body = (): Buffer | Promise<Buffer> => (fresh ? fresh.take() : bodies[next++ % bodies.length]!);
/** The open loop's next body, or undefined when the fresh-body worker is behind (counted as skipped: the loop does not wait). */
const bodyNow = (): Buffer | undefined => (fresh ? fresh.poll() : bodies[next++ % bodies.length]!);
// this process's own event-loop delay: a late callback here adds to every latency it measures
const ownDelay = monitorEventLoopDelay({ resolution: 10 });
ownDelay.enable();
const ownDelayMs = () => ({ p99: Math.round(ownDelay.percentile(99) / 1e4) / 100, max: Math.round(ownDelay.max / 1e4) / 100 });

if (o.rate === 0) {
  // closed loop
  let phase: 'warmup' | 'measure' | 'over' = 'warmup';
  let windowStart = 0;
  const latencies: number[] = [];
  const statuses: Record<string, number> = {};
  let ok = 0;
  // every answer, warm-up included: what a benchmark checks against what reached Kafka
  const run = { requests: 0, okRequests: 0 };
  const cpu0 = process.cpuUsage();
  const stopAt = { warm: performance.now() + o.warmupS * 1000, end: 0 };
  const timer = setInterval(() => {
    const now = performance.now();
    if (phase === 'warmup' && now >= stopAt.warm) {
      phase = 'measure';
      windowStart = now;
      stopAt.end = now + o.durationS * 1000;
      emit('measuring');
    } else if (phase === 'measure' && now >= stopAt.end) {
      phase = 'over';
      emit('window-end');
    }
  }, 5);
  await Promise.all(
    Array.from({ length: o.concurrency }, async () => {
      while (phase !== 'over') {
        const started = phase;
        const t = performance.now();
        const r = await post(await body());
        run.requests++;
        if (r.status === 200) run.okRequests++;
        if (started === 'measure' && phase === 'measure' && t >= windowStart) {
          latencies.push(r.ms);
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
          if (r.status === 200) ok++;
        }
      }
    }),
  );
  clearInterval(timer);
  const seconds = o.durationS;
  const cpu = process.cpuUsage(cpu0);
  emit('done', {
    requests: latencies.length,
    okRequests: ok,
    spans: ok * o.spansPerRequest,
    seconds,
    statuses,
    latencyMs: summary(latencies),
    loadgenCpuS: (cpu.user + cpu.system) / 1e6,
    loadgenDelayMs: ownDelayMs(),
    bodyUnderruns: fresh?.underruns ?? 0,
    run: { ...run, spans: run.okRequests * o.spansPerRequest },
  });
} else {
  // open loop at a fixed rate, until stdin closes or durationS passes
  let inflight = 0;
  let tick: Record<string, number> = {};
  let tickLat: number[] = [];
  const allLat: number[] = [];
  const totals: Record<string, number> = {};
  const t0 = performance.now();
  const windowStart = t0 + o.warmupS * 1000;
  const end = windowStart + o.durationS * 1000;
  const interval = 1000 / o.rate;
  let sent = 0;
  // the measured window: requests sent after the warm-up, latencies by answer status
  const win = { sent: 0, skipped: 0, latencies: {} as Record<string, number[]> };
  let measuring = false;
  await new Promise<void>((resolve) => {
    const pump = setInterval(() => {
      const now = performance.now();
      if (now >= end) {
        clearInterval(pump);
        clearInterval(reporter);
        emit('window-end');
        resolve();
        return;
      }
      if (!measuring && now >= windowStart) {
        measuring = true;
        emit('measuring');
      }
      const due = Math.floor((now - t0) / interval);
      while (sent < due) {
        sent++;
        if (measuring) win.sent++;
        if (inflight >= o.maxInflight) {
          tick.skipped = (tick.skipped ?? 0) + 1;
          if (measuring) win.skipped++;
          continue;
        }
        const b = bodyNow();
        if (!b) {
          tick.skipped = (tick.skipped ?? 0) + 1;
          if (measuring) win.skipped++;
          continue;
        }
        inflight++;
        const inWindow = measuring;
        void post(b).then((r) => {
          inflight--;
          tick[r.status] = (tick[r.status] ?? 0) + 1;
          totals[r.status] = (totals[r.status] ?? 0) + 1;
          tickLat.push(r.ms);
          allLat.push(r.ms);
          if (inWindow) (win.latencies[r.status] ??= []).push(r.ms);
        });
      }
    }, 2);
    const reporter = setInterval(() => {
      emit('tick', { t: Math.round((performance.now() - t0) / 100) / 10, inflight, statuses: tick, p50Ms: percentile(tickLat, 50), p99Ms: percentile(tickLat, 99) });
      tick = {};
      tickLat = [];
    }, 1000);
  });
  const settleUntil = performance.now() + o.settleS * 1000;
  while (inflight > 0 && performance.now() < settleUntil) await new Promise((r) => setTimeout(r, 10));
  const byStatus = Object.fromEntries(
    Object.entries(win.latencies).map(([status, l]) => [status, { count: l.length, ...summary(l) }]),
  );
  emit('done', {
    sent,
    statuses: totals,
    latencyMs: summary(allLat),
    unanswered: inflight,
    window: { seconds: o.durationS, sent: win.sent, skipped: win.skipped, latencyMs: byStatus },
    loadgenDelayMs: ownDelayMs(),
    bodyUnderruns: fresh?.underruns ?? 0,
  });
}
agent.destroy();
process.exit(0);
