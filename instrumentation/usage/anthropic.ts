/**
 * Anthropic Messages usage. Unlike OpenAI, `input_tokens` counts only the
 * tokens neither read from nor written to the cache: total input =
 * input_tokens + cache_read_input_tokens + cache_creation_input_tokens
 * (https://platform.claude.com/docs/en/build-with-claude/prompt-caching).
 * `cache_creation` splits the writes by TTL (5 minutes / 1 hour) and must add
 * up to cache_creation_input_tokens; 1-hour writes cost 2× input, 5-minute
 * ones 1.25× (platform.claude.com/docs/en/about-claude/pricing), so the
 * 1-hour subset is reported besides the total
 * (fleet.usage.cache_write_1h.input_tokens). `output_tokens` is the billed
 * total and includes thinking; `output_tokens_details.thinking_tokens` is
 * the part spent thinking. `service_tier` (standard | priority | batch)
 * sits inside usage.
 */
import { SERVICE_TIERS } from '../../contract/attributes.ts';
import { InvalidUsageError, type TokenCounts } from '../../contract/tokens.ts';
import { count, fromInclusive, isObject, stringField, topLevelMetadata, usageObject, type ParsedUsage, type ResponseMetadata, type ResponseReader } from './fields.ts';

const PROVIDER = 'Anthropic Messages';

/** The exclusive token kinds of an Anthropic usage (the 1-hour cache writes are inside cache_write). */
export const parseAnthropicUsage = (usage: unknown): TokenCounts => readAnthropicUsage(usage).tokens;

/** The token kinds and, when the response splits the cache writes by TTL, the 1-hour ones. */
export function readAnthropicUsage(usage: unknown): ParsedUsage {
  const u = usageObject(PROVIDER, usage);
  const uncached = count(PROVIDER, u, 'input_tokens', true);
  const read = count(PROVIDER, u, 'cache_read_input_tokens', false);
  const write5m = count(PROVIDER, u, 'cache_creation.ephemeral_5m_input_tokens', false);
  const write1h = count(PROVIDER, u, 'cache_creation.ephemeral_1h_input_tokens', false);
  const byTtl = isObject(u.cache_creation) ? write5m + write1h : undefined;
  // Older responses carry only the total; newer ones both, which must agree.
  const hasTotal = u.cache_creation_input_tokens !== undefined && u.cache_creation_input_tokens !== null;
  const write = hasTotal ? count(PROVIDER, u, 'cache_creation_input_tokens', false) : (byTtl ?? 0);
  if (byTtl !== undefined && byTtl !== write) {
    throw new InvalidUsageError(
      `${PROVIDER} usage: cache_creation.ephemeral_5m_input_tokens (${write5m}) + cache_creation.ephemeral_1h_input_tokens (${write1h}) does not equal cache_creation_input_tokens (${write})`,
    );
  }
  const tokens = fromInclusive(PROVIDER, {
    input: ['input_tokens + cache_read_input_tokens + cache_creation_input_tokens', uncached + read + write],
    cacheRead: ['cache_read_input_tokens', read],
    cacheWrite: ['cache_creation_input_tokens', write],
    output: ['output_tokens', count(PROVIDER, u, 'output_tokens', true)],
    reasoning: ['output_tokens_details.thinking_tokens', count(PROVIDER, u, 'output_tokens_details.thinking_tokens', false)],
  });
  // Only responses from before the 1-hour TTL lack the split: their writes are all 5-minute ones.
  return byTtl === undefined ? { tokens } : { tokens, cacheWrite1hTokens: write1h };
}

export function anthropicMetadata(response: unknown): ResponseMetadata {
  const tier = stringField(isObject(response) ? response.usage : undefined, 'service_tier');
  return topLevelMetadata(response, SERVICE_TIERS.find((t) => t === tier));
}

export const anthropicReader: ResponseReader = {
  usage: (response) => readAnthropicUsage(isObject(response) ? response.usage : undefined),
  metadata: anthropicMetadata,
};
