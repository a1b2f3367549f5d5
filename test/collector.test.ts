/**
 * The collector against the in-process queue: what arrives on the topic, and
 * the OTLP/HTTP answer to every kind of request.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { MemoryBus } from '../bus/memory.ts';
import type { Publisher } from '../bus/types.ts';
import { startCollector, type CollectorOptions, type RunningCollector } from '../collector/index.ts';
import { prng } from '../demo/plan.ts';
import { decodeTraceResponse, encodeTraceRequest, flattenSpans, decodeTraceRequest, type TraceRequest } from '../otlp/codec.ts';
import { decodeFrames, encodeFrames, type SpanFrame } from '../otlp/frames.ts';
import { decodeStatus } from '../otlp/status.ts';
import {
  attemptAttributes,
  bytes,
  canonicalSpans,
  collectorStarter,
  corruptSpan,
  decodeMessages,
  fieldRanges,
  gzipZeros,
  int,
  metricValue,
  mixedRequest,
  postTraces,
  published,
  request,
  richSpan,
  span,
  spanIdHex,
  str,
  traceIdHex,
  traceIdsOf,
} from './collector.fixtures.ts';

const TOPIC = 'otlp_spans';
const start = collectorStarter();

/** The request as the collector will see it after protobuf decoding. */
const roundTripped = (r: TraceRequest): TraceRequest => decodeTraceRequest(encodeTraceRequest(r));

describe('accepted requests', () => {
  it('publishes a protobuf body as one message per trace, keyed by trace id, every span intact', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const body = encodeTraceRequest(mixedRequest());
    const res = await postTraces(c.url, body);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/x-protobuf');
    expect(decodeTraceResponse(res.body).partialSuccess).toBeUndefined();

    const messages = await published(bus, TOPIC);
    expect(messages.map((m) => m.key).sort()).toEqual([traceIdHex(1), traceIdHex(2), traceIdHex(3)].sort());
    for (const m of messages) expect(new Set(traceIdsOf(decodeTraceRequest(m.value)))).toEqual(new Set([m.key]));
    expect(canonicalSpans(decodeMessages(messages))).toEqual(canonicalSpans([roundTripped(mixedRequest())]));
  });

  it('publishes a gzip-compressed protobuf body the same way', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const res = await postTraces(c.url, zlib.gzipSync(encodeTraceRequest(mixedRequest())), { 'Content-Encoding': 'gzip' });
    expect(res.status).toBe(200);
    expect(canonicalSpans(decodeMessages(await published(bus, TOPIC)))).toEqual(canonicalSpans([roundTripped(mixedRequest())]));
  });

  it('decodes OTLP/JSON: hex ids, integer enums, int64 as strings or numbers, unknown fields ignored; answers in JSON', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const json = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'json-agent' } }], droppedAttributesCount: 0 },
          schemaUrl: 'https://opentelemetry.io/schemas/1.30.0',
          futureEnvelopeField: { anything: true },
          scopeSpans: [
            {
              scope: { name: 'json-scope', version: '0.1' },
              spans: [
                {
                  traceId: traceIdHex(7).toUpperCase(),
                  spanId: spanIdHex(1),
                  name: 'attempt',
                  kind: 2,
                  startTimeUnixNano: '1760000000123456789',
                  endTimeUnixNano: 1760000000999000000,
                  attributes: [
                    { key: 'fleet.spec.id', value: { stringValue: 'spec-9' } },
                    { key: 'fleet.spec.tier', value: { stringValue: 'tier-3' } },
                    { key: 'fleet.attempt.number', value: { intValue: '3' } },
                    { key: 'fleet.attempt.outcome', value: { stringValue: 'fail' } },
                  ],
                  status: { code: 2, message: 'boom' },
                  unknownSpanField: 42,
                },
                {
                  traceId: traceIdHex(7),
                  spanId: spanIdHex(2),
                  parentSpanId: spanIdHex(1),
                  name: 'chat',
                  kind: 'SPAN_KIND_CLIENT',
                  startTimeUnixNano: 1760000000200000000,
                  endTimeUnixNano: '1760000000300000001',
                  attributes: [{ key: 'gen_ai.usage.input_tokens', value: { intValue: 1200 } }],
                },
              ],
            },
          ],
        },
      ],
    };
    const res = await postTraces(c.url, JSON.stringify(json), { 'Content-Type': 'application/json; charset=utf-8' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    expect(JSON.parse(res.body.toString())).toEqual({});

    const messages = await published(bus, TOPIC);
    expect(messages.map((m) => m.key)).toEqual([traceIdHex(7)]);
    const spans = [...flattenSpans(decodeTraceRequest(messages[0]!.value))];
    expect(spans).toEqual([
      {
        traceId: traceIdHex(7),
        spanId: spanIdHex(1),
        parentSpanId: '',
        traceState: '',
        name: 'attempt',
        kind: 2,
        startTimeUnixNano: 1760000000123456789n,
        endTimeUnixNano: 1760000000999000000n,
        attributes: { 'fleet.spec.id': 'spec-9', 'fleet.spec.tier': 'tier-3', 'fleet.attempt.number': 3, 'fleet.attempt.outcome': 'fail' },
        resource: { 'service.name': 'json-agent' },
        scope: { name: 'json-scope', version: '0.1' },
        status: { code: 2, message: 'boom' },
        events: [],
      },
      {
        traceId: traceIdHex(7),
        spanId: spanIdHex(2),
        parentSpanId: spanIdHex(1),
        traceState: '',
        name: 'chat',
        kind: 3,
        startTimeUnixNano: 1760000000200000000n,
        endTimeUnixNano: 1760000000300000001n,
        attributes: { 'gen_ai.usage.input_tokens': 1200 },
        resource: { 'service.name': 'json-agent' },
        scope: { name: 'json-scope', version: '0.1' },
        status: { code: 0, message: '' },
        events: [],
      },
    ]);
    expect(decodeTraceRequest(messages[0]!.value).resourceSpans![0]!.schemaUrl).toBe('https://opentelemetry.io/schemas/1.30.0');
  });

  it('sends the spans of one trace to the same partition across requests', async () => {
    const bus = new MemoryBus({ partitions: 8 });
    const c = await start(bus);
    for (let i = 0; i < 5; i++) {
      const res = await postTraces(
        c.url,
        encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(42, i * 3 + 1), span(100 + i, i * 3 + 2)] }] }] }),
      );
      expect(res.status).toBe(200);
    }
    const messages = await published(bus, TOPIC);
    const trace42 = messages.filter((m) => m.key === traceIdHex(42));
    expect(trace42).toHaveLength(5);
    expect(new Set(trace42.map((m) => m.partition)).size).toBe(1);
    // The other traces spread out: partitioning is by key, not one partition for everything.
    expect(new Set(messages.map((m) => m.partition)).size).toBeGreaterThan(1);
  });

  it('answers an empty request with success and publishes nothing', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    expect((await postTraces(c.url, new Uint8Array())).status).toBe(200);
    expect((await postTraces(c.url, '{}', { 'Content-Type': 'application/json' })).status).toBe(200);
    expect(await published(bus, TOPIC)).toEqual([]);
  });

  it('publishes to the configured topic', async () => {
    const bus = new MemoryBus();
    const c = await start(bus, { topic: 'tenant-a.spans' });
    expect((await postTraces(c.url, encodeTraceRequest(mixedRequest()))).status).toBe(200);
    expect(await published(bus, 'tenant-a.spans')).toHaveLength(3);
    expect(await published(bus, TOPIC)).toHaveLength(0);
  });
});

