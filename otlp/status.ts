/**
 * `google.rpc.Status`, the body OTLP/HTTP prescribes for every 4xx/5xx
 * response, in both encodings a client may have asked for (protobuf or the
 * proto3 JSON mapping). The spec suggests a `google.rpc.BadRequest` detail for
 * bad data; throttling responses also carry a `google.rpc.RetryInfo` so a
 * client that ignores the Retry-After header still learns the delay.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const PROTO_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'proto');

const root = new protobuf.Root();
root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
root.loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: false });

const StatusType = root.lookupType('google.rpc.Status');
const BadRequestType = root.lookupType('google.rpc.BadRequest');
const RetryInfoType = root.lookupType('google.rpc.RetryInfo');

const TYPE_URL_PREFIX = 'type.googleapis.com/google.rpc.';
const BAD_REQUEST_URL = `${TYPE_URL_PREFIX}BadRequest`;
const RETRY_INFO_URL = `${TYPE_URL_PREFIX}RetryInfo`;

/** The `google.rpc.Code` values the collector uses (OTLP clients do not act on them; they help troubleshooting). */
export const RPC_CODE = {
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

export interface FieldViolation {
  /** Path of the offending field in the request, e.g. `body` or `resourceSpans[0]`. */
  field: string;
  description: string;
}

/** A status in plain form; the two optional details map to BadRequest and RetryInfo. */
export interface RpcStatus {
  code: number;
  message: string;
  fieldViolations?: FieldViolation[];
  retryDelaySeconds?: number;
}

export function encodeStatus(status: RpcStatus): Uint8Array {
  // protobufjs's bundled google/protobuf/any.proto keeps the proto field name type_url.
  const details: { type_url: string; value: Uint8Array }[] = [];
  if (status.fieldViolations?.length) {
    details.push({ type_url: BAD_REQUEST_URL, value: BadRequestType.encode(BadRequestType.fromObject({ fieldViolations: status.fieldViolations })).finish() });
  }
  if (status.retryDelaySeconds !== undefined) {
    details.push({ type_url: RETRY_INFO_URL, value: RetryInfoType.encode(RetryInfoType.fromObject({ retryDelay: { seconds: status.retryDelaySeconds } })).finish() });
  }
  return StatusType.encode(StatusType.fromObject({ code: status.code, message: status.message, details })).finish();
}

/** The proto3 JSON mapping of the status (Any details carry `@type`; Duration is a `"<n>s"` string). */
export function statusToJson(status: RpcStatus): string {
  const details: Record<string, unknown>[] = [];
  if (status.fieldViolations?.length) details.push({ '@type': BAD_REQUEST_URL, fieldViolations: status.fieldViolations });
  if (status.retryDelaySeconds !== undefined) details.push({ '@type': RETRY_INFO_URL, retryDelay: `${status.retryDelaySeconds}s` });
  return JSON.stringify({ code: status.code, message: status.message, ...(details.length > 0 && { details }) });
}

/** Protobuf body → plain status, unpacking the detail types above (others are skipped). */
export function decodeStatus(body: Uint8Array): RpcStatus {
  const decoded = StatusType.toObject(StatusType.decode(body), { defaults: true, longs: Number }) as {
    code: number;
    message: string;
    details: { type_url: string; value: Uint8Array }[];
  };
  const status: RpcStatus = { code: decoded.code, message: decoded.message };
  for (const d of decoded.details) {
    if (d.type_url === BAD_REQUEST_URL) {
      const br = BadRequestType.toObject(BadRequestType.decode(d.value), { defaults: true }) as { fieldViolations: FieldViolation[] };
      status.fieldViolations = br.fieldViolations.map((v) => ({ field: v.field, description: v.description }));
    } else if (d.type_url === RETRY_INFO_URL) {
      const ri = RetryInfoType.toObject(RetryInfoType.decode(d.value), { defaults: true, longs: Number }) as { retryDelay?: { seconds: number } };
      status.retryDelaySeconds = ri.retryDelay?.seconds ?? 0;
    }
  }
  return status;
}
