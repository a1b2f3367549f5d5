/**
 * Moonshot (Kimi) usage: the Chat Completions shape, with cache hits at the
 * top level, `usage.cached_tokens`, part of `prompt_tokens`
 * (platform.kimi.ai/docs/api/chat: `{ prompt_tokens: 19, completion_tokens:
 * 21, total_tokens: 40, cached_tokens: 10 }`). Kimi K2 responses also carry
 * OpenAI's `prompt_tokens_details.cached_tokens` with the same count
 * (AstrBotDevs/AstrBot#6614: both 1280 of 1336); read as OpenAI, a response
 * with only the top-level count would bill every cache hit as full input.
 */
import { InvalidUsageError, type TokenCounts } from '../../contract/tokens.ts';
import { count, fromInclusive, isObject, present, usageObject, type Field, type ResponseReader } from './fields.ts';
import { chatCompletionsFields, openAiMetadata } from './openai.ts';

const PROVIDER = 'Moonshot';

export function parseMoonshotUsage(usage: unknown): TokenCounts {
  const u = usageObject(PROVIDER, usage);
  const fields = chatCompletionsFields(PROVIDER, u);
  const nested = fields.cacheRead;
  let cacheRead: Field = nested;
  if (present(u, 'cached_tokens')) {
    const top = count(PROVIDER, u, 'cached_tokens', true);
    const hasNested = isObject(u.prompt_tokens_details) && present(u.prompt_tokens_details, 'cached_tokens');
    if (hasNested && nested[1] !== top) {
      throw new InvalidUsageError(`${PROVIDER} usage: cached_tokens (${top}) and ${nested[0]} (${nested[1]}) disagree`);
    }
    cacheRead = ['cached_tokens', top];
  }
  return fromInclusive(PROVIDER, { ...fields, cacheRead });
}

export const moonshotReader: ResponseReader = {
  usage: (response) => ({ tokens: parseMoonshotUsage(isObject(response) ? response.usage : undefined) }),
  metadata: openAiMetadata,
};
