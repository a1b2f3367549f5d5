/**
 * The collector publishing to a real Kafka broker through KafkaPublisher:
 * what lands on the topic (read back with a plain kafkajs consumer, as any
 * otelcol-compatible reader would), partition affinity, a trace too large
 * for one Kafka message, /readyz for a missing topic (also of `fleet
 * collector`), and an outage during which the collector answers 503 +
 * Retry-After and the real OTLP exporter's retry delivers once the broker is
 * back.
 */
import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import kafkajs from 'kafkajs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { KafkaPublisher } from '../bus/kafka.ts';
import { startCollector, type RunningCollector } from '../collector/index.ts';
import { decodeTraceRequest, decodeTraceResponse, encodeTraceRequest, flattenSpans, type TraceRequest } from '../otlp/codec.ts';
import { decodeStatus } from '../otlp/status.ts';
import { canonicalSpans, metricValue, mixedRequest, postTraces, span, spanIdHex, str, traceIdHex, traceIdsOf } from './collector.fixtures.ts';
import { createTopic, privateBroker, uniqueName, type TestBroker } from './support/kafka.ts';
import { startFleet } from './support/processes.ts';

interface TopicMessage {
  key: string;
  partition: number;
  offset: string;
  value: Buffer;
}

/**
 * Every message of `topic` once at least `count` have arrived (then a short
 * quiet period, so extra ones, e.g. duplicates, are not missed).
 */
