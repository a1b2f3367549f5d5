/**
 * Tool call spans (`execute_tool {name}`, GenAI convention), so an attempt's
 * trace shows what the agent did between model calls and where it failed.
 */
import { context, SpanKind, trace, type Span } from '@opentelemetry/api';
import { GEN_AI, TOOL_OPERATION } from '../contract/attributes.ts';
import { recordError, tracer } from './spans.ts';
import { show } from './usage/fields.ts';

export interface ToolCallOptions {
  /** `gen_ai.tool.call.id`: the id the model gave the call (Anthropic `toolu_…`, OpenAI `call_…`). */
  callId?: string;
}

/** Runs fn as a tool call span, child of the active span; exceptions are recorded on the span and re-thrown. */
export async function withToolCall<T>(name: string, fn: (span: Span) => T | Promise<T>, options: ToolCallOptions = {}): Promise<T> {
  if (typeof name !== 'string' || name === '') throw new TypeError(`withToolCall: name must be a non-empty string, got ${show(name)}`);
  if (typeof fn !== 'function') throw new TypeError(`withToolCall: fn must be a function, got ${show(fn)}`);
  if (options.callId !== undefined && (typeof options.callId !== 'string' || options.callId === '')) {
    throw new TypeError(`withToolCall: callId must be a non-empty string, got ${show(options.callId)}`);
  }
  const span = tracer().startSpan(`${TOOL_OPERATION} ${name}`, {
    kind: SpanKind.INTERNAL,
    attributes: {
      [GEN_AI.OPERATION_NAME]: TOOL_OPERATION,
      [GEN_AI.TOOL_NAME]: name,
      ...(options.callId !== undefined && { [GEN_AI.TOOL_CALL_ID]: options.callId }),
    },
  });
  try {
    return await context.with(trace.setSpan(context.active(), span), () => fn(span));
  } catch (err) {
    recordError(span, err);
    throw err;
  } finally {
    span.end();
  }
}
