/**
 * Span dialects: realistic attribute sets as the real instrumentations emit
 * them (source cited per fixture), and the exclusive TokenCounts, provider,
 * model, tier and reported cost each must yield.
 */
import { describe, expect, it } from 'vitest';
import { zeroTokens, type TokenCounts } from '../contract/tokens.ts';
import type { AttrValue } from '../otlp/codec.ts';
import { normalizeProvider } from '../contract/providers.ts';
import { spanRole, type LlmCall, type SpanRole } from '../consumers/dialects.ts';

type Attrs = Record<string, AttrValue>;

const tokens = (t: Partial<TokenCounts>): TokenCounts => ({ ...zeroTokens(), ...t });

function call(role: SpanRole): LlmCall {
  if (role.role !== 'llm_call') throw new Error(`expected an llm_call, got ${JSON.stringify(role, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))}`);
  return role.call;
}

function invalid(role: SpanRole): { dialect: string; provider: string; model: string; reason: string } {
  if (role.role !== 'llm_call_invalid') throw new Error(`expected llm_call_invalid, got ${JSON.stringify(role)}`);
  return role;
}

// ---------------------------------------------------------------------------
// OpenTelemetry GenAI semantic conventions
// ---------------------------------------------------------------------------

describe('OpenTelemetry GenAI dialect', () => {
  // Our SDK / open-telemetry/semantic-conventions docs/registry/attributes/gen-ai.md:
  // cache_read / cache_creation (now cache_write) "SHOULD be included in
  // gen_ai.usage.input_tokens"; reasoning is included in output_tokens.
  const anthropicChat: Attrs = {
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': 'anthropic',
    'gen_ai.request.model': 'claude-sonnet-4-5',
    'gen_ai.response.model': 'claude-sonnet-4-5-20250929',
    'gen_ai.response.id': 'msg_01XFDUDYJgAACzvnptvVoYEL',
    'gen_ai.response.finish_reasons': ['end_turn'],
    'gen_ai.usage.input_tokens': 12_034, // 34 uncached + 10_500 read + 1_500 written
    'gen_ai.usage.cache_read.input_tokens': 10_500,
    'gen_ai.usage.cache_write.input_tokens': 1_500,
    'gen_ai.usage.output_tokens': 812,
    'gen_ai.usage.reasoning.output_tokens': 300,
    'fleet.service_tier': 'standard',
    'fleet.cost.reported_usd': 0.0123,
    'server.address': 'api.anthropic.com',
  };

  it('reads the current names as inclusive counts and splits them into exclusive kinds', () => {
    expect(call(spanRole('chat claude-sonnet-4-5', anthropicChat))).toEqual({
      dialect: 'gen_ai',
      provider: 'anthropic',
      model: 'claude-sonnet-4-5-20250929',
      requestModel: 'claude-sonnet-4-5',
      serviceTier: 'standard',
      tokens: tokens({ input: 34, cache_read: 10_500, cache_write: 1_500, output: 512, reasoning: 300 }),
      reportedCostUsd: '0.0123',
      serverAddress: 'api.anthropic.com', // server.address: where the request went
    });
  });

  it('accepts cache_creation.input_tokens, the older name of cache_write.input_tokens', () => {
    const { ['gen_ai.usage.cache_write.input_tokens']: write, ...older } = anthropicChat;
    const c = call(spanRole('chat claude-sonnet-4-5', { ...older, 'gen_ai.usage.cache_creation.input_tokens': write! }));
    expect(c.tokens).toEqual(tokens({ input: 34, cache_read: 10_500, cache_write: 1_500, output: 512, reasoning: 300 }));
    // Both names, same value: one count, not two.
    const both = call(spanRole('chat claude-sonnet-4-5', { ...anthropicChat, 'gen_ai.usage.cache_creation.input_tokens': 1_500 }));
    expect(both.tokens.cache_write).toBe(1_500);
  });

  it('rejects the old and new cache-write names when they disagree', () => {
    const r = invalid(spanRole('chat', { ...anthropicChat, 'gen_ai.usage.cache_creation.input_tokens': 900 }));
    expect(r.reason).toBe('gen_ai.usage.cache_write.input_tokens 1500 and gen_ai.usage.cache_creation.input_tokens 900 disagree');
    expect(r).toMatchObject({ dialect: 'gen_ai', provider: 'anthropic', model: 'claude-sonnet-4-5-20250929' });
  });

  it('reads the semconv ≤1.26 names (gen_ai.system, prompt_tokens / completion_tokens) without gen_ai.operation.name', () => {
    // Deprecated GenAI attributes (registry: "gen_ai.usage.prompt_tokens — Replaced by gen_ai.usage.input_tokens"),
    // as early OpenAI instrumentations and Vercel AI SDK 3.x emitted them.
    const c = call(
      spanRole('openai.chat.completions', {
        'gen_ai.system': 'openai',
        'gen_ai.request.model': 'gpt-4o-mini',
        'gen_ai.response.model': 'gpt-4o-mini-2024-07-18',
        'gen_ai.usage.prompt_tokens': 1_200,
        'gen_ai.usage.completion_tokens': 80,
        'gen_ai.openai.response.service_tier': 'default',
      }),
    );
    expect(c).toMatchObject({ dialect: 'gen_ai', provider: 'openai', model: 'gpt-4o-mini-2024-07-18', serviceTier: 'standard' });
    expect(c.tokens).toEqual(tokens({ input: 1_200, output: 80 }));
  });

  // opentelemetry-python-contrib opentelemetry-instrumentation-openai-v2 span:
  // "chat <model>", OpenAI prompt_tokens (which includes cached_tokens).
  const openAiV2: Attrs = {
    'gen_ai.operation.name': 'chat',
    'gen_ai.system': 'openai',
    'gen_ai.request.model': 'gpt-4o',
    'gen_ai.response.model': 'gpt-4o-2024-08-06',
    'gen_ai.response.id': 'chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG',
    'gen_ai.usage.input_tokens': 2_006,
    'gen_ai.usage.cache_read.input_tokens': 1_920,
    'gen_ai.usage.output_tokens': 300,
    'openai.response.service_tier': 'flex',
    'server.address': 'api.openai.com',
  };

  it('maps OpenAI service tiers: flex, priority, default → standard, and fleet.service_tier wins', () => {
    expect(call(spanRole('chat gpt-4o', openAiV2))).toMatchObject({
      serviceTier: 'flex',
      tokens: tokens({ input: 86, cache_read: 1_920, output: 300 }),
    });
    expect(call(spanRole('chat gpt-4o', { ...openAiV2, 'openai.response.service_tier': 'priority' })).serviceTier).toBe('priority');
    expect(call(spanRole('chat gpt-4o', { ...openAiV2, 'openai.response.service_tier': 'default' })).serviceTier).toBe('standard');
    expect(call(spanRole('chat gpt-4o', { ...openAiV2, 'fleet.service_tier': 'batch' })).serviceTier).toBe('batch');
  });

  it('refuses a service tier it cannot price, naming the value and attribute', () => {
    // 'scale' is the registry's example of openai.response.service_tier (prepaid scale-tier units).
    const r = invalid(spanRole('chat gpt-4o', { ...openAiV2, 'openai.response.service_tier': 'scale' }));
    expect(r.reason).toBe('unknown service tier "scale" in openai.response.service_tier');
    expect(r).toMatchObject({ dialect: 'gen_ai', provider: 'openai', model: 'gpt-4o-2024-08-06' });
  });

  it('does not count agent-level spans, which aggregate their children', () => {
    const totals = { 'gen_ai.usage.input_tokens': 50_000, 'gen_ai.usage.output_tokens': 4_000, 'gen_ai.provider.name': 'openai' };
    expect(spanRole('invoke_agent planner', { 'gen_ai.operation.name': 'invoke_agent', 'gen_ai.agent.name': 'planner', ...totals })).toEqual({ role: 'other' });
    expect(spanRole('create_agent planner', { 'gen_ai.operation.name': 'create_agent', ...totals })).toEqual({ role: 'other' });
    expect(spanRole('retrieval docs', { 'gen_ai.operation.name': 'retrieval', 'gen_ai.data_source.id': 'H7STPQYOND' })).toEqual({ role: 'other' });
    expect(spanRole('http GET', { 'http.request.method': 'GET' })).toEqual({ role: 'other' });
  });

  it('recognises tool spans', () => {
    expect(
      spanRole('execute_tool get_weather', {
        'gen_ai.operation.name': 'execute_tool',
        'gen_ai.tool.name': 'get_weather',
        'gen_ai.tool.call.id': 'call_mszuSIzqtI65i1wAUOE8w5H4',
      }),
    ).toEqual({ role: 'tool_call' });
  });

  it('counts embeddings with usage and ignores embedding spans without any', () => {
    const emb: Attrs = { 'gen_ai.operation.name': 'embeddings', 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'text-embedding-3-small' };
    expect(call(spanRole('embeddings text-embedding-3-small', { ...emb, 'gen_ai.usage.input_tokens': 42 }))).toMatchObject({
      model: 'text-embedding-3-small',
      tokens: tokens({ input: 42 }),
    });
    expect(spanRole('embeddings text-embedding-3-small', emb)).toEqual({ role: 'other' });
  });

  it('marks a chat call without any usage as invalid, never as free', () => {
    const chat: Attrs = { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'openai', 'gen_ai.request.model': 'gpt-4o' };
    expect(spanRole('chat gpt-4o', chat)).toEqual({
      role: 'llm_call_invalid',
      dialect: 'gen_ai',
      provider: 'openai',
      model: 'gpt-4o',
      reason: 'no token usage',
    });
    expect(invalid(spanRole('chat gpt-4o', { ...chat, 'error.type': 'RateLimitError' })).reason).toBe(
      'no token usage (the call failed: error.type RateLimitError)',
    );
  });
});

