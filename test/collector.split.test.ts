/** Unit tests of the request frames (otlp/frames.ts), the bus message format (otlp/split.ts) and the google.rpc.Status helpers (otlp/status.ts). */
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { decodeTraceRequest, encodeTraceRequest, flattenSpans, OtlpDecodeError, type TraceRequest } from '../otlp/codec.ts';
import { decodeFrames, encodeFrames, type RequestFrames } from '../otlp/frames.ts';
import { splitByTrace, traceMessages, withResourceAttribute } from '../otlp/split.ts';
import { decodeStatus, encodeStatus, RPC_CODE, statusToJson } from '../otlp/status.ts';
import { canonicalSpans, mixedRequest, span, str, traceIdHex, traceIdsOf } from './collector.fixtures.ts';

/** As the collector sees a request. */
const framed = (r: TraceRequest): RequestFrames => decodeFrames(encodeTraceRequest(r));
/** Frames as any OTLP reader sees them. */
const decoded = (f: RequestFrames): TraceRequest => decodeTraceRequest(encodeFrames(f));
const roundTripped = (r: TraceRequest): TraceRequest => decodeTraceRequest(encodeTraceRequest(r));

describe('request frames', () => {
  it('encode back to the very bytes they were decoded from', () => {
    const body = encodeTraceRequest(mixedRequest());
    expect(Buffer.from(encodeFrames(decodeFrames(body)))).toEqual(Buffer.from(body));
  });

  it("carry each span's ids and timestamps", () => {
    const s = framed(mixedRequest()).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
    const source = span(1, 1);
    expect(Buffer.from(s.head.traceId)).toEqual(Buffer.from(source.traceId!));
    expect(Buffer.from(s.head.spanId)).toEqual(Buffer.from(source.spanId!));
    expect(String(s.head.startTimeUnixNano)).toBe(source.startTimeUnixNano);
    expect(String(s.head.endTimeUnixNano)).toBe(source.endTimeUnixNano);
  });

  it('keep span fields this OTLP version does not know (forwarded, not dropped)', () => {
    const [s] = framed({ resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1)] }] }] }).resourceSpans[0]!.scopeSpans[0]!.spans;
    const unknownField = protobuf.Writer.create().uint32((99 << 3) | 0).uint32(7).finish();
    const bytes = Buffer.concat([s!.bytes, unknownField]);
    const body = encodeFrames({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...s!, bytes }] }] }] });
    const [message] = traceMessages(decodeFrames(body));
    expect(Buffer.from(message!.value).includes(bytes)).toBe(true);
  });

  it('refuse a body that is not an export request, or a span whose own fields are malformed', () => {
    expect(() => decodeFrames(Buffer.from('definitely not protobuf'))).toThrow(OtlpDecodeError);
    const [s] = framed({ resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1)] }] }] }).resourceSpans[0]!.scopeSpans[0]!.spans;
    // Field 5 (name) claiming more bytes than the span holds.
    const truncated = Buffer.concat([s!.bytes, Buffer.from([(5 << 3) | 2, 100])]);
    const body = encodeFrames({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...s!, bytes: truncated }] }] }] });
    expect(() => decodeFrames(body)).toThrow(/invalid OTLP protobuf ExportTraceServiceRequest/);
  });
});

