/**
 * LLM call spans in the OpenTelemetry GenAI convention, with token counts
 * taken from the provider's own usage object and written in the
 * convention's inclusive form (cache counts inside input_tokens, reasoning
 * inside output_tokens). A usage that cannot be trusted is recorded as an
 * exception on the span, its counts are left out and `fleet.usage.invalid`
 * says why: the pipeline reports the call as unpriced with that reason,
 * where a wrong count would be billed. Telemetry problems never fail the
 * agent's call.
 */
import { context, diag, SpanKind, trace, type Span } from '@opentelemetry/api';
import { ATTR, GEN_AI, LLM_OPERATIONS, SERVICE_TIERS, type ServiceTier } from '../contract/attributes.ts';
import { genAiUsageFromTokens } from '../contract/tokens.ts';
import { normalizeProvider } from '../contract/providers.ts';
import { noUsageReason } from '../pricing/engine.ts';
import { activeAttempt, type AttemptHandle } from './attempt.ts';
import type { RecordedCall } from './cost-preview.ts';
import { errorType, recordError, tracer } from './spans.ts';
import { show, type LlmOperation } from './usage/fields.ts';
import { formatOfProvider, isUsageFormat, USAGE_FORMATS, type ResponseReader, type UsageFormat } from './usage/index.ts';

export type { LlmOperation };

export interface LlmCallOptions {
  /** `gen_ai.provider.name`, e.g. `openai`, `anthropic`, `gcp.gemini`, `deepseek`, `openrouter`. */
  provider: string;
  /** `gen_ai.request.model`: the model asked for. */
  requestModel: string;
  /**
   * How to read the response's usage. Default: by provider (`anthropic`,
   * `deepseek`, `gcp.*` → gemini, `openrouter`, `x_ai` → xai, `moonshot`),
   * else `openai` (Chat Completions or Responses, recognised by their field
   * names; Embeddings for operation `embeddings`).
   */
  format?: UsageFormat;
  /** `fleet.service_tier`. Default: what the response says (OpenAI `service_tier`, Anthropic `usage.service_tier`), else `standard`. */
  serviceTier?: ServiceTier;
  /** `gen_ai.operation.name`; default `chat`. */
  operation?: LlmOperation;
}

/** The handle an LLM call's code receives. */
export interface LlmCall {
  /** The LLM call span. */
  readonly span: Span;
  /**
   * Records the provider's response (or an object of the same shape, e.g. the
   * final chunk of a stream, which carries the usage). Only needed when the
   * value fn returns is not the response; once per call.
   */
  record(response: unknown): void;
}

export interface RecordLlmCallOptions extends LlmCallOptions {
  /** The provider's response (body), as it would be returned to `llmCall`. */
  response: unknown;
  /** When the call started (Date or epoch milliseconds); default now. Prices are those in force then. */
  startTime?: Date | number;
  /** When it ended; default now. */
  endTime?: Date | number;
}