// ---------------------------------------------------------------------------
// OpenLLMetry (Traceloop)
// ---------------------------------------------------------------------------

describe('OpenLLMetry dialect', () => {
  it('reads the OpenAI instrumentation: prompt_tokens includes the cached tokens', () => {
    // traceloop/openllmetry opentelemetry-instrumentation-openai shared/_set_response_attributes:
    // prompt_tokens / completion_tokens / total_tokens from usage, cache read from
    // prompt_tokens_details.cached_tokens (LLM_USAGE_CACHE_READ_INPUT_TOKENS).
    const c = call(
      spanRole('openai.chat', {
        'gen_ai.system': 'openai',
        'llm.request.type': 'chat',
        'gen_ai.request.model': 'gpt-4o',
        'gen_ai.response.model': 'gpt-4o-2024-08-06',
        'gen_ai.openai.api_base': 'https://api.openai.com/v1/',
        'llm.is_streaming': false,
        'llm.usage.total_tokens': 2_306,
        'gen_ai.usage.prompt_tokens': 2_006,
        'gen_ai.usage.completion_tokens': 300,
        'gen_ai.usage.cache_read_input_tokens': 1_920,
      }),
    );
    expect(c).toMatchObject({ dialect: 'openllmetry', provider: 'openai', model: 'gpt-4o-2024-08-06', requestModel: 'gpt-4o' });
    expect(c.tokens).toEqual(tokens({ input: 86, cache_read: 1_920, output: 300 }));
  });

  it('reads reasoning tokens inside the OpenAI completion count', () => {
    // OpenAI completion_tokens includes completion_tokens_details.reasoning_tokens
    // (OpenLLMetry LLM_USAGE_REASONING_TOKENS = gen_ai.usage.reasoning_tokens); total = prompt + completion.
    const c = call(
      spanRole('openai.chat', {
        'gen_ai.system': 'OpenAI',
        'llm.request.type': 'chat',
        'gen_ai.request.model': 'o3-mini',
        'gen_ai.usage.prompt_tokens': 1_500,
        'gen_ai.usage.completion_tokens': 1_300,
        'gen_ai.usage.reasoning_tokens': 1_024,
        'llm.usage.total_tokens': 2_800,
      }),
    );
    expect(c.tokens).toEqual(tokens({ input: 1_500, output: 276, reasoning: 1_024 }));
  });

  it('reads the Anthropic instrumentation, whose input already includes cache reads and writes', () => {
    // traceloop/openllmetry opentelemetry-instrumentation-anthropic __init__.py _set_token_usage
    // (since traceloop/openllmetry#2175): input_tokens = usage.input_tokens + cache_read + cache_creation,
    // total = input + output. Anthropic's own usage here: input 12, cache_read 6209, creation 0, output 150.
    const current = call(
      spanRole('anthropic.chat', {
        'gen_ai.system': 'Anthropic',
        'llm.request.type': 'completion',
        'gen_ai.request.model': 'claude-3-5-sonnet-20241022',
        'gen_ai.response.model': 'claude-3-5-sonnet-20241022',
        'gen_ai.usage.input_tokens': 6_221,
        'gen_ai.usage.output_tokens': 150,
        'llm.usage.total_tokens': 6_371,
        'gen_ai.usage.cache_read.input_tokens': 6_209,
        'gen_ai.usage.cache_creation.input_tokens': 0,
      }),
    );
    expect(current).toMatchObject({ dialect: 'openllmetry', provider: 'anthropic', model: 'claude-3-5-sonnet-20241022' });
    expect(current.tokens).toEqual(tokens({ input: 12, cache_read: 6_209, output: 150 }));

    // The same instrumentation on the older semconv_ai names (SpanAttributes.LLM_USAGE_*), a cache write.
    const older = call(
      spanRole('anthropic.chat', {
        'gen_ai.system': 'Anthropic',
        'llm.request.type': 'completion',
        'gen_ai.request.model': 'claude-3-5-haiku-20241022',
        'gen_ai.usage.prompt_tokens': 2_060,
        'gen_ai.usage.completion_tokens': 95,
        'llm.usage.total_tokens': 2_155,
        'gen_ai.usage.cache_read_input_tokens': 0,
        'gen_ai.usage.cache_creation_input_tokens': 2_048,
      }),
    );
    expect(older.tokens).toEqual(tokens({ input: 12, cache_write: 2_048, output: 95 }));
  });

  it('folds cache tokens in when the reported total proves the prompt excluded them', () => {
    // An instrumentation reporting Anthropic's own input_tokens (cache excluded) beside the cache counts:
    // total 6371 = 12 + 6209 + 150, not 12 + 150.
    const attrs: Attrs = {
      'gen_ai.system': 'Anthropic',
      'llm.request.type': 'chat',
      'gen_ai.request.model': 'claude-3-5-sonnet-20241022',
      'gen_ai.usage.prompt_tokens': 12,
      'gen_ai.usage.completion_tokens': 150,
      'gen_ai.usage.cache_read_input_tokens': 6_209,
      'llm.usage.total_tokens': 6_371,
    };
    expect(call(spanRole('anthropic.chat', attrs)).tokens).toEqual(tokens({ input: 12, cache_read: 6_209, output: 150 }));
    // Without a total nothing proves it: cache larger than the prompt is refused, not guessed.
    const { ['llm.usage.total_tokens']: _total, ...noTotal } = attrs;
    expect(invalid(spanRole('anthropic.chat', noTotal)).reason).toBe(
      'cache tokens (gen_ai.usage.cache_read_input_tokens 6209) exceed gen_ai.usage.prompt_tokens 12',
    );
  });

  it('reads Gemini reasoning outside the completion count (candidatesTokenCount excludes thoughts)', () => {
    // OpenLLMetry-convention @google/genai instrumentation (Netra SDK google_genai utils setUsageAttributes):
    // prompt = promptTokenCount (includes cachedContentTokenCount), completion = candidatesTokenCount,
    // reasoning = thoughtsTokenCount, total = totalTokenCount = 1000 + 200 + 500.
    const attrs: Attrs = {
      'llm.request.type': 'chat',
      'gen_ai.system': 'google_genai',
      'gen_ai.request.model': 'gemini-2.5-flash',
      'gen_ai.response.model': 'gemini-2.5-flash',
      'gen_ai.usage.prompt_tokens': 1_000,
      'gen_ai.usage.completion_tokens': 200,
      'llm.usage.total_tokens': 1_700,
      'gen_ai.usage.cache_read_input_tokens': 400,
      'gen_ai.usage.reasoning_tokens': 500,
    };
    const c = call(spanRole('gemini.generate_content', attrs));
    expect(c).toMatchObject({ provider: 'gcp.gen_ai', model: 'gemini-2.5-flash' });
    expect(c.tokens).toEqual(tokens({ input: 600, cache_read: 400, output: 200, reasoning: 500 }));
    // Without the total, the provider decides: Gemini reports thoughts outside candidates.
    const { ['llm.usage.total_tokens']: _t, ...noTotal } = attrs;
    expect(call(spanRole('gemini.generate_content', { ...noTotal, 'gen_ai.system': 'Gemini' })).tokens).toEqual(
      tokens({ input: 600, cache_read: 400, output: 200, reasoning: 500 }),
    );
  });

  it('treats Traceloop workflow / task / agent spans as aggregates and tool spans as tools', () => {
    expect(spanRole('joke_workflow.workflow', { 'traceloop.span.kind': 'workflow', 'traceloop.entity.name': 'joke_workflow', 'gen_ai.usage.prompt_tokens': 9_000 })).toEqual({
      role: 'other',
    });
    expect(spanRole('plan.task', { 'traceloop.span.kind': 'task', 'traceloop.entity.name': 'plan' })).toEqual({ role: 'other' });
    expect(spanRole('search.tool', { 'traceloop.span.kind': 'tool', 'traceloop.entity.name': 'search' })).toEqual({ role: 'tool_call' });
    expect(spanRole('cohere.rerank', { 'gen_ai.system': 'Cohere', 'llm.request.type': 'rerank', 'gen_ai.request.model': 'rerank-v3.5' })).toEqual({
      role: 'other',
    });
  });
});

