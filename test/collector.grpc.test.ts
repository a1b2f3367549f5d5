/**
 * The OTLP/gRPC receiver through a plain @grpc/grpc-js client, so the test
 * sees the status codes and the google.rpc.Status details an OTLP exporter
 * acts on: auth by `authorization` metadata, INVALID_ARGUMENT with
 * BadRequest, UNAVAILABLE with RetryInfo from a full bus, RESOURCE_EXHAUSTED
 * past the size limit, partial success, gzip message compression.
 */
import net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { heldBytes, MemoryBus } from '../bus/memory.ts';
import { EXPORT_METHOD_PATH } from '../collector/grpc.ts';
import { QueueShares, startCollector, TENANT_HEADER, type CollectorOptions, type RunningCollector } from '../collector/index.ts';
import { decodeTraceResponse, encodeTraceRequest, flattenSpans, type TraceRequest } from '../otlp/codec.ts';
import { decodeStatus, RPC_CODE, type RpcStatus } from '../otlp/status.ts';
import { attemptAttributes, bytes, decodeMessages, mixedRequest, published, span, str, traceIdHex } from './collector.fixtures.ts';

const TOPIC = 'otlp_spans';
const running: RunningCollector[] = [];
const clients: grpc.Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await Promise.all(running.splice(0).map((c) => c.close()));
});

async function collector(options: Partial<CollectorOptions> & { bus: MemoryBus }): Promise<RunningCollector> {
  const { bus, ...rest } = options;
  const c = await startCollector({ publisher: bus.publisher(), port: 0, grpcPort: 0, host: '127.0.0.1', ...rest });
  running.push(c);
  return c;
}

type Outcome = { ok: true; response: ReturnType<typeof decodeTraceResponse> } | { ok: false; code: number; message: string; status?: RpcStatus };

/** One Export call with raw protobuf bytes; the error's google.rpc.Status is unpacked from grpc-status-details-bin. */
function exportCall(c: RunningCollector, body: Uint8Array, options: { token?: string; gzip?: boolean } = {}): Promise<Outcome> {
  const client = new grpc.Client(`127.0.0.1:${c.grpcPort}`, grpc.credentials.createInsecure(), {
    ...(options.gzip && { 'grpc.default_compression_algorithm': grpc.compressionAlgorithms.gzip }),
  });
  clients.push(client);
  const metadata = new grpc.Metadata();
  if (options.token) metadata.set('authorization', `Bearer ${options.token}`);
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      EXPORT_METHOD_PATH,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(body),
      metadata,
      (err, response) => {
        if (!err) return resolve({ ok: true, response: decodeTraceResponse(response!) });
        const details = err.metadata?.get('grpc-status-details-bin')[0];
        resolve({ ok: false, code: err.code, message: err.details, ...(details && { status: decodeStatus(details as Buffer) }) });
      },
    );
  });
}

const oneAttempt = (): TraceRequest => ({
  resourceSpans: [{ resource: { attributes: [str('service.name', 'grpc-agent'), str('fleet.tenant', 'claimed')] }, scopeSpans: [{ spans: [span(1, 1, { attributes: attemptAttributes() }), span(1, 2)] }] }],
});

