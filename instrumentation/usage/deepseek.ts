/**
 * DeepSeek usage: the Chat Completions shape plus the context-cache split
 * `prompt_cache_hit_tokens` + `prompt_cache_miss_tokens`, which together equal
 * `prompt_tokens` (https://api-docs.deepseek.com/api/create-chat-completion).
 * Reasoning (thinking mode) is inside `completion_tokens`, as
 * `completion_tokens_details.reasoning_tokens`.
 */
import { InvalidUsageError, type TokenCounts } from '../../contract/tokens.ts';
import { count, fromInclusive, isObject, usageObject, type Field, type ResponseReader } from './fields.ts';
import { openAiMetadata } from './openai.ts';

const PROVIDER = 'DeepSeek';

export function parseDeepSeekUsage(usage: unknown): TokenCounts {
  const u = usageObject(PROVIDER, usage);
  const prompt = count(PROVIDER, u, 'prompt_tokens', true);
  const hasSplit = u.prompt_cache_hit_tokens !== undefined || u.prompt_cache_miss_tokens !== undefined;
  let hit: Field;
  if (hasSplit) {
    const hits = count(PROVIDER, u, 'prompt_cache_hit_tokens', true);
    const misses = count(PROVIDER, u, 'prompt_cache_miss_tokens', true);
    if (hits + misses !== prompt) {
      throw new InvalidUsageError(`${PROVIDER} usage: prompt_cache_hit_tokens (${hits}) + prompt_cache_miss_tokens (${misses}) does not equal prompt_tokens (${prompt})`);
    }
    hit = ['prompt_cache_hit_tokens', hits];
  } else {
    // OpenAI-compatible deployments of DeepSeek models report only the OpenAI field.
    hit = ['prompt_tokens_details.cached_tokens', count(PROVIDER, u, 'prompt_tokens_details.cached_tokens', false)];
  }
  return fromInclusive(PROVIDER, {
    input: ['prompt_tokens', prompt],
    cacheRead: hit,
    cacheWrite: ['(none)', 0],
    output: ['completion_tokens', count(PROVIDER, u, 'completion_tokens', true)],
    reasoning: ['completion_tokens_details.reasoning_tokens', count(PROVIDER, u, 'completion_tokens_details.reasoning_tokens', false)],
  });
}

export const deepSeekReader: ResponseReader = {
  usage: (response) => ({ tokens: parseDeepSeekUsage(isObject(response) ? response.usage : undefined) }),
  metadata: openAiMetadata,
};
