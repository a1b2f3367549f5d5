/**
 * Getting perpass spans out of the process, in one call. With no tracer
 * provider registered, start the OpenTelemetry Node SDK exporting OTLP/HTTP
 * protobuf to the perpass collector. With one registered (the app runs its
 * own NodeSDK), attach to it and start nothing: withAttempt, llmCall and
 * withToolCall use the global tracer either way.
 *
 * The OpenTelemetry SDK and exporters keep reading their OTEL_* variables
 * (endpoint, headers, timeout, compression, service name, resource
 * attributes, sampler, propagators, OTEL_SDK_DISABLED, OTEL_BSP_*); options
 * given here win over them, as code configuration does in OpenTelemetry.
 */
import { context, createContextKey, diag, ProxyTracerProvider, ROOT_CONTEXT, trace, type Attributes, type TracerProvider } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { getNumberFromEnv, getStringFromEnv } from '@opentelemetry/core';
import { OTLPTraceExporter as OtlpHttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpHttpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { startNodeSdk } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { ATTR } from '../contract/attributes.ts';
import { show } from './usage/fields.ts';

export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const;
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number];

/** BatchSpanProcessor settings; each also reads its OTEL_BSP_* variable. */
export interface BatchOptions {
  /** OTEL_BSP_SCHEDULE_DELAY; perpass default 200 ms (the SDK's is 5 s). */
  scheduledDelayMillis?: number;
  /** OTEL_BSP_MAX_EXPORT_BATCH_SIZE; SDK default 512. */
  maxExportBatchSize?: number;
  /** OTEL_BSP_MAX_QUEUE_SIZE; SDK default 2048 (spans beyond it are dropped, with a warning). */
  maxQueueSize?: number;
  /** OTEL_BSP_EXPORT_TIMEOUT; SDK default 30 s. */
  exportTimeoutMillis?: number;
}

export interface PerpassOptions {
  /** `service.name` (else OTEL_SERVICE_NAME). */
  serviceName?: string;
  /**
   * Base URL of the collector, `/v1/traces` appended (else
   * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_ENDPOINT,
   * http://localhost:4318).
   */
  endpoint?: string;
  /** HTTP headers of each export, e.g. `{ authorization: 'Bearer …' }` (merged over OTEL_EXPORTER_OTLP_HEADERS). */
  headers?: Record<string, string>;
  /** Else OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, OTEL_EXPORTER_OTLP_PROTOCOL, `http/protobuf`. */
  protocol?: OtlpProtocol;
  /** Resource attribute `fleet.tenant` (the pipeline's default is `default`). */
  tenant?: string;
  /** Resource attribute `fleet.pool`. */
  pool?: string;
  /** More resource attributes (over OTEL_RESOURCE_ATTRIBUTES and the detected ones). */
  resourceAttributes?: Attributes;
  batch?: BatchOptions;
  /** OpenTelemetry diagnostic log level (else OTEL_LOG_LEVEL, `info`): none, error, warn, info, debug, verbose, all. */
  logLevel?: string;
}

export interface PerpassHandle {
  /**
   * `started`: perpass started the OpenTelemetry SDK and owns it.
   * `attached`: a tracer provider was already registered; perpass uses it and
   * leaves its configuration and lifetime to the app.
   * `disabled`: OTEL_SDK_DISABLED is set (or the SDK could not start); spans are not recorded.
   */
  readonly mode: 'started' | 'attached' | 'disabled';
  /** Exports every ended span now. */
  forceFlush(): Promise<void>;
  /** Flushes; in `started` mode also shuts the SDK down (an `attached` provider is the app's to shut down). */
  shutdown(): Promise<void>;
}

/**
 * The batch delay: the pipeline aims at < 2 s from attempt end to visible
 * $/pass, and export is its first hop. The SDK's 5 s default alone would miss
 * that; 200 ms batches every span an agent makes in that window into one
 * request, a negligible rate for agents whose calls take seconds.
 */