describe('the OTLP/gRPC receiver', () => {
  it('publishes every span of an export, gzip-compressed or not, keyed by trace', async () => {
    for (const gzip of [false, true]) {
      const bus = new MemoryBus();
      const c = await collector({ bus });
      const outcome = await exportCall(c, encodeTraceRequest(mixedRequest()), { gzip });
      expect(outcome).toEqual({ ok: true, response: {} });
      const messages = await published(bus, TOPIC);
      expect(messages.map((m) => m.key).sort()).toEqual([1, 2, 3].map(traceIdHex).sort());
      expect(decodeMessages(messages).flatMap((r) => [...flattenSpans(r)])).toHaveLength(8);
    }
  });

  it('answers UNAUTHENTICATED without a known token and stamps the token’s tenant with one', async () => {
    const bus = new MemoryBus();
    const c = await collector({ bus, authTokens: { 'secret-a': 'team-a' } });
    for (const token of [undefined, 'wrong']) {
      const outcome = await exportCall(c, encodeTraceRequest(oneAttempt()), token ? { token } : {});
      expect(outcome).toMatchObject({ ok: false, code: grpc.status.UNAUTHENTICATED, status: { code: RPC_CODE.UNAUTHENTICATED } });
    }
    expect(await exportCall(c, encodeTraceRequest(oneAttempt()), { token: 'secret-a' })).toEqual({ ok: true, response: {} });
    const [request] = decodeMessages(await published(bus, TOPIC));
    const tenants = request!.resourceSpans!.flatMap((rs) => rs.resource!.attributes!.filter((a) => a.key === 'fleet.tenant').map((a) => a.value!.stringValue));
    expect(tenants).toEqual(['team-a']);
  });

  it('answers a partial success naming the rejected span, and INVALID_ARGUMENT with BadRequest when nothing is valid', async () => {
    const bus = new MemoryBus();
    const c = await collector({ bus });
    const bad = span(2, 3, { spanId: bytes('00') });
    const mixed: TraceRequest = { resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1), bad] }] }] };
    const partial = await exportCall(c, encodeTraceRequest(mixed));
    expect(partial.ok).toBe(true);
    const { partialSuccess } = (partial as { response: { partialSuccess?: { rejectedSpans?: unknown; errorMessage?: string } } }).response;
    expect(Number(partialSuccess?.rejectedSpans)).toBe(1);
    expect(partialSuccess?.errorMessage).toMatch(/rejected 1 of 2 spans: .*spanId must be 8 bytes/);

    const none = await exportCall(c, encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [bad] }] }] }));
    expect(none).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT });
    expect((none as { status: RpcStatus }).status.fieldViolations?.[0]?.field).toBe('resourceSpans[0].scopeSpans[0].spans[0]');

    const garbage = await exportCall(c, Buffer.from('not a protobuf at all'));
    expect(garbage).toMatchObject({ ok: false, code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/invalid OTLP protobuf/) });
  });

  it('answers UNAVAILABLE with RetryInfo when the bus is full, and accepts again once it drained', async () => {
    const bus = new MemoryBus({ maxBytes: 1, retryAfterSeconds: 3 });
    const c = await collector({ bus });
    expect(await exportCall(c, encodeTraceRequest(oneAttempt()))).toEqual({ ok: true, response: {} });
    const refused = await exportCall(c, encodeTraceRequest(oneAttempt()));
    expect(refused).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE, status: { code: RPC_CODE.UNAVAILABLE, retryDelaySeconds: 3 } });
    const sub = bus.subscriber(TOPIC);
    await sub.commit((await sub.lag()).map((p) => ({ topic: TOPIC, partition: p.partition, offset: String(p.lag) })));
    expect(await exportCall(c, encodeTraceRequest(oneAttempt()))).toEqual({ ok: true, response: {} });
    expect(await c.registry.metrics()).toMatch(/fleet_collector_grpc_requests_total\{code="UNAVAILABLE"\} 1\n/);
  });

  it('answers RESOURCE_EXHAUSTED without RetryInfo (not retryable) for a message past maxBodyBytes, also when it only grows past it decompressed', async () => {
    const bus = new MemoryBus();
    const c = await collector({ bus, maxBodyBytes: 4096, maxInflightBytes: 4096 });
    // Highly compressible: a few hundred bytes gzipped, far over the limit decompressed.
    const big: TraceRequest = { resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1, { attributes: [str('padding', 'x'.repeat(64 * 1024))] })] }] }] };
    for (const gzip of [false, true]) {
      const outcome = await exportCall(c, encodeTraceRequest(big), { gzip });
      expect(outcome).toMatchObject({ ok: false, code: grpc.status.RESOURCE_EXHAUSTED });
      expect((outcome as { status?: RpcStatus }).status?.retryDelaySeconds).toBeUndefined();
    }
    expect(await published(bus, TOPIC)).toEqual([]);
  });

  it('answers RESOURCE_EXHAUSTED with RetryInfo when the in-flight budget (shared with OTLP/HTTP) is full', async () => {
    const bus = new MemoryBus();
    const inner = bus.publisher();
    // A bus that holds the first publish until released: that request keeps its share of the budget meanwhile.
    let release: () => void = () => {};
    const held = new Promise<void>((r) => (release = r));
    let first = true;
    const publisher = {
      isReady: () => inner.isReady(),
      close: () => inner.close(),
      publish: async (...args: Parameters<typeof inner.publish>) => {
        if (first) {
          first = false;
          await held;
        }
        return inner.publish(...args);
      },
    };
    const body = encodeTraceRequest(oneAttempt());
    const c = await startCollector({ publisher, port: 0, grpcPort: 0, host: '127.0.0.1', maxBodyBytes: body.length, maxInflightBytes: body.length, overloadRetryAfterSeconds: 2 });
    running.push(c);
    const pending = exportCall(c, body);
    await new Promise((r) => setTimeout(r, 200));
    const refused = await exportCall(c, body);
    expect(refused).toMatchObject({ ok: false, code: grpc.status.RESOURCE_EXHAUSTED, status: { code: RPC_CODE.RESOURCE_EXHAUSTED, retryDelaySeconds: 2 } });
    release();
    expect(await pending).toEqual({ ok: true, response: {} });
    expect(await exportCall(c, body)).toEqual({ ok: true, response: {} });
  });

  it('answers UNAVAILABLE with RetryInfo while shutting down', async () => {
    const bus = new MemoryBus();
    const c = await collector({ bus });
    const closing = c.close();
    const outcome = await exportCall(c, encodeTraceRequest(oneAttempt()));
    await closing;
    running.splice(0);
    // Either refused by the closing receiver, or the port is already gone: never accepted and lost.
    expect(outcome.ok).toBe(false);
    expect((outcome as { code: number }).code).toBe(grpc.status.UNAVAILABLE);
  });

  it('stopAccepting answers new calls UNAVAILABLE with a 1 s RetryInfo while still listening, and lets the call in flight finish', async () => {
    const bus = new MemoryBus();
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const inner = bus.publisher();
    const publisher = { ...inner, publish: async (...args: Parameters<typeof inner.publish>) => (await held, inner.publish(...args)) };
    const c = await startCollector({ publisher, port: 0, grpcPort: 0, host: '127.0.0.1' });
    running.push(c);
    const pending = exportCall(c, encodeTraceRequest(oneAttempt()));
    await new Promise((r) => setTimeout(r, 200));
    const draining = c.stopAccepting();
    const refused = await exportCall(c, encodeTraceRequest(oneAttempt()));
    expect(refused).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE, status: { code: RPC_CODE.UNAVAILABLE, retryDelaySeconds: 1, message: 'collector is shutting down' } });
    release();
    expect(await pending).toEqual({ ok: true, response: {} });
    await draining;
  });
});

