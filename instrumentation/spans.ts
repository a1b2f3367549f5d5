/**
 * What every perpass span shares: the tracer it comes from and how a failure
 * is recorded on it.
 */
import { SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';

/** Instrumentation scope of perpass spans. */
const SCOPE_NAME = 'perpass';

/**
 * The global tracer provider's tracer, looked up per span rather than once,
 * so that a provider registered (or replaced) after this module was imported
 * is the one used.
 */
export const tracer = (): Tracer => trace.getTracer(SCOPE_NAME);

/** The `error.type` of an error: its class name. */
export const errorType = (error: Error): string => error.name || 'Error';

/** Records a thrown value as the span's exception, `error.type` and ERROR status; returns it as an Error. */
export function recordError(span: Span, thrown: unknown): Error {
  const error = thrown instanceof Error ? thrown : new Error(String(thrown));
  span.recordException(error);
  span.setAttribute(ATTR_ERROR_TYPE, errorType(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
  return error;
}
