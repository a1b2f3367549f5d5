/**
 * The forward stage against a real HTTP backend in this process: what a
 * backend receives (each span as received plus the sampling decision, in
 * protobuf or OTLP/JSON, gzip or not), and the exporter's behaviour when the
 * backend refuses, throttles, answers partially or is not there at all.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { resolveConfig } from '../config/settings.ts';
import { Forwarder, forwardRoutes, SAMPLING_ADJUSTED_COUNT, SAMPLING_REASON, type KeptSpan } from '../forward/index.ts';
import type { Destination } from '../forward/exporter.ts';
import { retryAfterMs, tracesEndpoint } from '../forward/exporter.ts';
import { MemoryForwardQueue } from '../forward/queue.ts';
import { encodeTraceRequest, encodeTraceResponse, flattenSpans, traceRequestToJson, type KeyValue, type OtlpSpan, type TraceRequest } from '../otlp/codec.ts';
import { decodeFrames } from '../otlp/frames.ts';
import { encodeStatus } from '../otlp/status.ts';
import { Backend } from './support/otlp-backend.ts';
import { tempDir } from './support/store.ts';

const backends: Backend[] = [];
const forwarders: Forwarder[] = [];
afterEach(async () => {
  for (const f of forwarders.splice(0)) await f.close(100);
  for (const b of backends.splice(0)) await b.close();
});

async function backend(port?: number): Promise<{ b: Backend; url: string }> {
  const b = new Backend();
  backends.push(b);
  return { b, url: await b.listen(port) };
}

const str = (key: string, v: string): KeyValue => ({ key, value: { stringValue: v } });
const hex = (h: string) => Buffer.from(h, 'hex');
let traceSeq = 0;

/** A trace with what a flattened SpanRecord would lose: scope attributes, links, flags, dropped counts, schema URLs, an int next to a whole double. */
function richTrace(spans = 3, tenant = 'default'): { request: TraceRequest; traceId: string } {
  const traceId = (++traceSeq).toString(16).padStart(32, 'a');
  const list: OtlpSpan[] = [];
  for (let i = 0; i < spans; i++) {
    list.push({
      traceId: hex(traceId),
      spanId: hex((traceSeq * 100 + i + 1).toString(16).padStart(16, '0')),
      ...(i > 0 && { parentSpanId: hex((traceSeq * 100 + 1).toString(16).padStart(16, '0')) }),
      traceState: 'vendor=x',
      flags: 257,
      name: `span ${i}`,
      kind: 3,
      startTimeUnixNano: '1765000000000000000',
      endTimeUnixNano: '1765000000500000000',
      attributes: [str('gen_ai.operation.name', 'chat'), { key: 'whole.double', value: { doubleValue: 3 } }, { key: 'an.int', value: { intValue: 3 } }],
      links: [{ traceId: hex('0'.repeat(31) + '1'), spanId: hex('0'.repeat(15) + '2'), attributes: [str('link.kind', 'retry-of')] }],
      events: [{ timeUnixNano: '1765000000100000000', name: 'note', attributes: [str('k', 'v')] }],
      status: { code: 2, message: 'failed' },
      ...({ droppedAttributesCount: 4 } as object),
    });
  }
  const request = {
    resourceSpans: [
      {
        resource: { attributes: [str('service.name', 'agent'), str('fleet.tenant', tenant)], ...({ droppedAttributesCount: 1 } as object) },
        schemaUrl: 'https://opentelemetry.io/schemas/1.30.0',
        scopeSpans: [{ scope: { name: 'agent-sdk', version: '2.1', attributes: [str('scope.attr', 'yes')] }, schemaUrl: 'https://opentelemetry.io/schemas/1.29.0', spans: list }],
      },
    ],
  } as TraceRequest;
  return { request, traceId };
}

