import { describe, expect, it } from 'vitest';
import { genAiUsageFromTokens, InvalidUsageError, tokensFromGenAiUsage } from '../contract/tokens.ts';
import {
  parseAnthropicUsage,
  parseDeepSeekUsage,
  parseGeminiUsage,
  parseMoonshotUsage,
  parseOpenAiChatUsage,
  parseOpenAiEmbeddingsUsage,
  parseOpenAiResponsesUsage,
  parseOpenAiUsage,
  parseOpenRouterUsage,
  parseXaiUsage,
  readAnthropicUsage,
  USAGE_FORMATS,
} from '../instrumentation/index.ts';
import { SEED_FLEET } from '../demo/plan.ts';
import { providerResponse } from '../demo/send.ts';
import { formatOfProvider } from '../instrumentation/usage/index.ts';
import { FIXTURES, type Fixture } from './instrumentation-usage-fixtures.ts';

const usageOf = (f: { response: Record<string, unknown> }) => f.response.usage;

describe('usage parsers: documented provider examples', () => {
  it('OpenAI Chat Completions: cached_tokens are inside prompt_tokens', () => {
    expect(parseOpenAiChatUsage(usageOf(FIXTURES.openaiChatCached))).toEqual(FIXTURES.openaiChatCached.tokens);
  });

  it('OpenAI Responses: reasoning_tokens are inside output_tokens', () => {
    expect(parseOpenAiResponsesUsage(usageOf(FIXTURES.openaiResponsesReasoning))).toEqual(FIXTURES.openaiResponsesReasoning.tokens);
  });

  it('OpenAI Responses: cache_write_tokens (GPT-5.6+) are inside input_tokens, next to cached_tokens', () => {
    expect(parseOpenAiResponsesUsage(usageOf(FIXTURES.openaiResponsesCacheWrite))).toEqual(FIXTURES.openaiResponsesCacheWrite.tokens);
  });

  it('OpenAI auto-detection tells the two APIs apart by field names', () => {
    expect(parseOpenAiUsage(usageOf(FIXTURES.openaiChatCached))).toEqual(FIXTURES.openaiChatCached.tokens);
    expect(parseOpenAiUsage(usageOf(FIXTURES.openaiResponsesReasoning))).toEqual(FIXTURES.openaiResponsesReasoning.tokens);
  });

  it('Anthropic: input_tokens excludes cache reads and writes; thinking is inside output_tokens', () => {
    expect(parseAnthropicUsage(usageOf(FIXTURES.anthropicCached))).toEqual(FIXTURES.anthropicCached.tokens);
  });

  it('Anthropic: the 1-hour cache writes are reported besides the total (they are billed at 2x input, not 1.25x)', () => {
    expect(readAnthropicUsage(usageOf(FIXTURES.anthropicCached))).toEqual({ tokens: FIXTURES.anthropicCached.tokens, cacheWrite1hTokens: 100 });
    // Without the TTL split there is no 1-hour count to report.
    expect(readAnthropicUsage({ input_tokens: 3, output_tokens: 5, cache_creation_input_tokens: 7 })).toEqual({
      tokens: { input: 3, cache_read: 0, cache_write: 7, output: 5, reasoning: 0 },
    });
  });

  it('Anthropic: a usage without the TTL split or details (older responses) still parses', () => {
    expect(parseAnthropicUsage({ input_tokens: 2095, output_tokens: 503, cache_creation_input_tokens: null, cache_read_input_tokens: null })).toEqual({
      input: 2095,
      cache_read: 0,
      cache_write: 0,
      output: 503,
      reasoning: 0,
    });
    expect(parseAnthropicUsage({ input_tokens: 3, output_tokens: 5, cache_creation: { ephemeral_5m_input_tokens: 7, ephemeral_1h_input_tokens: 11 } })).toEqual({
      input: 3,
      cache_read: 0,
      cache_write: 18,
      output: 5,
      reasoning: 0,
    });
  });

  it('DeepSeek: cache hit and miss tokens split prompt_tokens; reasoning is inside completion_tokens', () => {
    expect(parseDeepSeekUsage(usageOf(FIXTURES.deepseekDocumented))).toEqual(FIXTURES.deepseekDocumented.tokens);
    expect(parseDeepSeekUsage(usageOf(FIXTURES.deepseekReasonerHit))).toEqual(FIXTURES.deepseekReasonerHit.tokens);
  });

  it('Gemini: cached content is inside promptTokenCount; thoughts and tool-use prompts are not, and are billed', () => {
    expect(parseGeminiUsage(FIXTURES.geminiThinking.response.usageMetadata)).toEqual(FIXTURES.geminiThinking.tokens);
    // Proto3 JSON leaves zero counts out.
    expect(parseGeminiUsage({ promptTokenCount: 11, totalTokenCount: 11 })).toEqual({ input: 11, cache_read: 0, cache_write: 0, output: 0, reasoning: 0 });
    // An omitted promptTokenCount is 0 when the total says so.
    expect(parseGeminiUsage({ candidatesTokenCount: 3, totalTokenCount: 3 })).toEqual({ input: 0, cache_read: 0, cache_write: 0, output: 3, reasoning: 0 });
  });

  it('xAI: reasoning_tokens are outside completion_tokens (both billed as output), as total_tokens shows', () => {
    expect(parseXaiUsage(usageOf(FIXTURES.xaiReasoningDocumented))).toEqual(FIXTURES.xaiReasoningDocumented.tokens);
    expect(parseXaiUsage(usageOf(FIXTURES.xaiGrok3Mini))).toEqual(FIXTURES.xaiGrok3Mini.tokens);
    // The OpenAI reading of the same usage refuses it (reasoning above completion), which left every xAI reasoning call unpriced.
    expect(() => parseOpenAiChatUsage(usageOf(FIXTURES.xaiReasoningDocumented))).toThrow(/reasoning_tokens \(94\) exceeds completion_tokens \(9\)/);
    // Without total_tokens: xAI's documented accounting.
    expect(parseXaiUsage({ prompt_tokens: 32, completion_tokens: 9, completion_tokens_details: { reasoning_tokens: 94 } })).toEqual({ input: 32, cache_read: 0, cache_write: 0, output: 9, reasoning: 94 });
  });

  it('xAI: a gateway that folded reasoning into completion_tokens is recognised by its total_tokens', () => {
    // infron.ai's x-ai/grok-4.1-fast-reasoning usage: completion 241 includes reasoning 204; total 404 = 163 + 241.
    const gateway = { prompt_tokens: 163, completion_tokens: 241, total_tokens: 404, prompt_tokens_details: { cached_tokens: 162 }, completion_tokens_details: { reasoning_tokens: 204 } };
    expect(parseXaiUsage(gateway)).toEqual({ input: 1, cache_read: 162, cache_write: 0, output: 37, reasoning: 204 });
    // Responses API: reasoning inside output_tokens, total = input + output.
    const responses = { input_tokens: 40, input_tokens_details: { cached_tokens: 8 }, output_tokens: 50, output_tokens_details: { reasoning_tokens: 30 }, total_tokens: 90 };
    expect(parseXaiUsage(responses)).toEqual({ input: 32, cache_read: 8, cache_write: 0, output: 20, reasoning: 30 });
  });

  it('Moonshot: cache hits at the top level (cached_tokens) are inside prompt_tokens; with the OpenAI field too, both agree', () => {
    expect(parseMoonshotUsage(usageOf(FIXTURES.moonshotDocumented))).toEqual(FIXTURES.moonshotDocumented.tokens);
    expect(parseMoonshotUsage(usageOf(FIXTURES.moonshotK2Both))).toEqual(FIXTURES.moonshotK2Both.tokens);
    // Read as OpenAI, the documented response would bill its 10 cache hits as full input.
    expect(parseOpenAiChatUsage(usageOf(FIXTURES.moonshotDocumented))).toEqual({ input: 19, cache_read: 0, cache_write: 0, output: 21, reasoning: 0 });
  });

  it('OpenAI Embeddings: prompt_tokens only, no completion; the reader takes it for operation embeddings', () => {
    expect(parseOpenAiEmbeddingsUsage(usageOf(FIXTURES.openaiEmbeddings))).toEqual(FIXTURES.openaiEmbeddings.tokens);
    expect(USAGE_FORMATS.openai.usage(FIXTURES.openaiEmbeddings.response, 'embeddings')).toEqual({ tokens: FIXTURES.openaiEmbeddings.tokens });
    // As a chat usage it has no completion_tokens.
    expect(() => USAGE_FORMATS.openai.usage(FIXTURES.openaiEmbeddings.response, 'chat')).toThrow(/completion_tokens is missing/);
    expect(parseOpenAiEmbeddingsUsage({ prompt_tokens: 5, completion_tokens: 0, total_tokens: 5 })).toEqual({ input: 5, cache_read: 0, cache_write: 0, output: 0, reasoning: 0 });
  });

  it('OpenRouter: OpenAI-shaped tokens (cache writes inside prompt_tokens) plus the cost it charged', () => {
    expect(parseOpenRouterUsage(usageOf(FIXTURES.openrouterDocumented))).toEqual({ tokens: FIXTURES.openrouterDocumented.tokens, reportedCostUsd: 0.95 });
    expect(parseOpenRouterUsage({ prompt_tokens: 1, completion_tokens: 2 })).toEqual({ tokens: { input: 1, cache_read: 0, cache_write: 0, output: 2, reasoning: 0 } });
  });

  it('every fixture keeps its total: the inclusive counts it converts to are the provider totals, and they round-trip', () => {
    for (const [name, f] of Object.entries(FIXTURES) as [string, Fixture][]) {
      const tokens = USAGE_FORMATS[formatOfProvider(f.provider)].usage(f.response, f.operation ?? 'chat').tokens;
      expect(tokens, name).toEqual(f.tokens);
      expect(tokensFromGenAiUsage(genAiUsageFromTokens(tokens)), name).toEqual(tokens);
    }
  });
});

