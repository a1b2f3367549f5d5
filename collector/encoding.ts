/**
 * The two OTLP/HTTP payload encodings: the request's Content-Type picks the
 * decoder, and the response must use the same Content-Type (OTLP/HTTP
 * "Response"). Success bodies are ExportTraceServiceResponse, failure bodies
 * google.rpc.Status.
 */
import { encodeTraceRequest, encodeTraceResponse, jsonTraceRequest, OtlpDecodeError } from '../otlp/codec.ts';
import { decodeFrames, type RequestFrames } from '../otlp/frames.ts';
import type { ContentCoding } from './decompress.ts';
import { encodeStatus, statusToJson, type RpcStatus } from '../otlp/status.ts';

export type PayloadEncoding = 'protobuf' | 'json';

/**
 * Content-Encoding header values → the coding decoded (collector/decompress.ts).
 * The names otelcol's confighttp and the OTel SDKs send: `zlib` is otelcol's
 * name for deflate, `x-gzip` an old alias of gzip.
 */
export const CONTENT_CODINGS: Readonly<Record<string, ContentCoding>> = {
  '': 'identity',
  identity: 'identity',
  gzip: 'gzip',
  'x-gzip': 'gzip',
  deflate: 'deflate',
  zlib: 'deflate',
  zstd: 'zstd',
  snappy: 'snappy',
  'x-snappy-framed': 'x-snappy-framed',
  lz4: 'lz4',
};

export const CONTENT_TYPE: Record<PayloadEncoding, string> = {
  protobuf: 'application/x-protobuf',
  json: 'application/json',
};

/** The encoding named by a Content-Type header (parameters such as charset ignored), or undefined. */
export function payloadEncoding(contentType: string | undefined): PayloadEncoding | undefined {
  const mediaType = (contentType ?? '').split(';', 1)[0]!.trim().toLowerCase();
  if (mediaType === CONTENT_TYPE.protobuf) return 'protobuf';
  if (mediaType === CONTENT_TYPE.json) return 'json';
  return undefined;
}

/**
 * JSON.parse reviver keeping the exact digits of integers beyond 2^53, such
 * as nanosecond timestamps sent as JSON numbers (OTLP/JSON allows int64 as
 * numbers): they become decimal strings, which the int64 fields take as is.
 */
function exactIntegers(_key: string, value: unknown, context?: { source?: string }): unknown {
  if (typeof value !== 'number' || Number.isSafeInteger(value) || !context?.source || !/^-?\d+$/.test(context.source)) return value;
  return context.source;
}

/**
 * Body → request frames; throws OtlpDecodeError saying what is wrong with a
 * body that is no export request, and marks the frames of spans, resources
 * and scopes that are unusable (validateRequest rejects them). A JSON body
 * is converted to protobuf first, so both take the same path from here;
 * what its conversion set apart is marked at the same positions.
 */
export function decodeRequest(encoding: PayloadEncoding, body: Buffer): RequestFrames {
  if (encoding === 'protobuf') return decodeFrames(body);
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'), exactIntegers as (key: string, value: unknown) => unknown);
  } catch (err) {
    throw new OtlpDecodeError(`invalid JSON: ${(err as Error).message}`);
  }
  const { request, rejected } = jsonTraceRequest(json);
  return decodeFrames(encodeTraceRequest(request), rejected);
}

export interface EncodedBody {
  contentType: string;
  body: Uint8Array | string;
}

/** ExportTraceServiceResponse, with partial_success set only when spans were rejected (OTLP "Full Success"). */
export function successBody(encoding: PayloadEncoding, partial?: { rejectedSpans: number; errorMessage: string }): EncodedBody {
  if (encoding === 'protobuf') return { contentType: CONTENT_TYPE.protobuf, body: encodeTraceResponse(partial) };
  // proto3 JSON mapping: int64 as a decimal string.
  const json = partial ? { partialSuccess: { rejectedSpans: String(partial.rejectedSpans), errorMessage: partial.errorMessage } } : {};
  return { contentType: CONTENT_TYPE.json, body: JSON.stringify(json) };
}

export function statusBody(encoding: PayloadEncoding, status: RpcStatus): EncodedBody {
  return encoding === 'protobuf'
    ? { contentType: CONTENT_TYPE.protobuf, body: encodeStatus(status) }
    : { contentType: CONTENT_TYPE.json, body: statusToJson(status) };
}
