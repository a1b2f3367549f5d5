/**
 * What the consumers hand the forwarder: each kept span as it was received
 * (its encoding, and the encoded resource and scope it came with), with the
 * sampling decision that kept it.
 */
import type { ResourceSpansFrame, ScopeSpansFrame, SpanFrame } from '../otlp/frames.ts';

/** A span's encoding as received, with the envelopes it came in. */
export interface SpanSource {
  span: SpanFrame;
  resourceSpans: ResourceSpansFrame;
  scopeSpans: ScopeSpansFrame;
}

export interface KeptSpan {
  traceId: string;
  tenant: string;
  source: SpanSource;
  /** Probability with which spans of this class are kept (adjusted count = 1 / rate). */
  rate: number;
  /** Why kept: failure, outlier_cost, outlier_duration, pass_sampled, outside_attempt, invalid_attempt. */
  reason: string;
}

/** Takes kept spans without waiting on any backend: a down backend never slows the consumers. */
export interface KeptSpanSink {
  add(spans: readonly KeptSpan[]): void;
}
