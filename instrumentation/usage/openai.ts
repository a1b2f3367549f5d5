/**
 * OpenAI usage objects, both APIs. Both are inclusive already: cached and
 * cache-written tokens are part of prompt_tokens / input_tokens, reasoning
 * tokens part of completion_tokens / output_tokens
 * (https://developers.openai.com/api/docs/guides/prompt-caching,
 * https://platform.openai.com/docs/guides/reasoning). `cache_write_tokens`
 * is reported from the GPT-5.6 family on, where writes cost 1.25× input.
 *
 * Embeddings usage is `{ prompt_tokens, total_tokens }`: no completion.
 *
 * Many other providers (Groq, Mistral, vLLM, …) answer in the Chat
 * Completions shape, so this is also the reader for providers without one of
 * their own (xAI and Moonshot have their own: they count differently).
 */
import type { ServiceTier } from '../../contract/attributes.ts';
import { InvalidUsageError, type TokenCounts } from '../../contract/tokens.ts';
import {
  count,
  fromInclusive,
  isObject,
  present,
  stringField,
  topLevelMetadata,
  usageObject,
  type InclusiveFields,
  type JsonObject,
  type LlmOperation,
  type ResponseMetadata,
  type ResponseReader,
} from './fields.ts';

const CHAT = 'OpenAI Chat Completions';
const RESPONSES = 'OpenAI Responses';
const EMBEDDINGS = 'OpenAI Embeddings';

/** The counts of a Chat Completions usage, named, as OpenAI defines them (readers of compatible providers replace what they count differently). */
export function chatCompletionsFields(provider: string, u: JsonObject): InclusiveFields {
  const field = (path: string, required = false) => [path, count(provider, u, path, required)] as const;
  return {
    input: field('prompt_tokens', true),
    cacheRead: field('prompt_tokens_details.cached_tokens'),
    cacheWrite: field('prompt_tokens_details.cache_write_tokens'),
    output: field('completion_tokens', true),
    reasoning: field('completion_tokens_details.reasoning_tokens'),
  };
}

/** `usage` of a Chat Completions response (`prompt_tokens`, `completion_tokens`, details). */
export function parseOpenAiChatUsage(usage: unknown, provider = CHAT): TokenCounts {
  return fromInclusive(provider, chatCompletionsFields(provider, usageObject(provider, usage)));
}

/** `usage` of an Embeddings response: `prompt_tokens`, and `total_tokens`, which must equal it (no completion). */
export function parseOpenAiEmbeddingsUsage(usage: unknown): TokenCounts {
  const u = usageObject(EMBEDDINGS, usage);
  const prompt = count(EMBEDDINGS, u, 'prompt_tokens', true);
  // OpenAI-compatible servers sometimes add completion_tokens: 0; a non-zero one is not an embedding.
  const completion = count(EMBEDDINGS, u, 'completion_tokens', false);
  if (completion > 0) throw new InvalidUsageError(`${EMBEDDINGS} usage: completion_tokens (${completion}) must be 0 for an embedding`);
  if (present(u, 'total_tokens')) {
    const total = count(EMBEDDINGS, u, 'total_tokens', true);
    if (total !== prompt) throw new InvalidUsageError(`${EMBEDDINGS} usage: total_tokens (${total}) does not equal prompt_tokens (${prompt})`);
  }
  return fromInclusive(EMBEDDINGS, { input: ['prompt_tokens', prompt], cacheRead: ['(none)', 0], cacheWrite: ['(none)', 0], output: ['(none)', 0], reasoning: ['(none)', 0] });
}

/** `usage` of a Responses API response (`input_tokens`, `output_tokens`, details). */
export function parseOpenAiResponsesUsage(usage: unknown, provider = RESPONSES): TokenCounts {
  const u = usageObject(provider, usage);
  // Anthropic's usage also has input_tokens/output_tokens but excludes the
  // cache from input_tokens; read as OpenAI it would undercount silently.
  for (const key of ['cache_read_input_tokens', 'cache_creation_input_tokens']) {
    if (key in u) throw new InvalidUsageError(`${provider} usage: has ${key}, an Anthropic Messages field; read it with format 'anthropic'`);
  }
  const field = (path: string, required = false) => [path, count(provider, u, path, required)] as const;
  return fromInclusive(provider, {
    input: field('input_tokens', true),
    cacheRead: field('input_tokens_details.cached_tokens'),
    cacheWrite: field('input_tokens_details.cache_write_tokens'),
    output: field('output_tokens', true),
    reasoning: field('output_tokens_details.reasoning_tokens'),
  });
}

/** Either API, told apart by its field names (`prompt_tokens` vs `input_tokens`). */
export function parseOpenAiUsage(usage: unknown): TokenCounts {
  const u = usageObject('OpenAI', usage);
  if ('prompt_tokens' in u) return parseOpenAiChatUsage(u);
  if ('input_tokens' in u) return parseOpenAiResponsesUsage(u);
  throw new InvalidUsageError('OpenAI usage: has neither prompt_tokens (Chat Completions) nor input_tokens (Responses)');
}

/** OpenAI's `service_tier` response values; `scale` (prepaid units) has no per-token tier and stays unset. */
const TIERS: Record<string, ServiceTier> = { default: 'standard', flex: 'flex', priority: 'priority' };

/** `model`, `id` and `service_tier` sit at the top level of both APIs' responses (and of OpenAI-compatible ones). */
export function openAiMetadata(response: unknown): ResponseMetadata {
  const tier = stringField(response, 'service_tier');
  return topLevelMetadata(response, tier === undefined ? undefined : TIERS[tier]);
}

/** The usage of an OpenAI-shaped response, by operation: embeddings have no completion. */
export function parseOpenAiUsageOf(usage: unknown, operation: LlmOperation): TokenCounts {
  return operation === 'embeddings' ? parseOpenAiEmbeddingsUsage(usage) : parseOpenAiUsage(usage);
}

export const openAiReader: ResponseReader = {
  usage: (response, operation) => ({ tokens: parseOpenAiUsageOf(isObject(response) ? response.usage : undefined, operation) }),
  metadata: openAiMetadata,
};
