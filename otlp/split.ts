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
 * Pure functions: inputs are never mutated, outputs share the (immutable)
 * span, resource and scope objects of the input.
 */
import { bytesToHex, encodeTraceRequest, type ResourceSpans, type ScopeSpans, type TraceRequest } from './codec.ts';

/**
 * The request's spans grouped by trace id (lowercase hex), in order of first
 * appearance. Each group keeps the envelopes its spans came in (resource,
 * scope, both schemaUrls and any other envelope field); envelopes left
 * without spans of a trace are not repeated in its group.
 */
export function splitByTrace(request: TraceRequest): Map<string, TraceRequest> {
  const traces = new Map<string, ResourceSpans[]>();
  for (const rs of request.resourceSpans ?? []) {
    // The copies of this envelope made for each trace met inside it so far.
    const rsByTrace = new Map<string, ResourceSpans & { scopeSpans: ScopeSpans[] }>();
    for (const ss of rs.scopeSpans ?? []) {
      const ssByTrace = new Map<string, ScopeSpans & { spans: NonNullable<ScopeSpans['spans']> }>();
      for (const span of ss.spans ?? []) {
        const traceId = bytesToHex(span.traceId);
        let ssOut = ssByTrace.get(traceId);
        if (!ssOut) {
          let rsOut = rsByTrace.get(traceId);
          if (!rsOut) {
            rsOut = { ...rs, scopeSpans: [] };
            rsByTrace.set(traceId, rsOut);
            let group = traces.get(traceId);
            if (!group) traces.set(traceId, (group = []));
            group.push(rsOut);
          }
          ssOut = { ...ss, spans: [] };
          ssByTrace.set(traceId, ssOut);
          rsOut.scopeSpans.push(ssOut);
        }
        ssOut.spans.push(span);
      }
    }
  }
  return new Map([...traces].map(([traceId, resourceSpans]) => [traceId, { resourceSpans }]));
}

/** The request with `key` set to the string `value` on every resource, replacing whatever value the sender gave. */
export function withResourceAttribute(request: TraceRequest, key: string, value: string): TraceRequest {
  return {
    ...request,
    resourceSpans: (request.resourceSpans ?? []).map((rs) => ({
      ...rs,
      resource: {
        ...rs.resource,
        attributes: [...(rs.resource?.attributes ?? []).filter((kv) => kv.key !== key), { key, value: { stringValue: value } }],
      },
    })),
  };
}

/** One bus message per trace of the request: key = trace id (lowercase hex), value = OTLP protobuf. */
export function traceMessages(request: TraceRequest): { key: string; value: Uint8Array }[] {
  return [...splitByTrace(request)].map(([key, trace]) => ({ key, value: encodeTraceRequest(trace) }));
}