describe('partial success', () => {
  /** One valid span of trace 1, then one span per way of being invalid. */
  function halfValid(): { request: TraceRequest; valid: string[]; invalid: string[] } {
    const spans = [
      span(1, 1, { name: 'valid-plain' }),
      span(1, 2, { name: 'valid-attempt', attributes: attemptAttributes(2) }),
      span(2, 3, { name: 'short-trace-id', traceId: bytes('0102') }),
      span(2, 4, { name: 'zero-trace-id', traceId: new Uint8Array(16) }),
      span(2, 5, { name: 'zero-span-id', spanId: new Uint8Array(8) }),
      span(2, 6, { name: 'long-parent', parentSpanId: bytes('000102030405060708') }),
      span(2, 7, { name: 'ends-before-start', startTimeUnixNano: '1760000000000000010', endTimeUnixNano: '1760000000000000009' }),
      span(3, 8, { name: 'no-tier', attributes: [str('fleet.spec.id', 's'), int('fleet.attempt.number', 1)] }),
      span(3, 9, { name: 'attempt-zero', attributes: [str('fleet.spec.id', 's'), str('fleet.spec.tier', 't'), int('fleet.attempt.number', 0)] }),
      span(3, 10, { name: 'attempt-two', attributes: [str('fleet.spec.id', 's'), str('fleet.spec.tier', 't'), str('fleet.attempt.number', 'two')] }),
      span(3, 11, { name: 'outcome-passed', attributes: [...attemptAttributes().slice(0, 3), str('fleet.attempt.outcome', 'passed')] }),
      span(4, 12, { name: 'valid-other-trace', endTimeUnixNano: '0' }),
    ];
    return {
      request: { resourceSpans: [{ resource: { attributes: [str('service.name', 'half')] }, scopeSpans: [{ scope: { name: 'sc' }, spans }] }] },
      valid: ['valid-plain', 'valid-attempt', 'valid-other-trace'],
      invalid: spans.map((s) => s.name!).filter((n) => !n.startsWith('valid')),
    };
  }

  it('rejects the invalid spans, says which and why, and publishes the valid ones intact (protobuf)', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const { request: req, valid, invalid } = halfValid();
    const res = await postTraces(c.url, encodeTraceRequest(req));
    expect(res.status).toBe(200);
    const partial = decodeTraceResponse(res.body).partialSuccess!;
    expect(Number(partial.rejectedSpans)).toBe(invalid.length);
    const message = partial.errorMessage!;
    expect(message).toContain(`rejected ${invalid.length} of ${valid.length + invalid.length} spans`);
    expect(message).toContain('"short-trace-id"');
    expect(message).toContain('traceId must be 16 bytes, got 2');
    expect(message).toContain(`span ${spanIdHex(4)} "zero-trace-id"`);
    expect(message).toContain('traceId must not be all zeros');
    expect(message).toContain('spanId must not be all zeros');
    expect(message).toContain('parentSpanId must be 8 bytes or empty, got 9');
    expect(message).toContain('endTimeUnixNano 1760000000000000009 is before startTimeUnixNano 1760000000000000010');
    expect(message).toMatch(/"no-tier" of trace [0-9a-f]{32}: fleet\.spec\.tier is required/);
    expect(message).toMatch(/"attempt-zero".*fleet\.attempt\.number must be ≥ 1, got 0/);
    expect(message).toMatch(/"attempt-two".*fleet\.attempt\.number .*got "two"/);
    expect(message).toMatch(/"outcome-passed".*fleet\.attempt\.outcome must be one of pass, fail, error, timeout, cancelled, got "passed"/);
    for (const name of valid) expect(message).not.toContain(`"${name}"`);

    const messages = await published(bus, TOPIC);
    expect(messages.map((m) => m.key).sort()).toEqual([traceIdHex(1), traceIdHex(4)].sort());
    const expected = roundTripped(req);
    expected.resourceSpans![0]!.scopeSpans![0]!.spans = expected.resourceSpans![0]!.scopeSpans![0]!.spans!.filter((s) => valid.includes(s.name!));
    expect(canonicalSpans(decodeMessages(messages))).toEqual(canonicalSpans([expected]));
  });

  it('400 with a field violation per span when no span is valid', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const req = {
      resourceSpans: [
        { scopeSpans: [{ spans: [span(1, 1, { name: 'a', spanId: new Uint8Array(8) })] }, { spans: [span(1, 2, { name: 'b', traceId: bytes('ff') })] }] },
      ],
    };
    const res = await postTraces(c.url, encodeTraceRequest(req));
    expect(res.status).toBe(400);
    const status = decodeStatus(res.body);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/^rejected 2 of 2 spans: span 0{16} "a" of trace [0-9a-f]{32}: spanId must not be all zeros \| span [0-9a-f]{16} "b" of trace ff: traceId must be 16 bytes, got 1$/);
    expect(status.fieldViolations!.map((v) => v.field)).toEqual(['resourceSpans[0].scopeSpans[0].spans[0]', 'resourceSpans[0].scopeSpans[1].spans[0]']);
    expect(await published(bus, TOPIC)).toEqual([]);
  });

  it('answers partial success in JSON for a JSON request', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const json = {
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                { traceId: traceIdHex(1), spanId: spanIdHex(1), name: 'ok', startTimeUnixNano: '1', endTimeUnixNano: '2' },
                { traceId: traceIdHex(1), spanId: '', name: 'no-span-id' },
              ],
            },
          ],
        },
      ],
    };
    const res = await postTraces(c.url, JSON.stringify(json), { 'Content-Type': 'application/json' });
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toBe('application/json');
    const body = JSON.parse(res.body.toString());
    expect(body.partialSuccess.rejectedSpans).toBe('1');
    expect(body.partialSuccess.errorMessage).toContain('"no-span-id"');
    expect(body.partialSuccess.errorMessage).toContain('spanId is required (8 bytes)');
    expect((await published(bus, TOPIC)).map((m) => m.key)).toEqual([traceIdHex(1)]);
  });
});

