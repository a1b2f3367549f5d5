/**
 * OTLP trace codec: the official OTLP .proto definitions loaded with
 * protobufjs, plus the OTLP/JSON mapping quirks (hex ids, lowerCamelCase,
 * enums and int64 as numbers or strings). Shared by the collector (which
 * validates and re-publishes) and the consumers (which read the topic).
 */
import protobuf from 'protobufjs';
import { MESSAGE_DEPTH, otlpRoot } from './proto.ts';

const RequestType = otlpRoot.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest');
const ResponseType = otlpRoot.lookupType('opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse');

/** Plain-object shapes of the OTLP messages (protobufjs message instances satisfy them). */
export interface KeyValue { key: string; value?: AnyValue | null }
export interface AnyValue {
  stringValue?: string | null;
  boolValue?: boolean | null;
  intValue?: number | Long | string | null;
  doubleValue?: number | null;
  arrayValue?: { values?: AnyValue[] | null } | null;
  kvlistValue?: { values?: KeyValue[] | null } | null;
  bytesValue?: Uint8Array | null;
}
interface Long { toString(): string; toNumber(): number; low: number; high: number; unsigned: boolean }
export interface OtlpEvent { timeUnixNano?: number | Long | string | null; name?: string | null; attributes?: KeyValue[] | null }
export interface OtlpLink { traceId?: Uint8Array | null; spanId?: Uint8Array | null; attributes?: KeyValue[] | null }
export interface OtlpSpan {
  traceId?: Uint8Array | null;
  spanId?: Uint8Array | null;
  traceState?: string | null;
  parentSpanId?: Uint8Array | null;
  flags?: number | null;
  name?: string | null;
  kind?: number | null;
  startTimeUnixNano?: number | Long | string | null;
  endTimeUnixNano?: number | Long | string | null;
  attributes?: KeyValue[] | null;
  events?: OtlpEvent[] | null;
  links?: OtlpLink[] | null;
  status?: { code?: number | null; message?: string | null } | null;
}
export interface ScopeSpans { scope?: { name?: string | null; version?: string | null; attributes?: KeyValue[] | null } | null; spans?: OtlpSpan[] | null; schemaUrl?: string | null }
export interface ResourceSpans { resource?: { attributes?: KeyValue[] | null } | null; scopeSpans?: ScopeSpans[] | null; schemaUrl?: string | null }
export interface TraceRequest { resourceSpans?: ResourceSpans[] | null }

/** A decode failure, with a message saying what is wrong. */
export class OtlpDecodeError extends Error {
  override name = 'OtlpDecodeError';
}

export function decodeTraceRequest(body: Uint8Array): TraceRequest {
  try {
    return RequestType.decode(body) as unknown as TraceRequest;
  } catch (err) {
    throw new OtlpDecodeError(`invalid OTLP protobuf ExportTraceServiceRequest: ${(err as Error).message}`);
  }
}

export function encodeTraceRequest(request: TraceRequest): Uint8Array {
  return RequestType.encode(RequestType.fromObject(request as Record<string, unknown>)).finish();
}

export function encodeTraceResponse(partial?: { rejectedSpans: number; errorMessage: string }): Uint8Array {
  return ResponseType.encode(ResponseType.fromObject(partial ? { partialSuccess: partial } : {})).finish();
}

export function decodeTraceResponse(body: Uint8Array): { partialSuccess?: { rejectedSpans?: number | Long; errorMessage?: string } } {
  return ResponseType.toObject(ResponseType.decode(body)) as never;
}

// ---------------------------------------------------------------- OTLP/JSON

const SpanType = otlpRoot.lookupType('opentelemetry.proto.trace.v1.Span');
const LinkType = otlpRoot.lookupType('opentelemetry.proto.trace.v1.Span.Link');
const ResourceSpansType = otlpRoot.lookupType('opentelemetry.proto.trace.v1.ResourceSpans');
const ScopeSpansType = otlpRoot.lookupType('opentelemetry.proto.trace.v1.ScopeSpans');
const ResourceType = otlpRoot.lookupType('opentelemetry.proto.resource.v1.Resource');
const ScopeType = otlpRoot.lookupType('opentelemetry.proto.common.v1.InstrumentationScope');

