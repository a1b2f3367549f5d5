/**
 * The bus message format, shared by the collector (which writes it) and the
 * consumers (which read it): key = the trace id in lowercase hex, value = an
 * OTLP `ExportTraceServiceRequest` protobuf holding only that trace's spans
 * with their resource and scope envelopes. This is what the OpenTelemetry
 * Collector's kafka exporter writes with `encoding: otlp_proto` and
 * `partition_traces_by_id: true`, so an existing otelcol can feed the topic
 * and Kafka's key partitioning gives every consumer whole traces.
 *
 * One message per trace of a request, or several when the trace's spans
 * would not fit one message of `maxMessageBytes`: Kafka refuses a record
 * batch above the topic's max.message.bytes (1 MiB by default, not
 * retriable), and an export request may be 64 MiB. All of them carry the
 * trace id as key, so they land on one partition in order, and the
 * consumers assemble traces span by span across messages anyway.
 *
 * Works on frames (otlp/frames.ts): spans, resources and scopes keep the
 * encoding the sender gave them. Pure functions: inputs are never mutated,
 * outputs share the (immutable) frames of the input.
 */
import type { BusMessage } from '../bus/types.ts';
import { bytesToHex } from './codec.ts';
import { encodeFrames, resourceWithAttribute, type RequestFrames, type ResourceSpansFrame, type ScopeSpansFrame, type SpanFrame } from './frames.ts';

/** Default bound of one bus message: half of Kafka's default max.message.bytes, so record batch overhead never matters. */
export const DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024;

/** Encoded size of a length-delimited field holding `n` bytes (field numbers below 16 take a one-byte tag). */
const fieldBytes = (n: number): number => 1 + (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5) + n;
/** A resource spans or scope spans wrapper: tag plus the longest length prefix of a message below 256 MiB (an upper bound, as its length is not known yet). */
const WRAPPER_BYTES = 1 + 4;
const optionalBytes = (b: Uint8Array | undefined): number => (b === undefined ? 0 : fieldBytes(b.length));
const schemaUrlBytes = (url: string | undefined): number => (url === undefined ? 0 : fieldBytes(Buffer.byteLength(url)));

/** Upper bounds of what each part adds to an encoded message (exact but for the wrappers' length prefixes). */
const resourceEnvelopeBytes = (rs: ResourceSpansFrame): number => WRAPPER_BYTES + optionalBytes(rs.resource) + schemaUrlBytes(rs.schemaUrl);
const scopeEnvelopeBytes = (ss: ScopeSpansFrame): number => WRAPPER_BYTES + optionalBytes(ss.scope) + schemaUrlBytes(ss.schemaUrl);
export const spanBytes = (span: SpanFrame): number => fieldBytes(span.bytes.length);

/**
 * A message holding only one span of this resource and scope takes at most
 * envelopeBytes(rs, ss) + spanBytes(span): a span above the message bound
 * with them cannot be published.
 */
export const envelopeBytes = (rs: ResourceSpansFrame, ss: ScopeSpansFrame): number => resourceEnvelopeBytes(rs) + scopeEnvelopeBytes(ss);

/** The message of one trace being filled, with its envelopes for the resource spans and scope spans being walked. */
interface OpenMessage {
  message: RequestFrames;
  bytes: number;
  rs?: ResourceSpansFrame;
  ss?: ScopeSpansFrame;
}

/**
 * The request's spans grouped by trace id (lowercase hex), in order of first
 * appearance, each trace in one message or, past `maxMessageBytes`, in
 * several (spans in order; a span too large for any message goes alone).
 * Each message keeps the envelopes its spans came in (resource, scope, both
 * schemaUrls); envelopes without spans of a trace are not repeated in it.
 */
export function splitByTrace(request: RequestFrames, maxMessageBytes = Infinity): Map<string, RequestFrames[]> {
  const traces = new Map<string, RequestFrames[]>();
  const open = new Map<string, OpenMessage>();
  for (const rs of request.resourceSpans) {
    const rsBytes = resourceEnvelopeBytes(rs);
    for (const ss of rs.scopeSpans) {
      const ssBytes = scopeEnvelopeBytes(ss);
      for (const span of ss.spans) {
        const traceId = bytesToHex(span.head.traceId);
        let m = open.get(traceId);
        const adds = spanBytes(span) + (m?.rs === rs ? (m.ss === ss ? 0 : ssBytes) : rsBytes + ssBytes);
        if (!m || (m.bytes > 0 && m.bytes + adds > maxMessageBytes)) {
          m = { message: { resourceSpans: [] }, bytes: 0 };
          open.set(traceId, m);
          const messages = traces.get(traceId);
          if (messages) messages.push(m.message);
          else traces.set(traceId, [m.message]);
        }
        if (m.rs !== rs) {
          m.rs = rs;
          m.ss = undefined;
          m.message.resourceSpans.push({ ...rs, scopeSpans: [] });
          m.bytes += rsBytes;
        }
        const rsOut = m.message.resourceSpans.at(-1)!;
        if (m.ss !== ss) {
          m.ss = ss;
          rsOut.scopeSpans.push({ ...ss, spans: [] });
          m.bytes += ssBytes;
        }
        rsOut.scopeSpans.at(-1)!.spans.push(span);
        m.bytes += spanBytes(span);
      }
    }
  }
  return traces;
}

/** The request with the string attribute `key` = `value` on every resource, replacing whatever value the sender gave (malformed resources are left as they are: their spans are rejected). */
export function withResourceAttribute(request: RequestFrames, key: string, value: string): RequestFrames {
  return {
    resourceSpans: request.resourceSpans.map((rs) => (rs.resourceProblem ? rs : { ...rs, resource: resourceWithAttribute(rs.resource, key, value) })),
  };
}

/** The bus messages of a request: per trace one or more, key = trace id (lowercase hex), value = OTLP protobuf of at most `maxMessageBytes` (but a span larger than that alone). */
export function traceMessages(request: RequestFrames, maxMessageBytes = DEFAULT_MAX_MESSAGE_BYTES): BusMessage[] {
  const out: BusMessage[] = [];
  for (const [key, messages] of splitByTrace(request, maxMessageBytes)) {
    for (const message of messages) out.push({ key, value: encodeFrames(message) });
  }
  return out;
}
