/**
 * OpenRouter usage: the Chat Completions shape, normalised by OpenRouter
 * across upstream providers (prompt_tokens includes cache reads and writes,
 * completion_tokens includes reasoning), plus `cost`, what OpenRouter charged
 * in credits (USD) (https://openrouter.ai/docs/use-cases/usage-accounting).
 * The cost is kept as `fleet.cost.reported_usd` for rate-card drift audits;
 * the pipeline still prices the tokens itself.
 */
import { InvalidUsageError } from '../../contract/tokens.ts';
import { isObject, show, usageObject, type ParsedUsage, type ResponseReader } from './fields.ts';
import { openAiMetadata, parseOpenAiChatUsage } from './openai.ts';

const PROVIDER = 'OpenRouter';

export function parseOpenRouterUsage(usage: unknown): ParsedUsage {
  const tokens = parseOpenAiChatUsage(usage, PROVIDER);
  const cost = usageObject(PROVIDER, usage).cost;
  if (cost === undefined || cost === null) return { tokens };
  if (typeof cost !== 'number' || !Number.isFinite(cost) || cost < 0) {
    throw new InvalidUsageError(`${PROVIDER} usage: cost must be a non-negative number of USD, got ${show(cost)}`);
  }
  return { tokens, reportedCostUsd: cost };
}

export const openRouterReader: ResponseReader = {
  usage: (response) => parseOpenRouterUsage(isObject(response) ? response.usage : undefined),
  metadata: openAiMetadata,
};
