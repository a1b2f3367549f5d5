/**
 * Shared by the collector tests: OTLP requests built by hand (so every field
 * the collector must keep is set), HTTP helpers, and reading back what landed
 * on the in-process queue through its real subscriber.
 */
import http from 'node:http';
import zlib from 'node:zlib';
import protobuf from 'protobufjs';
import { afterEach } from 'vitest';
import type { MemoryBus } from '../bus/memory.ts';
import type { ConsumedMessage } from '../bus/types.ts';
import { startCollector, type CollectorOptions, type RunningCollector } from '../collector/index.ts';
import { decodeTraceRequest, type KeyValue, type OtlpSpan, type TraceRequest } from '../otlp/codec.ts';

export const hexId = (seed: number, bytes: number): string =>
  Array.from({ length: bytes }, (_, i) => ((seed * 31 + i * 7 + 1) & 0xff).toString(16).padStart(2, '0')).join('');
export const traceIdHex = (seed: number): string => hexId(seed, 16);
export const spanIdHex = (seed: number): string => hexId(seed + 1000, 8);
export const bytes = (hex: string): Uint8Array => Buffer.from(hex, 'hex');

export const str = (key: string, value: string): KeyValue => ({ key, value: { stringValue: value } });
export const int = (key: string, value: number): KeyValue => ({ key, value: { intValue: value } });

/** A span with every OTLP field set. */
export function span(traceSeed: number, spanSeed: number, overrides: Partial<OtlpSpan> = {}): OtlpSpan {
  return {
    traceId: bytes(traceIdHex(traceSeed)),
    spanId: bytes(spanIdHex(spanSeed)),
    parentSpanId: spanSeed % 3 === 0 ? new Uint8Array() : bytes(spanIdHex(spanSeed - 1)),
    traceState: `vendor=${spanSeed}`,
    flags: 1,
    name: `span-${traceSeed}-${spanSeed}`,
    kind: (spanSeed % 5) + 1,
    startTimeUnixNano: `${1_760_000_000_000_000_000n + BigInt(spanSeed) * 1_000_003n}`,
    endTimeUnixNano: `${1_760_000_000_000_000_000n + BigInt(spanSeed) * 1_000_003n + 123_456_789n}`,
    attributes: [str('gen_ai.request.model', `model-${spanSeed}`), int('gen_ai.usage.input_tokens', spanSeed * 10)],
    events: [{ timeUnixNano: '1760000000000000001', name: 'evt', attributes: [str('k', 'v')] }],
    links: [{ traceId: bytes(traceIdHex(traceSeed + 50)), spanId: bytes(spanIdHex(spanSeed + 50)), attributes: [str('link', 'x')] }],
    status: { code: 2, message: `status ${spanSeed}` },
    ...overrides,
  };
}

/** A span with every OTLP field set and attribute values of every kind, nested (arrays, key-value lists, bytes, doubles). */
export function richSpan(traceSeed: number, spanSeed: number): OtlpSpan {
  const base = span(traceSeed, spanSeed);
  return {
    ...base,
    attributes: [
      ...base.attributes!,
      { key: 'list', value: { arrayValue: { values: [{ stringValue: 'ä-☃' }, { intValue: -5 }, { doubleValue: 0.25 }, { boolValue: true }] } } },
      { key: 'map', value: { kvlistValue: { values: [str('inner', 'x'), { key: 'deeper', value: { kvlistValue: { values: [int('n', 7)] } } }] } } },
      { key: 'raw', value: { bytesValue: Buffer.from([0, 255, 128]) } },
    ],
    events: [...base.events!, { timeUnixNano: '1760000000000000002', name: 'second', attributes: [int('count', 3), { key: 'tags', value: { arrayValue: { values: [{ stringValue: 'a' }] } } }] }],
  };
}

/** Byte ranges [start, end) of the values of an encoded span's top-level length-delimited fields numbered `numbers` (up to where its framing breaks, if it does). */
export function fieldRanges(bytes: Uint8Array, numbers: readonly number[]): [number, number][] {
  const r = protobuf.Reader.create(bytes);
  const ranges: [number, number][] = [];
  try {
    while (r.pos < r.len) {
      const tag = r.tag();
      if ((tag & 7) === 2 && numbers.includes(tag >>> 3)) {
        const length = r.uint32();
        if (r.pos + length > r.len) break;
        ranges.push([r.pos, r.pos + length]);
        r.pos += length;
      } else r.skipType(tag & 7);
    }
  } catch {
    // A span corrupted before: the ranges found so far.
  }
  return ranges;
}

/** Span fields holding nested messages: attributes, events, links, status. */
const NESTED_SPAN_FIELDS = [9, 11, 13, 15];

/**
 * One random corruption of an encoded span, inside one of its attributes,
 * events, links or status (a flipped byte, bytes cut out or inserted), or of
 * the span itself (truncated). The span's own length is re-framed by
 * whoever encodes it, so the envelopes stay valid.
 */
export function corruptSpan(bytes: Buffer, next: () => number): { bytes: Buffer; how: string } {
  const pick = (n: number) => Math.floor(next() * n);
  const ranges = fieldRanges(bytes, NESTED_SPAN_FIELDS);
  const kind = pick(4);
  if (kind === 3 || ranges.length === 0) {
    const at = pick(bytes.length);
    return { bytes: bytes.subarray(0, at), how: `truncated to ${at} bytes` };
  }
  const [start, end] = ranges[pick(ranges.length)]!;
  const at = start + pick(end - start);
  if (kind === 0) {
    const out = Buffer.from(bytes);
    const mask = 1 + pick(255);
    out[at]! ^= mask;
    return { bytes: out, how: `byte ${at} xor ${mask}` };
  }
  if (kind === 1) {
    const n = 1 + pick(Math.min(4, end - at));
    return { bytes: Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + n)]), how: `${n} bytes cut at ${at}` };
  }
  const inserted = Buffer.from(Array.from({ length: 1 + pick(3) }, () => pick(256)));
  return { bytes: Buffer.concat([bytes.subarray(0, at), inserted, bytes.subarray(at)]), how: `${inserted.toString('hex')} inserted at ${at}` };
}

