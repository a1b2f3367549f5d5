/**
 * Counting the spans of an encoded export request without decoding it: only
 * the tags of the request, its ResourceSpans and ScopeSpans are read and
 * everything else is skipped, so a receiver can refuse a request with too
 * many spans before building a frame for any of them.
 */
import protobuf from 'protobufjs';

/** Field numbers: ExportTraceServiceRequest.resource_spans, ResourceSpans.scope_spans, ScopeSpans.spans. */
const RESOURCE_SPANS = 1;
const SCOPE_SPANS = 2;
const SPANS = 2;
const LENGTH_DELIMITED = 2;

/** Calls `inside` with the end of each length-delimited field `field` of the message in r up to `end`. */
function eachField(r: protobuf.Reader, end: number, field: number, inside: (end: number) => void): void {
  while (r.pos < end) {
    const tag = r.uint32();
    if (tag >>> 3 === field && (tag & 7) === LENGTH_DELIMITED) {
      const length = r.uint32();
      const fieldEnd = r.pos + length;
      if (fieldEnd > end) throw new RangeError('length past the end of its message');
      inside(fieldEnd);
      r.pos = fieldEnd;
    } else {
      r.skipType(tag & 7);
    }
  }
}

/**
 * The number of spans in an ExportTraceServiceRequest protobuf, or the count
 * so far once it passes `limit`. A malformed envelope ends the count where
 * it is: the decoder then says what is wrong with it.
 */
export function countSpans(body: Uint8Array, limit = Infinity): number {
  const r = protobuf.Reader.create(body);
  let spans = 0;
  try {
    eachField(r, body.length, RESOURCE_SPANS, (rsEnd) =>
      eachField(r, rsEnd, SCOPE_SPANS, (ssEnd) =>
        eachField(r, ssEnd, SPANS, () => {
          spans += 1;
          if (spans > limit) throw new LimitReached();
        }),
      ),
    );
  } catch {
    // past the limit, or a malformed envelope (protobufjs's RangeError / Error): the count so far is the answer
  }
  return spans;
}

class LimitReached extends Error {}