/** The ids OTLP/JSON writes in hex instead of proto3 JSON's base64. */
const HEX_ID_FIELDS: ReadonlySet<protobuf.Field> = new Set([SpanType.fields.traceId!, SpanType.fields.spanId!, SpanType.fields.parentSpanId!, LinkType.fields.traceId!, LinkType.fields.spanId!]);

const INT64 = [-(2n ** 63n), 2n ** 63n - 1n] as const;
const UINT64 = [0n, 2n ** 64n - 1n] as const;
const INT32 = [-(2n ** 31n), 2n ** 31n - 1n] as const;
const UINT32 = [0n, 2n ** 32n - 1n] as const;
/** The range of each protobuf integer type. */
const INTEGER_RANGES: Record<string, readonly [bigint, bigint]> = {
  int64: INT64, sint64: INT64, sfixed64: INT64, uint64: UINT64, fixed64: UINT64,
  int32: INT32, sint32: INT32, sfixed32: INT32, uint32: UINT32, fixed32: UINT32,
};
const DECIMAL_FLOAT = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;
/** Standard or URL-safe alphabet, padding optional: what protobufjs's base64 decoder reads. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const preview = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 40 ? `${text.slice(0, 37)}...` : text;
};

/** An OTLP/JSON integer (number or decimal string) within the range of its protobuf type, or what it must be. */
function integerProblem(v: unknown, type: string): string | undefined {
  const range = INTEGER_RANGES[type];
  if (!range) throw new Error(`OTLP/JSON check: no rule for protobuf type ${type}`);
  const unsigned = range[0] === 0n;
  let value: bigint;
  if (typeof v === 'number' && Number.isInteger(v)) value = BigInt(v);
  else if (typeof v === 'string' && (unsigned ? /^\d+$/ : /^-?\d+$/).test(v)) value = BigInt(v);
  else return `must be ${unsigned ? 'an unsigned' : 'an'} integer (a JSON number or decimal string)`;
  return value < range[0] || value > range[1] ? `is out of range for ${type}` : undefined;
}

/**
 * What is wrong with one OTLP/JSON field value, as protobufjs's fromObject
 * would otherwise coerce it silently (intValue "abc" → 0, "12x" → 12,
 * "false" → true) or throw for the whole request. Hex ids are converted to
 * bytes in place; message values are walked (problems go to `out`).
 */
function valueProblem(field: protobuf.Field, v: unknown, holder: Record<string, unknown> | unknown[], key: string | number, where: string, depth: number, out: string[]): string | undefined {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) {
    if (!isObject(v)) return 'must be an object';
    if (depth + 1 > protobuf.util.recursionLimit) return `is nested deeper than ${protobuf.util.recursionLimit} messages`;
    jsonMessageProblems(resolved, v, where, depth + 1, out);
    return undefined;
  }
  if (resolved instanceof protobuf.Enum) {
    if (typeof v === 'number' ? (v | 0) === v : typeof v === 'string' && Object.hasOwn(resolved.values, v)) return undefined;
    return `must be one of ${Object.keys(resolved.values).join(', ')} or an integer`;
  }
  switch (field.type) {
    case 'string':
      // A lone surrogate has no UTF-8 encoding; the decoder would refuse what protobufjs writes for it.
      return typeof v !== 'string' ? 'must be a string' : v.isWellFormed() ? undefined : 'must be well-formed Unicode (it holds a lone surrogate)';
    case 'bool':
      return typeof v === 'boolean' ? undefined : 'must be true or false';
    case 'double':
    case 'float':
      if (typeof v === 'number' || (typeof v === 'string' && (DECIMAL_FLOAT.test(v) || v === 'NaN' || v === 'Infinity' || v === '-Infinity'))) return undefined;
      return 'must be a number (or "NaN", "Infinity", "-Infinity")';
    case 'bytes':
      if (HEX_ID_FIELDS.has(field)) {
        if (typeof v !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(v)) return 'must be a hex string';
        (holder as Record<string | number, unknown>)[key] = Buffer.from(v, 'hex');
        return undefined;
      }
      return typeof v === 'string' && BASE64.test(v) && v.replace(/=+$/, '').length % 4 !== 1 ? undefined : 'must be a base64 string';
    default:
      return integerProblem(v, field.type);
  }
}