function validate(options: LlmCallOptions, api: string): void {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${api}: options must be an object, got ${show(options)}`);
  for (const key of ['provider', 'requestModel'] as const) {
    if (typeof options[key] !== 'string' || options[key] === '') throw new TypeError(`${api}: ${key} must be a non-empty string, got ${show(options[key])}`);
  }
  if (options.format !== undefined && !isUsageFormat(options.format)) {
    throw new TypeError(`${api}: format must be one of ${Object.keys(USAGE_FORMATS).join(', ')}, got ${show(options.format)}`);
  }
  if (options.serviceTier !== undefined && !SERVICE_TIERS.includes(options.serviceTier)) {
    throw new TypeError(`${api}: serviceTier must be one of ${SERVICE_TIERS.join(', ')}, got ${show(options.serviceTier)}`);
  }
  if (options.operation !== undefined && !LLM_OPERATIONS.includes(options.operation)) {
    throw new TypeError(`${api}: operation must be one of ${LLM_OPERATIONS.join(', ')}, got ${show(options.operation)}`);
  }
}

const epochMs = (t: Date | number | undefined): number => (t === undefined ? Date.now() : typeof t === 'number' ? t : t.getTime());

/** A call's start or end given to recordLlmCall: a valid Date or finite epoch milliseconds. */
function validTime(api: string, key: string, t: unknown): void {
  const valid = t === undefined || (typeof t === 'number' && Number.isFinite(t)) || (t instanceof Date && Number.isFinite(t.getTime()));
  if (!valid) throw new TypeError(`${api}: ${key} must be a Date or epoch milliseconds, got ${t instanceof Date ? 'an invalid Date' : show(t)}`);
}

class LlmCallSpan implements LlmCall {
  readonly span: Span;
  readonly #options: LlmCallOptions;
  readonly #operation: LlmOperation;
  /** As the pipeline normalises gen_ai.provider.name ('xai' → 'x_ai'), so the reader and the preview's card are the ones it uses. */
  readonly #provider: string;
  readonly #reader: ResponseReader;
  readonly #attempt: AttemptHandle | undefined;
  readonly #startedAtMs: number;
  readonly #name: string;
  #recorded = false;

  constructor(options: LlmCallOptions, startTime?: Date | number) {
    this.#options = options;
    this.#provider = normalizeProvider(options.provider);
    this.#reader = USAGE_FORMATS[options.format ?? formatOfProvider(this.#provider)];
    this.#attempt = activeAttempt();
    this.#startedAtMs = epochMs(startTime);
    const operation = options.operation ?? 'chat';
    this.#operation = operation;
    this.#name = `${operation} ${options.requestModel}`;
    this.span = tracer().startSpan(this.#name, {
      kind: SpanKind.CLIENT,
      // Given only for calls recorded after the fact: the SDK's own clock is finer than Date.now().
      ...(startTime !== undefined && { startTime }),
      attributes: {
        [GEN_AI.OPERATION_NAME]: operation,
        [GEN_AI.PROVIDER_NAME]: options.provider,
        [GEN_AI.REQUEST_MODEL]: options.requestModel,
      },
    });
  }

  get recorded(): boolean {
    return this.#recorded;
  }

  record(response: unknown): void {
    if (this.#recorded) {
      diag.warn(`perpass: LLM call "${this.#name}": response already recorded; a call has one usage, this one is ignored`);
      return;
    }
    this.#recorded = true;
    const { span } = this;
    const meta = this.#reader.metadata(response);
    if (meta.responseModel) span.setAttribute(GEN_AI.RESPONSE_MODEL, meta.responseModel);
    if (meta.responseId) span.setAttribute(GEN_AI.RESPONSE_ID, meta.responseId);
    const serviceTier = this.#options.serviceTier ?? meta.serviceTier ?? 'standard';
    span.setAttribute(ATTR.SERVICE_TIER, serviceTier);
    const call = this.#call(meta.responseModel, serviceTier);
    try {
      const { tokens, reportedCostUsd, cacheWrite1hTokens } = this.#reader.usage(response, this.#operation);
      const usage = genAiUsageFromTokens(tokens);
      span.setAttributes({
        [GEN_AI.USAGE_INPUT_TOKENS]: usage.inputTokens,
        [GEN_AI.USAGE_OUTPUT_TOKENS]: usage.outputTokens,
        [GEN_AI.USAGE_CACHE_READ_INPUT_TOKENS]: usage.cacheReadTokens,
        // The convention's current name (semantic-conventions-genai#440); the pipeline also reads the older cache_creation.
        [GEN_AI.USAGE_CACHE_WRITE_INPUT_TOKENS]: usage.cacheWriteTokens,
        [GEN_AI.USAGE_REASONING_OUTPUT_TOKENS]: usage.reasoningTokens,
      });
      if (reportedCostUsd !== undefined) span.setAttribute(ATTR.COST_REPORTED_USD, reportedCostUsd);
      if (cacheWrite1hTokens) span.setAttribute(ATTR.USAGE_CACHE_WRITE_1H_INPUT_TOKENS, cacheWrite1hTokens);
      call.tokens = tokens;
      if (cacheWrite1hTokens) call.cacheWrite1hTokens = cacheWrite1hTokens;
    } catch (err) {
      // Parsers throw InvalidUsageError; anything else is a bug here, which must not fail the agent's call either.
      const problem = err instanceof Error ? err.message : String(err);
      span.recordException(err instanceof Error ? err : problem);
      span.setAttribute(ATTR.USAGE_INVALID, problem);
      diag.warn(`perpass: LLM call "${this.#name}": token usage not exported: ${problem}`);
      call.problem = problem;
    }
    this.#attempt?.addCall(call);
  }

  /** The call as the attempt's cost preview records it, without usage yet. */
  #call(responseModel: string | undefined, serviceTier: ServiceTier): RecordedCall {
    const { requestModel } = this.#options;
    return { provider: this.#provider, model: responseModel ?? requestModel, requestModel, serviceTier, startedAtMs: this.#startedAtMs };
  }

  thrown(err: unknown): void {
    const error = recordError(this.span, err);
    if (this.#recorded) return;
    // The span ends without usage: the pipeline reports the call unpriced ("no token usage", naming error.type), and so does the preview.
    this.#recorded = true;
    this.#attempt?.addCall({ ...this.#call(undefined, this.#options.serviceTier ?? 'standard'), problem: noUsageReason(errorType(error)) });
  }

  end(endTime?: Date | number): void {
    this.span.end(endTime);
  }
}

/**
 * Runs one LLM call as a child span (`{operation} {requestModel}`) of the
 * active span and records the response fn returns (or the one passed to
 * `call.record`). Exceptions are recorded on the span and re-thrown.
 */
export async function llmCall<T>(options: LlmCallOptions, fn: (call: LlmCall) => T | Promise<T>): Promise<T> {
  validate(options, 'llmCall');
  if (typeof fn !== 'function') throw new TypeError(`llmCall: fn must be a function, got ${show(fn)}`);
  const call = new LlmCallSpan(options);
  try {
    const result = await context.with(trace.setSpan(context.active(), call.span), () => fn(call));
    if (!call.recorded) call.record(result);
    return result;
  } catch (err) {
    call.thrown(err);
    throw err;
  } finally {
    call.end();
  }
}

/** Records an LLM call that already happened (e.g. a batch result) as a finished child span of the active span. */
export function recordLlmCall(options: RecordLlmCallOptions): void {
  validate(options, 'recordLlmCall');
  validTime('recordLlmCall', 'startTime', options.startTime);
  validTime('recordLlmCall', 'endTime', options.endTime);
  if (options.startTime !== undefined && options.endTime !== undefined && epochMs(options.endTime) < epochMs(options.startTime)) {
    throw new RangeError(`recordLlmCall: endTime (${show(options.endTime)}) is before startTime (${show(options.startTime)})`);
  }
  const call = new LlmCallSpan(options, options.startTime);
  call.record(options.response);
  call.end(options.endTime);
}
