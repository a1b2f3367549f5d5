/**
 * Span validation at the edge. A span the consumers could not decode
 * (malformed protobuf, bad OTLP/JSON values: marked on its frame by the
 * decoding), could not place (bad ids, time running backwards) or that
 * breaks the attempt wire contract, or one too large for a bus message, is
 * rejected here, where the sender still gets told (OTLP partial success),
 * instead of being dead-lettered with its whole trace message or silently
 * skewing $/pass downstream. A malformed resource or scope rejects its
 * spans. Everything else of a valid span passes through untouched.
 */
import { ATTR, describeSpan, isAttemptSpan, parseAttemptAttributes, type SpanRef } from '../contract/index.ts';
import { attributesToRecord, bytesToHex, resourcePath, scopePath, spanPath } from '../otlp/codec.ts';
import { spanLabels, spanName, type RequestFrames, type SpanFrame, type SpanHead } from '../otlp/frames.ts';
import { DEFAULT_MAX_MESSAGE_BYTES, envelopeBytes, spanBytes } from '../otlp/split.ts';

/** How many span problems the partial-success message spells out; the count covers the rest. */
const MAX_PROBLEMS_IN_MESSAGE = 10;

/** Attempt attributes all live under this prefix; only those are converted, to keep validation cheap. */
const FLEET_PREFIX = 'fleet.';

/**
 * The keys that make a span claim to be an attempt (contract isAttemptSpan).
 * A key is encoded as its UTF-8 bytes, so a span whose encoding holds
 * neither is no attempt, and its attributes need not be decoded at all: most
 * spans (LLM and tool calls) are checked without decoding an attribute.
 */
const ATTEMPT_KEYS = [ATTR.SPEC_ID, ATTR.ATTEMPT_NUMBER].map((key) => Buffer.from(key));

export interface ValidationOptions {
  /** Bound of one bus message (otlp/split.ts): a span that does not fit one with its resource and scope is rejected. */
  maxMessageBytes: number;
}

export interface ValidationResult {
  /** The request without the rejected spans (the input itself when none was rejected). */
  valid: RequestFrames;
  /** Spans in the request. */
  total: number;
  /** Spans rejected (the sum of the problems' spans). */
  rejected: number;
  /** One entry per rejected span, or per malformed resource or scope with all its spans. */
  problems: SpanProblem[];
}

export interface SpanProblem {
  /** Where it sits in the request, e.g. `resourceSpans[0].scopeSpans[1].spans[4]` or `resourceSpans[0].resource`. */
  path: string;
  /** What is wrong, naming the span (id, name, trace) and the field. */
  message: string;
  /** How many spans it rejects: 1 for a span, all of them for a resource or scope. */
  spans: number;
}

const isAllZero = (b: Uint8Array): boolean => b.every((x) => x === 0);

function idProblem(field: string, id: Uint8Array, bytes: number, optional: boolean): string | undefined {
  if (id.length === 0) return optional ? undefined : `${field} is required (${bytes} bytes)`;
  if (id.length !== bytes) return `${field} must be ${bytes} bytes${optional ? ' or empty' : ''}, got ${id.length}`;
  if (!optional && isAllZero(id)) return `${field} must not be all zeros`;
  return undefined;
}

/** a < b for the unsigned 64-bit Longs of timestamps, compared by halves (no BigInt for every span). */
const isBefore = (a: SpanHead['endTimeUnixNano'], b: SpanHead['endTimeUnixNano']): boolean =>
  a.high >>> 0 !== b.high >>> 0 ? a.high >>> 0 < b.high >>> 0 : a.low >>> 0 < b.low >>> 0;

/** The span as messages name it. Only for messages: the name costs a decode, and hex ids would cost more than the checks. */
const spanRef = (span: SpanFrame, name = spanName(span)): SpanRef => ({ traceId: bytesToHex(span.head.traceId), spanId: bytesToHex(span.head.spanId), name });