/** Fields of each message type by JSON name (own properties only: a "__proto__" key is no field). */
const fieldMaps = new Map<protobuf.Type, Map<string, protobuf.Field>>();
function fieldsByName(type: protobuf.Type): Map<string, protobuf.Field> {
  let fields = fieldMaps.get(type);
  if (!fields) {
    fields = new Map(type.fieldsArray.map((f) => [f.name, f.resolve()]));
    fieldMaps.set(type, fields);
  }
  return fields;
}

/**
 * Every problem of one OTLP/JSON message of `type`, at any depth, as
 * `path: what is wrong` into `out` (paths from `path`). `depth` is the
 * message's depth as protobufjs counts it (request = 0), whose limit it
 * enforces. Unknown fields are ignored (OTLP/JSON); null means unset.
 */
function jsonMessageProblems(type: protobuf.Type, obj: Record<string, unknown>, path: string, depth: number, out: string[], skip?: ReadonlySet<string>): void {
  const fields = fieldsByName(type);
  for (const key of Object.keys(obj)) {
    const field = fields.get(key);
    const v = obj[key];
    if (!field || skip?.has(key) || v === null || v === undefined) continue;
    const where = path ? `${path}.${key}` : key;
    if (!field.repeated) {
      const problem = valueProblem(field, v, obj, key, where, depth, out);
      if (problem) out.push(`${where} ${problem}, got ${preview(v)}`);
    } else if (!Array.isArray(v)) out.push(`${where} must be an array, got ${preview(v)}`);
    else {
      for (const [i, item] of v.entries()) {
        const problem = valueProblem(field, item, v, i, `${where}[${i}]`, depth, out);
        if (problem) out.push(`${where}[${i}] ${problem}, got ${preview(item)}`);
      }
    }
  }
  for (const oneof of type.oneofsArray) {
    const set = oneof.oneof.filter((name) => obj[name] !== undefined && obj[name] !== null);
    if (set.length > 1) out.push(`${path || type.name} sets ${set.join(' and ')}, which exclude each other`);
  }
}

/**
 * Positions in a request: how the JSON conversion names what it set apart,
 * how frames look those problems up (otlp/frames.ts KnownProblems) and how
 * partial success reports rejections — one spelling for all three.
 */
export const resourcePath = (i: number) => `resourceSpans[${i}].resource`;
export const scopePath = (i: number, j: number) => `resourceSpans[${i}].scopeSpans[${j}].scope`;
export const spanPath = (i: number, j: number, k: number) => `resourceSpans[${i}].scopeSpans[${j}].spans[${k}]`;

/** What still names a rejected span in messages: its ids if they converted, its name if usable. */
function spanNaming(span: Record<string, unknown>): Record<string, unknown> {
  const kept: Record<string, unknown> = {};
  for (const id of ['traceId', 'spanId'] as const) if (Buffer.isBuffer(span[id])) kept[id] = span[id];
  if (typeof span.name === 'string' && span.name.isWellFormed()) kept.name = span.name;
  return kept;
}

/**
 * The problems of a resource, scope or span (`holder[key]`), or undefined.
 * A bad one is replaced by what still names it (`naming`; nothing for
 * resources and scopes), so the rest of the request converts and positions stay.
 */
function partProblem(type: protobuf.Type, holder: unknown[] | Record<string, unknown>, key: number | string, depth: number, naming?: (v: Record<string, unknown>) => Record<string, unknown>): string | undefined {
  const v = (holder as Record<string | number, unknown>)[key];
  const out: string[] = [];
  if (!isObject(v)) out.push(`must be an object, got ${preview(v)}`);
  else jsonMessageProblems(type, v, '', depth, out);
  if (out.length === 0) return undefined;
  (holder as Record<string | number, unknown>)[key] = isObject(v) && naming ? naming(v) : {};
  return out.join('; ');
}

function envelope(type: protobuf.Type, v: unknown, path: string, nested: ReadonlySet<string>, depth: number): Record<string, unknown> {
  if (!isObject(v)) throw new OtlpDecodeError(`${path} must be an object, got ${preview(v)}`);
  const out: string[] = [];
  jsonMessageProblems(type, v, path, depth, out, nested);
  if (out.length > 0) throw new OtlpDecodeError(`invalid OTLP/JSON ExportTraceServiceRequest: ${out.join('; ')}`);
  return v;
}

