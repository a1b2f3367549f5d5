/**
 * OTLP trace codec: the official OTLP .proto definitions loaded with
 * protobufjs, plus the OTLP/JSON mapping quirks (hex ids, lowerCamelCase,
 * enums and int64 as numbers or strings). Shared by the collector (which
 * validates and re-publishes) and the consumers (which read the topic).
 */
import { otlpRoot } from './proto.ts';

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

const ID_FIELDS = ['traceId', 'spanId', 'parentSpanId'] as const;

/**
 * OTLP/JSON → message. The OTLP JSON mapping differs from proto3's canonical
 * JSON in that trace and span ids are hex, not base64; enums may be integers;
 * int64 fields may be strings or numbers; unknown fields are ignored.
 */
export function traceRequestFromJson(json: unknown): TraceRequest {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new OtlpDecodeError('OTLP/JSON body must be an object with a resourceSpans array');
  }
  const rs = (json as { resourceSpans?: unknown }).resourceSpans;
  if (rs !== undefined && !Array.isArray(rs)) throw new OtlpDecodeError('resourceSpans must be an array');
  for (const [i, r] of ((rs ?? []) as Record<string, unknown>[]).entries()) {
    const scopes = r?.scopeSpans;
    if (scopes !== undefined && !Array.isArray(scopes)) throw new OtlpDecodeError(`resourceSpans[${i}].scopeSpans must be an array`);
    for (const [j, s] of ((scopes ?? []) as Record<string, unknown>[]).entries()) {
      const spans = s?.spans;
      if (spans !== undefined && !Array.isArray(spans)) throw new OtlpDecodeError(`resourceSpans[${i}].scopeSpans[${j}].spans must be an array`);
      for (const [k, span] of ((spans ?? []) as Record<string, unknown>[]).entries()) {
        const where = `resourceSpans[${i}].scopeSpans[${j}].spans[${k}]`;
        hexIdsToBytes(span, where);
        for (const [l, link] of (Array.isArray(span?.links) ? (span.links as Record<string, unknown>[]) : []).entries()) {
          hexIdsToBytes(link, `${where}.links[${l}]`);
        }
      }
    }
  }
  try {
    return RequestType.fromObject(json as Record<string, unknown>) as unknown as TraceRequest;
  } catch (err) {
    throw new OtlpDecodeError(`invalid OTLP/JSON ExportTraceServiceRequest: ${(err as Error).message}`);
  }
}

function hexIdsToBytes(obj: Record<string, unknown> | undefined, where: string): void {
  if (!obj || typeof obj !== 'object') return;
  for (const field of ID_FIELDS) {
    const v = obj[field];
    if (v === undefined || v === null || v === '') continue;
    if (typeof v !== 'string' || !/^(?:[0-9a-fA-F]{2})*$/.test(v)) {
      throw new OtlpDecodeError(`${where}.${field} must be a hex string, got ${JSON.stringify(v)}`);
    }
    obj[field] = Buffer.from(v, 'hex');
  }
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
  for (const kv of kvs ?? []) out[kv.key] = anyValueToJs(kv.value);
  return out;
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
