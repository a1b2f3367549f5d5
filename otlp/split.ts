/**
 * The bus message format, shared by the collector (which writes it) and the
 * consumers (which read it): one message per trace, key = the trace id in
 * lowercase hex, value = an OTLP `ExportTraceServiceRequest` protobuf holding
 * only that trace's spans with their resource and scope envelopes. This is
 * what the OpenTelemetry Collector's kafka exporter writes with
 * `encoding: otlp_proto` and `partition_traces_by_id: true`, so an existing
 * otelcol can feed the topic and Kafka's key partitioning gives every
 * consumer whole traces.
 *
 * Works on frames (otlp/frames.ts): spans, resources and scopes keep the
 * encoding the sender gave them. Pure functions: inputs are never mutated,
 * outputs share the (immutable) frames of the input.
 */
import type { BusMessage } from '../bus/types.ts';
import { bytesToHex } from './codec.ts';
import { encodeFrames, resourceWithAttribute, type RequestFrames, type ResourceSpansFrame, type ScopeSpansFrame } from './frames.ts';

/**
 * The request's spans grouped by trace id (lowercase hex), in order of first
 * appearance. Each group keeps the envelopes its spans came in (resource,
 * scope, both schemaUrls); envelopes left without spans of a trace are not
 * repeated in its group.
 */
export function splitByTrace(request: RequestFrames): Map<string, RequestFrames> {
  const traces = new Map<string, RequestFrames>();
  for (const rs of request.resourceSpans) {
    // The copies of this envelope made for each trace met inside it so far.
    const rsByTrace = new Map<string, ResourceSpansFrame>();
    for (const ss of rs.scopeSpans) {
      const ssByTrace = new Map<string, ScopeSpansFrame>();
      for (const span of ss.spans) {
        const traceId = bytesToHex(span.head.traceId);
        let ssOut = ssByTrace.get(traceId);
        if (!ssOut) {
          let rsOut = rsByTrace.get(traceId);
          if (!rsOut) {
            rsOut = { ...rs, scopeSpans: [] };
            rsByTrace.set(traceId, rsOut);
            let trace = traces.get(traceId);
            if (!trace) traces.set(traceId, (trace = { resourceSpans: [] }));
            trace.resourceSpans.push(rsOut);
          }
          ssOut = { ...ss, spans: [] };
          ssByTrace.set(traceId, ssOut);
          rsOut.scopeSpans.push(ssOut);
        }
        ssOut.spans.push(span);
      }
    }
  }
  return traces;
}

/** The request with the string attribute `key` = `value` on every resource, replacing whatever value the sender gave. */
export function withResourceAttribute(request: RequestFrames, key: string, value: string): RequestFrames {
  return { resourceSpans: request.resourceSpans.map((rs) => ({ ...rs, resource: resourceWithAttribute(rs.resource, key, value) })) };
}

/** One bus message per trace of the request: key = trace id (lowercase hex), value = OTLP protobuf. */
export function traceMessages(request: RequestFrames): BusMessage[] {
  return [...splitByTrace(request)].map(([key, trace]) => ({ key, value: encodeFrames(trace) }));
}