describe("the demo fleet's provider responses", () => {
  it("read back as the planned tokens with each provider's own reader (the end-to-end tests rely on it)", () => {
    for (const c of SEED_FLEET) {
      expect(USAGE_FORMATS[formatOfProvider(c.provider)].usage(providerResponse(c.provider, c.model, c.callTokens), 'chat').tokens, c.model).toEqual(c.callTokens);
    }
  });
});

describe('usage parsers: usage that cannot be trusted is an error naming provider and field', () => {
  const cases: [string, () => unknown, RegExp][] = [
    ['negative count', () => parseOpenAiChatUsage({ prompt_tokens: -1, completion_tokens: 2 }), /^OpenAI Chat Completions usage: prompt_tokens must be a non-negative integer, got -1$/],
    ['NaN', () => parseOpenAiResponsesUsage({ input_tokens: Number.NaN, output_tokens: 2 }), /^OpenAI Responses usage: input_tokens must be a non-negative integer, got NaN$/],
    ['fraction', () => parseAnthropicUsage({ input_tokens: 10, output_tokens: 2.5 }), /^Anthropic Messages usage: output_tokens must be a non-negative integer, got 2\.5$/],
    ['string', () => parseDeepSeekUsage({ prompt_tokens: '10', completion_tokens: 2 }), /^DeepSeek usage: prompt_tokens must be a non-negative integer, got "10"$/],
    ['Infinity', () => parseGeminiUsage({ promptTokenCount: Number.POSITIVE_INFINITY }), /^Gemini usage: promptTokenCount must be a non-negative integer, got Infinity$/],
    ['missing required count', () => parseOpenAiChatUsage({ prompt_tokens: 10 }), /^OpenAI Chat Completions usage: completion_tokens is missing$/],
    ['no usage at all', () => parseAnthropicUsage(undefined), /^Anthropic Messages usage must be an object, got undefined$/],
    ['details not an object', () => parseOpenAiChatUsage({ prompt_tokens: 10, completion_tokens: 1, prompt_tokens_details: 5 }), /parent of prompt_tokens_details\.cached_tokens must be an object, got 5/],
    [
      'OpenAI cached > prompt',
      () => parseOpenAiChatUsage({ prompt_tokens: 2006, completion_tokens: 300, prompt_tokens_details: { cached_tokens: 2100 } }),
      /^OpenAI Chat Completions usage: prompt_tokens_details\.cached_tokens \(2100\) exceeds prompt_tokens \(2006\)$/,
    ],
    [
      'OpenAI cached + written > input',
      () => parseOpenAiResponsesUsage({ input_tokens: 2600, output_tokens: 1, input_tokens_details: { cached_tokens: 2000, cache_write_tokens: 700 } }),
      /input_tokens_details\.cached_tokens \(2000\) \+ input_tokens_details\.cache_write_tokens \(700\) exceeds input_tokens \(2600\)/,
    ],
    [
      'OpenAI reasoning > output',
      () => parseOpenAiResponsesUsage({ input_tokens: 75, output_tokens: 1000, output_tokens_details: { reasoning_tokens: 1024 } }),
      /^OpenAI Responses usage: output_tokens_details\.reasoning_tokens \(1024\) exceeds output_tokens \(1000\)$/,
    ],
    [
      'Anthropic usage read as OpenAI Responses',
      () => parseOpenAiResponsesUsage({ input_tokens: 50, output_tokens: 10, cache_read_input_tokens: 12000 }),
      /has cache_read_input_tokens, an Anthropic Messages field; read it with format 'anthropic'/,
    ],
    [
      'Anthropic thinking > output',
      () => parseAnthropicUsage({ input_tokens: 1, output_tokens: 10, output_tokens_details: { thinking_tokens: 11 } }),
      /^Anthropic Messages usage: output_tokens_details\.thinking_tokens \(11\) exceeds output_tokens \(10\)$/,
    ],
    [
      'Anthropic TTL split disagrees with the total',
      () => parseAnthropicUsage({ input_tokens: 1, output_tokens: 1, cache_creation_input_tokens: 556, cache_creation: { ephemeral_5m_input_tokens: 456, ephemeral_1h_input_tokens: 0 } }),
      /ephemeral_5m_input_tokens \(456\) \+ .*ephemeral_1h_input_tokens \(0\) does not equal cache_creation_input_tokens \(556\)/,
    ],
    [
      'DeepSeek hit + miss != prompt',
      () => parseDeepSeekUsage({ prompt_tokens: 10, completion_tokens: 1, prompt_cache_hit_tokens: 8, prompt_cache_miss_tokens: 8 }),
      /^DeepSeek usage: prompt_cache_hit_tokens \(8\) \+ prompt_cache_miss_tokens \(8\) does not equal prompt_tokens \(10\)$/,
    ],
    ['DeepSeek hit without miss', () => parseDeepSeekUsage({ prompt_tokens: 10, completion_tokens: 1, prompt_cache_hit_tokens: 8 }), /prompt_cache_miss_tokens is missing/],
    [
      'DeepSeek reasoning > completion',
      () => parseDeepSeekUsage({ prompt_tokens: 10, completion_tokens: 5, completion_tokens_details: { reasoning_tokens: 6 } }),
      /completion_tokens_details\.reasoning_tokens \(6\) exceeds completion_tokens \(5\)/,
    ],
    ['Gemini without any count', () => parseGeminiUsage({}), /^Gemini usage: promptTokenCount is missing \(and there is no totalTokenCount\)$/],
    ['Gemini with only candidates', () => parseGeminiUsage({ candidatesTokenCount: 5 }), /promptTokenCount is missing/],
    [
      'Gemini total is not the sum of its parts',
      () => parseGeminiUsage({ promptTokenCount: 1200, candidatesTokenCount: 80, thoughtsTokenCount: 420, totalTokenCount: 1280 }),
      /^Gemini usage: totalTokenCount \(1280\) does not equal promptTokenCount \(1200\) \+ candidatesTokenCount \(80\) \+ toolUsePromptTokenCount \(0\) \+ thoughtsTokenCount \(420\)$/,
    ],
    [
      'xAI total fits neither reading',
      () => parseXaiUsage({ prompt_tokens: 32, completion_tokens: 9, total_tokens: 100, completion_tokens_details: { reasoning_tokens: 94 } }),
      /^xAI usage: total_tokens \(100\) is neither prompt_tokens \(32\) \+ completion_tokens \(9\) \+ completion_tokens_details\.reasoning_tokens \(94\) nor prompt_tokens \+ completion_tokens$/,
    ],
    ['xAI Responses total', () => parseXaiUsage({ input_tokens: 1, output_tokens: 2, total_tokens: 4 }), /^xAI usage: total_tokens \(4\) does not equal input_tokens \(1\) \+ output_tokens \(2\)$/],
    [
      'Moonshot cache counts disagree',
      () => parseMoonshotUsage({ prompt_tokens: 100, completion_tokens: 1, cached_tokens: 80, prompt_tokens_details: { cached_tokens: 60 } }),
      /^Moonshot usage: cached_tokens \(80\) and prompt_tokens_details\.cached_tokens \(60\) disagree$/,
    ],
    ['Moonshot cached > prompt', () => parseMoonshotUsage({ prompt_tokens: 10, completion_tokens: 1, cached_tokens: 11 }), /^Moonshot usage: cached_tokens \(11\) exceeds prompt_tokens \(10\)$/],
    ['Embeddings total != prompt', () => parseOpenAiEmbeddingsUsage({ prompt_tokens: 8, total_tokens: 9 }), /^OpenAI Embeddings usage: total_tokens \(9\) does not equal prompt_tokens \(8\)$/],
    ['Embeddings with a completion', () => parseOpenAiEmbeddingsUsage({ prompt_tokens: 8, completion_tokens: 2 }), /completion_tokens \(2\) must be 0 for an embedding/],
    ['Gemini cached > prompt', () => parseGeminiUsage({ promptTokenCount: 100, cachedContentTokenCount: 101, toolUsePromptTokenCount: 50 }), /^Gemini usage: cachedContentTokenCount \(101\) exceeds promptTokenCount \(100\)$/],
    ['OpenRouter negative cost', () => parseOpenRouterUsage({ prompt_tokens: 1, completion_tokens: 1, cost: -0.5 }), /^OpenRouter usage: cost must be a non-negative number of USD, got -0\.5$/],
    [
      'OpenRouter cached > prompt names OpenRouter',
      () => parseOpenRouterUsage({ prompt_tokens: 1, completion_tokens: 1, prompt_tokens_details: { cached_tokens: 2 } }),
      /^OpenRouter usage: prompt_tokens_details\.cached_tokens \(2\) exceeds prompt_tokens \(1\)$/,
    ],
    ['OpenAI shape unknown', () => parseOpenAiUsage({ tokens: 5 }), /neither prompt_tokens \(Chat Completions\) nor input_tokens \(Responses\)/],
  ];
  for (const [name, parse, message] of cases) {
    it(name, () => {
      expect(parse).toThrow(InvalidUsageError);
      expect(parse).toThrow(message);
    });
  }
});

describe('response metadata', () => {
  it('reads model, id and service tier where each provider puts them', () => {
    for (const [name, f] of Object.entries(FIXTURES) as [string, Fixture][]) {
      const meta = USAGE_FORMATS[formatOfProvider(f.provider)].metadata(f.response);
      expect(meta, name).toEqual({
        responseModel: f.responseModel,
        responseId: f.responseId,
        ...('serviceTier' in f && { serviceTier: f.serviceTier }),
      });
    }
  });

  it("leaves out tiers it cannot map (OpenAI 'scale' is prepaid, not a per-token tier)", () => {
    expect(USAGE_FORMATS.openai.metadata({ model: 'gpt-4o', service_tier: 'scale' })).toEqual({ responseModel: 'gpt-4o' });
    expect(USAGE_FORMATS.anthropic.metadata({ usage: { service_tier: 'turbo' } })).toEqual({});
  });

  it('never throws on a malformed response', () => {
    for (const reader of Object.values(USAGE_FORMATS)) {
      expect(reader.metadata(null)).toEqual({});
      expect(reader.metadata('text')).toEqual({});
    }
  });
});
