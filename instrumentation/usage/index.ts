/**
 * Which reader understands which provider's responses. Providers without a
 * reader of their own answer in the OpenAI shape (Chat Completions or
 * Responses, told apart by field names). Providers are looked up by their
 * normalised `gen_ai.provider.name` (the pipeline's normalizeProvider).
 */
import { anthropicReader } from './anthropic.ts';
import { deepSeekReader } from './deepseek.ts';
import type { ResponseReader } from './fields.ts';
import { geminiReader } from './gemini.ts';
import { moonshotReader } from './moonshot.ts';
import { openAiReader } from './openai.ts';
import { openRouterReader } from './openrouter.ts';
import { xaiReader } from './xai.ts';

export const USAGE_FORMATS = {
  openai: openAiReader,
  anthropic: anthropicReader,
  deepseek: deepSeekReader,
  gemini: geminiReader,
  openrouter: openRouterReader,
  xai: xaiReader,
  moonshot: moonshotReader,
} as const satisfies Record<string, ResponseReader>;

export type UsageFormat = keyof typeof USAGE_FORMATS;

/** `gen_ai.provider.name` values whose responses are not OpenAI-shaped, or count differently. */
const FORMAT_OF_PROVIDER: Record<string, UsageFormat> = {
  anthropic: 'anthropic',
  deepseek: 'deepseek',
  'gcp.gemini': 'gemini',
  'gcp.vertex_ai': 'gemini',
  'gcp.gen_ai': 'gemini',
  openrouter: 'openrouter',
  x_ai: 'xai',
  moonshot: 'moonshot',
};

export const formatOfProvider = (provider: string): UsageFormat => FORMAT_OF_PROVIDER[provider] ?? 'openai';

export const isUsageFormat = (v: unknown): v is UsageFormat => typeof v === 'string' && Object.hasOwn(USAGE_FORMATS, v);

export type { LlmOperation, ParsedUsage, ResponseMetadata, ResponseReader } from './fields.ts';
export { parseAnthropicUsage, readAnthropicUsage } from './anthropic.ts';
export { parseDeepSeekUsage } from './deepseek.ts';
export { parseGeminiUsage } from './gemini.ts';
export { parseMoonshotUsage } from './moonshot.ts';
export { parseOpenAiChatUsage, parseOpenAiEmbeddingsUsage, parseOpenAiResponsesUsage, parseOpenAiUsage } from './openai.ts';
export { parseOpenRouterUsage } from './openrouter.ts';
export { parseXaiUsage } from './xai.ts';