// ---------------------------------------------------------------------------
// OpenInference (Arize / Phoenix)
// ---------------------------------------------------------------------------

describe('OpenInference dialect', () => {
  // Arize-ai/openinference openinference-instrumentation-openai; spec/semantic_conventions.md
  // "Token Count Details": prompt_details.* are sub-counts of llm.token_count.prompt;
  // OpenAI completion_tokens include reasoning.
  const openAi: Attrs = {
    'openinference.span.kind': 'LLM',
    'llm.provider': 'openai',
    'llm.system': 'openai',
    'llm.model_name': 'o3-mini-2025-01-31',
    'llm.invocation_parameters': '{"model": "o3-mini", "reasoning_effort": "high"}',
    'llm.input_messages.0.message.role': 'user',
    'llm.input_messages.0.message.content': 'Fix the failing test.',
    'llm.token_count.prompt': 2_006,
    'llm.token_count.completion': 1_300,
    'llm.token_count.total': 3_306,
    'llm.token_count.prompt_details.cache_read': 1_920,
    'llm.token_count.completion_details.reasoning': 1_024,
    'llm.cost.total': 0.0079002,
  };

  it('reads OpenAI with cache and reasoning, the reported cost and the requested model', () => {
    expect(call(spanRole('ChatCompletion', openAi))).toEqual({
      dialect: 'openinference',
      provider: 'openai',
      model: 'o3-mini-2025-01-31',
      requestModel: 'o3-mini',
      serviceTier: 'standard',
      tokens: tokens({ input: 86, cache_read: 1_920, output: 276, reasoning: 1_024 }),
      reportedCostUsd: '0.0079002',
    });
  });

  it('reads Anthropic with a cache write (cache folded into the prompt count since Arize-ai/openinference#1429)', () => {
    // openinference-instrumentation-anthropic: prompt = input_tokens 24 + cache_creation 2048 + cache_read 0.
    const c = call(
      spanRole('Messages', {
        'openinference.span.kind': 'LLM',
        'llm.provider': 'anthropic',
        'llm.system': 'anthropic',
        'llm.model_name': 'claude-3-7-sonnet-20250219',
        'llm.token_count.prompt': 2_072,
        'llm.token_count.completion': 95,
        'llm.token_count.total': 2_167,
        'llm.token_count.prompt_details.cache_read': 0,
        'llm.token_count.prompt_details.cache_write': 2_048,
      }),
    );
    expect(c).toMatchObject({ provider: 'anthropic', model: 'claude-3-7-sonnet-20250219', requestModel: 'claude-3-7-sonnet-20250219' });
    expect(c.tokens).toEqual(tokens({ input: 24, cache_write: 2_048, output: 95 }));
  });

  it('prices by the hosting provider (llm.provider) over the model vendor (llm.system)', () => {
    expect(call(spanRole('ChatCompletion', { ...openAi, 'llm.provider': 'azure' })).provider).toBe('azure.ai.openai');
    const { ['llm.provider']: _p, ...vendorOnly } = openAi;
    expect(call(spanRole('ChatCompletion', { ...vendorOnly, 'llm.system': 'mistralai' })).provider).toBe('mistral_ai');
  });

  it('prefers llm.response.model_name and llm.request.model_name when the provider routed elsewhere', () => {
    const c = call(
      spanRole('Messages', {
        ...openAi,
        'llm.model_name': 'gpt-5-2025-08-07',
        'llm.request.model_name': 'gpt-5',
        'llm.response.model_name': 'gpt-5-2025-08-07',
      }),
    );
    expect(c).toMatchObject({ model: 'gpt-5-2025-08-07', requestModel: 'gpt-5' });
  });

  it('does not count CHAIN or AGENT spans even when they carry token counts', () => {
    // LangChain / LlamaIndex instrumentors put the run's token totals on CHAIN spans.
    const totals = { 'llm.token_count.prompt': 5_000, 'llm.token_count.completion': 700, 'llm.token_count.total': 5_700 };
    expect(spanRole('RunnableSequence', { 'openinference.span.kind': 'CHAIN', ...totals })).toEqual({ role: 'other' });
    expect(spanRole('Agent', { 'openinference.span.kind': 'AGENT', ...totals })).toEqual({ role: 'other' });
    expect(spanRole('retrieve', { 'openinference.span.kind': 'RETRIEVER' })).toEqual({ role: 'other' });
    expect(spanRole('get_weather', { 'openinference.span.kind': 'TOOL', 'tool.name': 'get_weather' })).toEqual({ role: 'tool_call' });
  });

  it('counts EMBEDDING spans that carry tokens, by embedding.model_name', () => {
    const emb: Attrs = { 'openinference.span.kind': 'EMBEDDING', 'embedding.model_name': 'text-embedding-3-small' };
    expect(call(spanRole('CreateEmbeddings', { ...emb, 'llm.token_count.prompt': 8, 'llm.token_count.total': 8 }))).toMatchObject({
      dialect: 'openinference',
      model: 'text-embedding-3-small',
      tokens: tokens({ input: 8 }),
    });
    expect(spanRole('CreateEmbeddings', emb)).toEqual({ role: 'other' });
  });

  it('refuses reasoning larger than the completion, naming both attributes', () => {
    const r = invalid(spanRole('ChatCompletion', { ...openAi, 'llm.token_count.completion_details.reasoning': 2_000 }));
    expect(r.reason).toBe('llm.token_count.completion_details.reasoning 2000 exceeds llm.token_count.completion 1300');
    expect(r).toMatchObject({ dialect: 'openinference', provider: 'openai', model: 'o3-mini-2025-01-31' });
  });
});

