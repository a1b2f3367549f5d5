/**
 * Provider responses used by the instrumentation tests, each with where it
 * comes from and the exclusive token kinds it must normalise to. Verbatim
 * where the provider documents an example with the fields in question;
 * otherwise built from the provider's field documentation (said so).
 */
import type { TokenCounts } from '../contract/tokens.ts';
import type { LlmOperation } from '../instrumentation/index.ts';

export interface Fixture {
  source: string;
  provider: string;
  requestModel: string;
  /** `gen_ai.operation.name` of the call (default chat). */
  operation?: LlmOperation;
  response: Record<string, unknown>;
  tokens: TokenCounts;
  /** Of tokens.cache_write, the 1-hour cache writes. */
  cacheWrite1hTokens?: number;
  responseModel?: string;
  responseId?: string;
  serviceTier?: string;
  reportedCostUsd?: number;
}

export const FIXTURES = {
  openaiChatCached: {
    source: 'OpenAI prompt caching guide, Chat Completions usage example (https://developers.openai.com/api/docs/guides/prompt-caching): 1,920 of 2,006 prompt tokens reused; id/model/service_tier added',
    provider: 'openai',
    requestModel: 'gpt-4o',
    response: {
      id: 'chatcmpl-cached-1',
      object: 'chat.completion',
      model: 'gpt-4o-2024-08-06',
      service_tier: 'default',
      usage: {
        prompt_tokens: 2006,
        completion_tokens: 300,
        total_tokens: 2306,
        prompt_tokens_details: { cached_tokens: 1920 },
        completion_tokens_details: { reasoning_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
      },
    },
    tokens: { input: 86, cache_read: 1920, cache_write: 0, output: 300, reasoning: 0 },
    responseModel: 'gpt-4o-2024-08-06',
    responseId: 'chatcmpl-cached-1',
    serviceTier: 'standard',
  },
  openaiResponsesReasoning: {
    source: 'OpenAI reasoning guide, Responses API usage example (https://platform.openai.com/docs/guides/reasoning): 1,024 of 1,186 output tokens are reasoning',
    provider: 'openai',
    requestModel: 'o4-mini',
    response: {
      id: 'resp_reasoning_1',
      object: 'response',
      model: 'o4-mini-2025-04-16',
      usage: {
        input_tokens: 75,
        input_tokens_details: { cached_tokens: 0 },
        output_tokens: 1186,
        output_tokens_details: { reasoning_tokens: 1024 },
        total_tokens: 1261,
      },
    },
    tokens: { input: 75, cache_read: 0, cache_write: 0, output: 162, reasoning: 1024 },
    responseModel: 'o4-mini-2025-04-16',
    responseId: 'resp_reasoning_1',
  },
  openaiResponsesCacheWrite: {
    source:
      'OpenAI prompt caching guide, GPT-5.6 cache writes: "2,000 tokens were read from the cache and 400 additional tokens were written. The remaining 200 input tokens were neither read nor written" (input_tokens_details.cached_tokens / cache_write_tokens, both inside input_tokens); output counts illustrative',
    provider: 'openai',
    requestModel: 'gpt-5.6-terra',
    response: {
      id: 'resp_cache_write_1',
      model: 'gpt-5.6-terra',
      service_tier: 'flex',
      usage: {
        input_tokens: 2600,
        input_tokens_details: { cached_tokens: 2000, cache_write_tokens: 400 },
        output_tokens: 120,
        output_tokens_details: { reasoning_tokens: 64 },
        total_tokens: 2720,
      },
    },
    tokens: { input: 200, cache_read: 2000, cache_write: 400, output: 56, reasoning: 64 },
    responseModel: 'gpt-5.6-terra',
    responseId: 'resp_cache_write_1',
    serviceTier: 'flex',
  },
  anthropicCached: {
    source:
      'Anthropic prompt caching docs: total input = input_tokens + cache_read_input_tokens + cache_creation_input_tokens; cache_creation split {ephemeral_5m_input_tokens: 456, ephemeral_1h_input_tokens: 100} from the 1-hour cache example, other counts illustrative; output_tokens_details.thinking_tokens and service_tier per the Messages API Usage type',
    provider: 'anthropic',
    requestModel: 'claude-sonnet-4-6',
    response: {
      id: 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-6',
      stop_reason: 'end_turn',
      usage: {
        input_tokens: 50,
        cache_read_input_tokens: 12000,
        cache_creation_input_tokens: 556,
        cache_creation: { ephemeral_5m_input_tokens: 456, ephemeral_1h_input_tokens: 100 },
        output_tokens: 503,
        output_tokens_details: { thinking_tokens: 300 },
        service_tier: 'priority',
      },
    },
    tokens: { input: 50, cache_read: 12000, cache_write: 556, output: 203, reasoning: 300 },
    cacheWrite1hTokens: 100,
    responseModel: 'claude-sonnet-4-6',
    responseId: 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
    serviceTier: 'priority',
  },
  deepseekDocumented: {
    source: 'DeepSeek API reference, create chat completion response example (api-docs.deepseek.com/api/create-chat-completion, as mirrored): prompt_cache_hit_tokens + prompt_cache_miss_tokens = prompt_tokens',
    provider: 'deepseek',
    requestModel: 'deepseek-chat',
    response: {
      id: '48ad6b6e-b2f7-4059-b9cf-aa5d966f8f22',
      object: 'chat.completion',
      created: 1766977481,
      model: 'deepseek-chat',
      usage: {
        prompt_tokens: 10,
        completion_tokens: 11,
        total_tokens: 21,
        prompt_tokens_details: { cached_tokens: 0 },
        prompt_cache_hit_tokens: 0,
        prompt_cache_miss_tokens: 10,
      },
      system_fingerprint: 'fp_eaab8d114b_prod0820_fp8_kvcache',
    },
    tokens: { input: 10, cache_read: 0, cache_write: 0, output: 11, reasoning: 0 },
    responseModel: 'deepseek-chat',
    responseId: '48ad6b6e-b2f7-4059-b9cf-aa5d966f8f22',
  },
  deepseekReasonerHit: {
    source: 'DeepSeek usage fields as documented (prompt_cache_hit/miss, completion_tokens_details.reasoning_tokens inside completion_tokens); counts illustrative',
    provider: 'deepseek',
    requestModel: 'deepseek-reasoner',
    response: {
      id: 'ds-reasoner-1',
      model: 'deepseek-reasoner',
      usage: {
        prompt_tokens: 1500,
        completion_tokens: 900,
        total_tokens: 2400,
        prompt_tokens_details: { cached_tokens: 1280 },
        prompt_cache_hit_tokens: 1280,
        prompt_cache_miss_tokens: 220,
        completion_tokens_details: { reasoning_tokens: 700 },
      },
    },
    tokens: { input: 220, cache_read: 1280, cache_write: 0, output: 200, reasoning: 700 },
    responseModel: 'deepseek-reasoner',
    responseId: 'ds-reasoner-1',
  },
  geminiThinking: {
    source:
      'Gemini usageMetadata fields (ai.google.dev/api/generate-content#UsageMetadata; js-genai: totalTokenCount = prompt + candidates + toolUsePrompt + thoughts, promptTokenCount includes cachedContentTokenCount); counts illustrative',
    provider: 'gcp.gemini',
    requestModel: 'gemini-2.5-pro',
    response: {
      responseId: 'gem-resp-1',
      modelVersion: 'gemini-2.5-pro',
      usageMetadata: {
        promptTokenCount: 1200,
        cachedContentTokenCount: 1024,
        candidatesTokenCount: 80,
        toolUsePromptTokenCount: 30,
        thoughtsTokenCount: 420,
        totalTokenCount: 1730,
      },
    },
    tokens: { input: 206, cache_read: 1024, cache_write: 0, output: 80, reasoning: 420 },
    responseModel: 'gemini-2.5-pro',
    responseId: 'gem-resp-1',
  },
  openrouterDocumented: {
    source: 'OpenRouter usage accounting docs, response format example (https://openrouter.ai/docs/use-cases/usage-accounting); id/model added',
    provider: 'openrouter',
    requestModel: 'anthropic/claude-sonnet-4.6',
    response: {
      id: 'gen-openrouter-1',
      model: 'anthropic/claude-sonnet-4.6',
      object: 'chat.completion.chunk',
      usage: {
        completion_tokens: 2,
        completion_tokens_details: { reasoning_tokens: 0 },
        cost: 0.95,
        cost_details: { upstream_inference_cost: 19 },
        prompt_tokens: 194,
        prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 100, audio_tokens: 0 },
        total_tokens: 196,
      },
    },
    tokens: { input: 94, cache_read: 0, cache_write: 100, output: 2, reasoning: 0 },
    responseModel: 'anthropic/claude-sonnet-4.6',
    responseId: 'gen-openrouter-1',
    reportedCostUsd: 0.95,
  },
  xaiReasoningDocumented: {
    source:
      'xAI docs, Consumption and Rate Limits, usage object example: reasoning_tokens 94 are counted "separately from completion_tokens" 9 but in total_tokens 135 = 32 + 9 + 94; cached_tokens 6 inside prompt_tokens; id/model added',
    provider: 'x_ai',
    requestModel: 'grok-4.3',
    response: {
      id: 'xai-reasoning-1',
      object: 'chat.completion',
      model: 'grok-4.3',
      usage: {
        prompt_tokens: 32,
        completion_tokens: 9,
        total_tokens: 135,
        prompt_tokens_details: { text_tokens: 32, audio_tokens: 0, image_tokens: 0, cached_tokens: 6 },
        completion_tokens_details: { reasoning_tokens: 94, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
        num_sources_used: 0,
      },
    },
    tokens: { input: 26, cache_read: 6, cache_write: 0, output: 9, reasoning: 94 },
    responseModel: 'grok-4.3',
    responseId: 'xai-reasoning-1',
  },
  xaiGrok3Mini: {
    source: 'vercel/ai#12425, real xAI grok-3-mini usage: completion_tokens 1, reasoning_tokens 386, total_tokens 399 (prompt 12 = 399 - 1 - 386); id added',
    provider: 'x_ai',
    requestModel: 'grok-3-mini',
    response: {
      id: 'xai-grok-3-mini-1',
      model: 'grok-3-mini',
      usage: { prompt_tokens: 12, completion_tokens: 1, total_tokens: 399, completion_tokens_details: { reasoning_tokens: 386 } },
    },
    tokens: { input: 12, cache_read: 0, cache_write: 0, output: 1, reasoning: 386 },
    responseModel: 'grok-3-mini',
    responseId: 'xai-grok-3-mini-1',
  },
  moonshotDocumented: {
    source: 'Moonshot / Kimi API reference, chat completion usage (platform.kimi.ai/docs/api/chat): cache hits at the top level, cached_tokens 10 of prompt_tokens 19; id/model added',
    provider: 'moonshot',
    requestModel: 'kimi-k2.6',
    response: {
      id: 'chatcmpl-kimi-1',
      object: 'chat.completion',
      model: 'kimi-k2.6',
      usage: { prompt_tokens: 19, completion_tokens: 21, total_tokens: 40, cached_tokens: 10 },
    },
    tokens: { input: 9, cache_read: 10, cache_write: 0, output: 21, reasoning: 0 },
    responseModel: 'kimi-k2.6',
    responseId: 'chatcmpl-kimi-1',
  },
  moonshotK2Both: {
    source: 'AstrBotDevs/AstrBot#6614, final chunk of kimi-k2-0905-preview on the Moonshot API: cached_tokens 1280 both at the top level and in prompt_tokens_details',
    provider: 'moonshot',
    requestModel: 'kimi-k2-0905-preview',
    response: {
      id: 'chatcmpl-69bbcc292af1bf47c1d8a74b',
      object: 'chat.completion.chunk',
      model: 'kimi-k2-0905-preview',
      usage: { prompt_tokens: 1336, completion_tokens: 31, total_tokens: 1367, cached_tokens: 1280, prompt_tokens_details: { cached_tokens: 1280 } },
    },
    tokens: { input: 56, cache_read: 1280, cache_write: 0, output: 31, reasoning: 0 },
    responseModel: 'kimi-k2-0905-preview',
    responseId: 'chatcmpl-69bbcc292af1bf47c1d8a74b',
  },
  openaiEmbeddings: {
    source: 'OpenAI API reference, create embeddings response example: usage { prompt_tokens: 8, total_tokens: 8 } (no completion); embedding vector shortened',
    provider: 'openai',
    requestModel: 'text-embedding-3-small',
    operation: 'embeddings',
    response: {
      object: 'list',
      data: [{ object: 'embedding', embedding: [0.0023064255, -0.009327292, -0.0028842222], index: 0 }],
      model: 'text-embedding-3-small',
      usage: { prompt_tokens: 8, total_tokens: 8 },
    },
    tokens: { input: 8, cache_read: 0, cache_write: 0, output: 0, reasoning: 0 },
    responseModel: 'text-embedding-3-small',
  },
} satisfies Record<string, Fixture>;