describe('malformed and oversize spans', () => {
  /** The request's body with the encodings of some spans (by position in the request) replaced; its envelopes stay valid. */
  function withSpanBytes(request: TraceRequest, replace: Map<number, Buffer>): Uint8Array {
    const frames = decodeFrames(encodeTraceRequest(request));
    let n = 0;
    const swap = (f: SpanFrame): SpanFrame => {
      const bytes = replace.get(n++);
      return bytes ? { ...f, bytes } : f;
    };
    for (const rs of frames.resourceSpans) for (const ss of rs.scopeSpans) ss.spans = ss.spans.map(swap);
    return encodeFrames(frames);
  }
  const framesOf = (r: TraceRequest) => decodeFrames(encodeTraceRequest(r)).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans));
  /** The spans of published messages as their encodings (the collector forwards them verbatim). */
  const publishedSpanBytes = async (bus: MemoryBus) =>
    (await published(bus, TOPIC)).flatMap((m) => decodeFrames(m.value).resourceSpans.flatMap((rs) => rs.scopeSpans.flatMap((ss) => ss.spans.map((f) => f.bytes.toString('hex')))));

  it('rejects a span whose attribute runs past its end (partial success naming it and where) and publishes the others, all decodable', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const request = { resourceSpans: [{ scopeSpans: [{ spans: [richSpan(1, 1), richSpan(1, 2), richSpan(2, 3)] }] }] };
    const [, second] = framesOf(request);
    // The second span's last attribute (the bytes value) claims 60 bytes more than it holds; the span's own framing is intact.
    const [, end] = fieldRanges(second!.bytes, [9]).at(-1)!;
    const bad = Buffer.concat([second!.bytes.subarray(0, end), Buffer.from([(9 << 3) | 2, 4, 0x0a, 60, 0x61, 0x62]), second!.bytes.subarray(end)]);
    const res = await postTraces(c.url, withSpanBytes(request, new Map([[1, bad]])));
    expect(res.status).toBe(200);
    const partial = decodeTraceResponse(res.body).partialSuccess!;
    expect(Number(partial.rejectedSpans)).toBe(1);
    expect(partial.errorMessage).toBe(
      `rejected 1 of 3 spans: span ${spanIdHex(2)} "span-1-2" of trace ${traceIdHex(1)}: malformed protobuf at attributes[5].key: length 60 runs past the end of its message (2 bytes left)`,
    );
    const messages = await published(bus, TOPIC);
    const spans = decodeMessages(messages).flatMap((r) => [...flattenSpans(r)].map((x) => x.name));
    expect(spans.sort()).toEqual(['span-1-1', 'span-2-3']);
  });

  it('an LLM span reusing its attempt’s span id rejects both through partial success (the attempt is never priced without its call); an identical copy passes', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const attempt = span(1, 1, { name: 'attempt', parentSpanId: new Uint8Array(), attributes: attemptAttributes() });
    const llm = span(1, 1, { name: 'chat', parentSpanId: new Uint8Array(), attributes: [str('gen_ai.request.model', 'deepseek-v4-flash'), int('gen_ai.usage.input_tokens', 10)] });
    const other = span(2, 5);
    const res = await postTraces(c.url, Buffer.from(encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [attempt, other, llm, other] }] }] })));
    expect(res.status).toBe(200);
    const partial = decodeTraceResponse(res.body).partialSuccess!;
    expect(Number(partial.rejectedSpans)).toBe(2);
    expect(partial.errorMessage).toContain(`span ${spanIdHex(1)} "attempt" of trace ${traceIdHex(1)}: another span of the request (resourceSpans[0].scopeSpans[0].spans[2]) has the same span id`);
    expect(partial.errorMessage).toContain(`span ${spanIdHex(1)} "chat" of trace ${traceIdHex(1)}: another span of the request (resourceSpans[0].scopeSpans[0].spans[0]) has the same span id`);
    // Only the other trace's span (sent twice, identical) is published.
    const names = decodeMessages(await published(bus, TOPIC)).flatMap((r) => [...flattenSpans(r)].map((x) => x.name));
    expect(names).toEqual([other.name, other.name]);
  });

  it('spans with different ids are all kept, also where the validator\'s map of ids files them together (same first 52 bits of the span id)', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const id = (last: number) => Uint8Array.from([1, 2, 3, 4, 5, 6, 0x07 | (last & 0xf0), last]);
    // differing only in bits past the first 52 of the span id, or only in the trace id
    const spans = [span(1, 1, { spanId: id(0x11), name: 'a' }), span(1, 1, { spanId: id(0x92), name: 'b' }), span(1, 1, { spanId: id(0xf3), name: 'c' }), span(2, 1, { spanId: id(0x11), name: 'd' })];
    const res = await postTraces(c.url, Buffer.from(encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans }] }] })));
    expect(res.status).toBe(200);
    expect(decodeTraceResponse(res.body).partialSuccess?.rejectedSpans ?? 0).toEqual(0);
    const names = decodeMessages(await published(bus, TOPIC)).flatMap((r) => [...flattenSpans(r)].map((x) => x.name));
    expect(names.sort()).toEqual(['a', 'b', 'c', 'd']);
  });

  it('with auth on, a malformed resource rejects its spans with 400, or with partial success beside a valid resource, never 500', async () => {
    const bus = new MemoryBus();
    const c = await start(bus, { authTokens: { 'token-acme-123': 'acme' } });
    const auth = { Authorization: 'Bearer token-acme-123' };
    const frames = decodeFrames(encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1)] }] }, { scopeSpans: [{ spans: [span(2, 2)] }] }] }));
    // An attribute (field 1) claiming 50 bytes where one follows.
    const badResource = Buffer.from([0x0a, 50, 1]);
    const onlyBad = encodeFrames({ resourceSpans: [{ ...frames.resourceSpans[0]!, resource: badResource }] });
    const refused = await postTraces(c.url, onlyBad, auth);
    expect(refused.status).toBe(400);
    expect(decodeStatus(refused.body)).toMatchObject({
      code: 3,
      message: 'rejected 1 of 1 spans: resourceSpans[0].resource: malformed protobuf at attributes[0]: length 50 runs past the end of its message (1 bytes left) (its 1 span is rejected)',
      fieldViolations: [{ field: 'resourceSpans[0].resource' }],
    });

    const half = encodeFrames({ resourceSpans: [{ ...frames.resourceSpans[0]!, resource: badResource }, frames.resourceSpans[1]!] });
    const res = await postTraces(c.url, half, auth);
    expect(res.status).toBe(200);
    expect(Number(decodeTraceResponse(res.body).partialSuccess!.rejectedSpans)).toBe(1);
    const spans = decodeMessages(await published(bus, TOPIC)).flatMap((r) => [...flattenSpans(r)]);
    expect(spans.map((x) => [x.traceId, x.resource['fleet.tenant']])).toEqual([[traceIdHex(2), 'acme']]);
  });

  it('publishes only what decodes fully, and every valid span of a half-bad request, over many random corruptions', async () => {
    const bus = new MemoryBus({ partitions: 4 });
    const c = await start(bus);
    const next = prng(4318);
    const valid = new Set<string>();
    const undecodable = new Set<string>();
    let sent = 0;
    for (let trial = 0; trial < 120; trial++) {
      // Unique names make every span's encoding unique across trials.
      const spans = Array.from({ length: 6 }, (_, k) => ({ ...richSpan(1 + (k % 2), k + 1), name: `t${trial}-${k}` }));
      const request = { resourceSpans: [{ resource: { attributes: [str('service.name', 'fuzz')] }, scopeSpans: [{ scope: { name: 'fuzz' }, spans }] }] };
      const frames = framesOf(request);
      const replace = new Map<number, Buffer>();
      for (let n = 1 + Math.floor(next() * 3); n > 0; n--) {
        const k = Math.floor(next() * spans.length);
        replace.set(k, corruptSpan(replace.get(k) ?? frames[k]!.bytes, next).bytes);
      }
      for (const [k, f] of frames.entries()) {
        const bytes = replace.get(k) ?? f.bytes;
        const body = encodeFrames({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...f, bytes }] }] }] });
        let decodable = true;
        try {
          decodeTraceRequest(body);
        } catch {
          decodable = false;
        }
        if (!replace.has(k)) valid.add(bytes.toString('hex'));
        else if (!decodable) undecodable.add(bytes.toString('hex'));
      }
      const res = await postTraces(c.url, withSpanBytes(request, replace));
      // At most three of six corrupted: the rest is accepted.
      expect(res.status, `trial ${trial}`).toBe(200);
      const rejected = Number(decodeTraceResponse(res.body).partialSuccess?.rejectedSpans ?? 0);
      // At least the corrupted ones that no longer decode are rejected; never a valid one.
      expect(rejected, `trial ${trial}`).toBeLessThanOrEqual(replace.size);
      sent += 6 - rejected;
    }
    const messages = await published(bus, TOPIC);
    // Everything published decodes with the consumers' full decoder: nothing will be dead-lettered.
    for (const m of messages) expect(() => decodeTraceRequest(m.value)).not.toThrow();
    const out = await publishedSpanBytes(bus);
    expect(out).toHaveLength(sent);
    const outSet = new Set(out);
    for (const v of valid) expect(outSet.has(v)).toBe(true);
    for (const u of undecodable) expect(outSet.has(u)).toBe(false);
    expect(undecodable.size).toBeGreaterThan(20);
  });

  it('rejects OTLP/JSON spans with bad values (64-bit integers, ids) with partial success naming the JSON path, publishing the rest exactly', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const good = { traceId: traceIdHex(1), spanId: spanIdHex(1), name: 'ok', startTimeUnixNano: '1760000000000000001', endTimeUnixNano: 1760000000999000000, attributes: [{ key: 'gen_ai.usage.input_tokens', value: { intValue: '1200' } }] };
    const json = {
      resourceSpans: [
        {
          scopeSpans: [
            {
              spans: [
                good,
                { ...good, spanId: spanIdHex(2), name: 'tokens-abc', attributes: [{ key: 'gen_ai.usage.input_tokens', value: { intValue: 'abc' } }] },
                { ...good, spanId: spanIdHex(3), name: 'start-12x', startTimeUnixNano: '12x' },
                { ...good, spanId: 'not-hex', name: 'bad-id' },
                { ...good, spanId: spanIdHex(5), name: 'event-time', events: [{ name: 'e', timeUnixNano: 'soon' }] },
              ],
            },
          ],
        },
        { resource: { attributes: [{ key: 'n', value: { intValue: '1e3' } }] }, scopeSpans: [{ spans: [{ ...good, spanId: spanIdHex(6), name: 'bad-resource' }] }] },
      ],
    };
    const res = await postTraces(c.url, JSON.stringify(json), { 'Content-Type': 'application/json' });
    expect(res.status).toBe(200);
    const { partialSuccess } = JSON.parse(res.body.toString());
    expect(partialSuccess.rejectedSpans).toBe('5');
    expect(partialSuccess.errorMessage.split(' | ')).toEqual([
      `rejected 5 of 6 spans: span ${spanIdHex(2)} "tokens-abc" of trace ${traceIdHex(1)}: attributes[0].value.intValue must be an integer (a JSON number or decimal string), got "abc"`,
      `span ${spanIdHex(3)} "start-12x" of trace ${traceIdHex(1)}: startTimeUnixNano must be an unsigned integer (a JSON number or decimal string), got "12x"`,
      `span (no id) "bad-id" of trace ${traceIdHex(1)}: spanId must be a hex string, got "not-hex"`,
      `span ${spanIdHex(5)} "event-time" of trace ${traceIdHex(1)}: events[0].timeUnixNano must be an unsigned integer (a JSON number or decimal string), got "soon"`,
      'resourceSpans[1].resource: attributes[0].value.intValue must be an integer (a JSON number or decimal string), got "1e3" (its 1 span is rejected)',
    ]);
    const spans = decodeMessages(await published(bus, TOPIC)).flatMap((r) => [...flattenSpans(r)]);
    expect(spans.map((x) => [x.name, x.startTimeUnixNano, x.endTimeUnixNano, x.attributes])).toEqual([
      ['ok', 1760000000000000001n, 1760000000999000000n, { 'gen_ai.usage.input_tokens': 1200 }],
    ]);
  });

  it('splits a trace larger than maxMessageBytes into several messages on one partition, and rejects a span too large for any', async () => {
    const bus = new MemoryBus({ partitions: 8 });
    const limit = 8192;
    const c = await start(bus, { maxMessageBytes: limit });
    const spans = [...Array.from({ length: 60 }, (_, i) => richSpan(1, i + 1)), span(2, 100), span(1, 200, { name: 'huge', attributes: [str('blob', 'b'.repeat(limit))] })];
    const request = { resourceSpans: [{ resource: { attributes: [str('service.name', 'big')] }, scopeSpans: [{ scope: { name: 's' }, spans }] }] };
    const res = await postTraces(c.url, encodeTraceRequest(request));
    expect(res.status).toBe(200);
    const partial = decodeTraceResponse(res.body).partialSuccess!;
    expect(Number(partial.rejectedSpans)).toBe(1);
    expect(partial.errorMessage).toMatch(new RegExp(`"huge" of trace ${traceIdHex(1)}: with its resource and scope it takes \\d+ bytes, more than the ${limit} bytes of a bus message`));

    const messages = await published(bus, TOPIC);
    const ofTrace1 = messages.filter((m) => m.key === traceIdHex(1));
    expect(ofTrace1.length).toBeGreaterThan(2);
    expect(new Set(ofTrace1.map((m) => m.partition)).size).toBe(1);
    for (const m of messages) expect(m.value.length).toBeLessThanOrEqual(limit);
    const expected = roundTripped(request);
    expected.resourceSpans![0]!.scopeSpans![0]!.spans = expected.resourceSpans![0]!.scopeSpans![0]!.spans!.filter((x) => x.name !== 'huge');
    expect(canonicalSpans(decodeMessages(messages))).toEqual(canonicalSpans([expected]));
    const metrics = await c.registry.metrics();
    expect(metricValue(metrics, 'fleet_collector_messages_published_total')).toBe(messages.length);
  });
});