// ---------------------------------------------------------------------------
// Vercel AI SDK
// ---------------------------------------------------------------------------

describe('Vercel AI SDK dialect', () => {
  describe('v4 (ai.usage.promptTokens / completionTokens, cache in providerMetadata)', () => {
    // vercel/ai v4 packages/ai/core/generate-text/generate-text.ts: doGenerate span attributes;
    // @ai-sdk/openai 1.x providerMetadata.openai.{reasoningTokens, cachedPromptTokens}, both inside the counts.
    const doGenerate: Attrs = {
      'operation.name': 'ai.generateText.doGenerate fix-test',
      'ai.operationId': 'ai.generateText.doGenerate',
      'ai.telemetry.functionId': 'fix-test',
      'ai.model.id': 'gpt-4o',
      'ai.model.provider': 'openai.chat',
      'ai.settings.maxRetries': 2,
      'ai.response.finishReason': 'stop',
      'ai.response.id': 'chatcmpl-AaB1cD2eF3gH4',
      'ai.response.model': 'gpt-4o-2024-08-06',
      'ai.response.timestamp': '2025-03-04T10:11:12.000Z',
      'ai.response.providerMetadata': '{"openai":{"reasoningTokens":0,"acceptedPredictionTokens":0,"rejectedPredictionTokens":0,"cachedPromptTokens":1536}}',
      'ai.usage.promptTokens': 2_048,
      'ai.usage.completionTokens': 120,
      'gen_ai.system': 'openai.chat',
      'gen_ai.request.model': 'gpt-4o',
      'gen_ai.response.model': 'gpt-4o-2024-08-06',
      'gen_ai.response.finish_reasons': ['stop'],
      'gen_ai.usage.input_tokens': 2_048,
      'gen_ai.usage.output_tokens': 120,
    };

    it('counts the doGenerate span once, with the cached prompt tokens from providerMetadata', () => {
      expect(call(spanRole('ai.generateText.doGenerate', doGenerate))).toEqual({
        dialect: 'vercel_ai',
        provider: 'openai',
        model: 'gpt-4o-2024-08-06',
        requestModel: 'gpt-4o',
        serviceTier: 'standard',
        tokens: tokens({ input: 512, cache_read: 1_536, output: 120 }),
      });
    });

    it('does not count the outer ai.generateText span, which sums its steps', () => {
      expect(
        spanRole('ai.generateText', {
          'operation.name': 'ai.generateText fix-test',
          'ai.operationId': 'ai.generateText',
          'ai.model.id': 'gpt-4o',
          'ai.model.provider': 'openai.chat',
          'ai.usage.promptTokens': 4_096,
          'ai.usage.completionTokens': 240,
        }),
      ).toEqual({ role: 'other' });
    });

    it('adds Anthropic cache tokens, which promptTokens leaves out', () => {
      // @ai-sdk/anthropic 1.x: promptTokens = usage.input_tokens; providerMetadata.anthropic.{cacheCreationInputTokens, cacheReadInputTokens}.
      const c = call(
        spanRole('ai.streamText.doStream', {
          'ai.operationId': 'ai.streamText.doStream',
          'ai.model.id': 'claude-3-5-sonnet-latest',
          'ai.model.provider': 'anthropic.messages',
          'ai.response.model': 'claude-3-5-sonnet-20241022',
          'ai.response.providerMetadata': '{"anthropic":{"cacheCreationInputTokens":0,"cacheReadInputTokens":4211}}',
          'ai.usage.promptTokens': 9,
          'ai.usage.completionTokens': 310,
          'gen_ai.system': 'anthropic.messages',
          'gen_ai.usage.input_tokens': 9,
          'gen_ai.usage.output_tokens': 310,
        }),
      );
      expect(c).toMatchObject({ provider: 'anthropic', model: 'claude-3-5-sonnet-20241022', requestModel: 'claude-3-5-sonnet-latest' });
      expect(c.tokens).toEqual(tokens({ input: 9, cache_read: 4_211, output: 310 }));
    });

    it('still reads a span after Traceloop rewrote it (ai.model.provider → gen_ai.system, promptTokens → input_tokens)', () => {
      // traceloop/openllmetry-js traceloop-sdk ai-sdk-transformations.ts keeps ai.operationId and
      // ai.response.providerMetadata, renames the span, deletes ai.usage.promptTokens / ai.model.provider.
      const c = call(
        spanRole('text.generate', {
          'ai.operationId': 'ai.generateText.doGenerate',
          'ai.model.id': 'claude-3-5-sonnet-latest',
          'ai.response.providerMetadata': '{"anthropic":{"cacheCreationInputTokens":0,"cacheReadInputTokens":4211}}',
          'gen_ai.system': 'Anthropic',
          'gen_ai.usage.input_tokens': 9,
          'gen_ai.usage.output_tokens': 310,
          'llm.usage.total_tokens': 319,
        }),
      );
      expect(c).toMatchObject({ dialect: 'vercel_ai', provider: 'anthropic' });
      expect(c.tokens).toEqual(tokens({ input: 9, cache_read: 4_211, output: 310 }));
    });
  });

  describe('v5 (ai.usage.inputTokens / outputTokens / reasoningTokens / cachedInputTokens)', () => {
    it('reads OpenAI: cache and reasoning inside the totals, tier from providerMetadata', () => {
      // vercel/ai v5 packages/ai/src/generate-text/stream-text.ts doStream attributes; @ai-sdk/openai 2.x responses.
      const c = call(
        spanRole('ai.streamText.doStream', {
          'ai.operationId': 'ai.streamText.doStream',
          'ai.model.id': 'o3-mini',
          'ai.model.provider': 'openai.responses',
          'ai.response.model': 'o3-mini-2025-01-31',
          'ai.response.providerMetadata': '{"openai":{"responseId":"resp_67c9fdcecf488190bdd9a0409de3a1f2","serviceTier":"flex"}}',
          'ai.usage.inputTokens': 2_006,
          'ai.usage.outputTokens': 1_300,
          'ai.usage.totalTokens': 3_306,
          'ai.usage.reasoningTokens': 1_024,
          'ai.usage.cachedInputTokens': 1_920,
          'gen_ai.system': 'openai.responses',
          'gen_ai.usage.input_tokens': 2_006,
          'gen_ai.usage.output_tokens': 1_300,
        }),
      );
      expect(c).toMatchObject({ provider: 'openai', model: 'o3-mini-2025-01-31', serviceTier: 'flex' });
      expect(c.tokens).toEqual(tokens({ input: 86, cache_read: 1_920, output: 276, reasoning: 1_024 }));
    });

    it('reads Anthropic: inputTokens excludes cache; the write is in providerMetadata', () => {
      // vercel/ai @ai-sdk/anthropic 2.x doGenerate: inputTokens = usage.input_tokens,
      // cachedInputTokens = cache_read_input_tokens, providerMetadata.anthropic.{usage, cacheCreationInputTokens}.
      const c = call(
        spanRole('ai.generateText.doGenerate', {
          'ai.operationId': 'ai.generateText.doGenerate',
          'ai.model.id': 'claude-sonnet-4-20250514',
          'ai.model.provider': 'anthropic.messages',
          'ai.response.model': 'claude-sonnet-4-20250514',
          'ai.response.providerMetadata':
            '{"anthropic":{"usage":{"input_tokens":12,"cache_creation_input_tokens":1024,"cache_read_input_tokens":6209,"output_tokens":150,"service_tier":"standard"},"cacheCreationInputTokens":1024}}',
          'ai.usage.inputTokens': 12,
          'ai.usage.outputTokens': 150,
          'ai.usage.totalTokens': 162,
          'ai.usage.cachedInputTokens': 6_209,
          'gen_ai.system': 'anthropic.messages',
          'gen_ai.usage.input_tokens': 12,
          'gen_ai.usage.output_tokens': 150,
        }),
      );
      expect(c).toMatchObject({ provider: 'anthropic', serviceTier: 'standard' });
      expect(c.tokens).toEqual(tokens({ input: 12, cache_read: 6_209, cache_write: 1_024, output: 150 }));
    });

    it('reads Bedrock Converse: input excludes cache, the write is in providerMetadata.bedrock.usage', () => {
      // vercel/ai @ai-sdk/amazon-bedrock 3.x: inputTokens = usage.inputTokens, cachedInputTokens = cacheReadInputTokens,
      // providerMetadata.bedrock.usage.cacheWriteInputTokens.
      const c = call(
        spanRole('ai.generateText.doGenerate', {
          'ai.operationId': 'ai.generateText.doGenerate',
          'ai.model.id': 'us.anthropic.claude-3-7-sonnet-20250219-v1:0',
          'ai.model.provider': 'amazon-bedrock',
          'ai.response.providerMetadata': '{"bedrock":{"usage":{"cacheWriteInputTokens":500}}}',
          'ai.usage.inputTokens': 20,
          'ai.usage.outputTokens': 80,
          'ai.usage.totalTokens': 100,
          'ai.usage.cachedInputTokens': 3_000,
        }),
      );
      expect(c).toMatchObject({ provider: 'aws.bedrock', model: 'us.anthropic.claude-3-7-sonnet-20250219-v1:0' });
      expect(c.tokens).toEqual(tokens({ input: 20, cache_read: 3_000, cache_write: 500, output: 80 }));
    });

    it('reads Gemini: outputTokens excludes reasoning (totalTokens includes it)', () => {
      // vercel/ai @ai-sdk/google 2.x: inputTokens = promptTokenCount, outputTokens = candidatesTokenCount,
      // reasoningTokens = thoughtsTokenCount, totalTokens = totalTokenCount, cachedInputTokens = cachedContentTokenCount.
      const gemini: Attrs = {
        'ai.operationId': 'ai.generateText.doGenerate',
        'ai.model.id': 'gemini-2.5-pro',
        'ai.model.provider': 'google.generative-ai',
        'ai.usage.inputTokens': 1_000,
        'ai.usage.outputTokens': 200,
        'ai.usage.totalTokens': 1_700,
        'ai.usage.reasoningTokens': 500,
        'ai.usage.cachedInputTokens': 400,
      };
      const c = call(spanRole('ai.generateText.doGenerate', gemini));
      expect(c).toMatchObject({ provider: 'gcp.gemini', model: 'gemini-2.5-pro' });
      expect(c.tokens).toEqual(tokens({ input: 600, cache_read: 400, output: 200, reasoning: 500 }));
      const { ['ai.usage.totalTokens']: _t, ...noTotal } = gemini;
      expect(call(spanRole('ai.generateText.doGenerate', noTotal)).tokens).toEqual(tokens({ input: 600, cache_read: 400, output: 200, reasoning: 500 }));
    });
  });

  describe('v6 (inputTokenDetails / outputTokenDetails)', () => {
    // A real ai.streamText.doStream span (AI SDK 6, Anthropic), values as OTLP/JSON strings:
    // inputTokens is inclusive = noCache 2 + cacheRead 649452 + cacheWrite 907
    // (vercel/ai packages/anthropic/src/convert-anthropic-messages-usage.ts).
    const anthropicDoStream: Attrs = {
      'operation.name': 'ai.streamText.doStream',
      'ai.operationId': 'ai.streamText.doStream',
      'ai.model.id': 'claude-opus-4-1',
      'ai.model.provider': 'anthropic.messages',
      'ai.response.model': 'claude-opus-4-1-20250805',
      'ai.response.msToFirstChunk': '2612.1',
      'ai.usage.inputTokens': '650361',
      'ai.usage.outputTokens': '369',
      'ai.usage.cachedInputTokens': '649452',
      'ai.usage.inputTokenDetails.cacheReadTokens': '649452',
      'ai.usage.inputTokenDetails.cacheWriteTokens': '907',
      'ai.usage.inputTokenDetails.noCacheTokens': '2',
      'ai.usage.totalTokens': '650730',
      'gen_ai.request.model': 'claude-opus-4-1',
      'gen_ai.response.model': 'claude-opus-4-1-20250805',
      'gen_ai.system': 'anthropic.messages',
      'gen_ai.usage.input_tokens': '650361',
      'gen_ai.usage.output_tokens': '369',
    };

    it('reads Anthropic with cache through the AI SDK without counting cache twice', () => {
      expect(call(spanRole('ai.streamText.doStream', anthropicDoStream))).toEqual({
        dialect: 'vercel_ai',
        provider: 'anthropic',
        model: 'claude-opus-4-1-20250805',
        requestModel: 'claude-opus-4-1',
        serviceTier: 'standard',
        tokens: tokens({ input: 2, cache_read: 649_452, cache_write: 907, output: 369 }),
      });
    });

    it('does not count the outer ai.streamText span with the call totals', () => {
      expect(
        spanRole('ai.streamText', {
          'ai.operationId': 'ai.streamText',
          'ai.model.provider': 'anthropic.messages',
          'ai.usage.inputTokens': 650_361,
          'ai.usage.inputTokenDetails.noCacheTokens': 2,
          'ai.usage.outputTokens': 369,
        }),
      ).toEqual({ role: 'other' });
    });

    it('reads Gemini with reasoning in outputTokenDetails', () => {
      // @ai-sdk/google 3.x convert-google-generative-ai-usage.ts: output total = candidates + thoughts.
      const c = call(
        spanRole('ai.generateText.doGenerate', {
          'ai.operationId': 'ai.generateText.doGenerate',
          'ai.model.id': 'gemini-2.5-pro',
          'ai.model.provider': 'google.generative-ai',
          'ai.usage.inputTokens': 1_000,
          'ai.usage.inputTokenDetails.noCacheTokens': 600,
          'ai.usage.inputTokenDetails.cacheReadTokens': 400,
          'ai.usage.outputTokens': 700,
          'ai.usage.outputTokenDetails.textTokens': 200,
          'ai.usage.outputTokenDetails.reasoningTokens': 500,
          'ai.usage.reasoningTokens': 500,
          'ai.usage.cachedInputTokens': 400,
          'ai.usage.totalTokens': 1_700,
        }),
      );
      expect(c.tokens).toEqual(tokens({ input: 600, cache_read: 400, output: 200, reasoning: 500 }));
    });

    it('refuses a breakdown that does not add up to its total', () => {
      const r = invalid(spanRole('ai.streamText.doStream', { ...anthropicDoStream, 'ai.usage.inputTokenDetails.noCacheTokens': '5000' }));
      expect(r.reason).toBe(
        'ai.usage.inputTokenDetails.noCacheTokens 5000 + ai.usage.inputTokenDetails.cacheReadTokens 649452 + ai.usage.inputTokenDetails.cacheWriteTokens 907 ≠ ai.usage.inputTokens 650361',
      );
      expect(r).toMatchObject({ dialect: 'vercel_ai', provider: 'anthropic', model: 'claude-opus-4-1-20250805' });
    });
  });

  describe('v7 (@ai-sdk/otel GenAI spans)', () => {
    // vercel/ai packages/otel/src/open-telemetry.ts: root "invoke_agent <model>" with totalUsage,
    // "step N" agent_step, "chat <model>" per model call, "execute_tool <name>".
    it('counts the chat span and not the invoke_agent root or the step', () => {
      const usage = {
        'gen_ai.usage.input_tokens': 9_500,
        'gen_ai.usage.output_tokens': 300,
        'gen_ai.usage.cache_read.input_tokens': 8_000,
        'gen_ai.usage.cache_creation.input_tokens': 500,
      };
      expect(
        spanRole('invoke_agent claude-sonnet-4-5', {
          'gen_ai.operation.name': 'invoke_agent',
          'gen_ai.provider.name': 'anthropic',
          'gen_ai.request.model': 'claude-sonnet-4-5',
          ...usage,
        }),
      ).toEqual({ role: 'other' });
      expect(spanRole('step 1', { 'gen_ai.operation.name': 'agent_step' })).toEqual({ role: 'other' });
      const c = call(
        spanRole('chat claude-sonnet-4-5', {
          'gen_ai.operation.name': 'chat',
          'gen_ai.provider.name': 'anthropic',
          'gen_ai.request.model': 'claude-sonnet-4-5',
          'gen_ai.response.model': 'claude-sonnet-4-5-20250929',
          'gen_ai.response.finish_reasons': ['stop'],
          ...usage,
        }),
      );
      expect(c).toMatchObject({ dialect: 'gen_ai', provider: 'anthropic', model: 'claude-sonnet-4-5-20250929' });
      expect(c.tokens).toEqual(tokens({ input: 1_000, cache_read: 8_000, cache_write: 500, output: 300 }));
      expect(spanRole('execute_tool bash', { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'bash', 'gen_ai.tool.type': 'function' })).toEqual({
        role: 'tool_call',
      });
    });
  });

  it('counts doEmbed spans that carry ai.usage.tokens and not the outer embed span', () => {
    // vercel/ai telemetry docs: "ai.embedMany.doEmbed … ai.usage.tokens: the number of tokens that were used".
    const doEmbed: Attrs = {
      'ai.operationId': 'ai.embedMany.doEmbed',
      'ai.model.id': 'text-embedding-3-small',
      'ai.model.provider': 'openai.embedding',
      'ai.usage.tokens': 1_234,
    };
    expect(call(spanRole('ai.embedMany.doEmbed', doEmbed))).toMatchObject({
      provider: 'openai',
      model: 'text-embedding-3-small',
      tokens: tokens({ input: 1_234 }),
    });
    expect(spanRole('ai.embedMany', { ...doEmbed, 'ai.operationId': 'ai.embedMany' })).toEqual({ role: 'other' });
    const { ['ai.usage.tokens']: _u, ...noUsage } = doEmbed;
    expect(spanRole('ai.embedMany.doEmbed', noUsage)).toEqual({ role: 'other' });
  });

  it('recognises ai.toolCall spans', () => {
    expect(
      spanRole('ai.toolCall', {
        'operation.name': 'ai.toolCall',
        'ai.operationId': 'ai.toolCall',
        'ai.toolCall.name': 'readFile',
        'ai.toolCall.id': 'toolu_01A09q90qw90lq917835lq9',
        'ai.toolCall.args': '{"path":"src/index.ts"}',
      }),
    ).toEqual({ role: 'tool_call' });
  });

  it('takes the reported cost from OpenRouter provider metadata and drops the API flavour of unknown providers', () => {
    // @openrouter/ai-sdk-provider: providerMetadata.openrouter.usage.cost (USD).
    const c = call(
      spanRole('ai.generateText.doGenerate', {
        'ai.operationId': 'ai.generateText.doGenerate',
        'ai.model.id': 'deepseek/deepseek-chat-v3.1',
        'ai.model.provider': 'openrouter.chat',
        'ai.response.providerMetadata': '{"openrouter":{"usage":{"promptTokens":100,"completionTokens":20,"totalTokens":120,"cost":0.0000425}}}',
        'ai.usage.inputTokens': 100,
        'ai.usage.outputTokens': 20,
        'ai.usage.totalTokens': 120,
      }),
    );
    expect(c).toMatchObject({ provider: 'openrouter', reportedCostUsd: '0.0000425', tokens: tokens({ input: 100, output: 20 }) });
  });

  it('refuses a malformed count inside providerMetadata, naming its path', () => {
    const r = invalid(
      spanRole('ai.generateText.doGenerate', {
        'ai.operationId': 'ai.generateText.doGenerate',
        'ai.model.id': 'claude-3-5-haiku-latest',
        'ai.model.provider': 'anthropic.messages',
        'ai.response.providerMetadata': '{"anthropic":{"cacheCreationInputTokens":-3}}',
        'ai.usage.inputTokens': 10,
        'ai.usage.outputTokens': 5,
      }),
    );
    expect(r.reason).toBe('ai.response.providerMetadata.anthropic.cacheCreationInputTokens must be a non-negative integer, got -3');
  });
});