function list(v: unknown, path: string): unknown[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) throw new OtlpDecodeError(`${path} must be an array`);
  return v;
}

/**
 * OTLP/JSON → message, with the resources, scopes and spans that cannot be
 * converted faithfully set apart: `rejected` maps their path (e.g.
 * `resourceSpans[0].scopeSpans[0].spans[3]`) to what is wrong with them
 * (e.g. `startTimeUnixNano must be an unsigned integer …, got "12x"`); in
 * `request` each keeps only what names it (ids, name), so positions stay
 * those of the JSON. The OTLP JSON mapping differs from proto3's canonical
 * JSON in that trace and span ids are hex, not base64; enums may be
 * integers; int64 fields may be strings or numbers; unknown fields are
 * ignored. Throws OtlpDecodeError for a body whose envelopes are not an
 * export request.
 */
export function jsonTraceRequest(json: unknown): { request: TraceRequest; rejected: Map<string, string> } {
  if (!isObject(json)) throw new OtlpDecodeError('OTLP/JSON body must be an object with a resourceSpans array');
  const rejected = new Map<string, string>();
  const note = (path: string, problem: string | undefined) => problem !== undefined && rejected.set(path, problem);
  for (const [i, rsValue] of list(json.resourceSpans, 'resourceSpans').entries()) {
    const rs = envelope(ResourceSpansType, rsValue, `resourceSpans[${i}]`, new Set(['resource', 'scopeSpans']), MESSAGE_DEPTH.resourceSpans);
    if (rs.resource !== undefined && rs.resource !== null) note(resourcePath(i), partProblem(ResourceType, rs, 'resource', MESSAGE_DEPTH.resource));
    for (const [j, ssValue] of list(rs.scopeSpans, `resourceSpans[${i}].scopeSpans`).entries()) {
      const ss = envelope(ScopeSpansType, ssValue, `resourceSpans[${i}].scopeSpans[${j}]`, new Set(['scope', 'spans']), MESSAGE_DEPTH.scopeSpans);
      if (ss.scope !== undefined && ss.scope !== null) note(scopePath(i, j), partProblem(ScopeType, ss, 'scope', MESSAGE_DEPTH.scope));
      const spans = list(ss.spans, `resourceSpans[${i}].scopeSpans[${j}].spans`);
      for (const k of spans.keys()) note(spanPath(i, j, k), partProblem(SpanType, spans, k, MESSAGE_DEPTH.span, spanNaming));
    }
  }
  try {
    return { request: RequestType.fromObject(json) as unknown as TraceRequest, rejected };
  } catch (err) {
    throw new OtlpDecodeError(`invalid OTLP/JSON ExportTraceServiceRequest: ${(err as Error).message}`);
  }
}

/** OTLP/JSON → message, refusing (OtlpDecodeError naming the path) anything jsonTraceRequest would set apart. */
export function traceRequestFromJson(json: unknown): TraceRequest {
  const { request, rejected } = jsonTraceRequest(json);
  if (rejected.size > 0) {
    throw new OtlpDecodeError(`invalid OTLP/JSON ExportTraceServiceRequest: ${[...rejected].map(([path, problem]) => `${path}: ${problem}`).join(' | ')}`);
  }
  return request;
}

export function bytesToHex(b: Uint8Array | null | undefined): string {
  return b && b.length > 0 ? Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex') : '';
}

/** Nanosecond timestamp (Long, number or decimal string) → bigint. */
export function nanosToBigInt(v: number | Long | string | null | undefined): bigint {
  if (v === null || v === undefined) return 0n;
  if (typeof v === 'number') return BigInt(Math.trunc(v));
  return typeof v === 'string' ? BigInt(v) : longToBigInt(v);
}

