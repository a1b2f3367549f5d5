/**
 * Reading a provider's usage object field by field. Every problem becomes an
 * InvalidUsageError naming the provider and the field path, so a bad count is
 * reported where it came from instead of being exported as a token count.
 */
import type { LLM_OPERATIONS, ServiceTier } from '../../contract/attributes.ts';
import { InvalidUsageError, tokensFromGenAiUsage, type TokenCounts } from '../../contract/tokens.ts';

export type JsonObject = Record<string, unknown>;

/** `gen_ai.operation.name` of an LLM call. */
export type LlmOperation = (typeof LLM_OPERATIONS)[number];

export const isObject = (v: unknown): v is JsonObject => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A value as it appears in an error message (NaN and Infinity stay readable). */
export const show = (v: unknown): string => (typeof v === 'number' || typeof v === 'bigint' ? String(v) : (JSON.stringify(v) ?? String(v)));

/** The usage object of `provider`'s response; a missing one is reported too (the call could not be priced). */
export function usageObject(provider: string, usage: unknown): JsonObject {
  if (!isObject(usage)) throw new InvalidUsageError(`${provider} usage must be an object, got ${show(usage)}`);
  return usage;
}

/**
 * The count at a dot-separated path. A required count must be present; an
 * optional one is 0 when it or its parent object is absent or null (providers
 * send null for features a request did not use).
 */
export function count(provider: string, usage: JsonObject, path: string, required: boolean): number {
  let v: unknown = usage;
  for (const key of path.split('.')) {
    if (v === undefined || v === null) break;
    if (!isObject(v)) throw new InvalidUsageError(`${provider} usage: the parent of ${path} must be an object, got ${show(v)}`);
    v = v[key];
  }
  if (v === undefined || v === null) {
    if (required) throw new InvalidUsageError(`${provider} usage: ${path} is missing`);
    return 0;
  }
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
    throw new InvalidUsageError(`${provider} usage: ${path} must be a non-negative integer, got ${show(v)}`);
  }
  return v;
}

/** A named count, so that consistency errors can name the provider's own fields. */
export type Field = readonly [name: string, value: number];

/** Whether the usage has this field at all (providers send null for features a request did not use). */
export const present = (usage: JsonObject, key: string): boolean => usage[key] !== undefined && usage[key] !== null;

/** Usage in the inclusive form, each count with the provider's name for it. */
export interface InclusiveFields {
  input: Field;
  cacheRead: Field;
  cacheWrite: Field;
  output: Field;
  reasoning: Field;
}

/**
 * Token kinds from counts in the GenAI convention's inclusive form (cache
 * reads and writes inside input, reasoning inside output), checked first with
 * the provider's field names, then converted by the contract's single
 * implementation (contract/tokens.ts).
 */
export function fromInclusive(provider: string, f: InclusiveFields): TokenCounts {
  const [inName, input] = f.input;
  const [readName, read] = f.cacheRead;
  const [writeName, write] = f.cacheWrite;
  if (read + write > input) {
    const parts = write > 0 ? `${readName} (${read}) + ${writeName} (${write})` : `${readName} (${read})`;
    throw new InvalidUsageError(`${provider} usage: ${parts} exceeds ${inName} (${input})`);
  }
  const [outName, output] = f.output;
  const [reasoningName, reasoning] = f.reasoning;
  if (reasoning > output) throw new InvalidUsageError(`${provider} usage: ${reasoningName} (${reasoning}) exceeds ${outName} (${output})`);
  return tokensFromGenAiUsage({
    inputTokens: input,
    cacheReadTokens: read,
    cacheWriteTokens: write,
    outputTokens: output,
    reasoningTokens: reasoning,
  });
}

/** A non-empty string field of a response, if there is one (metadata readers never throw). */
export function stringField(obj: unknown, key: string): string | undefined {
  const v = isObject(obj) ? obj[key] : undefined;
  return typeof v === 'string' && v !== '' ? v : undefined;
}

/** What a response says besides its usage; absent fields stay absent. */
export interface ResponseMetadata {
  responseModel?: string;
  responseId?: string;
  /** The price tier the provider says it served the request in. */
  serviceTier?: ServiceTier;
}

/** The `model` and `id` at the top level of a response (Anthropic, OpenAI and OpenAI-compatible ones), with the tier it names. */
export function topLevelMetadata(response: unknown, serviceTier: ServiceTier | undefined): ResponseMetadata {
  const responseModel = stringField(response, 'model');
  const responseId = stringField(response, 'id');
  return {
    ...(responseModel && { responseModel }),
    ...(responseId && { responseId }),
    ...(serviceTier && { serviceTier }),
  };
}

/** Usage read from a response: exclusive token kinds and, where the provider bills directly, its own cost. */
export interface ParsedUsage {
  tokens: TokenCounts;
  /** Cost the provider itself reported, in USD (OpenRouter `usage.cost`). */
  reportedCostUsd?: number;
  /** Of tokens.cache_write, the writes to a 1-hour cache (Anthropic `cache_creation.ephemeral_1h_input_tokens`), billed at a higher rate. */
  cacheWrite1hTokens?: number;
}

/** How to read one provider family's responses. */
export interface ResponseReader {
  /** Throws InvalidUsageError naming the provider and field when the usage cannot be trusted. */
  usage(response: unknown, operation: LlmOperation): ParsedUsage;
  metadata(response: unknown): ResponseMetadata;
}