// ---------------------------------------------------------------------------
// Counts, validation, providers, costs
// ---------------------------------------------------------------------------

describe('usage validation', () => {
  const base: Attrs = {
    'gen_ai.operation.name': 'chat',
    'gen_ai.provider.name': 'openai',
    'gen_ai.request.model': 'gpt-4o',
    'gen_ai.usage.input_tokens': 100,
    'gen_ai.usage.output_tokens': 10,
  };

  it('accepts counts as numbers, bigints and numeric strings (OTLP JSON int64)', () => {
    for (const v of [100, 100n, '100'] as AttrValue[]) {
      expect(call(spanRole('chat', { ...base, 'gen_ai.usage.input_tokens': v })).tokens).toEqual(tokens({ input: 100, output: 10 }));
    }
  });

  it.each([
    [-5, 'gen_ai.usage.input_tokens must be a non-negative integer, got -5'],
    [12.5, 'gen_ai.usage.input_tokens must be a non-negative integer, got 12.5'],
    ['twelve', 'gen_ai.usage.input_tokens must be a non-negative integer, got "twelve"'],
    ['-7', 'gen_ai.usage.input_tokens must be a non-negative integer, got "-7"'],
    [true, 'gen_ai.usage.input_tokens must be a non-negative integer, got true'],
    [2n ** 60n, 'gen_ai.usage.input_tokens must be a non-negative integer, got 1152921504606846976'],
    [[1, 2], 'gen_ai.usage.input_tokens must be a non-negative integer, got [1,2]'],
  ] as [AttrValue, string][])('refuses input_tokens %s', (value, reason) => {
    expect(spanRole('chat', { ...base, 'gen_ai.usage.input_tokens': value })).toEqual({
      role: 'llm_call_invalid',
      dialect: 'gen_ai',
      provider: 'openai',
      model: 'gpt-4o',
      reason,
    });
  });

  it('refuses parts larger than the whole', () => {
    expect(invalid(spanRole('chat', { ...base, 'gen_ai.usage.cache_read.input_tokens': 80, 'gen_ai.usage.cache_write.input_tokens': 30 })).reason).toBe(
      'cache tokens (gen_ai.usage.cache_read.input_tokens 80 + gen_ai.usage.cache_write.input_tokens 30) exceed gen_ai.usage.input_tokens 100',
    );
    expect(invalid(spanRole('chat', { ...base, 'gen_ai.usage.reasoning.output_tokens': 11 })).reason).toBe(
      'gen_ai.usage.reasoning.output_tokens 11 exceeds gen_ai.usage.output_tokens 10',
    );
  });

  it('keeps a call with only output or only input usage, counting the missing side as zero', () => {
    const { ['gen_ai.usage.output_tokens']: _o, ...inputOnly } = base;
    expect(call(spanRole('chat', inputOnly)).tokens).toEqual(tokens({ input: 100 }));
  });
});

