/**
 * A kept span as a row of the `spans` table, shaped like the OpenTelemetry
 * Collector's ClickHouse exporter rows (attribute values as strings).
 */
import { formatInstant } from '../contract/rows.ts';
import type { AttrValue, SpanRecord } from '../otlp/codec.ts';
import { tenantOf } from './rollup.ts';

const KINDS = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'] as const;
const STATUS = ['UNSET', 'OK', 'ERROR'] as const;

function attrText(v: AttrValue): string {
  if (typeof v === 'string') return v;
  if (v === null) return '';
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v);
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x instanceof Uint8Array ? Buffer.from(x).toString('base64') : x));
}

const textMap = (attrs: Record<string, AttrValue>): Record<string, string> =>
  Object.fromEntries(Object.entries(attrs).map(([k, v]) => [k, attrText(v)]));

/** The spans of one OTLP message share their resource record: convert it once. */
const resourceTexts = new WeakMap<Record<string, AttrValue>, Record<string, string>>();

function resourceText(resource: Record<string, AttrValue>): Record<string, string> {
  let text = resourceTexts.get(resource);
  if (!text) resourceTexts.set(resource, (text = textMap(resource)));
  return text;
}

export interface SpanSampling {
  attemptId: string;
  rate: number;
  reason: string;
}

export function spanRow(span: SpanRecord, sampling: SpanSampling): object {
  const end = span.endTimeUnixNano >= span.startTimeUnixNano ? span.endTimeUnixNano : span.startTimeUnixNano;
  return {
    tenant: tenantOf(span),
    trace_id: span.traceId,
    span_id: span.spanId,
    parent_span_id: span.parentSpanId,
    attempt_id: sampling.attemptId,
    name: span.name,
    kind: KINDS[span.kind] ?? 'UNSPECIFIED',
    start_time: formatInstant(span.startTimeUnixNano),
    end_time: formatInstant(end),
    duration_ns: String(end - span.startTimeUnixNano),
    status_code: STATUS[span.status.code] ?? 'UNSET',
    status_message: span.status.message,
    attributes: textMap(span.attributes),
    resource_attributes: resourceText(span.resource),
    scope_name: span.scope.name,
    scope_version: span.scope.version,
    events: span.events.map((e) => ({ time: formatInstant(e.timeUnixNano), name: e.name, attributes: textMap(e.attributes) })),
    sampling_rate: sampling.rate,
    sample_reason: sampling.reason,
    // a span attributed to its attempt wins over the same span a re-reading consumer wrote outside any
    version: sampling.attemptId ? 1 : 0,
  };
}