describe('refused requests', () => {
  /** Status code, content type and decoded google.rpc.Status of a protobuf error answer. */
  const statusOf = (res: { status: number; headers: http.IncomingHttpHeaders; body: Buffer }) => {
    expect(res.headers['content-type']).toBe('application/x-protobuf');
    return decodeStatus(res.body);
  };

  it('400 for a body that is not an OTLP protobuf, with a BadRequest detail', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    // Field 1 (resource_spans), length-delimited, claiming far more bytes than follow.
    const res = await postTraces(c.url, Buffer.from([0x0a, 0xff, 0xff, 0xff, 0x0f, 0x01, 0x02]));
    expect(res.status).toBe(400);
    const status = statusOf(res);
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/^invalid OTLP protobuf ExportTraceServiceRequest: /);
    expect(status.fieldViolations).toEqual([{ field: 'body', description: status.message }]);
    expect(await published(bus, TOPIC)).toEqual([]);
  });

  it('400 in JSON for malformed JSON and for JSON that is not an export request', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const json = { 'Content-Type': 'application/json' };
    const broken = await postTraces(c.url, '{"resourceSpans": [', json);
    expect(broken.status).toBe(400);
    expect(broken.headers['content-type']).toBe('application/json');
    const status = JSON.parse(broken.body.toString());
    expect(status.code).toBe(3);
    expect(status.message).toMatch(/^invalid JSON: /);
    expect(status.details).toEqual([{ '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: [{ field: 'body', description: status.message }] }]);

    // A bad id rejects its span; with no other span that leaves nothing to accept.
    const badId = await postTraces(c.url, JSON.stringify({ resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: 'xyz', spanId: spanIdHex(1) }] }] }] }), json);
    expect(badId.status).toBe(400);
    expect(JSON.parse(badId.body.toString()).message).toBe(`rejected 1 of 1 spans: span ${spanIdHex(1)} "" of trace (no id): traceId must be a hex string, got "xyz"`);

    const notObject = await postTraces(c.url, '[1,2]', json);
    expect(notObject.status).toBe(400);
    expect(await published(bus, TOPIC)).toEqual([]);
  });

  it('400 for a truncated gzip body', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const gz = zlib.gzipSync(encodeTraceRequest(mixedRequest()));
    const res = await postTraces(c.url, gz.subarray(0, gz.length - 10), { 'Content-Encoding': 'gzip' });
    expect(res.status).toBe(400);
    expect(statusOf(res).message).toBe('invalid gzip body: unexpected end of file');
    const garbage = await postTraces(c.url, Buffer.from('not gzip at all'), { 'Content-Encoding': 'gzip' });
    expect(garbage.status).toBe(400);
    expect(statusOf(garbage).message).toMatch(/^invalid gzip body: /);
    expect(await published(bus, TOPIC)).toEqual([]);
  });

  it('413 for a gzip bomb: 1 GiB of zeros is refused after decompressing no more than the cap', async () => {
    const bus = new MemoryBus();
    const cap = 4 * 1024 * 1024;
    const c = await start(bus, { maxBodyBytes: cap, maxInflightBytes: cap });
    const bomb = gzipZeros(1024 * 1024 * 1024);
    expect(zlib.gunzipSync(bomb.subarray(0, bomb.length / 64)).length).toBe(16 * 1024 * 1024);
    expect(bomb.length).toBeLessThan(cap);
    const started = performance.now();
    const res = await postTraces(c.url, bomb, { 'Content-Encoding': 'gzip' });
    const ms = performance.now() - started;
    expect(res.status).toBe(413);
    expect(statusOf(res)).toEqual({ code: 8, message: `decompressed request body exceeds the limit of ${cap} bytes` });
    // Inflating the whole GiB takes seconds; stopping at the cap takes milliseconds.
    expect(ms).toBeLessThan(1000);
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(metricValue(metrics, 'fleet_collector_requests_total{code="413"}')).toBe(1);
    expect(metricValue(metrics, 'fleet_collector_inflight_bytes')).toBe(0);
  });

  it('413 above the body cap, by Content-Length and for a chunked body without one', async () => {
    const bus = new MemoryBus();
    const c = await start(bus, { maxBodyBytes: 1024, maxInflightBytes: 4096 });
    const big = Buffer.alloc(2048, 1);
    const declared = await postTraces(c.url, big);
    expect(declared.status).toBe(413);
    expect(statusOf(declared).message).toBe('request body of 2048 bytes exceeds the limit of 1024 bytes');

    const chunked = await new Promise<{ status: number; body: Buffer; headers: http.IncomingHttpHeaders }>((resolve, reject) => {
      const req = http.request(`${c.url}/v1/traces`, { method: 'POST', headers: { 'Content-Type': 'application/x-protobuf' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks), headers: res.headers }));
      });
      req.on('error', reject);
      for (let i = 0; i < 4; i++) req.write(Buffer.alloc(512, 1));
      req.end();
    });
    expect(chunked.status).toBe(413);
    expect(statusOf(chunked).message).toBe('request body exceeds the limit of 1024 bytes');
    // Nothing is left over from the refused bodies: the next request (likely on a reused connection) goes through.
    const small = encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1, { attributes: [], events: [], links: [] })] }] }] });
    expect(small.length).toBeLessThan(1024);
    expect((await postTraces(c.url, small)).status).toBe(200);
    expect((await published(bus, TOPIC)).map((m) => m.key)).toEqual([traceIdHex(1)]);
  });

  it('with Expect: 100-continue, refuses an oversize body before it is sent and accepts a fitting one', async () => {
    const bus = new MemoryBus();
    const c = await start(bus, { maxBodyBytes: 4096, maxInflightBytes: 4096 });
    /** Sends headers first and the body only on 100 Continue, as curl does. */
    const expectContinue = (body: Buffer) =>
      new Promise<{ status: number; bodySent: boolean }>((resolve, reject) => {
        let bodySent = false;
        const req = http.request(`${c.url}/v1/traces`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/x-protobuf', 'Content-Length': body.length, Expect: '100-continue' },
        });
        req.on('continue', () => {
          bodySent = true;
          req.end(body);
        });
        req.on('response', (r) => {
          r.resume();
          r.on('end', () => resolve({ status: r.statusCode!, bodySent }));
        });
        req.on('error', reject);
      });
    expect(await expectContinue(Buffer.alloc(1 << 20))).toEqual({ status: 413, bodySent: false });
    const small = Buffer.from(encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1)] }] }] }));
    expect(await expectContinue(small)).toEqual({ status: 200, bodySent: true });
    expect((await published(bus, TOPIC)).map((m) => m.key)).toEqual([traceIdHex(1)]);
  });

  it('415 for other content types and content encodings', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const text = await postTraces(c.url, 'hello', { 'Content-Type': 'text/plain' });
    expect(text.status).toBe(415);
    expect(statusOf(text).message).toBe('unsupported Content-Type "text/plain": use application/x-protobuf or application/json');
    const none = await request(c.url, { path: '/v1/traces', body: 'x' });
    expect(none.status).toBe(415);
    const br = await postTraces(c.url, encodeTraceRequest(mixedRequest()), { 'Content-Encoding': 'br' });
    expect(br.status).toBe(415);
    expect(statusOf(br).message).toMatch(/^unsupported Content-Encoding "br": use one of identity, gzip, .*zstd/);
    expect(await published(bus, TOPIC)).toEqual([]);
  });

  it('405 for other methods on /v1/traces, 404 elsewhere', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const get = await request(c.url, { method: 'GET', path: '/v1/traces' });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect((await request(c.url, { method: 'POST', path: '/v1/metrics', body: 'x' })).status).toBe(405);
    expect((await request(c.url, { method: 'GET', path: '/v1/logs' })).status).toBe(404);
  });
});

