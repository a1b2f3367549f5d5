/**
 * A received body → the bus messages to publish: decode, stamp the tenant,
 * validate, split per trace. Pure and transport-independent (the HTTP and a
 * gRPC receiver call it alike), and what the ingest workers run for large
 * bodies, so its input and result are plain data a worker can pass back.
 */
import { ATTR } from '../contract/index.ts';
import type { BusMessage } from '../bus/types.ts';
import { OtlpDecodeError } from '../otlp/codec.ts';
import { countSpans } from '../otlp/count.ts';
import { traceMessages, withResourceAttribute } from '../otlp/split.ts';
import { decodeRequest, type PayloadEncoding } from './encoding.ts';
import { RequestTooLargeError, TENANT_HEADER } from './limits.ts';
import { rejectionMessage, rejectionViolations, validateRequest } from './validate.ts';

export interface IngestInput {
  encoding: PayloadEncoding;
  body: Uint8Array;
  /** With auth on: stamped as fleet.tenant on every resource and carried as a message header (queue shares). */
  tenant?: string | undefined;
  maxMessageBytes: number;
  /** Cap on spans in one request (RequestTooLargeError past it). */
  maxSpans: number;
}

export interface IngestResult {
  messages: BusMessage[];
  /** Spans in the request, and how many of them were rejected. */
  total: number;
  rejected: number;
  /** Why, when spans were rejected: the partial-success message and the same problems as field violations. */
  rejection?: { message: string; violations: { field: string; description: string }[] };
}

const tooManySpans = (max: number): RequestTooLargeError =>
  new RequestTooLargeError(
    `request holds more than ${max} spans, the limit per request (collector option maxSpansPerRequest): send them in smaller batches`,
  );

/**
 * Deepest JSON nesting accepted: an OTLP/JSON request nests ~20 levels to a
 * span's attribute value, and each nested AnyValue 3 more (protobufjs stops
 * at 100 nested messages anyway). Checked on the bytes before JSON.parse,
 * whose reviver would otherwise recurse until the stack overflows.
 */
const MAX_JSON_DEPTH = 400;

/** Where the JSON text nests deeper than `max` (byte offset), or -1; strings are skipped. */
function jsonTooDeep(body: Uint8Array, max: number): number {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped byte
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return i;
    } else if (c === 0x7d || c === 0x5d) depth--;
  }
  return -1;
}

/** Throws OtlpDecodeError for a body that is no export request, RequestTooLargeError past the span cap. */
export function prepareRequest(input: IngestInput): IngestResult {
  const { encoding, body, tenant, maxMessageBytes, maxSpans } = input;
  // Protobuf: counted on the wire before a single frame is built. JSON must be parsed to be counted.
  if (encoding === 'protobuf' && countSpans(body, maxSpans) > maxSpans) throw tooManySpans(maxSpans);
  if (encoding === 'json') {
    const at = jsonTooDeep(body, MAX_JSON_DEPTH);
    if (at >= 0) throw new OtlpDecodeError(`invalid OTLP/JSON: nested deeper than ${MAX_JSON_DEPTH} levels at byte ${at}`);
  }
  const decoded = decodeRequest(encoding, Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.byteLength));
  if (encoding === 'json') {
    let spans = 0;
    for (const rs of decoded.resourceSpans) for (const ss of rs.scopeSpans) spans += ss.spans.length;
    if (spans > maxSpans) throw tooManySpans(maxSpans);
  }
  // With auth on, the token decides the tenant: whatever the client put in fleet.tenant is overwritten.
  // Stamped before validation, so the size check sees the resources as they will be published.
  const stamped = tenant === undefined ? decoded : withResourceAttribute(decoded, ATTR.TENANT, tenant);
  const result = validateRequest(stamped, { maxMessageBytes });
  const messages = traceMessages(result.valid, maxMessageBytes);
  if (tenant !== undefined) for (const m of messages) m.headers = { ...m.headers, [TENANT_HEADER]: tenant };
  return {
    messages,
    total: result.total,
    rejected: result.rejected,
    ...(result.rejected > 0 && { rejection: { message: rejectionMessage(result), violations: rejectionViolations(result) } }),
  };
}
