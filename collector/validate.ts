/**
 * Span validation at the edge. A span the consumers could not place (bad
 * ids, time running backwards) or an attempt span breaking the wire contract
 * is rejected here, where the sender still gets told (OTLP partial success),
 * instead of silently skewing $/pass downstream. Everything else of a valid
 * span passes through untouched.
 */
import { describeSpan, isAttemptSpan, parseAttemptAttributes, type SpanRef } from '../contract/index.ts';
import { attributesToRecord, bytesToHex, nanosToBigInt, type OtlpSpan, type TraceRequest } from '../otlp/codec.ts';

/** How many span problems the partial-success message spells out; the count covers the rest. */
const MAX_PROBLEMS_IN_MESSAGE = 10;

/** Attempt attributes all live under this prefix; only those are converted, to keep validation cheap. */
const FLEET_PREFIX = 'fleet.';

export interface ValidationResult {
  /** The request without the rejected spans (the input itself when none was rejected). */
  valid: TraceRequest;
  /** Spans in the request. */
  total: number;
  /** One entry per rejected span, naming the span and the field. */
  problems: SpanProblem[];
}

export interface SpanProblem {
  /** Where the span sits in the request, e.g. `resourceSpans[0].scopeSpans[1].spans[4]`. */
  path: string;
  /** What is wrong, naming the span (id, name, trace) and the field. */
  message: string;
}

const isAllZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

function idProblem(field: string, id: Uint8Array | null | undefined, bytes: number, optional: boolean): string | undefined {
  const len = id?.length ?? 0;
  if (len === 0) return optional ? undefined : `${field} is required (${bytes} bytes)`;
  if (len !== bytes) return `${field} must be ${bytes} bytes${optional ? ' or empty' : ''}, got ${len}`;
  if (!optional && isAllZero(id!)) return `${field} must not be all zeros`;
  return undefined;
}

/**
 * A timestamp as a bigint. Decoded int64 fields are Long objects; combining
 * their halves is much cheaper than the decimal round trip of the codec's
 * nanosToBigInt, and this runs twice per span.
 */
function nanos(v: OtlpSpan['startTimeUnixNano']): bigint {
  if (typeof v === 'object' && v !== null) return (BigInt(v.high >>> 0) << 32n) | BigInt(v.low >>> 0);
  return nanosToBigInt(v);
}

/** What is wrong with one span, or undefined when it is valid. */
export function spanProblem(span: OtlpSpan): string | undefined {
  // Hex ids only for messages: converting every span's ids would cost more than the checks.
  const ref = (): SpanRef => ({ traceId: bytesToHex(span.traceId), spanId: bytesToHex(span.spanId), name: span.name ?? '' });
  const problems = [
    idProblem('traceId', span.traceId, 16, false),
    idProblem('spanId', span.spanId, 8, false),
    idProblem('parentSpanId', span.parentSpanId, 8, true),
  ].filter((p) => p !== undefined);
  const start = nanos(span.startTimeUnixNano);
  const end = nanos(span.endTimeUnixNano);
  if (end !== 0n && end < start) problems.push(`endTimeUnixNano ${end} is before startTimeUnixNano ${start}`);
  if (problems.length > 0) return `${describeSpan(ref())}: ${problems.join('; ')}`;

  const fleetAttributes = (span.attributes ?? []).filter((kv) => kv.key.startsWith(FLEET_PREFIX));
  if (fleetAttributes.length === 0) return undefined;
  const attributes = attributesToRecord(fleetAttributes);
  if (!isAttemptSpan(attributes)) return undefined;
  try {
    parseAttemptAttributes(ref(), attributes);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

export function validateRequest(request: TraceRequest): ValidationResult {
  let total = 0;
  const problems: SpanProblem[] = [];
  const rejected = new Set<OtlpSpan>();
  for (const [i, rs] of (request.resourceSpans ?? []).entries()) {
    for (const [j, ss] of (rs.scopeSpans ?? []).entries()) {
      for (const [k, span] of (ss.spans ?? []).entries()) {
        total += 1;
        const message = spanProblem(span);
        if (message === undefined) continue;
        problems.push({ path: `resourceSpans[${i}].scopeSpans[${j}].spans[${k}]`, message });
        rejected.add(span);
      }
    }
  }
  if (rejected.size === 0) return { valid: request, total, problems };
  const valid = {
    ...request,
    resourceSpans: (request.resourceSpans ?? []).map((rs) => ({
      ...rs,
      scopeSpans: (rs.scopeSpans ?? []).map((ss) => ({ ...ss, spans: (ss.spans ?? []).filter((span) => !rejected.has(span)) })),
    })),
  };
  return { valid, total, problems };
}

/** The message for a validation with rejected spans (partial-success `error_message`, or a 400's Status). */
export function rejectionMessage(result: ValidationResult): string {
  const shown = result.problems.slice(0, MAX_PROBLEMS_IN_MESSAGE).map((p) => p.message);
  const more = result.problems.length - shown.length;
  return `rejected ${result.problems.length} of ${result.total} spans: ${shown.join(' | ')}` + (more > 0 ? ` | and ${more} more` : '');
}

/** The same problems as google.rpc.BadRequest field violations (as many as the message spells out). */
export function rejectionViolations(result: ValidationResult): { field: string; description: string }[] {
  return result.problems.slice(0, MAX_PROBLEMS_IN_MESSAGE).map((p) => ({ field: p.path, description: p.message }));
}