/** Every span of `request` as the consumers would hand it over, kept for `reason` at `rate`. */
function kept(request: TraceRequest, reason = 'failure', rate = 1, tenant = 'default'): KeptSpan[] {
  const out: KeptSpan[] = [];
  for (const rs of decodeFrames(encodeTraceRequest(request)).resourceSpans) {
    for (const ss of rs.scopeSpans) for (const span of ss.spans) out.push({ traceId: Buffer.from(span.head.traceId).toString('hex'), tenant, source: { span, resourceSpans: rs, scopeSpans: ss }, reason, rate });
  }
  return out;
}

/** What the backend should see: the request as sent, each span with the decision appended. */
function withDecision(request: TraceRequest, reason: string, adjusted: number): unknown {
  const copy = JSON.parse(traceRequestToJson(encodeTraceRequest(request))) as { resourceSpans: { scopeSpans: { spans: { attributes: unknown[] }[] }[] }[] };
  for (const rs of copy.resourceSpans) for (const ss of rs.scopeSpans) for (const s of ss.spans) s.attributes.push({ key: SAMPLING_REASON, value: { stringValue: reason } }, { key: SAMPLING_ADJUSTED_COUNT, value: { doubleValue: adjusted } });
  return copy;
}

const asJson = (request: TraceRequest): unknown => JSON.parse(traceRequestToJson(encodeTraceRequest(request)));

function destination(url: string, over: Partial<Destination> = {}): Destination {
  return { url: tracesEndpoint(url), headers: {}, protocol: 'http/protobuf', compression: 'gzip', ...over };
}

const FAST = { lingerMs: 10, initialBackoffMs: 50, maxBackoffMs: 200, timeoutMs: 2000 };

async function forwarder(defaults: Destination[], options: { tenants?: Record<string, Destination[]>; queueBytes?: number; timing?: object; queueDir?: string } = {}) {
  const registry = new Registry();
  const logs: string[] = [];
  const f = await Forwarder.open({
    ...(options.queueDir && { queueDir: options.queueDir }),
    routes: { defaults, tenants: options.tenants ?? {} },
    queueBytes: options.queueBytes ?? 16 * 1024 * 1024,
    registry,
    log: (m) => logs.push(m),
    timing: { ...FAST, ...options.timing },
  });
  forwarders.push(f);
  return { f, registry, logs };
}

