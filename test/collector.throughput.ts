/**
 * Single-process throughput of the collector (not a vitest test; run it):
 *
 *   source scripts/node-env.sh && node test/collector.throughput.ts
 *
 * Protobuf export requests of 512 spans (32 traces × 16 spans, one attempt
 * span each) over keep-alive HTTP from a load generator in a worker thread;
 * the collector publishes to the in-process queue, drained by a committing
 * subscriber, all in this process. Env: REQUESTS (default 2000),
 * CONCURRENCY (16), GZIP=1 to compress the bodies.
 */
import http from 'node:http';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import zlib from 'node:zlib';
import { MemoryBus } from '../bus/memory.ts';
import { startCollector } from '../collector/index.ts';
import { encodeTraceRequest } from '../otlp/codec.ts';
import { attemptAttributes, span, str } from './collector.fixtures.ts';

const SPANS_PER_REQUEST = 512;

interface Load {
  url: string;
  requests: number;
  concurrency: number;
  gzip: boolean;
}

/** Worker side: sends the requests, reports seconds taken, statuses and body size. */
async function generate({ url, requests, concurrency, gzip }: Load) {
  const bodies = Array.from({ length: 8 }, (_, b) => {
    const spans = [];
    for (let t = 0; t < 32; t++) {
      for (let s = 0; s < 16; s++) spans.push(span(b * 1000 + t, t * 16 + s + 1, s === 0 ? { attributes: attemptAttributes() } : {}));
    }
    const body = Buffer.from(encodeTraceRequest({ resourceSpans: [{ resource: { attributes: [str('service.name', 'bench')] }, scopeSpans: [{ scope: { name: 'bench' }, spans }] }] }));
    return gzip ? zlib.gzipSync(body) : body;
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const post = (body: Buffer) =>
    new Promise<number>((resolve, reject) => {
      const headers = { 'Content-Type': 'application/x-protobuf', 'Content-Length': body.length, ...(gzip && { 'Content-Encoding': 'gzip' }) };
      const req = http.request(url, { method: 'POST', agent, headers }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      });
      req.on('error', reject);
      req.end(body);
    });
  for (let i = 0; i < 50; i++) await post(bodies[i % bodies.length]!);
  let next = 0;
  const statuses: Record<number, number> = {};
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < requests) {
        const status = await post(bodies[next++ % bodies.length]!);
        statuses[status] = (statuses[status] ?? 0) + 1;
      }
    }),
  );
  agent.destroy();
  return { seconds: (performance.now() - started) / 1000, statuses, bodyBytes: bodies[0]!.length };
}

if (isMainThread) {
  const bus = new MemoryBus({ maxBytes: 1 << 30 });
  const sub = bus.subscriber('otlp_spans');
  await sub.start({
    onAssign: () => {},
    onBatch: (b) => sub.commit([{ topic: b.topic, partition: b.partition, offset: String(BigInt(b.messages.at(-1)!.offset) + 1n) }]),
  });
  const collector = await startCollector({ publisher: bus.publisher(), port: 0, host: '127.0.0.1' });
  const load: Load = {
    url: collector.tracesUrl,
    requests: Number(process.env.REQUESTS ?? 2000),
    concurrency: Number(process.env.CONCURRENCY ?? 16),
    gzip: process.env.GZIP === '1',
  };
  const worker = new Worker(new URL(import.meta.url), { workerData: load });
  const result = await new Promise<Awaited<ReturnType<typeof generate>>>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  const spans = load.requests * SPANS_PER_REQUEST;
  console.log(
    JSON.stringify({
      ...load,
      url: undefined,
      spansPerRequest: SPANS_PER_REQUEST,
      bodyBytes: result.bodyBytes,
      seconds: Number(result.seconds.toFixed(2)),
      requestsPerSecond: Math.round(load.requests / result.seconds),
      spansPerSecond: Math.round(spans / result.seconds),
      statuses: result.statuses,
    }),
  );
  await collector.close();
  await sub.stop();
} else {
  parentPort!.postMessage(await generate(workerData as Load));
}