describe('bearer-token auth', () => {
  const tokens = { 'token-acme-123': 'acme', 'token-globex-456': 'globex' };
  const withTenant = (tenant?: string): TraceRequest => ({
    resourceSpans: [
      {
        resource: { attributes: [str('service.name', 'a'), ...(tenant ? [str('fleet.tenant', tenant)] : [])] },
        scopeSpans: [{ spans: [span(1, 1)] }],
      },
      { scopeSpans: [{ spans: [span(2, 2)] }] },
    ],
  });
  const tenantsOf = async (bus: MemoryBus) =>
    decodeMessages(await published(bus, TOPIC))
      .flatMap((r) => [...flattenSpans(r)])
      .map((s) => s.resource['fleet.tenant']);

  it('401 without a token or with a wrong one, publishing nothing', async () => {
    const bus = new MemoryBus();
    const c = await start(bus, { authTokens: tokens });
    const body = encodeTraceRequest(withTenant());
    for (const authorization of [undefined, 'Bearer nope', 'Bearer token-acme-12', 'Bearer token-acme-1234', 'Basic dG9rZW4tYWNtZS0xMjM=', 'token-acme-123']) {
      const res = await postTraces(c.url, body, authorization ? { Authorization: authorization } : {});
      expect(res.status, authorization).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(decodeStatus(res.body)).toEqual({ code: 16, message: 'missing or unknown bearer token' });
    }
    const json = await postTraces(c.url, '{}', { 'Content-Type': 'application/json' });
    expect(json.status).toBe(401);
    expect(JSON.parse(json.body.toString())).toEqual({ code: 16, message: 'missing or unknown bearer token' });
    expect(await published(bus, TOPIC)).toEqual([]);
  });

  it("stamps the token's tenant on every resource, overwriting the tenant a client claims", async () => {
    const bus = new MemoryBus();
    const c = await start(bus, { authTokens: tokens });
    const res = await postTraces(c.url, encodeTraceRequest(withTenant('globex')), { Authorization: 'Bearer token-acme-123' });
    expect(res.status).toBe(200);
    expect(await tenantsOf(bus)).toEqual(['acme', 'acme']);
    const other = await postTraces(c.url, encodeTraceRequest(withTenant()), { Authorization: 'bearer token-globex-456' });
    expect(other.status).toBe(200);
    expect((await tenantsOf(bus)).sort()).toEqual(['acme', 'acme', 'globex', 'globex']);
  });

  it('without auth keeps a client-supplied tenant and leaves a missing one missing', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    expect((await postTraces(c.url, encodeTraceRequest(withTenant('initech')))).status).toBe(200);
    expect(await tenantsOf(bus)).toEqual(['initech', undefined]);
  });
});