/** Sum of a metric's samples whose labels include `labels`. */
async function metric(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
  if (!m) throw new Error(`no metric ${name}`);
  return (m.values as { value: number; labels: Record<string, string | number> }[])
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((n, v) => n + v.value, 0);
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('what the backend receives', () => {
  it('each span, resource and scope exactly as received (protobuf, gzip), plus the sampling decision as span attributes', async () => {
    const { b, url } = await backend();
    const { f, registry } = await forwarder([destination(url)]);
    const failure = richTrace(3);
    const sampledPass = richTrace(2);
    f.add([...kept(failure.request), ...kept(sampledPass.request, 'pass_sampled', 0.05)]);
    await until('both traces', async () => (await metric(registry, 'fleet_forward_sent_spans_total')) === 5);
    expect(b.received[0]!.headers['content-type']).toBe('application/x-protobuf');
    expect(b.received[0]!.headers['content-encoding']).toBe('gzip');
    // two traces queued together go out in one request, one resource spans entry per trace
    const got = b.received.flatMap((r) => (asJson(r.request) as { resourceSpans: unknown[] }).resourceSpans);
    const want = [withDecision(failure.request, 'failure', 1), withDecision(sampledPass.request, 'pass_sampled', 20)].flatMap((w) => (w as { resourceSpans: unknown[] }).resourceSpans);
    expect(got).toEqual(want);
    expect(await metric(registry, 'fleet_forward_sent_spans_total')).toBe(5);
    expect(await metric(registry, 'fleet_forward_queue_bytes')).toBe(0);
  });

  it('OTLP/JSON without compression: hex ids, and what the collector\'s own JSON decoder reads back equals the protobuf', async () => {
    const { b, url } = await backend();
    const { f } = await forwarder([destination(url, { protocol: 'http/json', compression: 'none' })]);
    const t = richTrace(2);
    f.add(kept(t.request, 'outlier_cost', 1));
    await until('the trace', () => b.received.length === 1);
    expect(b.received[0]!.headers['content-type']).toBe('application/json');
    expect(b.received[0]!.headers['content-encoding']).toBeUndefined();
    expect(asJson(b.received[0]!.request)).toEqual(withDecision(t.request, 'outlier_cost', 1));
    expect([...flattenSpans(b.received[0]!.request)][0]!.traceId).toBe(t.traceId);
  });

  it('sends the configured headers; a URL without a path gets /v1/traces, one with a path is used as given', async () => {
    expect(tracesEndpoint('http://h:4318')).toBe('http://h:4318/v1/traces');
    expect(tracesEndpoint('https://cloud.langfuse.com/api/public/otel/v1/traces')).toBe('https://cloud.langfuse.com/api/public/otel/v1/traces');
    const { b, url } = await backend();
    const { f } = await forwarder([destination(url, { headers: { authorization: 'Basic cGs6c2s=', 'x-extra': 'yes' } })]);
    f.add(kept(richTrace(1).request));
    await until('the trace', () => b.received.length === 1);
    expect(b.received[0]!.headers.authorization).toBe('Basic cGs6c2s=');
    expect(b.received[0]!.headers['x-extra']).toBe('yes');
  });
});

describe('a backend that refuses, throttles or is away', () => {
  it('retries 503 after its Retry-After and 429 with backoff; the trace arrives once', async () => {
    const { b, url } = await backend();
    b.answer = (_r, n) => (n === 0 ? { status: 503, headers: { 'retry-after': '1' } } : n === 1 ? { status: 429 } : { status: 200 });
    const { f, registry, logs } = await forwarder([destination(url)]);
    f.add(kept(richTrace(2).request));
    await until('the trace', async () => (await metric(registry, 'fleet_forward_sent_spans_total')) === 2, 15_000);
    expect(b.refused.length).toBe(2);
    expect(b.refused[1]!.at - b.refused[0]!.at).toBeGreaterThanOrEqual(950);
    expect(b.spanIds().length).toBe(2);
    expect(await metric(registry, 'fleet_forward_retries_total', { reason: 'http_503' })).toBe(1);
    expect(await metric(registry, 'fleet_forward_retries_total', { reason: 'http_429' })).toBe(1);
    expect(await metric(registry, 'fleet_forward_sent_spans_total')).toBe(2);
    expect(logs.some((l) => /backend unavailable \(HTTP 503 \(Retry-After 1\)/.test(l))).toBe(true);
    expect(logs.some((l) => /backend back after/.test(l))).toBe(true);
  });

  it('reads Retry-After as seconds or as an HTTP date', () => {
    expect(retryAfterMs('7')).toBe(7000);
    expect(retryAfterMs(new Date(Date.UTC(2030, 0, 1, 0, 0, 30)).toUTCString(), Date.UTC(2030, 0, 1))).toBe(30_000);
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs(null)).toBeUndefined();
  });

  it('a backend not listening yet: the queued traces arrive once it is, each once; adding never waits on it', async () => {
    const probe = await backend();
    const port = Number(new URL(probe.url).port);
    await probe.b.close();
    backends.pop();
    const { f, registry, logs } = await forwarder([destination(`http://127.0.0.1:${port}`)]);
    const traces = Array.from({ length: 50 }, () => richTrace(3));
    const started = performance.now();
    for (const t of traces) f.add(kept(t.request));
    expect(performance.now() - started).toBeLessThan(500);
    await until('retries', async () => (await metric(registry, 'fleet_forward_retries_total', { reason: 'network' })) >= 2);
    expect(await metric(registry, 'fleet_forward_up')).toBe(0);
    expect(await metric(registry, 'fleet_forward_queue_spans')).toBe(150);
    expect(logs.some((l) => /backend unavailable \(fetch failed: connect ECONNREFUSED/.test(l))).toBe(true);
    const { b } = await backend(port);
    await until('every trace', () => b.spanIds().length >= 150);
    await new Promise((r) => setTimeout(r, 300));
    const ids = b.spanIds();
    expect(new Set(ids).size).toBe(150);
    expect(ids.length).toBe(150);
    expect(await metric(registry, 'fleet_forward_up')).toBe(1);
    expect(await metric(registry, 'fleet_forward_sent_spans_total')).toBe(150);
  });

  it('a status that will not get better (400) drops the batch, counted and logged with the backend\'s message; later traces still go', async () => {
    const { b, url } = await backend();
    b.answer = (_r, n) =>
      n === 0 ? { status: 400, headers: { 'content-type': 'application/x-protobuf' }, body: encodeStatus({ code: 3, message: 'span name too long' }) } : { status: 200 };
    const { f, registry, logs } = await forwarder([destination(url)]);
    f.add(kept(richTrace(2).request));
    await until('the refusal', async () => (await metric(registry, 'fleet_forward_dropped_spans_total', { reason: 'rejected' })) === 2);
    expect(logs.some((l) => /HTTP 400 refused 2 spans for good, dropped: span name too long/.test(l))).toBe(true);
    f.add(kept(richTrace(1).request));
    await until('the next trace', async () => (await metric(registry, 'fleet_forward_sent_spans_total')) === 1);
    expect(b.received.length).toBe(1);
  });

  it('a partial success counts the spans the backend rejected (protobuf and JSON answers)', async () => {
    const { b, url } = await backend();
    b.answer = (_r, n) =>
      n === 0
        ? { status: 200, headers: { 'content-type': 'application/x-protobuf' }, body: encodeTraceResponse({ rejectedSpans: 1, errorMessage: 'one span too old' }) }
        : { status: 200, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ partialSuccess: { rejectedSpans: '2', errorMessage: 'two without names' } }) };
    const { f, registry, logs } = await forwarder([destination(url)]);
    f.add(kept(richTrace(3).request));
    await until('the first answer', () => b.received.length === 1);
    f.add(kept(richTrace(4).request));
    await until('the second answer', async () => (await metric(registry, 'fleet_forward_dropped_spans_total', { reason: 'partial_success' })) === 3);
    expect(await metric(registry, 'fleet_forward_sent_spans_total')).toBe(4);
    expect(logs.filter((l) => /partial success/.test(l))).toEqual([expect.stringContaining('1 of 3 spans rejected: one span too old'), expect.stringContaining('2 of 4 spans rejected: two without names')]);
  });

  it('a backend that hangs: the queue stays within its bound, what does not fit is dropped and counted, adding never waits', async () => {
    const { b, url } = await backend();
    b.answer = () => ({ status: 503 });
    const { f, registry, logs } = await forwarder([destination(url)], { queueBytes: 20_000 });
    const started = performance.now();
    for (let i = 0; i < 100; i++) f.add(kept(richTrace(3).request));
    expect(performance.now() - started).toBeLessThan(500);
    const queued = await metric(registry, 'fleet_forward_queue_bytes');
    expect(queued).toBeGreaterThan(0);
    expect(queued).toBeLessThanOrEqual(20_000);
    const dropped = await metric(registry, 'fleet_forward_dropped_spans_total', { reason: 'queue_full' });
    expect(dropped).toBeGreaterThan(0);
    expect(dropped + (await metric(registry, 'fleet_forward_queue_spans'))).toBe(300);
    expect(logs.some((l) => /queue full/.test(l))).toBe(true);
  });

  it('shutting down with the backend away: close returns within its timeout and counts what was left (in-memory queue)', async () => {
    const { b, url } = await backend();
    b.answer = () => ({ status: 503, headers: { 'retry-after': '60' } });
    const { f, registry, logs } = await forwarder([destination(url)]);
    f.add(kept(richTrace(2).request));
    await until('a refusal', () => b.refused.length === 1);
    const started = performance.now();
    await f.close(300);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await metric(registry, 'fleet_forward_dropped_spans_total', { reason: 'shutdown' })).toBe(2);
    expect(logs.some((l) => /2 kept spans were still queued at shutdown/.test(l))).toBe(true);
  });
});