export const DEFAULT_SCHEDULED_DELAY_MS = 200;

type Flushable = TracerProvider & { forceFlush?: () => Promise<void> };

/** The provider the app registered globally, if any (the API's unregistered proxy delegates to a no-op). */
function registeredProvider(): Flushable | undefined {
  const global = trace.getTracerProvider() as Flushable & { getDelegate?: () => TracerProvider };
  const provider = typeof global.getDelegate === 'function' ? global.getDelegate() : global;
  return provider === UNREGISTERED ? undefined : provider;
}
const UNREGISTERED = new ProxyTracerProvider().getDelegate();

const PROBE = createContextKey('perpass context probe');
/** Whether the registered context manager carries context into callbacks (without one, spans cannot nest). */
const contextPropagates = (): boolean => context.with(ROOT_CONTEXT.setValue(PROBE, true), () => context.active().getValue(PROBE) === true);

function validate(options: PerpassOptions): void {
  if (typeof options !== 'object' || options === null) throw new TypeError(`setupPerpass: options must be an object, got ${show(options)}`);
  for (const key of ['serviceName', 'tenant', 'pool', 'logLevel'] as const) {
    const v = options[key];
    if (v !== undefined && (typeof v !== 'string' || v === '')) throw new TypeError(`setupPerpass: ${key} must be a non-empty string, got ${show(v)}`);
  }
  if (options.endpoint !== undefined) tracesUrl(options.endpoint);
  if (options.protocol !== undefined && !OTLP_PROTOCOLS.includes(options.protocol)) {
    throw new TypeError(`setupPerpass: protocol must be one of ${OTLP_PROTOCOLS.join(', ')}, got ${show(options.protocol)}`);
  }
  const { headers } = options;
  if (headers !== undefined && (typeof headers !== 'object' || headers === null || Array.isArray(headers) || Object.values(headers).some((v) => typeof v !== 'string'))) {
    throw new TypeError(`setupPerpass: headers must map header names to strings, got ${show(options.headers)}`);
  }
  for (const [key, v] of Object.entries(options.batch ?? {})) {
    if (v !== undefined && !(Number.isSafeInteger(v) && v >= 0)) throw new TypeError(`setupPerpass: batch.${key} must be a non-negative integer, got ${show(v)}`);
  }
}

