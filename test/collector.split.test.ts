/**
 * Unit tests of the request frames and their wire check (otlp/frames.ts),
 * the OTLP/JSON conversion (otlp/codec.ts), the bus message format
 * (otlp/split.ts) and the google.rpc.Status helpers (otlp/status.ts).
 */
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { validateRequest } from '../collector/validate.ts';
import { prng } from '../demo/plan.ts';
import { decodeTraceRequest, encodeTraceRequest, flattenSpans, jsonTraceRequest, OtlpDecodeError, traceRequestFromJson, type TraceRequest } from '../otlp/codec.ts';
import { decodeFrames, encodeFrames, spanWireProblem, type RequestFrames, type SpanFrame } from '../otlp/frames.ts';
import { envelopeBytes, spanBytes, splitByTrace, traceMessages, withResourceAttribute } from '../otlp/split.ts';
import { decodeStatus, encodeStatus, RPC_CODE, statusToJson } from '../otlp/status.ts';
import { canonicalSpans, corruptSpan, mixedRequest, richSpan, span, spanIdHex, str, traceIdHex, traceIdsOf } from './collector.fixtures.ts';

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

  it('refuse a body that is not an export request', () => {
    expect(() => decodeFrames(Buffer.from('definitely not protobuf'))).toThrow(OtlpDecodeError);
  });
});

/** A length-delimited field `number` holding `content`, as raw protobuf. */
const field = (number: number, content: Uint8Array | string): Buffer =>
  Buffer.from(protobuf.Writer.create().uint32((number << 3) | 2).bytes(typeof content === 'string' ? Buffer.from(content) : content).finish());
/** An encoded KeyValue with the given encoded AnyValue. */
const keyValue = (key: string, anyValue: Uint8Array): Buffer => Buffer.concat([field(1, key), field(2, anyValue)]);
/** AnyValue array_value nested `levels` deep around a string. */
const nestedArrays = (levels: number): Buffer => (levels === 0 ? field(1, 'x') : field(5, field(1, nestedArrays(levels - 1))));

/** The only span of a request whose span is span(1, 1)'s encoding followed by `extra` raw bytes; and the request body. */
function spanWith(extra: Uint8Array, base = span(1, 1)): { frame: SpanFrame; body: Uint8Array } {
  const [s] = framed({ resourceSpans: [{ scopeSpans: [{ spans: [base] }] }] }).resourceSpans[0]!.scopeSpans[0]!.spans;
  const body = encodeFrames({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...s!, bytes: Buffer.concat([s!.bytes, extra]) }] }] }] });
  return { frame: decodeFrames(body).resourceSpans[0]!.scopeSpans[0]!.spans[0]!, body };
}

/** True when the official full decoder (the consumers') reads the body. */
const decodes = (body: Uint8Array): boolean => {
  try {
    decodeTraceRequest(body);
    return true;
  } catch {
    return false;
  }
};