describe('provider normalisation', () => {
  it.each([
    ['OpenAI', 'openai'],
    ['openai.chat', 'openai'],
    ['Anthropic', 'anthropic'],
    ['anthropic.messages', 'anthropic'],
    ['xai', 'x_ai'],
    ['x_ai', 'x_ai'],
    ['google', 'gcp.gemini'],
    ['gemini', 'gcp.gemini'],
    ['google.generative-ai', 'gcp.gemini'],
    ['google.vertex.chat', 'gcp.vertex_ai'],
    ['vertex', 'gcp.vertex_ai'],
    ['vertexai', 'gcp.vertex_ai'],
    ['gcp.gen_ai', 'gcp.gen_ai'],
    ['mistral', 'mistral_ai'],
    ['MistralAI', 'mistral_ai'],
    ['bedrock', 'aws.bedrock'],
    ['amazon-bedrock', 'aws.bedrock'],
    ['aws.bedrock', 'aws.bedrock'],
    ['azure', 'azure.ai.openai'],
    ['az.ai.openai', 'azure.ai.openai'],
    ['moonshotai', 'moonshot'],
    ['DeepSeek', 'deepseek'],
    ['Together', 'together'],
    ['', ''],
  ])('%s → %s', (raw, expected) => {
    expect(normalizeProvider(raw)).toBe(expected);
  });

  it('keeps unknown Vercel providers without their API flavour', () => {
    expect(normalizeProvider('openrouter.chat', true)).toBe('openrouter');
    expect(normalizeProvider('moonshotai.chat', true)).toBe('moonshot');
    expect(normalizeProvider('openrouter.chat')).toBe('openrouter.chat');
  });
});

