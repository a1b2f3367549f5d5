/**
 * The collector's ingest limits, in process against a real collector on
 * 127.0.0.1 and the real in-process queue: the body's minimum rate (408),
 * the span cap (413), the connection cap, per-tenant in-flight and queue
 * shares (429), the memory guard (503), large bodies prepared on a worker
 * thread exactly as inline; and the transport-independent pieces a gRPC
 * receiver shares (collector/budget.ts, collector/limits.ts).
 */
import net from 'node:net';
import os from 'node:os';
import { describe, expect, it } from 'vitest';
import { heldBytes, MemoryBus } from '../bus/memory.ts';
import type { RunningCollector } from '../collector/index.ts';
import { BudgetExhaustedError, InflightBudget } from '../collector/budget.ts';
import { ConnectionCap, memoryLimitBytes, planMemory, QueueShares, RequestTooLargeError, TENANT_HEADER, type CappedConnection } from '../collector/limits.ts';
import { countSpans } from '../otlp/count.ts';
import { decodeStatus } from '../otlp/status.ts';
import { encodeTraceRequest } from '../otlp/codec.ts';
import { collectorStarter, decodeMessages, metricValue, mixedRequest, postTraces, published, span } from './collector.fixtures.ts';
import { minimalSpansRequest } from './support/abuse.ts';

const TOPIC = 'otlp_spans';
const start = collectorStarter();
const MiB = 1024 * 1024;

const connect = (c: RunningCollector): Promise<net.Socket> =>
  new Promise((resolve, reject) => {
    const s = net.connect(c.port, '127.0.0.1', () => resolve(s));
    s.once('error', reject);
  });
const closed = (s: net.Socket): Promise<void> => new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));

describe('slow and oversized requests', () => {
  it('cuts a body arriving below the minimum rate with 408 and a Status saying so; the budget holds only what arrived', async () => {
    const c = await start(new MemoryBus(), { minBodyBytesPerSecond: 1024 });
    const s = await connect(c);
    let response = '';
    s.on('data', (d: Buffer) => (response += d.toString('latin1')));
    s.write(`POST /v1/traces HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${64 * MiB}\r\n\r\n{`);
    const t0 = Date.now();
    await closed(s);
    // Judged after the 2 s grace, at the next check.
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2_000);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(response).toMatch(/^HTTP\/1\.1 408 /);
    expect(response).toMatch(/request body arrives too slowly: 1 bytes in \d+ ms, below the minimum of 1024 bytes\/s/);
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(metricValue(metrics, 'fleet_collector_requests_total{code="408"}')).toBe(1);
    expect(metricValue(metrics, 'fleet_collector_inflight_bytes')).toBe(0);
  });

  it('refuses a request past the span cap with 413 naming the cap, counted on the wire (protobuf) or after parsing (JSON)', async () => {
    const bus = new MemoryBus();
    const c = await start(bus, { maxSpansPerRequest: 1000 });
    expect(countSpans(minimalSpansRequest(1001))).toBe(1001);
    const res = await postTraces(c.url, minimalSpansRequest(1001));
    expect(res.status).toBe(413);
    expect(decodeStatus(res.body).message).toBe('request holds more than 1000 spans, the limit per request (collector option maxSpansPerRequest): send them in smaller batches');
    const json = await postTraces(c.url, JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: Array(1001).fill({}) }] }] }), { 'Content-Type': 'application/json' });
    expect(json.status).toBe(413);
    expect((await postTraces(c.url, minimalSpansRequest(1000))).status).toBe(200);
    expect((await published(bus, TOPIC)).length).toBeGreaterThan(0);
  });

  it('prepares bodies on a worker thread exactly as inline (same messages, same partial success)', async () => {
    const inline = new MemoryBus();
    const worker = new MemoryBus();
    const a = await start(inline, { workerThresholdBytes: 1 * MiB });
    const b = await start(worker, { workerThresholdBytes: 0 });
    const body = encodeTraceRequest(mixedRequest());
    const [ra, rb] = [await postTraces(a.url, body), await postTraces(b.url, body)];
    expect([ra.status, rb.status]).toEqual([200, 200]);
    expect(rb.body).toEqual(ra.body);
    const [ma, mb] = [await published(inline, TOPIC), await published(worker, TOPIC)];
    const wire = (ms: typeof ma) => ms.map((m) => [m.key, Buffer.from(m.value).toString('hex')]);
    expect(wire(mb)).toEqual(wire(ma));
    expect(decodeMessages(mb).length).toBe(3);
    // A body the worker cannot decode is a 400 with the decoder's message, as inline.
    const bad = await postTraces(b.url, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f]));
    expect(bad.status).toBe(400);
    expect(decodeStatus(bad.body).message).toMatch(/^invalid OTLP protobuf ExportTraceServiceRequest/);
  });
});

