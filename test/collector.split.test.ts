/** Unit tests of the bus message format (otlp/split.ts) and the google.rpc.Status helpers (otlp/status.ts). */
import { describe, expect, it } from 'vitest';
import { decodeTraceRequest, encodeTraceRequest, flattenSpans, type TraceRequest } from '../otlp/codec.ts';
import { splitByTrace, traceMessages, withResourceAttribute } from '../otlp/split.ts';
import { decodeStatus, encodeStatus, RPC_CODE, statusToJson } from '../otlp/status.ts';
import { canonicalSpans, mixedRequest, span, str, traceIdHex, traceIdsOf } from './collector.fixtures.ts';

/** Decoded from protobuf, as the collector sees a request. */
const decoded = (r: TraceRequest): TraceRequest => decodeTraceRequest(encodeTraceRequest(r));

describe('splitByTrace', () => {
  it('groups spans by trace in order of first appearance, each group holding only its trace', () => {
    const groups = splitByTrace(decoded(mixedRequest()));
    expect([...groups.keys()]).toEqual([traceIdHex(1), traceIdHex(2), traceIdHex(3)]);
    for (const [traceId, group] of groups) expect(new Set(traceIdsOf(group))).toEqual(new Set([traceId]));
  });

  it('keeps every span with its resource, scope and both schemaUrls, and loses none', () => {
    const input = decoded(mixedRequest());
    const groups = [...splitByTrace(input).values()].map((g) => decoded(g));
    expect(canonicalSpans(groups)).toEqual(canonicalSpans([input]));
    const trace1 = splitByTrace(input).get(traceIdHex(1))!;
    // Trace 1 sits in resource agent-a only, in both of its scopes, spans in the original order.
    expect(trace1.resourceSpans).toHaveLength(1);
    expect(trace1.resourceSpans![0]!.schemaUrl).toBe('https://opentelemetry.io/schemas/1.30.0');
    expect(trace1.resourceSpans![0]!.scopeSpans!.map((ss) => [ss.scope?.name, ss.schemaUrl ?? '', ss.spans!.map((s) => s.name)])).toEqual([
      ['scope-x', 'https://opentelemetry.io/schemas/1.29.0', ['span-1-1', 'span-1-3']],
      ['scope-y', '', ['span-1-6']],
    ]);
  });

  it('does not modify its input', () => {
    const input = decoded(mixedRequest());
    const before = canonicalSpans([input]);
    const shape = JSON.stringify(input);
    splitByTrace(input);
    expect(canonicalSpans([input])).toEqual(before);
    expect(JSON.stringify(input)).toBe(shape);
  });

  it('is empty for a request without spans', () => {
    expect(splitByTrace({}).size).toBe(0);
    expect(splitByTrace({ resourceSpans: [{ scopeSpans: [{ spans: [] }] }] }).size).toBe(0);
  });
});

describe('traceMessages', () => {
  it('gives one message per trace, keyed by the lowercase hex trace id, valued with an OTLP protobuf of that trace', () => {
    const input = decoded(mixedRequest());
    const messages = traceMessages(input);
    expect(messages.map((m) => m.key)).toEqual([traceIdHex(1), traceIdHex(2), traceIdHex(3)]);
    for (const m of messages) {
      expect(m.key).toMatch(/^[0-9a-f]{32}$/);
      const trace = decodeTraceRequest(m.value);
      expect(new Set([...flattenSpans(trace)].map((s) => s.traceId))).toEqual(new Set([m.key]));
    }
    expect(canonicalSpans(messages.map((m) => decodeTraceRequest(m.value)))).toEqual(canonicalSpans([input]));
  });
});

describe('withResourceAttribute', () => {
  it('sets the attribute on every resource, replacing what the sender claimed, and leaves the input alone', () => {
    const input = decoded({
      resourceSpans: [
        { resource: { attributes: [str('fleet.tenant', 'claimed'), str('service.name', 's')] }, scopeSpans: [{ spans: [span(1, 1)] }] },
        { scopeSpans: [{ spans: [span(2, 2)] }] },
      ],
    });
    const stamped = decoded(withResourceAttribute(input, 'fleet.tenant', 'acme'));
    const resources = [...flattenSpans(stamped)].map((s) => s.resource);
    expect(resources).toEqual([{ 'fleet.tenant': 'acme', 'service.name': 's' }, { 'fleet.tenant': 'acme' }]);
    expect([...flattenSpans(input)][0]!.resource['fleet.tenant']).toBe('claimed');
    // Nothing else changed.
    const strip = (r: TraceRequest) =>
      canonicalSpans([r]).map((line) => {
        const { resource: _resource, ...rest } = JSON.parse(line) as Record<string, unknown>;
        return JSON.stringify(rest);
      });
    expect(strip(stamped)).toEqual(strip(input));
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