describe('wire check of spans, resources and scopes', () => {
  it.each([
    ['an attribute key running past its KeyValue', field(9, Buffer.from([0x0a, 50, 0x61, 0x62])), 'attributes[2].key: length 50 runs past the end of its message (2 bytes left)'],
    ['invalid UTF-8 in a key-value list', field(9, keyValue('map', field(6, field(1, keyValue('n', field(1, Buffer.from([0xff, 0xfe]))))))), 'attributes[2].value.kvlistValue.values[0].value.stringValue: invalid UTF-8'],
    [
      'an 11-byte varint in an event attribute array',
      field(11, field(3, keyValue('c', field(5, field(1, Buffer.from([0x18, ...Array<number>(10).fill(0x80), 0x01])))))),
      'events[1].attributes[0].value.arrayValue.values[0].intValue: varint longer than 10 bytes',
    ],
    ['a link id running past the link', field(13, Buffer.from([0x0a, 16, 1, 2, 3])), 'links[1].traceId: length 16 runs past the end of its message (3 bytes left)'],
    ['the span name running past the span', Buffer.from([(5 << 3) | 2, 100]), 'name: length 100 runs past the end of its message (0 bytes left)'],
    ['field number 0', Buffer.from([0x02, 0x00]), 'field 0: illegal tag: field number 0'],
    ['attribute values nested past the decoder\'s depth limit', field(9, keyValue('deep', nestedArrays(48))), `attributes[2].value${'.arrayValue.values[0]'.repeat(48)}: nested deeper than 100 messages`],
  ])('marks a span with %s, naming where, and the official decoder refuses it too', (_what, extra, where) => {
    const { frame, body } = spanWith(extra);
    expect(frame.problem).toBe(`malformed protobuf at ${where}`);
    // Named by what of its head could be read.
    expect(Buffer.from(frame.head.spanId).toString('hex')).toBe(spanIdHex(1));
    expect(decodes(body)).toBe(false);
  });

  it('marks an invalid wire type inside a nested message', () => {
    const { frame, body } = spanWith(field(15, Buffer.from([(3 << 3) | 7, 1])));
    expect(frame.problem).toMatch(/^malformed protobuf at status\.field 3: invalid wire type 7 at offset \d+$/);
    expect(decodes(body)).toBe(false);
  });

  it('accepts what the official decoder reads: a known field of another wire type, unknown fields and groups, nesting up to its limit', () => {
    for (const extra of [
      Buffer.from([(5 << 3) | 0, 5]),
      Buffer.from([(99 << 3) | 3, 0x08, 0x01, (99 << 3) | 4]),
      field(9, keyValue('unknown-inside', Buffer.concat([field(1, 'v'), Buffer.from([(12 << 3) | 5, 1, 2, 3, 4])]))),
      field(9, keyValue('deep', nestedArrays(47))),
    ]) {
      const { frame, body } = spanWith(extra);
      expect(frame.problem).toBeUndefined();
      expect(decodes(body)).toBe(true);
    }
  });

  it('marks a malformed resource or scope, and validation rejects all their spans saying why', () => {
    const [s1, s2] = framed({ resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1), span(1, 2)] }] }] }).resourceSpans[0]!.scopeSpans[0]!.spans;
    const body = encodeFrames({
      resourceSpans: [
        { resource: field(1, keyValue('service.name', field(1, Buffer.from([0xc3, 0x28])))), scopeSpans: [{ spans: [s1!] }, { spans: [s2!] }] },
        { scopeSpans: [{ scope: Buffer.from([0x0a, 0x10, 0x61]), spans: [s2!] }, { spans: [s1!, s2!] }] },
      ],
    });
    const frames = decodeFrames(body);
    expect(frames.resourceSpans[0]!.resourceProblem).toBe('malformed protobuf at attributes[0].value.stringValue: invalid UTF-8');
    expect(frames.resourceSpans[1]!.resourceProblem).toBeUndefined();
    expect(frames.resourceSpans[1]!.scopeSpans.map((ss) => ss.scopeProblem)).toEqual(['malformed protobuf at name: length 16 runs past the end of its message (1 bytes left)', undefined]);
    const result = validateRequest(frames);
    expect(result).toMatchObject({ total: 5, rejected: 3 });
    expect(result.problems).toEqual([
      { path: 'resourceSpans[0].resource', spans: 2, message: 'resourceSpans[0].resource: malformed protobuf at attributes[0].value.stringValue: invalid UTF-8 (its 2 spans are rejected)' },
      { path: 'resourceSpans[1].scopeSpans[0].scope', spans: 1, message: 'resourceSpans[1].scopeSpans[0].scope: malformed protobuf at name: length 16 runs past the end of its message (1 bytes left) (its 1 span is rejected)' },
    ]);
    const published = traceMessages(result.valid).map((m) => decodeTraceRequest(m.value));
    expect(published.flatMap((r) => [...flattenSpans(r)].map((x) => x.name))).toEqual(['span-1-1', 'span-1-2']);
  });

  it('agrees with the official decoder on thousands of random corruptions (flipped, cut, inserted bytes in attributes, events, links, status; truncations)', () => {
    const next = prng(20260601);
    const bases = [richSpan(1, 1), richSpan(2, 7), span(3, 3)].map((x) => framed({ resourceSpans: [{ scopeSpans: [{ spans: [x] }] }] }).resourceSpans[0]!.scopeSpans[0]!.spans[0]!);
    let refused = 0;
    for (let trial = 0; trial < 3000; trial++) {
      const base = bases[trial % bases.length]!;
      const { bytes, how } = corruptSpan(base.bytes, next);
      const body = encodeFrames({ resourceSpans: [{ scopeSpans: [{ spans: [{ ...base, bytes }] }] }] });
      const problem = spanWireProblem(bytes);
      // Exactly the spans the decoder refuses are marked: nothing published fails downstream, nothing decodable is refused.
      expect(problem === undefined, `trial ${trial}: ${how} → ${problem ?? 'accepted'}; span ${bytes.toString('hex')}`).toBe(decodes(body));
      if (problem !== undefined) refused += 1;
    }
    // The corruptions exercise both outcomes.
    expect(refused).toBeGreaterThan(1000);
    expect(refused).toBeLessThan(2900);
  });
});