describe('backpressure', () => {
  it('503 + Retry-After when the in-process queue is full, publishing nothing of the refused request', async () => {
    const bus = new MemoryBus({ maxBytes: 1, retryAfterSeconds: 3 });
    const c = await start(bus);
    // The first request is taken whole (the queue refuses only when it already holds bytes).
    expect((await postTraces(c.url, encodeTraceRequest(mixedRequest()))).status).toBe(200);
    const before = await published(bus, TOPIC);
    expect(before).toHaveLength(3);

    const refused = await postTraces(c.url, encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(10, 1), span(11, 2), span(12, 3)] }] }] }));
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe('3');
    const status = decodeStatus(refused.body);
    expect(status.code).toBe(14);
    expect(status.message).toMatch(/^downstream unavailable: in-process queue full/);
    expect(status.retryDelaySeconds).toBe(3);
    // Not one of the three traces of the refused request was published.
    expect((await published(bus, TOPIC)).map((m) => m.key)).toEqual(before.map((m) => m.key));

    // Once the consumers catch up, the retried request goes through.
    const sub = bus.subscriber(TOPIC);
    await sub.commit((await sub.lag()).map((p) => ({ topic: TOPIC, partition: p.partition, offset: String(p.lag) })));
    const retried = await postTraces(c.url, encodeTraceRequest({ resourceSpans: [{ scopeSpans: [{ spans: [span(10, 1), span(11, 2), span(12, 3)] }] }] }));
    expect(retried.status).toBe(200);
    expect((await published(bus, TOPIC)).map((m) => m.key).sort()).toEqual([traceIdHex(10), traceIdHex(11), traceIdHex(12)].sort());

    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(metricValue(metrics, 'fleet_collector_spans_rejected_total{reason="unavailable"}')).toBe(3);
    expect(metricValue(metrics, 'fleet_collector_requests_total{code="503"}')).toBe(1);
  });

  it('429 + Retry-After when the in-flight budget is taken by requests still being received', async () => {
    const bus = new MemoryBus();
    const c = await start(bus, { maxBodyBytes: 64 * 1024, maxInflightBytes: 64 * 1024, overloadRetryAfterSeconds: 2 });
    const body = Buffer.from(encodeTraceRequest(mixedRequest()));
    // A slow client: sends a body that takes nearly the whole budget but its last byte, then stalls.
    // Only bytes received count: the declared length alone would reserve nothing.
    const slowLength = 64 * 1024 - 100;
    const slowBody = Buffer.concat([body, paddingField(slowLength - body.length)]);
    const slow = http.request(`${c.url}/v1/traces`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-protobuf', 'Content-Length': slowLength },
    });
    const slowAnswer = new Promise<number>((resolve, reject) => {
      slow.on('response', (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      slow.on('error', reject);
    });
    slow.write(slowBody.subarray(0, slowLength - 1));
    await waitFor(async () => metricValue(await (await fetch(`${c.url}/metrics`)).text(), 'fleet_collector_inflight_bytes') === slowLength - 1);

    const refused = await postTraces(c.url, body);
    expect(refused.status).toBe(429);
    expect(refused.headers['retry-after']).toBe('2');
    expect(decodeStatus(refused.body).message).toMatch(/^collector busy: 65435 of 65536 in-flight bytes in use/);

    // The slow request completes (padded with an unknown field so its declared length holds) and frees the budget.
    slow.end(slowBody.subarray(slowLength - 1));
    expect(await slowAnswer).toBe(200);
    expect((await postTraces(c.url, body)).status).toBe(200);
    const metrics = await (await fetch(`${c.url}/metrics`)).text();
    expect(metricValue(metrics, 'fleet_collector_requests_total{code="429"}')).toBe(1);
    expect(metricValue(metrics, 'fleet_collector_inflight_bytes')).toBe(0);
  });
});

