/**
 * The consumer pipeline in one process without Kafka: a planned fleet, as
 * the collector publishes it, pre-filled into the in-process queue, drained
 * by ConsumerPipeline (decode, assemble, price, sample) into embedded chDB.
 * Splits the CPU per span between the JavaScript thread (the consumer's own
 * work and its garbage collection, process.threadCpuUsage) and the whole
 * process (chDB's insert threads beside it), with the event loop's
 * utilisation: which of the two a faster consumer has to shrink; and the
 * process's CPU per span by thread name (bench/lib/threads.ts).
 *   node bench/procs/consumer-inproc.ts [attempts]
 *   PROFILE=drain.cpuprofile node bench/procs/consumer-inproc.ts 40000   # V8 profile of the drain only
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { PerformanceObserver } from 'node:perf_hooks';
import { MemoryBus } from '../../bus/memory.ts';
import { ConsumerPipeline } from '../../consumers/pipeline.ts';
import { loadDefaultCatalog } from '../../pricing/catalog.ts';
import { migrate } from '../../sql/migrate.ts';
import { openStore } from '../../storage/store.ts';
import { tempDir } from '../lib/child.ts';
import { cpuByThread, cpuByThreadSince } from '../lib/threads.ts';
import { collectorMessages, exportRequests, planAttempts, spanCount } from '../lib/traffic.ts';

const attempts = Number(process.argv[2] ?? 20_000);
const plan = planAttempts({ attempts, seed: 5, tenant: 'bench-consumers' });
const bus = new MemoryBus({ partitions: 6, maxBytes: 4 * 2 ** 30, maxBatchMessages: 500 });
let spans = 0;
for (const r of exportRequests(plan)) {
  spans += spanCount(r);
  await bus.publisher().publish('otlp_spans', collectorMessages(r));
}
const data = tempDir('inproc');
const store = openStore({ dataDir: data.dir });
await migrate(store);
let gcMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcMs += e.duration;
}).observe({ entryTypes: ['gc'] });
const pipeline = new ConsumerPipeline({
  topic: 'otlp_spans',
  store,
  subscriber: bus.subscriber('otlp_spans'),
  catalog: loadDefaultCatalog(),
  deadLetter: { publisher: bus.publisher(), topic: 'otlp_spans_dlq' },
  log: () => {},
});
// PROFILE=file: a V8 CPU profile of the drain alone (not of generating the fleet)
const profiler = process.env.PROFILE ? new Session() : undefined;
if (profiler) {
  profiler.connect();
  await profiler.post('Profiler.enable');
  await profiler.post('Profiler.start');
}
const threads0 = cpuByThread();
const t0 = performance.now();
const elu0 = performance.eventLoopUtilization();
const thread0 = process.threadCpuUsage();
const proc0 = process.cpuUsage();
await pipeline.start();
for (;;) {
  await new Promise((r) => setTimeout(r, 250));
  const [row] = await store.query<{ n: number }>('SELECT count() AS n FROM fleet.attempts');
  if ((row?.n ?? 0) >= plan.length) break;
}
const seconds = (performance.now() - t0) / 1000;
const threads = cpuByThreadSince(threads0, spans);
const elu = performance.eventLoopUtilization(elu0).utilization;
const thread = process.threadCpuUsage(thread0);
const proc = process.cpuUsage(proc0);
if (profiler) writeFileSync(process.env.PROFILE!, JSON.stringify((await profiler.post('Profiler.stop')).profile));
await pipeline.stop();
await store.close();
data.remove();
const us = (x: { user: number; system: number }) => x.user + x.system;
process.stdout.write(
  `${JSON.stringify({
    event: 'consumer-inproc',
    attempts: plan.length,
    spans,
    seconds: Math.round(seconds * 10) / 10,
    spansPerSecond: Math.round(spans / seconds),
    mainThreadUsPerSpan: Math.round((us(thread) / spans) * 10) / 10,
    processUsPerSpan: Math.round((us(proc) / spans) * 10) / 10,
    eventLoopUtilization: Math.round(elu * 100) / 100,
    // GC pauses (wall time) as a share of the drain
    gcPauseShare: Math.round((gcMs / (seconds * 1000)) * 1000) / 1000,
    threadsUsPerSpan: threads,
  })}\n`,
);
process.exit(0);
