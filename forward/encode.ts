/**
 * Kept spans → an OTLP ExportTraceServiceRequest, each span, resource and
 * scope byte for byte as received (otlp/frames.ts), so nothing the agent
 * sent is lost or re-typed on the way to the backend; the sampling decision
 * is appended to each span as two attributes. Appending works on the wire:
 * a repeated field may occur anywhere in a message, so a KeyValue written
 * after a span's encoding joins its attributes.
 */
import protobuf from 'protobufjs';
import { encodeFrames, type RequestFrames, type ResourceSpansFrame, type ScopeSpansFrame } from '../otlp/frames.ts';
import { otlpRoot } from '../otlp/proto.ts';
import type { KeptSpan } from './types.ts';

export const SAMPLING_REASON = 'fleet.sampling.reason';
export const SAMPLING_ADJUSTED_COUNT = 'fleet.sampling.adjusted_count';

const KeyValueType = otlpRoot.lookupType('opentelemetry.proto.common.v1.KeyValue');
/** Span.attributes is field 9, length-delimited: tag (9 << 3) | 2. */
const ATTRIBUTES_TAG = (9 << 3) | 2;

/** The encoded attribute fields of one sampling decision, shared by every span it kept. */
const decisionFields = new Map<string, Uint8Array>();

function decisionAttributes(reason: string, rate: number): Uint8Array {
  const key = `${reason}/${rate}`;
  let bytes = decisionFields.get(key);
  if (!bytes) {
    const w = protobuf.Writer.create();
    w.uint32(ATTRIBUTES_TAG).bytes(KeyValueType.encode({ key: SAMPLING_REASON, value: { stringValue: reason } }).finish());
    // 1 / the keep probability of its class: what one kept span stands for when counting
    w.uint32(ATTRIBUTES_TAG).bytes(KeyValueType.encode({ key: SAMPLING_ADJUSTED_COUNT, value: { doubleValue: rate > 0 ? 1 / rate : 0 } }).finish());
    bytes = w.finish();
    if (decisionFields.size < 64) decisionFields.set(key, bytes);
  }
  return bytes;
}

/**
 * One request holding `spans` (typically one trace's), grouped under the
 * resource and scope envelopes they arrived in, in order of arrival.
 */
export function encodeKept(spans: readonly KeptSpan[]): Uint8Array {
  const request: RequestFrames = { resourceSpans: [] };
  const resources = new Map<ResourceSpansFrame, { out: ResourceSpansFrame; scopes: Map<ScopeSpansFrame, ScopeSpansFrame> }>();
  for (const kept of spans) {
    const { resourceSpans: rs, scopeSpans: ss, span } = kept.source;
    let r = resources.get(rs);
    if (!r) {
      r = { out: { ...rs, scopeSpans: [] }, scopes: new Map() };
      resources.set(rs, r);
      request.resourceSpans.push(r.out);
    }
    let scope = r.scopes.get(ss);
    if (!scope) {
      scope = { ...ss, spans: [] };
      r.scopes.set(ss, scope);
      r.out.scopeSpans.push(scope);
    }
    scope.spans.push({ ...span, bytes: Buffer.concat([span.bytes, decisionAttributes(kept.reason, kept.rate)]) });
  }
  return encodeFrames(request);
}
