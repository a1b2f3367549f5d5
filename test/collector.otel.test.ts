/**
 * Real OpenTelemetry JS SDK exporters sending to the collector: the OTLP/HTTP
 * JSON exporter (@opentelemetry/exporter-trace-otlp-http), the protobuf one
 * (@opentelemetry/exporter-trace-otlp-proto) and the OTLP/gRPC one
 * (@opentelemetry/exporter-trace-otlp-grpc), with and without gzip.
 */
import { ROOT_CONTEXT, trace, type Attributes, type HrTime } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/memory.ts';
import { startCollector, type RunningCollector } from '../collector/index.ts';
import { flattenSpans } from '../otlp/codec.ts';
import { decodeMessages, published } from './collector.fixtures.ts';

const TOPIC = 'otlp_spans';
const running: RunningCollector[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((c) => c.close()));
});

/** Spans recorded by a real SDK tracer: an attempt with an LLM call and a tool call below it, plus `extra` attempts. */
async function recordSpans(attemptAttributes: Attributes, extra: Attributes[] = []): Promise<ReadableSpan[]> {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'sdk-agent', 'fleet.pool': 'builder-heavy-fast' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  const tracer = provider.getTracer('perpass-test', '1.2.3');
  const attempt = tracer.startSpan('attempt', { attributes: attemptAttributes });
  const inside = trace.setSpan(ROOT_CONTEXT, attempt);
  const chat = tracer.startSpan('chat deepseek-v4-pro', {
    attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'deepseek-v4-pro', 'gen_ai.usage.input_tokens': 1234, 'fleet.cost.reported_usd': 0.0012 },
  }, inside);
  chat.addEvent('gen_ai.choice', { index: 0 });
  chat.end();
  const tool = tracer.startSpan('execute_tool bash', { attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'bash' } }, inside);
  tool.setStatus({ code: 2, message: 'exit 1' });
  tool.end();
  attempt.end();
  for (const attributes of extra) tracer.startSpan('attempt', { attributes }).end();
  await provider.forceFlush();
  return memory.getFinishedSpans();
}

/** The exporters' compression enum ('gzip' | 'none'). */
type Compression = NonNullable<NonNullable<ConstructorParameters<typeof JsonExporter>[0]>['compression']>;
const compression = (gzip: boolean) => (gzip ? 'gzip' : 'none') as Compression;

/** Exact nanoseconds of an SDK timestamp (a JS number would round them). */
const nanos = ([seconds, ns]: HrTime): bigint => BigInt(seconds) * 1_000_000_000n + BigInt(ns);

const exportWith = (exporter: SpanExporter, spans: ReadableSpan[]): Promise<ExportResult> =>
  new Promise((resolve) => exporter.export(spans, resolve));

const validAttempt = { 'fleet.spec.id': 'spec-7', 'fleet.spec.tier': 'tier-3', 'fleet.attempt.number': 2, 'fleet.attempt.outcome': 'fail', 'fleet.attempt.reason': 'tests failed' };

/** What the SDK recorded, in the shape flattenSpans gives for what the collector published. */
const expectedRecords = (spans: ReadableSpan[]) =>
  spans.map((s) => ({
    traceId: s.spanContext().traceId,
    spanId: s.spanContext().spanId,
    parentSpanId: s.parentSpanContext?.spanId ?? '',
    name: s.name,
    kind: s.kind + 1,
    startTimeUnixNano: nanos(s.startTime),
    endTimeUnixNano: nanos(s.endTime),
    attributes: s.attributes,
    resource: { ...s.resource.attributes },
    scope: { name: 'perpass-test', version: '1.2.3' },
    status: { code: s.status.code, message: s.status.message ?? '' },
    events: s.events.map((e) => ({ timeUnixNano: nanos(e.time), name: e.name, attributes: e.attributes ?? {} })),
  }));

async function publishedRecords(bus: MemoryBus) {
  return decodeMessages(await published(bus, TOPIC))
    .flatMap((r) => [...flattenSpans(r)])
    .map(({ traceState: _traceState, ...rest }) => rest);
}

const bySpanId = <T extends { spanId: string }>(a: T, b: T) => a.spanId.localeCompare(b.spanId);