describe('connections', () => {
  it('past maxConnections, a new connection closes one that never sent a request; a busy collector keeps serving', async () => {
    const c = await start(new MemoryBus(), { maxConnections: 3 });
    const idle = await Promise.all([connect(c), connect(c), connect(c)]);
    // A fourth connection (fetch's) evicts the oldest idle one and is served.
    expect((await fetch(`${c.url}/healthz`)).status).toBe(200);
    await closed(idle[0]!);
    expect(idle[1]!.destroyed || idle[2]!.destroyed).toBe(false);
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(metricValue(metrics, 'fleet_collector_connections_closed_total{reason="evicted"}')).toBeGreaterThanOrEqual(1);
    for (const s of idle) s.destroy();
  });

  it('ConnectionCap prefers never-used idle connections, then the longest idle, and refuses when all are busy', () => {
    const closedIds: string[] = [];
    const conn = (id: string, idleSince: number | undefined, served: boolean): CappedConnection => ({ idleSince: () => idleSince, served: () => served, close: () => closedIds.push(id) });
    const cap = new ConnectionCap(3);
    expect(cap.admit(conn('keepalive-old', 1, true))).toBe(true);
    expect(cap.admit(conn('flood', 5, false))).toBe(true);
    expect(cap.admit(conn('busy', undefined, true))).toBe(true);
    expect(cap.admit(conn('new-1', 9, false))).toBe(true);
    expect(closedIds).toEqual(['flood']);
    expect(cap.admit(conn('new-2', 10, false))).toBe(true);
    expect(closedIds).toEqual(['flood', 'new-1']);
    const busy = new ConnectionCap(1);
    expect(busy.admit(conn('a', undefined, true))).toBe(true);
    expect(busy.admit(conn('b', 0, false))).toBe(false);
  });
});

describe('budgets and shares', () => {
  it('InflightBudget limits a tenant and a connection below the total, and release frees each', () => {
    const budget = new InflightBudget({ totalBytes: 100, tenantBytes: 60, connectionBytes: 50 });
    const conn = {};
    const a = budget.open({ tenant: 'a', connection: conn });
    a.grow(50);
    const a2 = budget.open({ tenant: 'a', connection: {} });
    expect(() => a2.grow(20)).toThrow(expect.objectContaining({ scope: 'tenant', message: 'tenant a busy: its requests hold 50 of its 60 in-flight bytes, this request needs 20' }));
    const b = budget.open({ tenant: 'b', connection: conn });
    expect(() => b.grow(1)).toThrow(expect.objectContaining({ scope: 'connection' }));
    const c = budget.open({ tenant: 'b', connection: {} });
    c.grow(50);
    expect(() => budget.open({ tenant: 'c' }).grow(1)).toThrow(BudgetExhaustedError);
    a.release();
    expect(budget.tenantBytes('a')).toBe(0);
    a2.grow(20);
    expect(budget.bytes).toBe(70);
  });

  it('QueueShares: each tenant gets its share of the queue from the queue meter; 429 past it, 413 for more than a whole share', async () => {
    const shares = new QueueShares(4000, 2, heldBytes);
    const bus = new MemoryBus({ maxBytes: 4000, meter: shares.meter });
    const c = await start(bus, { authTokens: { 'tok-a-0123': 'a', 'tok-b-0123': 'b' }, queueShares: shares, overloadRetryAfterSeconds: 3 });
    const small = encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1)] }] }] });
    const a = { Authorization: 'Bearer tok-a-0123' };
    let accepted = 0;
    let refused: Awaited<ReturnType<typeof postTraces>> | undefined;
    for (let i = 0; i < 20 && !refused; i++) {
      const res = await postTraces(c.url, small, a);
      if (res.status === 200) accepted++;
      else refused = res;
    }
    expect(accepted).toBeGreaterThan(0);
    expect(refused?.status).toBe(429);
    expect(refused?.headers['retry-after']).toBe('3');
    expect(decodeStatus(refused!.body).message).toMatch(/^tenant a has \d+ of its 2000 queue bytes awaiting the consumers/);
    expect(shares.queuedBytes('a')).toBeLessThanOrEqual(2000);
    // The other tenant still gets in, and the messages carry their tenant for the meter.
    expect((await postTraces(c.url, small, { Authorization: 'Bearer tok-b-0123' })).status).toBe(200);
    expect((await published(bus, TOPIC)).every((m) => m.headers?.[TENANT_HEADER] === 'a' || m.headers?.[TENANT_HEADER] === 'b')).toBe(true);
    expect(() => shares.admitPublish('b', [{ key: 'k', value: new Uint8Array(2000) }])).toThrow(RequestTooLargeError);
  });

  it('answers 503 + Retry-After before reading a body while RSS is above the memory guard', async () => {
    const c = await start(new MemoryBus(), { refuseAboveRssBytes: 1024, overloadRetryAfterSeconds: 2 });
    const res = await postTraces(c.url, encodeTraceRequest(mixedRequest()));
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('2');
    expect(decodeStatus(res.body).message).toMatch(/^collector near its memory budget: RSS \d+ bytes is above 1024 bytes/);
    expect((await fetch(`${c.url}/healthz`)).status).toBe(200);
  });

  it('derives the memory plan from the real limit: cgroup (constrainedMemory) when below total memory, each share an eighth, refusal at 85 %', () => {
    const limit = memoryLimitBytes();
    const constrained = process.constrainedMemory();
    expect(limit).toBe(constrained > 0 && constrained < os.totalmem() ? constrained : os.totalmem());
    const plan = planMemory(1024 * MiB, 64 * MiB);
    expect(plan).toEqual({ budgetBytes: 1024 * MiB, inflightBytes: 128 * MiB, queueBytes: 128 * MiB, consumerBytes: 128 * MiB, refuseAboveBytes: Math.floor(1024 * MiB * 0.85) });
    // A small budget still lets the largest allowed body in.
    expect(planMemory(256 * MiB, 64 * MiB).inflightBytes).toBe(64 * MiB);
  });
});