describe('OTLP/JSON conversion', () => {
  const oneSpan = (spanFields: Record<string, unknown>) => ({
    resourceSpans: [{ scopeSpans: [{ spans: [{ traceId: traceIdHex(1), spanId: spanIdHex(1), name: 'j', startTimeUnixNano: '1', endTimeUnixNano: '2', ...spanFields }] }] }],
  });
  const attr = (value: unknown) => ({ attributes: [{ key: 'a', value }] });

  it.each([
    [attr({ intValue: 'abc' }), 'attributes[0].value.intValue must be an integer (a JSON number or decimal string), got "abc"'],
    [attr({ intValue: 1.5 }), 'attributes[0].value.intValue must be an integer (a JSON number or decimal string), got 1.5'],
    [attr({ intValue: '9223372036854775808' }), 'attributes[0].value.intValue is out of range for int64, got "9223372036854775808"'],
    [attr({ arrayValue: { values: [{ kvlistValue: { values: [{ key: 'k', value: { intValue: '7e' } }] } }] } }), 'attributes[0].value.arrayValue.values[0].kvlistValue.values[0].value.intValue must be an integer (a JSON number or decimal string), got "7e"'],
    [attr({ boolValue: 'false' }), 'attributes[0].value.boolValue must be true or false, got "false"'],
    [attr({ doubleValue: 'abc' }), 'attributes[0].value.doubleValue must be a number (or "NaN", "Infinity", "-Infinity"), got "abc"'],
    [attr({ bytesValue: 'not base64!' }), 'attributes[0].value.bytesValue must be a base64 string, got "not base64!"'],
    [attr({ stringValue: 'a', intValue: 1 }), 'attributes[0].value sets stringValue and intValue, which exclude each other'],
    [attr({ stringValue: '\ud800' }), 'attributes[0].value.stringValue must be well-formed Unicode (it holds a lone surrogate), got "\\ud800"'],
    [{ startTimeUnixNano: '12x' }, 'startTimeUnixNano must be an unsigned integer (a JSON number or decimal string), got "12x"'],
    [{ endTimeUnixNano: -1 }, 'endTimeUnixNano is out of range for fixed64, got -1'],
    [{ events: [{ timeUnixNano: '1.5' }] }, 'events[0].timeUnixNano must be an unsigned integer (a JSON number or decimal string), got "1.5"'],
    [{ droppedAttributesCount: -1 }, 'droppedAttributesCount is out of range for uint32, got -1'],
    [{ kind: 'SPAN_KIND_SIDEWAYS' }, 'kind must be one of SPAN_KIND_UNSPECIFIED, SPAN_KIND_INTERNAL, SPAN_KIND_SERVER, SPAN_KIND_CLIENT, SPAN_KIND_PRODUCER, SPAN_KIND_CONSUMER or an integer, got "SPAN_KIND_SIDEWAYS"'],
    [{ spanId: 'zz' }, 'spanId must be a hex string, got "zz"'],
    [{ links: [{ traceId: traceIdHex(2), spanId: 'x1' }] }, 'links[0].spanId must be a hex string, got "x1"'],
    [{ status: 'error' }, 'status must be an object, got "error"'],
    [{ attributes: { a: 1 } }, 'attributes must be an array, got {"a":1}'],
  ])('sets apart a span with %j: %s', (fields, problem) => {
    // Conversion works in place (hex ids become bytes): each call gets its own copy.
    const { request, rejected } = jsonTraceRequest(oneSpan(structuredClone(fields)));
    expect([...rejected]).toEqual([['resourceSpans[0].scopeSpans[0].spans[0]', problem]]);
    // What is left of it still names it (when its ids were usable), and positions stay.
    const [left] = [...flattenSpans(request)];
    expect(left!.name).toBe('j');
    expect(() => traceRequestFromJson(oneSpan(structuredClone(fields)))).toThrow(`invalid OTLP/JSON ExportTraceServiceRequest: resourceSpans[0].scopeSpans[0].spans[0]: ${problem}`);
  });

  it('converts valid values exactly: int64 beyond 2^53 as strings, negative and zero ints, numeric strings for doubles and uint32, enums by name or number', () => {
    const { request, rejected } = jsonTraceRequest(
      oneSpan({
        kind: 'SPAN_KIND_CLIENT',
        startTimeUnixNano: '18446744073709551615',
        droppedAttributesCount: '3',
        status: { code: 2 },
        attributes: [
          { key: 'big', value: { intValue: '-9223372036854775808' } },
          { key: 'small', value: { intValue: -7 } },
          { key: 'zero', value: { intValue: '0' } },
          { key: 'nan', value: { doubleValue: 'NaN' } },
          { key: 'num', value: { doubleValue: '2.5e3' } },
          { key: 'bytes', value: { bytesValue: 'AP-A' } },
        ],
      }),
    );
    expect(rejected.size).toBe(0);
    const [s] = [...flattenSpans(decodeTraceRequest(encodeTraceRequest(request)))];
    expect(s!.kind).toBe(3);
    expect(s!.startTimeUnixNano).toBe(18446744073709551615n);
    expect(s!.status.code).toBe(2);
    expect(s!.attributes).toEqual({ big: -9223372036854775808n, small: -7, nan: Number.NaN, num: 2500, zero: 0, bytes: Buffer.from([0, 255, 128]) });
  });

  it('sets apart a resource or scope with a bad value, and refuses envelopes that are not an export request', () => {
    const { rejected } = jsonTraceRequest({
      resourceSpans: [
        { resource: { attributes: [{ key: 'n', value: { intValue: 'x' } }] }, scopeSpans: [{ scope: { name: 5 }, spans: [] }] },
      ],
    });
    expect([...rejected]).toEqual([
      ['resourceSpans[0].resource', 'attributes[0].value.intValue must be an integer (a JSON number or decimal string), got "x"'],
      ['resourceSpans[0].scopeSpans[0].scope', 'name must be a string, got 5'],
    ]);
    expect(() => jsonTraceRequest({ resourceSpans: [{ schemaUrl: 3 }] })).toThrow('invalid OTLP/JSON ExportTraceServiceRequest: resourceSpans[0].schemaUrl must be a string, got 3');
    expect(() => jsonTraceRequest({ resourceSpans: [null] })).toThrow('resourceSpans[0] must be an object, got null');
    expect(() => jsonTraceRequest({ resourceSpans: [{ scopeSpans: {} }] })).toThrow('resourceSpans[0].scopeSpans must be an array');
  });
});

