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
 * and of each span only its head (ids, timestamps), found by the walk that
 * checks the span (below); decoders skip the fields a view leaves out.
 *
 * What is published verbatim must still decode with the full official
 * decoder (the consumers', otlp/codec.ts decodeTraceRequest), or the
 * consumer dead-letters the whole trace message after the client was told
 * 200. So every span, resource and scope is walked on the wire against the
 * official schema (wireProblem): each nested message, length, wire type,
 * varint and UTF-8 string, without building objects. A frame that fails
 * carries the problem, and the collector rejects what it holds.
 */
import { isUtf8 } from 'node:buffer';
import protobuf from 'protobufjs';
import { OtlpDecodeError, resourcePath, scopePath, spanPath, type KeyValue } from './codec.ts';
import { MESSAGE_DEPTH, otlpRoot } from './proto.ts';

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
  /** Empty ids and zero times where the span is too malformed to read them. */
  head: SpanHead;
  /** Why the span cannot be published (malformed on the wire, or a bad OTLP/JSON value); absent when it can. */
  problem?: string;
}

/** ScopeSpans with the scope still encoded. Fields the sender left out are absent. */
export interface ScopeSpansFrame {
  scope?: Uint8Array;
  schemaUrl?: string;
  spans: SpanFrame[];
  /** Why the scope is unusable; its spans cannot be published. */
  scopeProblem?: string;
}