type MakeExporter = (c: RunningCollector, gzip: boolean) => SpanExporter;
const HTTP_EXPORTERS: [string, MakeExporter][] = [
  ['otlp-http (JSON)', (c, gzip) => new JsonExporter({ url: c.tracesUrl, compression: compression(gzip) })],
  ['otlp-proto (protobuf)', (c, gzip) => new ProtoExporter({ url: c.tracesUrl, compression: compression(gzip) })],
];
const GRPC_EXPORTER: [string, MakeExporter] = ['otlp-grpc', (c, gzip) => new GrpcExporter({ url: `http://127.0.0.1:${c.grpcPort}`, compression: compression(gzip) as never })];

describe.each([...HTTP_EXPORTERS, GRPC_EXPORTER])('the OTel JS %s exporter', (_name, makeExporter) => {
  it.each([false, true])('delivers every span intact (gzip: %s)', async (gzip) => {
    const bus = new MemoryBus();
    const c = await startCollector({ publisher: bus.publisher(), port: 0, grpcPort: 0, host: '127.0.0.1' });
    running.push(c);
    const spans = await recordSpans(validAttempt);
    const exporter = makeExporter(c, gzip);
    expect(await exportWith(exporter, spans)).toEqual({ code: ExportResultCode.SUCCESS });
    await exporter.shutdown();

    const messages = await published(bus, TOPIC);
    expect(messages.map((m) => m.key)).toEqual([spans[0]!.spanContext().traceId]);
    expect((await publishedRecords(bus)).sort(bySpanId)).toEqual(expectedRecords(spans).sort(bySpanId));
  });

  it('gets a partial success for an attempt breaking the contract; the rest is published', async () => {
    const bus = new MemoryBus();
    const c = await startCollector({ publisher: bus.publisher(), port: 0, grpcPort: 0, host: '127.0.0.1' });
    running.push(c);
    const spans = await recordSpans(validAttempt, [{ 'fleet.spec.id': 'spec-8', 'fleet.attempt.number': 1 }]);
    const exporter = makeExporter(c, false);
    // OTLP: partial success is a success (the client must not retry it).
    expect(await exportWith(exporter, spans)).toEqual({ code: ExportResultCode.SUCCESS });
    await exporter.shutdown();
    expect((await publishedRecords(bus)).map((s) => s.spanId).sort()).toEqual(spans.slice(0, 3).map((s) => s.spanContext().spanId).sort());
    const metrics = await c.registry.metrics();
    expect(metrics).toContain('fleet_collector_spans_rejected_total{reason="invalid"} 1');
  });

});

// The JS gRPC exporter does not retry at all (0.301: every error is final), so the retry is
// checked for the HTTP exporters here; collector.grpc.test.ts checks the UNAVAILABLE + RetryInfo a gRPC client acts on.
describe.each(HTTP_EXPORTERS)('the OTel JS %s exporter', (_name, makeExporter) => {
  it('retries after 503 + Retry-After from a full queue and delivers once the consumers caught up', async () => {
    const bus = new MemoryBus({ maxBytes: 1, retryAfterSeconds: 1 });
    const c = await startCollector({ publisher: bus.publisher(), port: 0, grpcPort: 0, host: '127.0.0.1' });
    running.push(c);
    const first = await recordSpans(validAttempt);
    const exporter = makeExporter(c, false);
    expect(await exportWith(exporter, first)).toEqual({ code: ExportResultCode.SUCCESS });

    const second = await recordSpans({ ...validAttempt, 'fleet.attempt.number': 3 });
    const exported = exportWith(exporter, second);
    // Let the first attempt be refused, then drain the queue as a consumer would.
    await new Promise((r) => setTimeout(r, 300));
    expect(await c.registry.metrics()).toContain('fleet_collector_requests_total{code="503"} 1');
    const sub = bus.subscriber(TOPIC);
    await sub.commit((await sub.lag()).map((p) => ({ topic: TOPIC, partition: p.partition, offset: String(p.lag) })));
    expect(await exported).toEqual({ code: ExportResultCode.SUCCESS });
    await exporter.shutdown();

    const after = await published(bus, TOPIC);
    expect(after.map((m) => m.key)).toEqual([second[0]!.spanContext().traceId]);
    expect((await publishedRecords(bus)).sort(bySpanId)).toEqual(expectedRecords(second).sort(bySpanId));
  });
});