describe('splitByTrace', () => {
  it('groups spans by trace in order of first appearance, each group holding only its trace', () => {
    const groups = splitByTrace(framed(mixedRequest()));
    expect([...groups.keys()]).toEqual([traceIdHex(1), traceIdHex(2), traceIdHex(3)]);
    for (const [traceId, messages] of groups) {
      expect(messages).toHaveLength(1);
      expect(new Set(traceIdsOf(decoded(messages[0]!)))).toEqual(new Set([traceId]));
    }
  });

  it('keeps every span with its resource, scope and both schemaUrls, and loses none', () => {
    const groups = splitByTrace(framed(mixedRequest()));
    expect(canonicalSpans([...groups.values()].flat().map(decoded))).toEqual(canonicalSpans([roundTripped(mixedRequest())]));
    const trace1 = decoded(groups.get(traceIdHex(1))![0]!);
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

describe('traceMessages under a byte limit', () => {
  /** Trace 1: 40 rich spans over two resources and three scopes; trace 2: two spans. */
  const large = (): TraceRequest => ({
    resourceSpans: [
      {
        resource: { attributes: [str('service.name', 'big')] },
        schemaUrl: 'https://opentelemetry.io/schemas/1.30.0',
        scopeSpans: [
          { scope: { name: 's1' }, spans: Array.from({ length: 15 }, (_, i) => richSpan(1, i + 1)) },
          { scope: { name: 's2' }, spans: [span(2, 100), ...Array.from({ length: 10 }, (_, i) => richSpan(1, i + 16))] },
        ],
      },
      { resource: { attributes: [str('service.name', 'other')] }, scopeSpans: [{ scope: { name: 's3' }, spans: [...Array.from({ length: 15 }, (_, i) => richSpan(1, i + 26)), span(2, 101)] }] },
    ],
  });

  it('splits a trace larger than the limit into several messages under it, same key, spans in order with their envelopes, none lost', () => {
    const limit = 4096;
    const messages = traceMessages(framed(large()), limit);
    const ofTrace1 = messages.filter((m) => m.key === traceIdHex(1));
    expect(ofTrace1.length).toBeGreaterThan(3);
    expect(messages.filter((m) => m.key === traceIdHex(2))).toHaveLength(1);
    for (const m of messages) expect(m.value.length).toBeLessThanOrEqual(limit);
    const decodedAll = messages.map((m) => decodeTraceRequest(m.value));
    expect(canonicalSpans(decodedAll)).toEqual(canonicalSpans([roundTripped(large())]));
    const names = ofTrace1.flatMap((m) => [...flattenSpans(decodeTraceRequest(m.value))].map((x) => x.name));
    expect(names).toEqual(Array.from({ length: 40 }, (_, i) => `span-1-${i + 1}`));
    // Messages are filled: each but the last of trace 1 could not have taken its successor's first span.
    for (const [i, m] of ofTrace1.slice(0, -1).entries()) {
      const nextSpan = decodeFrames(ofTrace1[i + 1]!.value).resourceSpans[0]!.scopeSpans[0]!.spans[0]!;
      expect(m.value.length + nextSpan.bytes.length).toBeGreaterThan(limit - 16);
    }
  });

  it('keeps a trace under the limit in one message', () => {
    expect(traceMessages(framed(large())).map((m) => m.key)).toEqual([traceIdHex(1), traceIdHex(2)]);
  });

  it('bounds the message of one span from above, closely', () => {
    const next = prng(7);
    for (let i = 0; i < 50; i++) {
      const spans = [richSpan(1, i), span(2, i, { name: 'x'.repeat(Math.floor(next() * 70_000)) })];
      const request = framed({
        resourceSpans: [{ resource: { attributes: [str('k', 'v'.repeat(Math.floor(next() * 300)))] }, schemaUrl: 's', scopeSpans: [{ scope: { name: 'n' }, schemaUrl: 'u', spans }] }],
      });
      const rs = request.resourceSpans[0]!;
      for (const frame of rs.scopeSpans[0]!.spans) {
        const alone = encodeFrames({ resourceSpans: [{ ...rs, scopeSpans: [{ ...rs.scopeSpans[0]!, spans: [frame] }] }] }).length;
        const bound = envelopeBytes(rs, rs.scopeSpans[0]!) + spanBytes(frame);
        expect(alone).toBeLessThanOrEqual(bound);
        expect(bound - alone).toBeLessThanOrEqual(6);
      }
    }
  });

  it('validation rejects a span that does not fit one message with its resource and scope', () => {
    const request = framed({ resourceSpans: [{ scopeSpans: [{ spans: [span(1, 1), span(1, 2, { name: 'huge', attributes: [str('blob', 'b'.repeat(3000))] })] }] }] });
    const result = validateRequest(request, { maxMessageBytes: 2048 });
    expect(result.rejected).toBe(1);
    expect(result.problems[0]!.message).toMatch(new RegExp(`^span ${spanIdHex(2)} "huge" of trace ${traceIdHex(1)}: with its resource and scope it takes 3\\d{3} bytes, more than the 2048 bytes of a bus message \\(collector option maxMessageBytes\\)$`));
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