/** What is wrong with one span (`bytes`: of a message holding it alone, see envelopeBytes), or undefined when it is valid. */
export function spanProblem(span: SpanFrame, bytes: number, options: ValidationOptions): string | undefined {
  if (span.problem !== undefined) return `${describeSpan(spanRef(span))}: ${span.problem}`;
  if (bytes > options.maxMessageBytes) {
    return `${describeSpan(spanRef(span))}: with its resource and scope it takes ${bytes} bytes, more than the ${options.maxMessageBytes} bytes of a bus message (collector option maxMessageBytes)`;
  }
  const { head } = span;
  const problems = [
    idProblem('traceId', head.traceId, 16, false),
    idProblem('spanId', head.spanId, 8, false),
    idProblem('parentSpanId', head.parentSpanId, 8, true),
  ].filter((p) => p !== undefined);
  const { startTimeUnixNano: start, endTimeUnixNano: end } = head;
  if ((end.high !== 0 || end.low !== 0) && isBefore(end, start)) problems.push(`endTimeUnixNano ${String(end)} is before startTimeUnixNano ${String(start)}`);
  if (problems.length > 0) return `${describeSpan(spanRef(span))}: ${problems.join('; ')}`;

  if (!ATTEMPT_KEYS.some((key) => span.bytes.includes(key))) return undefined;
  const labels = spanLabels(span);
  const attributes = attributesToRecord(labels.attributes.filter((kv) => kv.key.startsWith(FLEET_PREFIX)));
  if (!isAttemptSpan(attributes)) return undefined;
  try {
    parseAttemptAttributes(spanRef(span, labels.name), attributes);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/**
 * The key of a valid span (8-byte span id) in the map of ids: a number from
 * 52 bits of its span id, random in practice — no string per span. Spans
 * whose numbers meet are told apart by their ids (sameIds).
 */
const idNumber = ({ spanId: s }: SpanHead): number =>
  ((s[0]! | (s[1]! << 8) | (s[2]! << 16) | (s[3]! << 24)) >>> 0) * 0x100000 + (s[4]! | (s[5]! << 8) | ((s[6]! & 0x0f) << 16));

// only reached for spans whose numbers meet (a resent span, or a rare collision): Buffer.compare takes the ids' views as they are
const sameIds = (a: SpanHead, b: SpanHead): boolean => Buffer.compare(a.spanId, b.spanId) === 0 && Buffer.compare(a.traceId, b.traceId) === 0;

/** A span seen valid, chained to the others whose idNumber is the same. */
interface Seen {
  span: SpanFrame;
  path: string;
  next: Seen | undefined;
}

const sameBytes = (a: SpanFrame, b: SpanFrame): boolean => a.bytes.length === b.bytes.length && a.bytes.equals(b.bytes);

export function validateRequest(request: RequestFrames, options: ValidationOptions = { maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES }): ValidationResult {
  let total = 0;
  const problems: SpanProblem[] = [];
  const rejected = new Set<SpanFrame>();
  const reject = (path: string, message: string, spans: SpanFrame[]) => {
    problems.push({ path, message, spans: spans.length });
    for (const span of spans) rejected.add(span);
  };
  /**
   * Valid spans by (trace id, span id). Two different spans with one id
   * cannot both be kept (the consumers take the second for a redelivery of
   * the first and drop it), and keeping either would mislead: an LLM call
   * that reuses its attempt's span id would leave the attempt without its
   * call, priced at 0. Both are rejected. Identical copies (a span sent
   * twice) pass: the consumers deduplicate them.
   */
  const byId = new Map<number, Seen>();
  const checkUnique = (span: SpanFrame, path: string) => {
    const n = idNumber(span.head);
    const chain = byId.get(n);
    let first = chain;
    while (first && !sameIds(first.span.head, span.head)) first = first.next;
    if (!first) {
      byId.set(n, { span, path, next: chain });
      return;
    }
    if (sameBytes(first.span, span)) return;
    const why = `span ids must be unique within a trace, and neither span can be attributed (an LLM call reusing its attempt's span id would leave the attempt without the call's cost)`;
    if (!rejected.has(first.span)) reject(first.path, `${describeSpan(spanRef(first.span))}: another span of the request (${path}) has the same span id; ${why}`, [first.span]);
    reject(path, `${describeSpan(spanRef(span))}: another span of the request (${first.path}) has the same span id; ${why}`, [span]);
  };
  /** A malformed resource or scope: none of its spans can be published. */
  const rejectEnvelope = (path: string, problem: string, spans: SpanFrame[]) => {
    total += spans.length;
    if (spans.length > 0) reject(path, `${path}: ${problem} (its ${spans.length} span${spans.length === 1 ? ' is' : 's are'} rejected)`, spans);
  };
  for (const [i, rs] of request.resourceSpans.entries()) {
    if (rs.resourceProblem !== undefined) {
      rejectEnvelope(resourcePath(i), rs.resourceProblem, rs.scopeSpans.flatMap((ss) => ss.spans));
      continue;
    }
    for (const [j, ss] of rs.scopeSpans.entries()) {
      if (ss.scopeProblem !== undefined) {
        rejectEnvelope(scopePath(i, j), ss.scopeProblem, ss.spans);
        continue;
      }
      const envelope = envelopeBytes(rs, ss);
      for (const [k, span] of ss.spans.entries()) {
        total += 1;
        const message = spanProblem(span, envelope + spanBytes(span), options);
        if (message !== undefined) reject(spanPath(i, j, k), message, [span]);
        else checkUnique(span, spanPath(i, j, k));
      }
    }
  }
  if (rejected.size === 0) return { valid: request, total, rejected: 0, problems };
  const valid = {
    resourceSpans: request.resourceSpans.map((rs) => ({
      ...rs,
      scopeSpans: rs.scopeSpans.map((ss) => ({ ...ss, spans: ss.spans.filter((span) => !rejected.has(span)) })),
    })),
  };
  return { valid, total, rejected: rejected.size, problems };
}

/** The message for a validation with rejected spans (partial-success `error_message`, or a 400's Status). */
export function rejectionMessage(result: ValidationResult): string {
  const shown = result.problems.slice(0, MAX_PROBLEMS_IN_MESSAGE).map((p) => p.message);
  const more = result.problems.length - shown.length;
  return `rejected ${result.rejected} of ${result.total} spans: ${shown.join(' | ')}` + (more > 0 ? ` | and ${more} more problems` : '');
}

/** The same problems as google.rpc.BadRequest field violations (as many as the message spells out). */
export function rejectionViolations(result: ValidationResult): { field: string; description: string }[] {
  return result.problems.slice(0, MAX_PROBLEMS_IN_MESSAGE).map((p) => ({ field: p.path, description: p.message }));
}