/** From the two 32-bit halves: Long#toString divides digit by digit, a hot cost per span. */
function longToBigInt(v: Long): bigint {
  const u = (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return v.unsigned ? u : BigInt.asIntN(64, u);
}

/** An attribute value as a plain JS value: int64 beyond 2^53 stays a bigint. */
export type AttrValue = string | number | boolean | bigint | Uint8Array | AttrValue[] | { [key: string]: AttrValue } | null;

export function anyValueToJs(v: AnyValue | null | undefined): AttrValue {
  if (!v) return null;
  // protobufjs messages name the set member of the `value` oneof (proto3
  // defaults live on the prototype); plain objects carry only what is set.
  const which = (v as { value?: unknown }).value;
  const has = (k: keyof AnyValue) => (typeof which === 'string' ? which === k : Object.hasOwn(v, k) && v[k] != null);
  if (has('stringValue')) return v.stringValue ?? '';
  if (has('boolValue')) return v.boolValue ?? false;
  if (has('intValue')) {
    const i = v.intValue ?? 0;
    const big = typeof i === 'object' ? longToBigInt(i) : BigInt(i);
    return big >= BigInt(Number.MIN_SAFE_INTEGER) && big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : big;
  }
  if (has('doubleValue')) return v.doubleValue ?? 0;
  if (has('arrayValue')) return (v.arrayValue?.values ?? []).map(anyValueToJs);
  if (has('kvlistValue')) return attributesToRecord(v.kvlistValue?.values);
  if (has('bytesValue')) return v.bytesValue ?? new Uint8Array();
  return null;
}

export function attributesToRecord(kvs: KeyValue[] | null | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of kvs ?? []) setOwn(out, kv.key, anyValueToJs(kv.value));
  return out;
}

/**
 * `record[key] = value`, except that a key `__proto__` (any string is a valid
 * attribute key) becomes an own property like any other instead of dropping
 * the value or replacing the record's prototype.
 */
export function setOwn<T>(record: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
  else record[key] = value;
}

/** A span flattened with its resource and scope: what the consumers work on. */
export interface SpanRecord {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  name: string;
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Record<string, AttrValue>;
  resource: Record<string, AttrValue>;
  scope: { name: string; version: string };
  status: { code: number; message: string };
  events: { timeUnixNano: bigint; name: string; attributes: Record<string, AttrValue> }[];
}

export function* flattenSpans(request: TraceRequest): Generator<SpanRecord> {
  for (const rs of request.resourceSpans ?? []) {
    const resource = attributesToRecord(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      const scope = { name: ss.scope?.name ?? '', version: ss.scope?.version ?? '' };
      for (const s of ss.spans ?? []) {
        yield {
          traceId: bytesToHex(s.traceId),
          spanId: bytesToHex(s.spanId),
          parentSpanId: bytesToHex(s.parentSpanId),
          traceState: s.traceState ?? '',
          name: s.name ?? '',
          kind: s.kind ?? 0,
          startTimeUnixNano: nanosToBigInt(s.startTimeUnixNano),
          endTimeUnixNano: nanosToBigInt(s.endTimeUnixNano),
          attributes: attributesToRecord(s.attributes),
          resource,
          scope,
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          events: (s.events ?? []).map((e) => ({
            timeUnixNano: nanosToBigInt(e.timeUnixNano),
            name: e.name ?? '',
            attributes: attributesToRecord(e.attributes),
          })),
        };
      }
    }
  }
}

/** Base64 (protobufjs's JSON form of bytes) → lowercase hex. */
const base64ToHex = (v: unknown): unknown => (typeof v === 'string' ? Buffer.from(v, 'base64').toString('hex') : v);

/**
 * An ExportTraceServiceRequest protobuf body → its OTLP/JSON encoding: proto3
 * JSON with lowerCamelCase names, enums as integers, int64 as decimal
 * strings, but trace and span ids in hex (OTLP's one departure from proto3
 * JSON). Throws OtlpDecodeError for a body that does not decode.
 */
export function traceRequestToJson(body: Uint8Array): string {
  const json = RequestType.toObject(decodeTraceRequest(body) as unknown as protobuf.Message, { longs: String, enums: Number, bytes: String, json: true }) as {
    resourceSpans?: { scopeSpans?: { spans?: Record<string, unknown>[] }[] }[];
  };
  for (const rs of json.resourceSpans ?? []) {
    for (const ss of rs.scopeSpans ?? []) {
      for (const span of ss.spans ?? []) {
        for (const f of ['traceId', 'spanId', 'parentSpanId']) if (f in span) span[f] = base64ToHex(span[f]);
        for (const link of (span.links ?? []) as Record<string, unknown>[]) {
          for (const f of ['traceId', 'spanId']) if (f in link) link[f] = base64ToHex(link[f]);
        }
      }
    }
  }
  return JSON.stringify(json);
}