/** Attributes of a valid attempt span. */
export const attemptAttributes = (n = 1): KeyValue[] => [
  str('fleet.spec.id', 'spec-1'),
  str('fleet.spec.tier', 'tier-2'),
  int('fleet.attempt.number', n),
  str('fleet.attempt.outcome', 'pass'),
];

/**
 * Two resources × two scopes with spans of three traces interleaved, both
 * schemaUrls and scope attributes set: the split has to keep every envelope.
 */
export function mixedRequest(): TraceRequest {
  return {
    resourceSpans: [
      {
        resource: { attributes: [str('service.name', 'agent-a'), str('fleet.pool', 'pool-1')] },
        schemaUrl: 'https://opentelemetry.io/schemas/1.30.0',
        scopeSpans: [
          {
            scope: { name: 'scope-x', version: '1.0', attributes: [str('scope.attr', 'sx')] },
            schemaUrl: 'https://opentelemetry.io/schemas/1.29.0',
            spans: [span(1, 1, { attributes: attemptAttributes() }), span(2, 2), span(1, 3), span(3, 4)],
          },
          { scope: { name: 'scope-y', version: '2.0' }, spans: [span(2, 5), span(1, 6)] },
        ],
      },
      {
        resource: { attributes: [str('service.name', 'agent-b')] },
        scopeSpans: [{ scope: { name: 'scope-z' }, spans: [span(3, 7), span(2, 8, { attributes: attemptAttributes(2) })] }],
      },
    ],
  };
}

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** A raw HTTP request (node:http, so tests control chunking, Expect and body timing). */
export function request(
  url: string,
  options: { method?: string; headers?: Record<string, string | number>; body?: Uint8Array | string; path?: string } = {},
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = http.request(url + (options.path ?? ''), { method: options.method ?? 'POST', headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** POST to /v1/traces with a content type (protobuf by default). */
export const postTraces = (
  baseUrl: string,
  body: Uint8Array | string,
  headers: Record<string, string | number> = {},
): Promise<HttpResult> =>
  request(baseUrl, { path: '/v1/traces', body, headers: { 'Content-Type': 'application/x-protobuf', ...headers } });

/** Messages on `topic` so far (nothing is ever committed, so every call reads from the start). */
export async function published(bus: MemoryBus, topic: string): Promise<ConsumedMessage[]> {
  const sub = bus.subscriber(topic);
  const expected = (await sub.lag()).reduce((n, p) => n + p.lag, 0);
  const messages: ConsumedMessage[] = [];
  let done: () => void = () => {};
  const all = new Promise<void>((resolve) => (done = resolve));
  await sub.start({
    onAssign: () => {},
    onBatch: async (batch) => {
      messages.push(...batch.messages);
      if (messages.length >= expected) done();
    },
  });
  if (expected > 0) await all;
  await sub.stop();
  return messages;
}

/**
 * Every span of some requests as one canonical JSON line per span with its
 * envelopes (resource, scope, both schemaUrls), sorted: equal lists = every
 * span arrived intact and in the right envelopes. Inputs are protobuf round
 * tripped so both sides are protobufjs messages with the same JSON form.
 */
export function canonicalSpans(requests: TraceRequest[]): string[] {
  const out: string[] = [];
  for (const r of requests) {
    for (const rs of r.resourceSpans ?? []) {
      for (const ss of rs.scopeSpans ?? []) {
        for (const s of ss.spans ?? []) {
          out.push(JSON.stringify({ resource: rs.resource, rsSchemaUrl: rs.schemaUrl, scope: ss.scope, ssSchemaUrl: ss.schemaUrl, span: s }));
        }
      }
    }
  }
  return out.sort();
}

export const decodeMessages = (messages: ConsumedMessage[]): TraceRequest[] => messages.map((m) => decodeTraceRequest(m.value));

/** Hex trace ids of every span in a request. */
export const traceIdsOf = (r: TraceRequest): string[] =>
  (r.resourceSpans ?? []).flatMap((rs) => (rs.scopeSpans ?? []).flatMap((ss) => (ss.spans ?? []).map((s) => Buffer.from(s.traceId ?? []).toString('hex'))));

/** A sample value from Prometheus text exposition, e.g. metric('fleet_collector_requests_total{code="200"}'). */
export function metricValue(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

/**
 * gzip of `size` zero bytes, built as concatenated gzip members of 16 MiB
 * each (a gzip file may hold several; decoders inflate them all): ~1 KiB of
 * wire bytes per MiB, without ever holding or compressing the whole GiB.
 */
export function gzipZeros(size: number): Buffer {
  const member = 16 * 1024 * 1024;
  const one = zlib.gzipSync(Buffer.alloc(member), { level: 9 });
  return Buffer.concat(Array.from({ length: Math.ceil(size / member) }, () => one));
}

/**
 * A function starting collectors on 127.0.0.1 (a free port) publishing to a
 * bus; every collector it started is closed after each test.
 */
export function collectorStarter(): (bus: MemoryBus, options?: Partial<CollectorOptions>) => Promise<RunningCollector> {
  const running: RunningCollector[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((c) => c.close()));
  });
  return async (bus, options = {}) => {
    const collector = await startCollector({ publisher: bus.publisher(), port: 0, host: '127.0.0.1', ...options });
    running.push(collector);
    return collector;
  };
}