async function readTopic(brokers: string[], topic: string, count: number, timeoutMs = 30_000): Promise<TopicMessage[]> {
  const kafka = new kafkajs.Kafka({ clientId: 'collector-test-reader', brokers, logLevel: kafkajs.logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `reader-${topic}-${Math.random().toString(36).slice(2)}`, maxWaitTimeInMs: 200 });
  const messages: TopicMessage[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ partition, message }) => {
        messages.push({ key: message.key!.toString(), partition, offset: message.offset, value: message.value! });
      },
    });
    const deadline = Date.now() + timeoutMs;
    while (messages.length < count) {
      if (Date.now() > deadline) throw new Error(`only ${messages.length} of ${count} messages on ${topic} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 1000));
    return messages;
  } finally {
    await consumer.disconnect();
  }
}

const decodeAll = (messages: TopicMessage[]): TraceRequest[] => messages.map((m) => decodeTraceRequest(m.value));
const roundTripped = (r: TraceRequest): TraceRequest => decodeTraceRequest(encodeTraceRequest(r));

/**
 * A broker of this file's own (scripts/kafka.sh instance): the outage test
 * stops and restarts it, and no other vitest run can stop it underneath us.
 */
let broker: TestBroker;
beforeAll(async () => {
  broker = await privateBroker('collector');
});
afterAll(async () => {
  await broker?.destroy();
});

const collectors: RunningCollector[] = [];
afterEach(async () => {
  await Promise.all(collectors.splice(0).map((c) => c.close()));
});

async function collectorFor(brokers: string[], topic: string, publisher: Partial<ConstructorParameters<typeof KafkaPublisher>[0]> = {}) {
  const c = await startCollector({
    publisher: new KafkaPublisher({ brokers, topic, logLevel: 'nothing', ...publisher }),
    topic,
    port: 0,
    host: '127.0.0.1',
  });
  collectors.push(c);
  return c;
}

describe('collector → Kafka', () => {
  it('protobuf, JSON and gzip bodies land on a 4-partition topic, one message per trace keyed by trace id, every span intact', async () => {
    const { brokers } = broker;
    const topic = await createTopic('collector-bodies', 4, brokers);
    const c = await collectorFor(brokers, topic);

    const proto = mixedRequest();
    expect((await postTraces(c.url, encodeTraceRequest(proto))).status).toBe(200);
    const gzipped = { resourceSpans: [{ resource: { attributes: [] }, scopeSpans: [{ spans: [span(20, 1), span(21, 2), span(20, 3)] }] }] };
    expect((await postTraces(c.url, zlib.gzipSync(encodeTraceRequest(gzipped)), { 'Content-Encoding': 'gzip' })).status).toBe(200);
    const json = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'json' } }] },
          scopeSpans: [
            {
              scope: { name: 'j' },
              spans: [
                { traceId: traceIdHex(30), spanId: spanIdHex(1), name: 'x', kind: 1, startTimeUnixNano: '1760000000000000001', endTimeUnixNano: '1760000000000000002' },
              ],
            },
          ],
        },
      ],
    };
    const jsonRes = await postTraces(c.url, JSON.stringify(json), { 'Content-Type': 'application/json' });
    expect(jsonRes.status).toBe(200);

    const messages = await readTopic(brokers, topic, 3 + 2 + 1);
    expect(messages).toHaveLength(6);
    for (const m of messages) {
      expect(m.key).toMatch(/^[0-9a-f]{32}$/);
      expect(new Set(traceIdsOf(decodeTraceRequest(m.value)))).toEqual(new Set([m.key]));
    }
    expect(messages.map((m) => m.key).sort()).toEqual(
      [1, 2, 3, 20, 21, 30].map(traceIdHex).sort(),
    );
    const jsonSpans = [...flattenSpans(decodeTraceRequest(messages.find((m) => m.key === traceIdHex(30))!.value))];
    expect(jsonSpans.map((s) => [s.spanId, s.name, s.startTimeUnixNano, s.resource])).toEqual([
      [spanIdHex(1), 'x', 1760000000000000001n, { 'service.name': 'json' }],
    ]);
    const protoAndGzip = messages.filter((m) => m.key !== traceIdHex(30));
    expect(canonicalSpans(decodeAll(protoAndGzip))).toEqual(canonicalSpans([roundTripped(proto), roundTripped(gzipped)]));
    // Keyed by trace id, the traces spread over the partitions.
    expect(new Set(messages.map((m) => m.partition)).size).toBeGreaterThan(1);
  });

  it('sends the spans of one trace to one partition across requests', async () => {
    const { brokers } = broker;
    const topic = await createTopic('collector-affinity', 6, brokers);
    const c = await collectorFor(brokers, topic);
    const requests = 8;
    for (let i = 0; i < requests; i++) {
      const body = encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(77, i + 1), span(200 + i, i + 100), span(78, i + 50)] }] }] });
      expect((await postTraces(c.url, body)).status).toBe(200);
    }
    const messages = await readTopic(brokers, topic, requests * 3);
    for (const trace of [77, 78]) {
      const ofTrace = messages.filter((m) => m.key === traceIdHex(trace));
      expect(ofTrace).toHaveLength(requests);
      expect(new Set(ofTrace.map((m) => m.partition)).size).toBe(1);
    }
    expect(new Set(messages.map((m) => m.partition)).size).toBeGreaterThan(1);
  });
});

describe('collector → Kafka: large traces and readiness', () => {
  it('publishes a trace of more than 2 MiB (incompressible) as several messages under the message bound, one key, one partition, complete', async () => {
    const { brokers } = broker;
    const topic = await createTopic('collector-large', 4, brokers);
    const c = await collectorFor(brokers, topic);
    // 30 spans of ~80 KiB random bytes each: gzip cannot bring the trace under the broker's 1 MiB max.message.bytes.
    const spans = Array.from({ length: 30 }, (_, i) => span(60, i + 1, { attributes: [{ key: 'payload', value: { bytesValue: randomBytes(80 * 1024) } }] }));
    const request = { resourceSpans: [{ resource: { attributes: [str('service.name', 'large')] }, scopeSpans: [{ scope: { name: 'big' }, spans: [...spans, span(61, 99)] }] }] };
    const body = encodeTraceRequest(request);
    expect(body.length).toBeGreaterThan(2 * 1024 * 1024);
    const res = await postTraces(c.url, body);
    expect(res.status).toBe(200);
    expect(decodeTraceResponse(res.body).partialSuccess).toBeUndefined();

    // At least ceil(2.4 MiB / 512 KiB) = 5 messages of trace 60, plus the one of trace 61.
    const messages = await readTopic(brokers, topic, 6);
    const ofLarge = messages.filter((m) => m.key === traceIdHex(60));
    expect(ofLarge.length).toBeGreaterThanOrEqual(5);
    expect(new Set(ofLarge.map((m) => m.partition)).size).toBe(1);
    for (const m of messages) expect(m.value.length).toBeLessThanOrEqual(512 * 1024);
    // In offset order the spans come back in the order sent, none lost, none twice.
    const inOrder = [...ofLarge].sort((a, b) => Number(BigInt(a.offset) - BigInt(b.offset)));
    expect(inOrder.flatMap((m) => [...flattenSpans(decodeTraceRequest(m.value))].map((x) => x.spanId))).toEqual(spans.map((_, i) => spanIdHex(i + 1)));
    expect(canonicalSpans(decodeAll(messages))).toEqual(canonicalSpans([roundTripped(request)]));
  }, 60_000);

  it('/readyz is 503 while the topic is missing, for a publisher told its topic and for `fleet collector` once its topic is deleted', async () => {
    const { brokers } = broker;
    const missing = await collectorFor(brokers, `never-created-${Date.now()}`);
    const notReady = await fetch(`${missing.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toBe('not ready: the bus is not accepting writes\n');

    const topic = uniqueName('collector-ready');
    const cli = startFleet(['collector', '--kafka-brokers', brokers.join(','), '--topic', topic, '--dead-letter-topic', `${topic}-dlq`, '--topic-partitions', '2', '--collector-host', '127.0.0.1', '--collector-port', '0']);
    try {
      const [, url] = await cli.waitFor(/collector: (http:\/\/[^ ]+)\/v1\/traces → Kafka/);
      // Without tokens, fleet collector says at start that anyone who reaches it can write.
      expect(cli.output()).toMatch(/WARNING collector: no auth configured \(--auth-tokens \/ FLEET_AUTH_TOKENS\): anyone who reaches 127\.0\.0\.1:0 can write spans into every tenant/);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      const kafka = new kafkajs.Kafka({ clientId: 'collector-test-admin', brokers, logLevel: kafkajs.logLevel.NOTHING });
      const admin = kafka.admin();
      await admin.connect();
      try {
        await admin.deleteTopics({ topics: [topic] });
      } finally {
        await admin.disconnect();
      }
      await waitFor(async () => (await fetch(`${url}/readyz`)).status === 503, 20_000);
    } finally {
      await cli.kill();
    }
  }, 90_000);
});

