/**
 * A real OpenTelemetry Collector (0.165, built from the Go module proxy:
 * test/fixtures/otelcol) as the agent in front of perpass: the OTel JS SDK
 * exports to it, and it exports to perpass with its own OTLP/gRPC
 * exporter (`otlp_grpc`) and its OTLP/HTTP one (`otlp_http`) with
 * `compression: zstd`. Every span
 * lands exactly; a recording proxy in front of perpass' HTTP port shows the
 * bodies really were zstd.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/memory.ts';
import { startCollector, type RunningCollector } from '../collector/index.ts';
import { flattenSpans } from '../otlp/codec.ts';
import { decodeMessages, published } from './collector.fixtures.ts';
import { tempDir } from './support/store.ts';
import { freePort, until } from './support/polling.ts';
import { goBuild } from './support/toolchains.ts';

const TOPIC = 'otlp_spans';



let bus: MemoryBus;
let perpass: RunningCollector;
let proxy: http.Server;
/** Content-Encoding of every request otelcol's otlphttp exporter sent through the proxy. */
const encodings: string[] = [];
let otelcol: ChildProcess | undefined;
let otelcolOutput = '';
const receivers = { zstd: 0, grpc: 0 };

/** Forwards to perpass' OTLP/HTTP port, noting each request's Content-Encoding. */
function recordingProxy(target: number): http.Server {
  return http.createServer((req, res) => {
    encodings.push(String(req.headers['content-encoding'] ?? 'identity'));
    const upstream = http.request({ host: '127.0.0.1', port: target, path: req.url, method: req.method, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on('error', () => res.writeHead(502).end());
    req.pipe(upstream);
  });
}

beforeAll(async () => {
  const binary = await goBuild('otelcol-perpass', 'test/fixtures/otelcol');
  bus = new MemoryBus();
  perpass = await startCollector({ publisher: bus.publisher(), port: 0, grpcPort: 0, host: '127.0.0.1' });
  proxy = recordingProxy(perpass.port);
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
  receivers.zstd = await freePort();
  receivers.grpc = await freePort();
  const config = path.join(tempDir('otelcol'), 'otelcol.yaml');
  writeFileSync(
    config,
    `
receivers:
  otlp/zstd:
    protocols:
      http: { endpoint: "127.0.0.1:${receivers.zstd}" }
  otlp/grpc:
    protocols:
      http: { endpoint: "127.0.0.1:${receivers.grpc}" }
exporters:
  otlp_http/zstd:
    endpoint: "http://127.0.0.1:${(proxy.address() as AddressInfo).port}"
    compression: zstd
  otlp_grpc/grpc:
    endpoint: "127.0.0.1:${perpass.grpcPort}"
    tls: { insecure: true }
    compression: gzip
service:
  telemetry:
    metrics: { level: none }
  pipelines:
    traces/zstd: { receivers: [otlp/zstd], exporters: [otlp_http/zstd] }
    traces/grpc: { receivers: [otlp/grpc], exporters: [otlp_grpc/grpc] }
`,
  );
  otelcol = spawn(binary, ['--config', config]);
  otelcol.stdout!.on('data', (d: Buffer) => (otelcolOutput += d.toString()));
  otelcol.stderr!.on('data', (d: Buffer) => (otelcolOutput += d.toString()));
  await until('otelcol up', async () => otelcolOutput.includes('Everything is ready'), 60_000).catch((err: Error) => {
    throw new Error(`${err.message}\n${otelcolOutput.slice(-3000)}`);
  });
}, 900_000);

afterAll(async () => {
  if (otelcol && otelcol.exitCode === null) {
    const exited = new Promise((r) => otelcol!.once('exit', r));
    otelcol.kill('SIGTERM');
    await exited;
  }
  await perpass?.close();
  await new Promise((r) => proxy?.close(r));
}, 60_000);

/** An attempt with an LLM call below it, exported by the OTel JS SDK to `url`. */
async function exportAttempt(url: string, spec: string): Promise<ReadableSpan[]> {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'agent-behind-otelcol', 'fleet.tenant': 'otelcol' }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: new ProtoExporter({ url }) }), new SimpleSpanProcessor({ exporter: memory })],
  });
  const tracer = provider.getTracer('otelcol-test', '1.0.0');
  const attempt = tracer.startSpan('attempt', { attributes: { 'fleet.spec.id': spec, 'fleet.spec.tier': 'tier-2', 'fleet.attempt.number': 1, 'fleet.attempt.outcome': 'pass' } });
  tracer
    .startSpan('chat deepseek-v4-pro', { attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'deepseek-v4-pro', 'gen_ai.usage.input_tokens': 4321, 'gen_ai.usage.output_tokens': 99 } }, trace.setSpan(ROOT_CONTEXT, attempt))
    .end();
  attempt.end();
  await provider.forceFlush();
  const finished = memory.getFinishedSpans();
  await provider.shutdown();
  return finished;
}

/** The published spans of one trace: ids, names, attributes and resource as the SDK recorded them. */
async function landed(traceId: string) {
  const spans = decodeMessages(await published(bus, TOPIC))
    .flatMap((r) => [...flattenSpans(r)])
    .filter((s) => s.traceId === traceId);
  return spans.map((s) => ({ spanId: s.spanId, parentSpanId: s.parentSpanId, name: s.name, attributes: s.attributes, service: s.resource['service.name'] })).sort((a, b) => a.spanId.localeCompare(b.spanId));
}

const recorded = (spans: ReadableSpan[]) =>
  spans
    .map((s) => ({ spanId: s.spanContext().spanId, parentSpanId: s.parentSpanContext?.spanId ?? '', name: s.name, attributes: s.attributes, service: 'agent-behind-otelcol' }))
    .sort((a, b) => a.spanId.localeCompare(b.spanId));

describe('an OpenTelemetry Collector agent in front of perpass', () => {
  it('exports over OTLP/HTTP with zstd: every span lands exactly, and the bodies were zstd', async () => {
    const spans = await exportAttempt(`http://127.0.0.1:${receivers.zstd}/v1/traces`, 'otelcol-zstd');
    const traceId = spans[0]!.spanContext().traceId;
    const got = await until('the spans on the bus', async () => ((await landed(traceId)).length === spans.length ? landed(traceId) : undefined), 30_000);
    expect(got).toEqual(recorded(spans));
    expect(encodings.length).toBeGreaterThan(0);
    expect(new Set(encodings)).toEqual(new Set(['zstd']));
  }, 60_000);

  it('exports over OTLP/gRPC (gzip): every span lands exactly', async () => {
    const before = (await perpass.registry.metrics()).match(/^fleet_collector_grpc_requests_total\{code="OK"\} (\d+)$/m)?.[1] ?? '0';
    const spans = await exportAttempt(`http://127.0.0.1:${receivers.grpc}/v1/traces`, 'otelcol-grpc');
    const traceId = spans[0]!.spanContext().traceId;
    const got = await until('the spans on the bus', async () => ((await landed(traceId)).length === spans.length ? landed(traceId) : undefined), 30_000);
    expect(got).toEqual(recorded(spans));
    const after = (await perpass.registry.metrics()).match(/^fleet_collector_grpc_requests_total\{code="OK"\} (\d+)$/m)?.[1] ?? '0';
    expect(Number(after)).toBeGreaterThan(Number(before));
  }, 60_000);
});