describe('the durable queue', () => {
  it('what the backend had not taken when the forwarder stopped is sent after it opens again, once; what it took is not sent again', async () => {
    const queueDir = tempDir('forward-queue');
    const { b, url } = await backend();
    b.answer = () => ({ status: 503 });
    const first = await forwarder([destination(url)], { queueDir });
    const traces = [richTrace(2), richTrace(3), richTrace(1)];
    for (const t of traces) first.f.add(kept(t.request));
    await until('a refusal', () => b.refused.length >= 1);
    await first.f.close(100);
    forwarders.splice(forwarders.indexOf(first.f), 1);
    expect(await metric(first.registry, 'fleet_forward_dropped_spans_total')).toBe(0);
    expect(first.logs.some((l) => /6 kept spans stay queued on disk/.test(l))).toBe(true);

    b.answer = () => ({ status: 200 });
    const second = await forwarder([destination(url)], { queueDir });
    expect(second.logs.some((l) => /6 kept spans queued before the restart are sent first/.test(l))).toBe(true);
    await until('the queued traces', async () => (await metric(second.registry, 'fleet_forward_sent_spans_total')) === 6);
    const later = richTrace(2);
    second.f.add(kept(later.request));
    await until('a new trace', async () => (await metric(second.registry, 'fleet_forward_sent_spans_total')) === 8);
    await second.f.close(1000);
    forwarders.splice(forwarders.indexOf(second.f), 1);

    const third = await forwarder([destination(url)], { queueDir });
    // a destination that changed (here: a header) is another queue; the old one is named, not sent from
    const moved = await forwarder([destination(url, { headers: { authorization: 'Bearer rotated' } })], { queueDir });
    expect(moved.logs).toEqual([expect.stringMatching(new RegExp(`forward queue .* belongs to ${url}/v1/traces \\(route default\\), which is no longer configured`))]);
    await new Promise((r) => setTimeout(r, 300));
    expect(await metric(third.registry, 'fleet_forward_queue_spans')).toBe(0);
    const ids = b.spanIds();
    expect(ids.length).toBe(8);
    expect(new Set(ids).size).toBe(8);
    expect(new Set(b.received.flatMap((r) => [...flattenSpans(r.request)].map((s) => s.traceId)))).toEqual(new Set([...traces, later].map((t) => t.traceId)));
  });
});