describe('splitByTrace', () => {
  it('groups spans by trace in order of first appearance, each group holding only its trace', () => {
    const groups = splitByTrace(framed(mixedRequest()));
    expect([...groups.keys()]).toEqual([traceIdHex(1), traceIdHex(2), traceIdHex(3)]);
    for (const [traceId, group] of groups) expect(new Set(traceIdsOf(decoded(group)))).toEqual(new Set([traceId]));
  });

  it('keeps every span with its resource, scope and both schemaUrls, and loses none', () => {
    const groups = splitByTrace(framed(mixedRequest()));
    expect(canonicalSpans([...groups.values()].map(decoded))).toEqual(canonicalSpans([roundTripped(mixedRequest())]));
    const trace1 = decoded(groups.get(traceIdHex(1))!);
    // Trace 1 sits in resource agent-a only, in both of its scopes, spans in the original order.
    expect(trace1.resourceSpans).toHaveLength(1);
    expect(trace1.resourceSpans![0]!.schemaUrl).toBe('https://opentelemetry.io/schemas/1.30.0');
    expect(trace1.resourceSpans![0]!.scopeSpans!.map((ss) => [ss.scope?.name, ss.schemaUrl ?? '', ss.spans!.map((s) => s.name)])).toEqual([
      ['scope-x', 'https://opentelemetry.io/schemas/1.29.0', ['span-1-1', 'span-1-3']],
      ['scope-y', '', ['span-1-6']],
    ]);
  });

  it('does not modify its input', () => {
    const input = framed(mixedRequest());
    const before = Buffer.from(encodeFrames(input));
    splitByTrace(input);
    expect(Buffer.from(encodeFrames(input))).toEqual(before);
  });

  it('is empty for a request without spans', () => {
    expect(splitByTrace(framed({})).size).toBe(0);
    expect(splitByTrace(framed({ resourceSpans: [{ scopeSpans: [{ spans: [] }] }] })).size).toBe(0);
  });
});

describe('traceMessages', () => {
  it('gives one message per trace, keyed by the lowercase hex trace id, valued with an OTLP protobuf of that trace', () => {
    const messages = traceMessages(framed(mixedRequest()));
    expect(messages.map((m) => m.key)).toEqual([traceIdHex(1), traceIdHex(2), traceIdHex(3)]);
    for (const m of messages) {
      expect(m.key).toMatch(/^[0-9a-f]{32}$/);
      const trace = decodeTraceRequest(m.value);
      expect(new Set([...flattenSpans(trace)].map((s) => s.traceId))).toEqual(new Set([m.key]));
    }
    expect(canonicalSpans(messages.map((m) => decodeTraceRequest(m.value)))).toEqual(canonicalSpans([roundTripped(mixedRequest())]));
  });
});

describe('withResourceAttribute', () => {
  it('sets the attribute on every resource, replacing what the sender claimed, and leaves the input alone', () => {
    const input = framed({
      resourceSpans: [
        { resource: { attributes: [str('fleet.tenant', 'claimed'), str('service.name', 's')] }, scopeSpans: [{ spans: [span(1, 1)] }] },
        { scopeSpans: [{ spans: [span(2, 2)] }] },
      ],
    });
    const stamped = decoded(withResourceAttribute(input, 'fleet.tenant', 'acme'));
    const resources = [...flattenSpans(stamped)].map((s) => s.resource);
    expect(resources).toEqual([{ 'fleet.tenant': 'acme', 'service.name': 's' }, { 'fleet.tenant': 'acme' }]);
    expect([...flattenSpans(decoded(input))][0]!.resource['fleet.tenant']).toBe('claimed');
    // Nothing else changed.
    const strip = (r: TraceRequest) =>
      canonicalSpans([r]).map((line) => {
        const { resource: _resource, ...rest } = JSON.parse(line) as Record<string, unknown>;
        return JSON.stringify(rest);
      });
    expect(strip(stamped)).toEqual(strip(decoded(input)));
  });
});

describe('google.rpc.Status', () => {
  it('round-trips through protobuf with BadRequest and RetryInfo details', () => {
    const status = {
      code: RPC_CODE.INVALID_ARGUMENT,
      message: 'bad body',
      fieldViolations: [{ field: 'body', description: 'not protobuf' }],
      retryDelaySeconds: 7,
    };
    expect(decodeStatus(encodeStatus(status))).toEqual(status);
    expect(decodeStatus(encodeStatus({ code: RPC_CODE.UNAVAILABLE, message: 'x' }))).toEqual({ code: 14, message: 'x' });
  });

  it('has the proto3 JSON form (Any with @type, Duration as seconds string)', () => {
    expect(JSON.parse(statusToJson({ code: 8, message: 'busy', retryDelaySeconds: 2 }))).toEqual({
      code: 8,
      message: 'busy',
      details: [{ '@type': 'type.googleapis.com/google.rpc.RetryInfo', retryDelay: '2s' }],
    });
    expect(JSON.parse(statusToJson({ code: 3, message: 'm' }))).toEqual({ code: 3, message: 'm' });
  });
});