describe('reported cost', () => {
  const chat: Attrs = { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'm', 'gen_ai.usage.input_tokens': 1 };

  it('is a plain decimal string whatever the attribute type', () => {
    expect(call(spanRole('chat', { ...chat, 'fleet.cost.reported_usd': 1e-7 })).reportedCostUsd).toBe('0.0000001');
    expect(call(spanRole('chat', { ...chat, 'fleet.cost.reported_usd': '0.25' })).reportedCostUsd).toBe('0.25');
    expect(call(spanRole('chat', { ...chat, 'fleet.cost.reported_usd': 1.2345678901234567e-7 })).reportedCostUsd).toBe('0.000000123456789012');
  });

  it('is absent when missing or not a non-negative number', () => {
    expect(call(spanRole('chat', chat)).reportedCostUsd).toBeUndefined();
    expect(call(spanRole('chat', { ...chat, 'fleet.cost.reported_usd': -1 })).reportedCostUsd).toBeUndefined();
    expect(call(spanRole('chat', { ...chat, 'fleet.cost.reported_usd': 'n/a' })).reportedCostUsd).toBeUndefined();
  });
});

describe('attribute keys', () => {
  it('keeps an attribute named __proto__ as data: an own key of the record and of the span row, the prototype untouched', async () => {
    const { attributesToRecord } = await import('../otlp/codec.ts');
    const { spanRow } = await import('../consumers/span-row.ts');
    const attrs = attributesToRecord([
      { key: '__proto__', value: { kvlistValue: { values: [{ key: 'polluted', value: { stringValue: 'yes' } }] } } },
      { key: 'gen_ai.system', value: { stringValue: 'openai' } },
    ]);
    expect(Object.getPrototypeOf(attrs)).toBe(Object.prototype);
    expect(Object.keys(attrs)).toEqual(['__proto__', 'gen_ai.system']);
    expect((attrs as Record<string, unknown>).polluted).toBeUndefined();
    const span = {
      traceId: 't', spanId: 's', parentSpanId: '', traceState: '', name: 'n', kind: 1, startTimeUnixNano: 1n, endTimeUnixNano: 2n,
      attributes: attrs, resource: attributesToRecord([{ key: '__proto__', value: { stringValue: 'resource value' } }]),
      scope: { name: '', version: '' }, status: { code: 0, message: '' }, events: [],
    };
    const row = spanRow(span, { attemptId: '', rate: 1, reason: 'kept' }) as { attributes: Record<string, string>; resource_attributes: Record<string, string> };
    expect(Object.entries(row.attributes)).toEqual([['__proto__', '{"polluted":"yes"}'], ['gen_ai.system', 'openai']]);
    expect(Object.entries(row.resource_attributes)).toEqual([['__proto__', 'resource value']]);
  });
});