describe('client going away', () => {
  it('a client that disconnects mid-body leaves nothing published and nothing held', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    const body = Buffer.from(encodeTraceRequest(mixedRequest()));
    const req = http.request(`${c.url}/v1/traces`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-protobuf', 'Content-Length': body.length },
    });
    req.on('error', () => {});
    req.write(body.subarray(0, body.length >> 1));
    await waitFor(async () => metricValue(await c.registry.metrics(), 'fleet_collector_inflight_requests') === 1);
    req.destroy();
    await waitFor(async () => metricValue(await c.registry.metrics(), 'fleet_collector_inflight_requests') === 0);
    expect(metricValue(await c.registry.metrics(), 'fleet_collector_inflight_bytes')).toBe(0);
    expect(await published(bus, TOPIC)).toEqual([]);
    expect((await postTraces(c.url, body)).status).toBe(200);
  });
});

describe('operations', () => {
  it('/healthz always, /readyz only while the bus accepts writes', async () => {
    const bus = new MemoryBus();
    const c = await start(bus);
    expect((await fetch(`${c.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${c.url}/readyz`)).status).toBe(200);
    bus.close();
    const notReady = await fetch(`${c.url}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.text()).toBe('not ready: the bus is not accepting writes\n');
    expect((await fetch(`${c.url}/healthz`)).status).toBe(200);
  });

  it('/metrics counts spans, bytes, requests by status and publish latency, on an injected registry', async () => {
    const bus = new MemoryBus();
    const registry = new Registry();
    const c = await start(bus, { registry });
    expect(c.registry).toBe(registry);
    const body = encodeTraceRequest(mixedRequest());
    const gz = zlib.gzipSync(body);
    expect((await postTraces(c.url, body)).status).toBe(200);
    expect((await postTraces(c.url, gz, { 'Content-Encoding': 'gzip' })).status).toBe(200);
    const half = { resourceSpans: [{ scopeSpans: [{ spans: [span(5, 1), span(5, 2, { spanId: new Uint8Array(3) })] }] }] };
    expect((await postTraces(c.url, encodeTraceRequest(half))).status).toBe(200);
    expect((await postTraces(c.url, 'junk', { 'Content-Type': 'text/plain' })).status).toBe(415);

    const res = await fetch(`${c.url}/metrics`);
    expect(res.headers.get('content-type')).toBe(registry.contentType);
    const text = await res.text();
    expect(text).toBe(await registry.metrics());
    expect(metricValue(text, 'fleet_collector_spans_received_total')).toBe(8 + 8 + 2);
    expect(metricValue(text, 'fleet_collector_spans_accepted_total')).toBe(8 + 8 + 1);
    expect(metricValue(text, 'fleet_collector_spans_rejected_total{reason="invalid"}')).toBe(1);
    expect(metricValue(text, 'fleet_collector_messages_published_total')).toBe(3 + 3 + 1);
    expect(metricValue(text, 'fleet_collector_requests_total{code="200"}')).toBe(3);
    expect(metricValue(text, 'fleet_collector_requests_total{code="415"}')).toBe(1);
    expect(metricValue(text, 'fleet_collector_request_bytes_total{stage="wire"}')).toBe(body.length + gz.length + encodeTraceRequest(half).length);
    expect(metricValue(text, 'fleet_collector_request_bytes_total{stage="decoded"}')).toBe(2 * body.length + encodeTraceRequest(half).length);
    expect(metricValue(text, 'fleet_collector_publish_duration_seconds_count')).toBe(3);
    expect(metricValue(text, 'fleet_collector_inflight_requests')).toBe(0);
    // The collector left the injected registry's process metrics to the embedder.
    expect(text).not.toContain('process_cpu_user_seconds_total');
  });

  it('a collector with its own registry also exports the process metrics', async () => {
    const c = await start(new MemoryBus());
    expect(await (await fetch(`${c.url}/metrics`)).text()).toContain('process_cpu_user_seconds_total');
  });

  it('close() waits for in-flight requests to be published, refuses new ones, then closes the publisher', async () => {
    const bus = new MemoryBus();
    let publisherClosed = false;
    const inner = bus.publisher();
    // The real queue's publisher, observed: close() must reach it after the last publish.
    const publisher: Publisher = {
      publish: (topic, messages) => inner.publish(topic, messages),
      isReady: () => inner.isReady(),
      close: async () => {
        publisherClosed = true;
        await inner.close();
      },
    };
    const collector = await startCollector({ publisher, port: 0, host: '127.0.0.1' });
    const body = Buffer.from(encodeTraceRequest(mixedRequest()));
    const slow = http.request(`${collector.url}/v1/traces`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-protobuf', 'Content-Length': body.length },
    });
    const answer = new Promise<number>((resolve, reject) => {
      slow.on('response', (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      slow.on('error', reject);
    });
    slow.write(body.subarray(0, 10));
    await waitFor(async () => metricValue(await collector.registry.metrics(), 'fleet_collector_inflight_requests') === 1);

    let closed = false;
    const closing = collector.close().then(() => (closed = true));
    await new Promise((r) => setTimeout(r, 100));
    expect(closed).toBe(false);
    expect(publisherClosed).toBe(false);
    await expect(fetch(`${collector.url}/healthz`)).rejects.toThrow();

    slow.end(body.subarray(10));
    expect(await answer).toBe(200);
    await closing;
    expect(publisherClosed).toBe(true);
    expect((await published(bus, TOPIC)).map((m) => m.key).sort()).toEqual([traceIdHex(1), traceIdHex(2), traceIdHex(3)].sort());
  });
});

describe('options', () => {
  const publisher = new MemoryBus().publisher();
  it.each([
    [{ port: -1 }, /option port .*>=0/],
    [{ port: 1.5 }, /option port must be an integer/],
    [{ topic: 'bad topic!' }, /option topic must be 1–249 characters/],
    [{ maxBodyBytes: 0 }, /option maxBodyBytes /],
    [{ maxBodyBytes: 2048, maxInflightBytes: 1024 }, /option maxInflightBytes must be at least maxBodyBytes/],
    [{ authTokens: {} }, /option authTokens must hold at least one token/],
    [{ registry: {} }, /option registry must be a prom-client Registry/],
    [{ publisher: {} }, /option publisher must be a Publisher/],
    [{ prot: 4318 }, /unknown option prot/],
  ])('%j is refused with an error naming the option', async (bad, message) => {
    await expect(startCollector({ publisher, ...(bad as object) } as CollectorOptions)).rejects.toThrow(message);
  });

  it('never prints a token in an option error', async () => {
    const err = await startCollector({ publisher, authTokens: { 'secret-token-value': '' } }).catch((e: Error) => e);
    expect(String(err)).toMatch(/option authTokens tenants must be non-empty/);
    expect(String(err)).not.toContain('secret-token-value');
  });

  it('port 0 picks a free port; two collectors get two ports', async () => {
    const a = await start(new MemoryBus());
    const b = await start(new MemoryBus());
    expect(a.port).toBeGreaterThan(0);
    expect(b.port).not.toBe(a.port);
    expect(a.tracesUrl).toBe(`http://127.0.0.1:${a.port}/v1/traces`);
  });

  it('a taken port is an error naming it', async () => {
    const a = await start(new MemoryBus());
    await expect(startCollector({ publisher, host: '127.0.0.1', port: a.port })).rejects.toThrow(`collector cannot listen on 127.0.0.1:${a.port}`);
  });
});

/** An unknown protobuf field (number 15, length-delimited) of exactly `total` bytes: decoders skip it. */
function paddingField(total: number): Buffer {
  // tag (1 byte) + varint length (3 bytes for lengths ≥ 16384) + payload
  const payload = total - 4;
  return Buffer.concat([Buffer.from([(15 << 3) | 2, (payload & 0x7f) | 0x80, ((payload >> 7) & 0x7f) | 0x80, payload >> 14]), Buffer.alloc(payload)]);
}

async function waitFor(condition: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 10));
  }
}