describe('routing and settings', () => {
  it('a tenant with its own route goes there with its headers; every other tenant to the defaults', async () => {
    const shared = await backend();
    const own = await backend();
    const dir = tempDir('forward-config');
    const file = path.join(dir, 'fleet.yaml');
    writeFileSync(
      file,
      [`forwardOtlp: ["${shared.url}"]`, 'forwardTenants:', '  payments:', `    otlp: ${own.url}/v1/traces`, '    headers: { authorization: "Basic cGF5OnNr" }', '    protocol: http/json'].join('\n'),
    );
    const config = resolveConfig({ config: file, forwardHeader: ['x-team=shared'] }, {});
    const routes = forwardRoutes(config)!;
    const f = await Forwarder.open({ routes, queueBytes: 1 << 20, registry: new Registry(), log: () => {}, timing: FAST });
    forwarders.push(f);
    const payments = richTrace(2, 'payments');
    const search = richTrace(3, 'search');
    f.add([...kept(payments.request, 'failure', 1, 'payments'), ...kept(search.request, 'failure', 1, 'search')]);
    await until('both', () => own.b.received.length === 1 && shared.b.received.length === 1);
    expect(own.b.received[0]!.headers.authorization).toBe('Basic cGF5OnNr');
    expect(own.b.received[0]!.headers['content-type']).toBe('application/json');
    expect(own.b.received[0]!.headers['x-team']).toBeUndefined();
    expect([...flattenSpans(own.b.received[0]!.request)].map((s) => s.traceId)).toEqual([payments.traceId, payments.traceId]);
    expect(shared.b.received[0]!.headers['x-team']).toBe('shared');
    expect(shared.b.received[0]!.headers.authorization).toBeUndefined();
    expect(new Set([...flattenSpans(shared.b.received[0]!.request)].map((s) => s.traceId))).toEqual(new Set([search.traceId]));
  });

  it('reads repeated flags, comma-separated environment values, and names the setting of a bad value', () => {
    const c = resolveConfig({ forwardOtlp: ['http://a:4318', 'https://b/otel/v1/traces'], forwardHeader: ['authorization=Basic eDp5', 'x-k=v=w'] }, {});
    expect(c.forwardOtlp).toEqual(['http://a:4318', 'https://b/otel/v1/traces']);
    expect(c.forwardHeader).toEqual({ authorization: 'Basic eDp5', 'x-k': 'v=w' });
    expect(c.forwardProtocol).toBe('http/protobuf');
    expect(c.forwardCompression).toBe('gzip');
    const e = resolveConfig({}, { FLEET_FORWARD_OTLP: 'http://a:1,http://b:2', FLEET_FORWARD_HEADER: 'k=v', FLEET_FORWARD_PROTOCOL: 'http/json' });
    expect(forwardRoutes(e)!.defaults.map((d) => [d.url, d.headers, d.protocol])).toEqual([
      ['http://a:1/v1/traces', { k: 'v' }, 'http/json'],
      ['http://b:2/v1/traces', { k: 'v' }, 'http/json'],
    ]);
    expect(forwardRoutes(resolveConfig({}, {}))).toBeUndefined();
    expect(() => resolveConfig({ forwardOtlp: ['ftp://x'] }, {})).toThrow(/--forward-otlp .*must be an http\(s\) URL/);
    expect(() => resolveConfig({ forwardHeader: ['novalue'] }, {})).toThrow(/--forward-header \(value hidden\): .*name=value/);
    expect(() => resolveConfig({}, { FLEET_FORWARD_PROTOCOL: 'grpc' })).toThrow(/FLEET_FORWARD_PROTOCOL "grpc"/);
    expect(() => resolveConfig({}, { FLEET_FORWARD_TENANTS: '{"t":{"otlp":[]}}' })).toThrow(/FLEET_FORWARD_TENANTS \(value hidden\): .*needs at least one URL/);
    expect(() => resolveConfig({}, { FLEET_FORWARD_TENANTS: '{bad' })).toThrow(/FLEET_FORWARD_TENANTS \(value hidden\): must be JSON/);
  });

  it('the in-memory queue hands out batches from its head within the byte bound and forgets nothing it took', () => {
    const q = new MemoryForwardQueue(100);
    const item = (n: number) => ({ spans: n, body: new Uint8Array(30) });
    expect([q.offer(item(1)), q.offer(item(2)), q.offer(item(3)), q.offer(item(4))]).toEqual([true, true, true, false]);
    expect(q.head(65).map((i) => i.spans)).toEqual([1, 2]);
    expect(q.head(1).map((i) => i.spans)).toEqual([1]);
    q.remove(2);
    expect([q.length, q.bytes, q.spans]).toEqual([1, 30, 3]);
    expect(q.offer(item(5))).toBe(true);
    expect(q.head(1000).map((i) => i.spans)).toEqual([3, 5]);
  });
});