/** The OTLP/HTTP traces URL of a collector base URL (a URL already ending in /v1/traces is kept). */
function tracesUrl(endpoint: string): string {
  if (typeof endpoint !== 'string') throw new TypeError(`setupPerpass: endpoint must be a URL string, got ${show(endpoint)}`);
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new TypeError(`setupPerpass: endpoint must be an absolute URL such as http://localhost:4318, got ${show(endpoint)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`setupPerpass: endpoint must be an http(s) URL, got ${show(endpoint)}`);
  if (url.pathname.endsWith('/v1/traces')) return url.href;
  url.pathname = `${url.pathname.replace(/\/$/, '')}/v1/traces`;
  return url.href;
}

function createExporter(options: PerpassOptions): SpanExporter {
  const protocol =
    options.protocol ?? getStringFromEnv('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? getStringFromEnv('OTEL_EXPORTER_OTLP_PROTOCOL') ?? 'http/protobuf';
  // Only what was given in code: the exporter itself falls back to the OTEL_EXPORTER_OTLP_* variables, then to localhost:4318.
  const config = {
    ...(options.endpoint !== undefined && { url: tracesUrl(options.endpoint) }),
    ...(options.headers !== undefined && { headers: options.headers }),
  };
  switch (protocol) {
    case 'http/protobuf':
      return new OtlpHttpProtobufExporter(config);
    case 'http/json':
      return new OtlpHttpJsonExporter(config);
    default:
      throw new Error(
        `setupPerpass: OTLP protocol ${show(protocol)} is not supported (the perpass collector receives OTLP/HTTP); use http/protobuf or http/json, or start your own NodeSDK with the exporter you need: perpass attaches to it`,
      );
  }
}

function batchOptions(batch: BatchOptions = {}): BatchOptions {
  return {
    scheduledDelayMillis: batch.scheduledDelayMillis ?? getNumberFromEnv('OTEL_BSP_SCHEDULE_DELAY') ?? DEFAULT_SCHEDULED_DELAY_MS,
    maxExportBatchSize: batch.maxExportBatchSize ?? getNumberFromEnv('OTEL_BSP_MAX_EXPORT_BATCH_SIZE'),
    maxQueueSize: batch.maxQueueSize ?? getNumberFromEnv('OTEL_BSP_MAX_QUEUE_SIZE'),
    exportTimeoutMillis: batch.exportTimeoutMillis ?? getNumberFromEnv('OTEL_BSP_EXPORT_TIMEOUT'),
  };
}

function resourceAttributes(options: PerpassOptions): Attributes {
  return {
    ...options.resourceAttributes,
    ...(options.serviceName !== undefined && { [ATTR_SERVICE_NAME]: options.serviceName }),
    ...(options.tenant !== undefined && { [ATTR.TENANT]: options.tenant }),
    ...(options.pool !== undefined && { [ATTR.POOL]: options.pool }),
  };
}

const flushOf = (provider: Flushable) => async (): Promise<void> => {
  await provider.forceFlush?.();
};

function attach(provider: Flushable, options: PerpassOptions): PerpassHandle {
  const ignored = Object.entries(options).filter(([, v]) => v !== undefined).map(([k]) => k);
  if (ignored.length > 0) {
    diag.warn(
      `perpass: a tracer provider is already registered, so setupPerpass attaches to it and ignores ${ignored.join(', ')}: configure exporter and resource on your SDK (or with OTEL_* variables)`,
    );
  }
  if (!contextPropagates()) {
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    diag.info('perpass: no context manager was registered; registered AsyncLocalStorageContextManager so that LLM and tool spans nest under their attempt');
  }
  const flush = flushOf(provider);
  return { mode: 'attached', forceFlush: flush, shutdown: flush };
}

function start(options: PerpassOptions): PerpassHandle {
  const configFile = getStringFromEnv('OTEL_CONFIG_FILE');
  if (configFile) diag.info(`perpass: OTEL_CONFIG_FILE=${configFile} configures the OpenTelemetry SDK; setupPerpass options other than logLevel do not apply`);
  const sdk = configFile
    ? startNodeSdk({ ...(options.logLevel !== undefined && { logLevel: options.logLevel }) })
    : startNodeSdk({
        spanProcessors: [new BatchSpanProcessor({ exporter: createExporter(options), ...batchOptions(options.batch) })],
        // perpass sends traces only; unset, these would start OTLP metrics and logs exporters the collector does not serve.
        metricReaders: [],
        logRecordProcessors: [],
        resourceAttributes: resourceAttributes(options),
        ...(options.logLevel !== undefined && { logLevel: options.logLevel }),
      });
  const provider = registeredProvider();
  if (!provider) {
    void sdk.shutdown();
    return { mode: 'disabled', forceFlush: async () => {}, shutdown: async () => {} };
  }
  let stopped: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
    process.off('beforeExit', onBeforeExit);
    return (stopped ??= sdk.shutdown());
  };
  // Without this, a script that returns without shutdown() loses the last batch: the batch timer does not keep Node alive.
  const onBeforeExit = (): void => void shutdown();
  process.once('beforeExit', onBeforeExit);
  return { mode: 'started', forceFlush: flushOf(provider), shutdown };
}

/**
 * Sets up export of perpass spans: starts the OpenTelemetry Node SDK, or
 * attaches to the tracer provider the app already registered. Call it before
 * the first attempt (and after starting your own SDK, if you have one).
 */
export function setupPerpass(options: PerpassOptions = {}): PerpassHandle {
  validate(options);
  const existing = registeredProvider();
  return existing ? attach(existing, options) : start(options);
}