describe('the OTLP/gRPC receiver under the HTTP receiver’s limits', () => {
  it('refuses UNAVAILABLE + RetryInfo under memory pressure, before the message is read', async () => {
    const c = await collector({ bus: new MemoryBus(), refuseAboveRssBytes: 1024, overloadRetryAfterSeconds: 2 });
    const outcome = await exportCall(c, encodeTraceRequest(mixedRequest()));
    expect(outcome).toMatchObject({ ok: false, code: grpc.status.UNAVAILABLE, status: { code: RPC_CODE.UNAVAILABLE, retryDelaySeconds: 2 } });
    expect((outcome as { message: string }).message).toMatch(/^collector near its memory budget/);
  });

  it('holds a tenant to its queue share (RESOURCE_EXHAUSTED + RetryInfo) while the other tenant gets in', async () => {
    const shares = new QueueShares(4000, 2, heldBytes);
    const bus = new MemoryBus({ maxBytes: 4000, meter: shares.meter });
    const c = await collector({ bus, authTokens: { 'tok-a-0123': 'a', 'tok-b-0123': 'b' }, queueShares: shares, overloadRetryAfterSeconds: 3 });
    const small = encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1)] }] }] });
    let accepted = 0;
    let refused: Outcome | undefined;
    for (let i = 0; i < 20 && !refused; i++) {
      const outcome = await exportCall(c, small, { token: 'tok-a-0123' });
      if (outcome.ok) accepted++;
      else refused = outcome;
    }
    expect(accepted).toBeGreaterThan(0);
    expect(refused).toMatchObject({ ok: false, code: grpc.status.RESOURCE_EXHAUSTED, status: { code: RPC_CODE.RESOURCE_EXHAUSTED, retryDelaySeconds: 3 } });
    expect(shares.queuedBytes('a')).toBeLessThanOrEqual(2000);
    expect(await exportCall(c, small, { token: 'tok-b-0123' })).toEqual({ ok: true, response: {} });
    expect((await published(bus, TOPIC)).every((m) => ['a', 'b'].includes(m.headers?.[TENANT_HEADER] ?? ''))).toBe(true);
  });

  it('refuses more spans than maxSpansPerRequest with RESOURCE_EXHAUSTED and no RetryInfo; prepares on a worker thread as inline', async () => {
    const tooMany = await collector({ bus: new MemoryBus(), maxSpansPerRequest: 2 });
    const outcome = await exportCall(tooMany, encodeTraceRequest(mixedRequest()));
    expect(outcome).toMatchObject({ ok: false, code: grpc.status.RESOURCE_EXHAUSTED });
    expect((outcome as { status: RpcStatus }).status.retryDelaySeconds).toBeUndefined();
    const onWorker = new MemoryBus();
    const c = await collector({ bus: onWorker, workerThresholdBytes: 0 });
    expect(await exportCall(c, encodeTraceRequest(mixedRequest()))).toEqual({ ok: true, response: {} });
    expect(decodeMessages(await published(onWorker, TOPIC)).flatMap((r) => [...flattenSpans(r)])).toHaveLength(8);
  });

  it('shares the connection cap with OTLP/HTTP: an idle HTTP connection makes way for a gRPC one past the cap', async () => {
    const c = await collector({ bus: new MemoryBus(), maxConnections: 1 });
    const idle = net.connect(c.port, '127.0.0.1');
    const closed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
    await new Promise<void>((resolve) => idle.once('connect', () => resolve()));
    await new Promise((r) => setTimeout(r, 100));
    expect(await exportCall(c, encodeTraceRequest(oneAttempt()))).toEqual({ ok: true, response: {} });
    await closed; // evicted: it never sent a request
  });
});