describe('collector → Kafka outage', () => {
  /** Spans from the real SDK: `attempts` attempt spans, each with two child spans. */
  async function sdkSpans(attempts: number): Promise<ReadableSpan[]> {
    const memory = new InMemorySpanExporter();
    const provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'outage-agent' }),
      spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
    });
    const tracer = provider.getTracer('outage');
    for (let i = 0; i < attempts; i++) {
      const attempt = tracer.startSpan('attempt', {
        attributes: { 'fleet.spec.id': `spec-${i}`, 'fleet.spec.tier': 'tier-2', 'fleet.attempt.number': 1, 'fleet.attempt.outcome': 'pass' },
      });
      const ctx = trace.setSpan(ROOT_CONTEXT, attempt);
      tracer.startSpan('chat', { attributes: { 'gen_ai.operation.name': 'chat' } }, ctx).end();
      tracer.startSpan('execute_tool', { attributes: { 'gen_ai.operation.name': 'execute_tool' } }, ctx).end();
      attempt.end();
    }
    await provider.forceFlush();
    return memory.getFinishedSpans();
  }

  it('answers 503 + Retry-After while the broker is down; the OTLP exporter retries and nothing is lost once it is back', async () => {
    const topic = await createTopic('collector-outage', 3, broker.brokers);
    // Publishes give up after 2 s and the exporter is told to come back after 3 s: its 5 retries
    // then span ~25 s, room for the broker's restart even on a loaded machine.
    const c = await collectorFor(broker.brokers, topic, { publishTimeoutMs: 2000, retryAfterSeconds: 3 });
    const exporter = new ProtoExporter({ url: c.tracesUrl, timeoutMillis: 120_000 });
    const exportSpans = (spans: ReadableSpan[]) => new Promise<ExportResult>((resolve) => exporter.export(spans, resolve));

    const before = await sdkSpans(5);
    expect(await exportSpans(before)).toEqual({ code: ExportResultCode.SUCCESS });

    await broker.stop();
    const during = await sdkSpans(5);
    // A plain OTLP client sees the refusal: retryable status, Retry-After, a Status saying why.
    const direct = await postTraces(c.url, encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(90, 1)] }] }] }));
    expect(direct.status).toBe(503);
    expect(direct.headers['retry-after']).toBe('3');
    const status = decodeStatus(direct.body);
    expect(status.message).toMatch(/^downstream unavailable: Kafka unavailable: /);
    expect(status.retryDelaySeconds).toBe(3);
    expect((await fetch(`${c.url}/readyz`)).status).toBe(503);

    // The exporter's first attempt is refused; it keeps retrying (honouring Retry-After) until the broker is back.
    const exported = exportSpans(during);
    const refusedBefore = metricValue(await c.registry.metrics(), 'fleet_collector_requests_total{code="503"}') ?? 0;
    await waitFor(async () => (metricValue(await c.registry.metrics(), 'fleet_collector_requests_total{code="503"}') ?? 0) > refusedBefore, 20_000);
    await broker.start();
    expect(await exported).toEqual({ code: ExportResultCode.SUCCESS });
    await exporter.shutdown();

    const metrics = await c.registry.metrics();
    const okRequests = metricValue(metrics, 'fleet_collector_requests_total{code="200"}')!;
    const refused = metricValue(metrics, 'fleet_collector_requests_total{code="503"}')!;
    expect(okRequests).toBe(2);
    expect(refused).toBeGreaterThanOrEqual(2);

    // 5 traces before + 5 during; the direct request's trace 90 may or may not have been written.
    const messages = await readTopic(broker.brokers, topic, 10);
    const spanIds = decodeAll(messages).flatMap((r) => [...flattenSpans(r)].map((s) => s.spanId));
    const count = (id: string) => spanIds.filter((x) => x === id).length;
    for (const s of before) expect(count(s.spanContext().spanId)).toBe(1);
    // Every span sent during the outage arrived; a copy beyond the first can only come from a
    // refused attempt that Kafka wrote after its publish timed out (the exporter re-sent it).
    // The exporter's attempts: its refused ones (all 503s but the direct request's) plus the accepted one.
    const exporterAttempts = refused - 1 + 1;
    for (const s of during) {
      expect(count(s.spanContext().spanId)).toBeGreaterThanOrEqual(1);
      expect(count(s.spanContext().spanId)).toBeLessThanOrEqual(exporterAttempts);
    }
    for (const m of messages) expect(new Set(traceIdsOf(decodeTraceRequest(m.value)))).toEqual(new Set([m.key]));
  }, 180_000);
});

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 50));
  }
}
