/**
 * Export requests with every span left encoded, for the collector.
 *
 * The collector reads little of a span — its ids and timestamps, and the
 * fleet.* attributes of an attempt span — and publishes it unchanged.
 * Decoding every attribute of every span into objects and encoding it all
 * back per trace (protobufjs's full decode, then encode) was most of its CPU.
 * So it decodes views of the official messages instead: the envelopes
 * (request, resource spans, scope spans) with resource, scope and spans
 * typed `bytes` — the same wire type as a message field, so protobufjs hands
 * out their encoding as a view into the body and writes it back verbatim —
 * and of each span only its head (ids, timestamps); decoders skip the
 * fields a view leaves out. What a span carries beyond that is checked for
 * framing (every length and wire type of its own fields), not decoded.
 */
import protobuf from 'protobufjs';
import { OtlpDecodeError, type KeyValue } from './codec.ts';
import { otlpRoot } from './proto.ts';

/** The part of a span the collector decodes. Timestamps are unsigned Longs (protobufjs's fixed64). */
export interface SpanHead {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId: Uint8Array;
  startTimeUnixNano: protobuf.Long;
  endTimeUnixNano: protobuf.Long;
}

export interface SpanFrame {
  /** The span's protobuf encoding, a view into the request body. */
  bytes: Buffer;
  head: SpanHead;
}

/** ScopeSpans with the scope still encoded. Fields the sender left out are absent. */
export interface ScopeSpansFrame {
  scope?: Uint8Array;
  schemaUrl?: string;
  spans: SpanFrame[];
}

/** ResourceSpans with the resource still encoded. Fields the sender left out are absent. */
export interface ResourceSpansFrame {
  resource?: Uint8Array;
  schemaUrl?: string;
  scopeSpans: ScopeSpansFrame[];
}

export interface RequestFrames {
  resourceSpans: ResourceSpansFrame[];
}

const views = otlpRoot.define('perpass.frames');

/**
 * A view of an official message: only the given fields (same names and
 * numbers), each with its own type or, where given, `bytes` in its place.
 */
function view(name: string, official: string, fields: Record<string, 'own' | 'bytes' | protobuf.Type>): protobuf.Type {
  const source = otlpRoot.lookupType(official);
  const type = new protobuf.Type(name);
  for (const [fieldName, as] of Object.entries(fields)) {
    const field = source.fields[fieldName];
    if (!field) throw new Error(`${official} has no field ${fieldName}`);
    const typeName = as === 'bytes' ? 'bytes' : as === 'own' ? (field.resolve().resolvedType?.fullName ?? field.type) : as.fullName;
    type.add(new protobuf.Field(fieldName, field.id, typeName, field.repeated ? 'repeated' : undefined));
  }
  views.add(type);
  return type;
}

const ScopeSpansView = view('ScopeSpans', 'opentelemetry.proto.trace.v1.ScopeSpans', { scope: 'bytes', spans: 'bytes', schemaUrl: 'own' });
const ResourceSpansView = view('ResourceSpans', 'opentelemetry.proto.trace.v1.ResourceSpans', { resource: 'bytes', scopeSpans: ScopeSpansView, schemaUrl: 'own' });
const RequestView = view('ExportTraceServiceRequest', 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest', { resourceSpans: ResourceSpansView });
const SpanHeadView = view('SpanHead', 'opentelemetry.proto.trace.v1.Span', {
  traceId: 'own',
  spanId: 'own',
  parentSpanId: 'own',
  startTimeUnixNano: 'own',
  endTimeUnixNano: 'own',
});
/**
 * AnyValue without its `value` oneof: protobufjs's oneof bookkeeping (a
 * setter deleting the other members on every value) cost more than the
 * decoding. The member that is set is the one own property either way.
 */
const AnyValueView = view('AnyValue', 'opentelemetry.proto.common.v1.AnyValue', {
  stringValue: 'own',
  boolValue: 'own',
  intValue: 'own',
  doubleValue: 'own',
  arrayValue: 'own',
  kvlistValue: 'own',
  bytesValue: 'own',
});
const KeyValueView = view('KeyValue', 'opentelemetry.proto.common.v1.KeyValue', { key: 'own', value: AnyValueView });
/** What validation messages and the attempt contract need of a span. */
const SpanLabelsView = view('SpanLabels', 'opentelemetry.proto.trace.v1.Span', { name: 'own', attributes: KeyValueView });
const Resource = otlpRoot.lookupType('opentelemetry.proto.resource.v1.Resource');

interface DecodedScopeSpans { scope?: Uint8Array; schemaUrl?: string; spans: Buffer[] }
interface DecodedResourceSpans { resource?: Uint8Array; schemaUrl?: string; scopeSpans: DecodedScopeSpans[] }

/** An ExportTraceServiceRequest body → frames; throws OtlpDecodeError saying what is wrong. */
export function decodeFrames(body: Uint8Array): RequestFrames {
  try {
    // A Buffer, so protobufjs's `bytes` are Buffer views into it.
    const buffer = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const request = RequestView.decode(buffer) as unknown as { resourceSpans: DecodedResourceSpans[] };
    // Spreads keep exactly the envelope fields the sender set (own properties; defaults sit on the prototype).
    return {
      resourceSpans: request.resourceSpans.map((rs) => ({
        ...rs,
        scopeSpans: rs.scopeSpans.map((ss) => ({ ...ss, spans: ss.spans.map((bytes) => ({ bytes, head: SpanHeadView.decode(bytes) as unknown as SpanHead })) })),
      })),
    };
  } catch (err) {
    throw new OtlpDecodeError(`invalid OTLP protobuf ExportTraceServiceRequest: ${(err as Error).message}`);
  }
}

/** Frames → an ExportTraceServiceRequest body: envelopes and spans written back verbatim. */
export function encodeFrames(request: RequestFrames): Uint8Array {
  return RequestView.encode({
    resourceSpans: request.resourceSpans.map((rs) => ({ ...rs, scopeSpans: rs.scopeSpans.map((ss) => ({ ...ss, spans: ss.spans.map((s) => s.bytes) })) })),
  }).finish();
}

/** A span's name and attributes, decoded from its frame (for attempt spans and rejected ones only: it costs a decode). */
export function spanLabels(frame: SpanFrame): { name: string; attributes: KeyValue[] } {
  return SpanLabelsView.decode(frame.bytes) as unknown as { name: string; attributes: KeyValue[] };
}

/** An encoded Resource with the attribute `key` set to the string `value`, replacing whatever value the sender gave. */
export function resourceWithAttribute(resource: Uint8Array | undefined, key: string, value: string): Uint8Array {
  const decoded = Resource.decode(resource ?? new Uint8Array()) as unknown as { attributes: KeyValue[] };
  decoded.attributes = [...decoded.attributes.filter((kv) => kv.key !== key), { key, value: { stringValue: value } }];
  return Resource.encode(decoded).finish();
}