/** ResourceSpans with the resource still encoded. Fields the sender left out are absent. */
export interface ResourceSpansFrame {
  resource?: Uint8Array;
  schemaUrl?: string;
  scopeSpans: ScopeSpansFrame[];
  /** Why the resource is unusable; its spans cannot be published. */
  resourceProblem?: string;
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
/** Only the name, for messages about a span whose attributes may be malformed. */
const SpanNameView = view('SpanName', 'opentelemetry.proto.trace.v1.Span', { name: 'own' });
const Resource = otlpRoot.lookupType('opentelemetry.proto.resource.v1.Resource');

// ---------------------------------------------------------------- wire check

/** How the official decoder reads a field whose wire type matches; everything else it skips (Reader.skipType). */
const MESSAGE = 0;
const STRING = 1;
const VARINT = 2;
/** bytes and fixed-width scalars: the decoder's read is exactly skipType's. */
const PLAIN = 3;

interface WireField {
  name: string;
  repeated: boolean;
  wireType: number;
  kind: typeof MESSAGE | typeof STRING | typeof VARINT | typeof PLAIN;
  schema: WireSchema | undefined;
}

/** A message type as the wire check needs it: its fields by number. */
interface WireSchema {
  fields: (WireField | undefined)[];
}

const schemas = new Map<protobuf.Type, WireSchema>();

/** The wire schema of an official message type, from protobufjs's reflection (cycles, e.g. AnyValue ↔ ArrayValue, share one schema). */
function wireSchema(type: protobuf.Type): WireSchema {
  const known = schemas.get(type);
  if (known) return known;
  const schema: WireSchema = { fields: [] };
  schemas.set(type, schema);
  for (const field of type.fieldsArray) {
    field.resolve();
    const resolved = field.resolvedType;
    // The decoder reads these differently (packed runs, map entries, groups); the OTLP trace schema has none, so a
    // future version that adds one fails here, at start, instead of being checked wrongly.
    if (field.map || field.delimited || (field.repeated && protobuf.types.packed[field.type as keyof typeof protobuf.types.packed] !== undefined)) {
      throw new Error(`wire check: ${type.fullName}.${field.name} is a map, group or packed field, which it does not handle`);
    }
    const base = resolved instanceof protobuf.Enum ? 'int32' : field.type;
    const message = resolved instanceof protobuf.Type;
    const wireType = message ? 2 : protobuf.types.basic[base as keyof typeof protobuf.types.basic];
    if (wireType === undefined) throw new Error(`wire check: ${type.fullName}.${field.name} has unknown type ${field.type}`);
    schema.fields[field.id] = {
      name: field.name,
      repeated: field.repeated,
      wireType,
      kind: message ? MESSAGE : base === 'string' ? STRING : wireType === 0 ? VARINT : PLAIN,
      schema: message ? wireSchema(resolved) : undefined,
    };
  }
  return schema;
}

/** A wire problem, with the path to where it is (innermost field last). */
class WireError extends Error {
  readonly path: string[] = [];
}

/** Protobuf varints are at most 10 bytes; the decoder's reads (int64, uint32, bool, enum) refuse longer ones. */
function skipVarint(r: protobuf.Reader): void {
  for (let i = 0; i < 10; i++) {
    if (r.pos >= r.len) throw new WireError('varint runs past the end');
    if (r.buf[r.pos++]! < 0x80) return;
  }
  throw new WireError('varint longer than 10 bytes');
}

/**
 * protobufjs's stringVerify rejects invalid UTF-8 (proto3 strings). ASCII,
 * the common case, is checked here four bytes at a time without a call (a
 * native isUtf8 per string cost more than the loop).
 */
function isUtf8At(buf: Uint8Array, start: number, end: number): boolean {
  let i = start;
  for (; i + 4 <= end; i += 4) if ((buf[i]! | buf[i + 1]! | buf[i + 2]! | buf[i + 3]!) & 0x80) return isUtf8(buf.subarray(i, end));
  for (; i < end; i++) if (buf[i]! & 0x80) return isUtf8(buf.subarray(i, end));
  return true;
}

/** Length of a length-delimited field, checked against what is left of its message. */
function delimited(r: protobuf.Reader): number {
  // One-byte lengths (most of them) read here as Reader.size() reads them, without the call.
  const first = r.pos < r.len ? r.buf[r.pos]! : 0x80;
  const length = first < 0x80 ? (r.pos++, first) : r.size();
  if (length > r.len - r.pos) throw new WireError(`length ${length} runs past the end of its message (${r.len - r.pos} bytes left)`);
  return length;
}

function skipDelimited(r: protobuf.Reader): void {
  const length = delimited(r);
  r.pos += length;
}

/**
 * Walks one message of `schema` from r.pos to `end` exactly as the official
 * decoder reads it (same reads, same bounds: protobufjs limits the reader to
 * each nested message, as here), so whatever passes decodes.
 */
function walk(r: protobuf.Reader, schema: WireSchema, end: number, depth: number, seen?: Int32Array): void {
  if (depth > protobuf.Reader.recursionLimit) throw new WireError(`nested deeper than ${protobuf.Reader.recursionLimit} messages`);
  const start = r.pos;
  const outer = r.len;
  r.len = end;
  // Where the field being read starts, its number and, when known, its schema: for the error's path.
  let at = start;
  let number = 0;
  let field: WireField | undefined;
  try {
    while (r.pos < end) {
      at = r.pos;
      field = undefined;
      number = 0;
      // One-byte tags (field numbers below 16, most of them) read here as Reader.tag() reads them, without the call.
      const first = r.buf[r.pos]!;
      const tag = first < 0x80 ? (r.pos++, first) : r.tag();
      number = tag >>> 3;
      const wireType = tag & 7;
      if (number === 0) throw new WireError('illegal tag: field number 0');
      field = schema.fields[number];
      // A known field with another wire type is skipped as unknown, as the decoder does.
      if (field !== undefined && field.wireType !== wireType) field = undefined;
      const valueAt = r.pos;
      if (field?.kind === MESSAGE) {
        const length = delimited(r);
        walk(r, field.schema!, r.pos + length, depth + 1);
      } else if (field?.kind === STRING) {
        const length = delimited(r);
        if (!isUtf8At(r.buf, r.pos, r.pos + length)) throw new WireError('invalid UTF-8');
        r.pos += length;
      } else if (field?.kind === VARINT) skipVarint(r);
      else if (wireType === 2) skipDelimited(r);
      else r.skipType(wireType, depth, number);
      // Only once read: every position in `seen` holds a whole value. The last one wins, as in the decoder.
      if (seen !== undefined && field !== undefined && number < seen.length) seen[number] = valueAt;
    }
  } catch (err) {
    const located = err instanceof WireError ? err : new WireError((err as Error).message);
    located.path.unshift(field ? (field.repeated ? `${field.name}[${occurrence(r.buf, start, at, number)}]` : field.name) : `field ${number}`);
    throw located;
  }
  r.len = outer;
}

/** How many fields `number` precede offset `at` in the message starting at `start` (those were read fine): the index for messages. */
function occurrence(buf: Uint8Array, start: number, at: number, number: number): number {
  const r = protobuf.Reader.create(buf);
  r.pos = start;
  r.len = at;
  let n = 0;
  while (r.pos < at) {
    const tag = r.tag();
    if (tag >>> 3 === number) n += 1;
    r.skipType(tag & 7, 0, tag >>> 3);
  }
  return n;
}

const SPAN = wireSchema(otlpRoot.lookupType('opentelemetry.proto.trace.v1.Span'));
const RESOURCE = wireSchema(Resource);
const SCOPE = wireSchema(otlpRoot.lookupType('opentelemetry.proto.common.v1.InstrumentationScope'));

/** What keeps the encoded message of `schema` in `r` from decoding with the official decoder, e.g. `malformed protobuf at attributes[2].value.stringValue: invalid UTF-8`; undefined when it decodes. */
function wireProblem(schema: WireSchema, r: protobuf.Reader, depth: number, seen?: Int32Array): string | undefined {
  try {
    walk(r, schema, r.len, depth, seen);
    return undefined;
  } catch (err) {
    const path = err instanceof WireError ? err.path.join('.') : '';
    return `malformed protobuf${path ? ` at ${path}` : ''}: ${(err as Error).message}`;
  }
}

/** What keeps an encoded span from decoding with the official decoder, or undefined. */
export const spanWireProblem = (bytes: Uint8Array): string | undefined => wireProblem(SPAN, protobuf.Reader.create(bytes), MESSAGE_DEPTH.span);

// ---------------------------------------------------------------- frames

interface DecodedScopeSpans { scope?: Uint8Array; schemaUrl?: string; spans: Buffer[] }
interface DecodedResourceSpans { resource?: Uint8Array; schemaUrl?: string; scopeSpans: DecodedScopeSpans[] }

/** Numbers of the span's head fields (official Span: trace_id, span_id, parent_span_id, start/end_time_unix_nano). */
const TRACE_ID = 1;
const SPAN_ID = 2;
const PARENT_SPAN_ID = 4;
const START_TIME = 7;
const END_TIME = 8;
/** Where the walk of the span being framed found each top-level field (-1: not found); reused, frames are built one at a time. */
const seen = new Int32Array(END_TIME + 1);
const NO_ID = new Uint8Array();
const ZERO_TIME = protobuf.util.LongBits.zero.toLong(true);

/** The head from the positions the wire walk of the span in `r` found: ids as views into the span, timestamps as unsigned Longs; defaults where absent. */
function spanHead(r: protobuf.Reader): SpanHead {
  r.len = r.buf.length;
  const id = (number: number): Uint8Array => {
    if (seen[number]! < 0) return NO_ID;
    r.pos = seen[number]!;
    return r.bytes();
  };
  const time = (number: number): protobuf.Long => {
    if (seen[number]! < 0) return ZERO_TIME;
    r.pos = seen[number]!;
    return r.fixed64() as protobuf.Long;
  };
  return { traceId: id(TRACE_ID), spanId: id(SPAN_ID), parentSpanId: id(PARENT_SPAN_ID), startTimeUnixNano: time(START_TIME), endTimeUnixNano: time(END_TIME) };
}

/** Problems already known by position, e.g. bad OTLP/JSON values (keys: spanPath, resourcePath and scopePath of otlp/codec.ts). */
export type KnownProblems = ReadonlyMap<string, string>;

/** One walk checks the whole span and finds its head; a malformed span keeps what of its head was read before the problem, to be named by. */
function spanFrame(bytes: Buffer, known: string | undefined): SpanFrame {
  seen.fill(-1);
  const r = protobuf.Reader.create(bytes);
  const problem = wireProblem(SPAN, r, MESSAGE_DEPTH.span, seen);
  const head = spanHead(r);
  const reason = known ?? problem;
  return reason === undefined ? { bytes, head } : { bytes, head, problem: reason };
}

/**
 * An ExportTraceServiceRequest body → frames. Throws OtlpDecodeError saying
 * what is wrong when the envelopes cannot be read (no span boundaries); a
 * malformed span, resource or scope is marked on its frame instead, so the
 * rest of the request can still be accepted.
 */
export function decodeFrames(body: Uint8Array, known: KnownProblems = new Map()): RequestFrames {
  let request: { resourceSpans: DecodedResourceSpans[] };
  try {
    // A Buffer, so protobufjs's `bytes` are Buffer views into it.
    const buffer = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    request = RequestView.decode(buffer) as unknown as { resourceSpans: DecodedResourceSpans[] };
  } catch (err) {
    throw new OtlpDecodeError(`invalid OTLP protobuf ExportTraceServiceRequest: ${(err as Error).message}`);
  }
  // Paths are built only when there are known problems to look up.
  const look = known.size > 0;
  return {
    // Spreads keep exactly the envelope fields the sender set (own properties; defaults sit on the prototype).
    resourceSpans: request.resourceSpans.map((rs, i) => {
      const resourceProblem = (look ? known.get(resourcePath(i)) : undefined) ?? (rs.resource && wireProblem(RESOURCE, protobuf.Reader.create(rs.resource), MESSAGE_DEPTH.resource));
      const frame: ResourceSpansFrame = {
        ...rs,
        scopeSpans: rs.scopeSpans.map((ss, j) => {
          const scopeProblem = (look ? known.get(scopePath(i, j)) : undefined) ?? (ss.scope && wireProblem(SCOPE, protobuf.Reader.create(ss.scope), MESSAGE_DEPTH.scope));
          const spans = ss.spans.map((bytes, k) => spanFrame(bytes, look ? known.get(spanPath(i, j, k)) : undefined));
          return scopeProblem ? { ...ss, spans, scopeProblem } : { ...ss, spans };
        }),
      };
      if (resourceProblem) frame.resourceProblem = resourceProblem;
      return frame;
    }),
  };
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

/** A span's name, or '' when even its own fields are malformed: for messages about a span that may be. */
export function spanName(frame: SpanFrame): string {
  try {
    return (SpanNameView.decode(frame.bytes) as unknown as { name: string }).name;
  } catch {
    return '';
  }
}

/** An encoded Resource with the attribute `key` set to the string `value`, replacing whatever value the sender gave. Throws OtlpDecodeError for a malformed resource. */
export function resourceWithAttribute(resource: Uint8Array | undefined, key: string, value: string): Uint8Array {
  let decoded: { attributes: KeyValue[] };
  try {
    decoded = Resource.decode(resource ?? new Uint8Array()) as unknown as { attributes: KeyValue[] };
  } catch (err) {
    throw new OtlpDecodeError(`invalid OTLP protobuf Resource: ${(err as Error).message}`);
  }
  decoded.attributes = [...decoded.attributes.filter((kv) => kv.key !== key), { key, value: { stringValue: value } }];
  return Resource.encode(decoded).finish();
}
