/**
 * The official OTLP trace definitions (otlp/proto, see its README) loaded
 * with protobufjs once, for the codec (otlp/codec.ts) and for the views of
 * the messages the collector builds (otlp/frames.ts). Field names are
 * lowerCamelCase, as protobufjs decodes them.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const PROTO_DIR = path.join(path.dirname(fileURLToPath(import.meta.url)), 'proto');

export const otlpRoot = new protobuf.Root();
// Imports in the .proto files are relative to the proto root, not to the importing file.
otlpRoot.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
otlpRoot.loadSync('opentelemetry/proto/collector/trace/v1/trace_service.proto', { keepCase: false });

/**
 * Depths of the messages the collector checks, as protobufjs's decoder and
 * fromObject count them from the request (0); their limit
 * (util.recursionLimit) applies to what is nested below.
 */
export const MESSAGE_DEPTH = { resourceSpans: 1, resource: 2, scopeSpans: 2, scope: 3, span: 3 } as const;
