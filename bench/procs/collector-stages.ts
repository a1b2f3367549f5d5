/**
 * Where the collector's CPU goes per request, in-process and without I/O:
 * the stages of collector/server.ts's handleExport on realistic 512-span
 * requests — decode into frames, validation, split by trace, encoding of the
 * per-trace messages — and what kafkajs does with them before the socket
 * (murmur2 partitioning, record batch encoding, compression, CRC32C), in µs
 * of CPU per span.
 *   node bench/procs/collector-stages.ts [iterations]
 */
import { createRequire } from 'node:module';
import kafkajs from 'kafkajs';
import { toKafkaMessage } from '../../bus/kafka.ts';
import { decodeRequest } from '../../collector/encoding.ts';
import { validateRequest } from '../../collector/validate.ts';
import type { BusMessage } from '../../bus/types.ts';
import { splitByTrace, traceMessages } from '../../otlp/split.ts';
import { encode, exportRequests, planAttempts } from '../lib/traffic.ts';

const iterations = Number(process.argv[2] ?? 400);
const bodies = [...exportRequests(planAttempts({ attempts: 1200, seed: 3, tenant: 'bench-load' }))].slice(0, 16).map(encode);
const spans = 512;
const PARTITIONS = 6;

// kafkajs's own produce request encoder and partitioner, as its producer calls them.
const require = createRequire(import.meta.resolve('kafkajs'));
const produceRequest = require('./src/protocol/requests/produce/v3/request.js') as (o: object) => { encode(): Promise<unknown> };
const partitioner = kafkajs.Partitioners.DefaultPartitioner();
const partitionMetadata = Array.from({ length: PARTITIONS }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [0], isr: [0] }));
async function kafkaEncode(messages: BusMessage[], compression: kafkajs.CompressionTypes): Promise<unknown> {
  const byPartition: kafkajs.Message[][] = Array.from({ length: PARTITIONS }, () => []);
  for (const m of messages) {
    const message = toKafkaMessage(m);
    byPartition[partitioner({ topic: 't', partitionMetadata, message })]!.push(message);
  }
  const partitions = byPartition.map((msgs, partition) => ({ partition, messages: msgs, firstSequence: 0 })).filter((p) => p.messages.length > 0);
  return produceRequest({ acks: -1, timeout: 5000, compression, topicData: [{ topic: 't', partitions }] }).encode();
}

/** µs of CPU (all threads) per span, after a warm-up. */
async function time(fn: (i: number) => unknown): Promise<number> {
  for (let i = 0; i < 50; i++) await fn(i);
  const t0 = process.cpuUsage();
  for (let i = 0; i < iterations; i++) await fn(i);
  const cpu = process.cpuUsage(t0);
  return (cpu.user + cpu.system) / iterations / spans;
}

const frames = bodies.map((b) => decodeRequest('protobuf', b));
const valid = frames.map((f) => validateRequest(f).valid);
const messages = valid.map((v) => traceMessages(v));
const at = <T>(list: T[], i: number): T => list[i % list.length]!;
const out = {
  decode: await time((i) => decodeRequest('protobuf', at(bodies, i))),
  validate: await time((i) => validateRequest(at(frames, i))),
  splitByTrace: await time((i) => splitByTrace(at(valid, i))),
  splitAndEncode: await time((i) => traceMessages(at(valid, i))),
  kafkaEncodeUncompressed: await time((i) => kafkaEncode(at(messages, i), kafkajs.CompressionTypes.None)),
  kafkaEncodeGzip: await time((i) => kafkaEncode(at(messages, i), kafkajs.CompressionTypes.GZIP)),
  all: await time((i) => kafkaEncode(traceMessages(validateRequest(decodeRequest('protobuf', at(bodies, i))).valid), kafkajs.CompressionTypes.GZIP)),
};
process.stdout.write(`${JSON.stringify({ event: 'stages', unit: 'µs/span', ...Object.fromEntries(Object.entries(out).map(([x, v]) => [x, Math.round(v * 100) / 100])) })}\n`);
