/**
 * OpenAI usage objects, both APIs. Both are inclusive already: cached and
 * cache-written tokens are part of prompt_tokens / input_tokens, reasoning
 * tokens part of completion_tokens / output_tokens
 * (https://developers.openai.com/api/docs/guides/prompt-caching,
 * https://platform.openai.com/docs/guides/reasoning). `cache_write_tokens`
 * is reported from the GPT-5.6 family on, where writes cost 1.25× input.
 *
 * Many other providers (Groq, xAI, Mistral, vLLM, …) answer in the Chat
 * Completions shape, so this is also the reader for providers without one of
 * their own.
 */
import type { ServiceTier } from '../../contract/attributes.ts';
import { InvalidUsageError, type TokenCounts } from '../../contract/tokens.ts';
import { count, fromInclusive, isObject, stringField, topLevelMetadata, usageObject, type ResponseMetadata, type ResponseReader } from './fields.ts';

const CHAT = 'OpenAI Chat Completions';
const RESPONSES = 'OpenAI Responses';

/** `usage` of a Chat Completions response (`prompt_tokens`, `completion_tokens`, details). */
export function parseOpenAiChatUsage(usage: unknown, provider = CHAT): TokenCounts {
  const u = usageObject(provider, usage);
  const field = (path: string, required = false) => [path, count(provider, u, path, required)] as const;
  return fromInclusive(provider, {
    input: field('prompt_tokens', true),
    cacheRead: field('prompt_tokens_details.cached_tokens'),
    cacheWrite: field('prompt_tokens_details.cache_write_tokens'),
    output: field('completion_tokens', true),
    reasoning: field('completion_tokens_details.reasoning_tokens'),
  });
}

/** `usage` of a Responses API response (`input_tokens`, `output_tokens`, details). */
export function parseOpenAiResponsesUsage(usage: unknown): TokenCounts {
  const u = usageObject(RESPONSES, usage);
  // Anthropic's usage also has input_tokens/output_tokens but excludes the
  // cache from input_tokens; read as OpenAI it would undercount silently.
  for (const key of ['cache_read_input_tokens', 'cache_creation_input_tokens']) {
    if (key in u) throw new InvalidUsageError(`${RESPONSES} usage: has ${key}, an Anthropic Messages field; read it with format 'anthropic'`);
  }
  const field = (path: string, required = false) => [path, count(RESPONSES, u, path, required)] as const;
  return fromInclusive(RESPONSES, {
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

export const openAiReader: ResponseReader = {
  usage: (response) => ({ tokens: parseOpenAiUsage(isObject(response) ? response.usage : undefined) }),
  metadata: openAiMetadata,
};
