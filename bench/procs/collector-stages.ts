/**
 * Where the collector's CPU goes per request, in-process and without I/O:
 * the stages of collector/server.ts's handleExport on realistic 512-span
 * requests — protobuf decode, validation, split by trace + re-encode,
 * kafkajs message preparation (murmur2 partitioner + record encoding is
 * inside kafkajs and not separated here) — in µs per span.
 *   node bench/procs/collector-stages.ts [iterations]
 */
import { validateRequest } from '../../collector/validate.ts';
import { decodeTraceRequest } from '../../otlp/codec.ts';
import { splitByTrace, traceMessages } from '../../otlp/split.ts';
import { encode, exportRequests, planAttempts } from '../lib/traffic.ts';
import zlib from 'node:zlib';

const iterations = Number(process.argv[2] ?? 400);
const bodies = [...exportRequests(planAttempts({ attempts: 1200, seed: 3, tenant: 'bench-load' }))].slice(0, 16).map(encode);
const spans = 512;
const time = (fn: (b: Buffer) => unknown): number => {
  for (let i = 0; i < 50; i++) fn(bodies[i % bodies.length]!);
  const t0 = performance.now();
  for (let i = 0; i < iterations; i++) fn(bodies[i % bodies.length]!);
  return ((performance.now() - t0) * 1000) / iterations / spans;
};
const decoded = bodies.map((b) => decodeTraceRequest(b));
const validated = decoded.map((d) => validateRequest(d).valid);
let k = 0;
const out = {
  decode: time((b) => decodeTraceRequest(b)),
  validate: time(() => validateRequest(decoded[k++ % decoded.length]!)),
  splitByTrace: time(() => splitByTrace(validated[k++ % validated.length]!)),
  splitAndEncode: time(() => traceMessages(validated[k++ % validated.length]!)),
  gzipOfMessages: time(() => {
    const msgs = traceMessages(validated[k++ % validated.length]!);
    return zlib.gzipSync(Buffer.concat(msgs.map((m) => m.value)));
  }),
  all: time((b) => traceMessages(validateRequest(decodeTraceRequest(b)).valid)),
};
process.stdout.write(`${JSON.stringify({ event: 'stages', unit: 'µs/span', ...Object.fromEntries(Object.entries(out).map(([x, v]) => [x, Math.round(v * 100) / 100])) })}\n`);
