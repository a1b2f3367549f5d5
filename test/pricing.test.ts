import { describe, expect, it } from 'vitest';
import { zeroTokens, type TokenCounts } from '../contract/tokens.ts';
import { spanRole } from '../consumers/dialects.ts';
import { buildCatalog, CatalogError, formatUsd, importLiteLlm, loadDefaultCatalog, parseUsd, priceCall } from '../pricing/index.ts';

const proCard = {
  provider: 'deepseek',
  model: 'deepseek-v4-pro',
  aliases: ['deepseek-reasoner'],
  periods: [
    { from: '2026-01-01', to: '2026-06-01', input: 0.435, cache_read: 0.036, output: 0.87 },
    { from: '2026-06-01', input: 1.74, cache_read: 0.145, output: 3.48 },
  ],
};
const sonnetCard = {
  provider: 'anthropic',
  model: 'claude-sonnet-4-6',
  periods: [{ from: '2025-01-01', input: 3, output: 15, cache_read: 0.3, cache_write: 3.75, cache_write_1h: 6, priority_multiplier: 1.5 }],
};
const catalog = buildCatalog({ cards: [proCard, sonnetCard] });

const tokens = (t: Partial<TokenCounts>): TokenCounts => ({ ...zeroTokens(), ...t });
const at = (iso: string) => Date.parse(iso);
const cost = (r: ReturnType<typeof priceCall>) => (r.priced ? formatUsd(r.costAtto) : `unpriced: ${r.reason}`);

describe('price catalog validation', () => {
  it('accepts a good catalog and indexes models and aliases', () => {
    expect(catalog.cards).toHaveLength(2);
    expect(catalog.byName.get('deepseek-reasoner')?.[0]?.model).toBe('deepseek-v4-pro');
  });

  it('rejects overlapping periods, naming the model', () => {
    const overlapping = {
      cards: [{ ...proCard, periods: [{ from: '2026-01-01', to: '2026-07-01', input: 1, output: 2 }, { from: '2026-06-01', input: 1, output: 2 }] }],
    };
    expect(() => buildCatalog(overlapping)).toThrow(CatalogError);
    expect(() => buildCatalog(overlapping)).toThrow(/deepseek\/deepseek-v4-pro.*overlap/);
  });

  it('rejects malformed cards with the path of each problem', () => {
    const bad = { cards: [{ provider: 'x', model: 'm', periods: [{ from: 'yesterday', input: -1 }] }] };
    let message = '';
    try {
      buildCatalog(bad);
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/cards\.0\.periods\.0\.from/);
    expect(message).toMatch(/cards\.0\.periods\.0\.input: must be ≥ 0/);
    expect(message).toMatch(/cards\.0\.periods\.0\.output/);
  });

  it('rejects prices with more precision than it can price exactly, unknown fields, and empty periods', () => {
    expect(() => buildCatalog({ cards: [{ provider: 'x', model: 'm', periods: [{ from: '2026-01-01', input: 0.1234567891, output: 1 }] }] })).toThrow(
      /input: must have at most 9 decimal places/,
    );
    expect(() => buildCatalog({ cards: [{ provider: 'x', model: 'm', periods: [{ from: '2026-01-01', input: 1, output: 1, cache: 1 }] }] })).toThrow(
      /cache/,
    );
    expect(() => buildCatalog({ cards: [{ provider: 'x', model: 'm', periods: [] }] })).toThrow(/needs at least one period/);
    expect(() => buildCatalog({ cards: [{ provider: 'x', model: 'm', periods: [{ from: '2026-02-01', to: '2026-01-01', input: 1, output: 1 }] }] })).toThrow(
      /ends before it starts/,
    );
  });

  it('rejects two cards answering to the same provider/model name, through a card\'s providers list too', () => {
    expect(() => buildCatalog({ cards: [proCard, { ...proCard, model: 'deepseek-v4-pro-2', aliases: ['deepseek-reasoner'] }] })).toThrow(
      /deepseek\/deepseek-reasoner is named by two cards/,
    );
    const reseller = { provider: 'together', model: 'deepseek-v4-pro', periods: [{ from: '2026-01-01', input: 1, output: 1 }] };
    expect(() => buildCatalog({ cards: [{ ...proCard, providers: ['together'] }, reseller] })).toThrow(/together\/deepseek-v4-pro is named by two cards/);
    expect(() => buildCatalog({ cards: [{ ...proCard, providers: ['deepseek'] }] })).toThrow(/providers repeats the card's own provider deepseek/);
  });
});

describe('pricing engine', () => {
  it('prices each token kind with its own price (USD per million tokens)', () => {
    const call = { provider: 'anthropic', model: 'claude-sonnet-4-6', startedAtMs: at('2026-05-19T12:00:00Z'), serviceTier: 'standard' as const };
    expect(cost(priceCall(catalog, { ...call, tokens: tokens({ input: 1_000_000 }) }))).toBe('3');
    expect(cost(priceCall(catalog, { ...call, tokens: tokens({ cache_read: 1_000_000 }) }))).toBe('0.3');
    expect(cost(priceCall(catalog, { ...call, tokens: tokens({ cache_write: 1_000_000 }) }))).toBe('3.75');
    expect(cost(priceCall(catalog, { ...call, tokens: tokens({ output: 1_000_000 }) }))).toBe('15');
    // reasoning defaults to the output price
    expect(cost(priceCall(catalog, { ...call, tokens: tokens({ reasoning: 1_000_000 }) }))).toBe('15');
    // one token: exact to the atto-dollar, no float drift
    expect(cost(priceCall(catalog, { ...call, tokens: tokens({ input: 1, output: 1 }) }))).toBe('0.000018');
    const mixed = tokens({ input: 12_345, cache_read: 67_890, cache_write: 1_111, output: 2_222, reasoning: 3_333 });
    const expected = parseUsd('3') * 12_345n + parseUsd('0.3') * 67_890n + parseUsd('3.75') * 1_111n + parseUsd('15') * (2_222n + 3_333n);
    const r = priceCall(catalog, { ...call, tokens: mixed });
    expect(r.priced && r.costAtto).toBe(expected / 1_000_000n);
  });

  it('prices the 1-hour subset of the cache writes at cache_write_1h, the rest at cache_write', () => {
    const call = { provider: 'anthropic', model: 'claude-sonnet-4-6', startedAtMs: at('2026-05-19T12:00:00Z'), serviceTier: 'standard' as const };
    const writes = tokens({ cache_write: 1_000_000 });
    // 600k × $3.75/M + 400k × $6/M = 2.25 + 2.4
    expect(cost(priceCall(catalog, { ...call, tokens: writes, cacheWrite1hTokens: 400_000 }))).toBe('4.65');
    expect(cost(priceCall(catalog, { ...call, tokens: writes, cacheWrite1hTokens: 1_000_000 }))).toBe('6');
    expect(cost(priceCall(catalog, { ...call, tokens: writes }))).toBe('3.75');
    // the multiplier applies to the whole call, 1-hour writes included
    expect(cost(priceCall(catalog, { ...call, serviceTier: 'priority', tokens: writes, cacheWrite1hTokens: 400_000 }))).toBe('6.975');
    expect(cost(priceCall(catalog, { ...call, tokens: writes, cacheWrite1hTokens: 1_000_001 }))).toBe(
      'unpriced: 1-hour cache writes (1000001) must be a count of at most the cache writes (1000000)',
    );
    // Without cache_write_1h the card prices 1-hour writes at its cache_write.
    const plain = buildCatalog({ cards: [{ provider: 'p', model: 'm', periods: [{ from: '2026-01-01', input: 2, cache_write: 2.5, output: 8 }] }] });
    expect(cost(priceCall(plain, { provider: 'p', model: 'm', startedAtMs: at('2026-03-01T00:00:00Z'), serviceTier: 'standard', tokens: writes, cacheWrite1hTokens: 500_000 }))).toBe('2.5');
  });

  it('defaults cache prices to the input price when the card has none', () => {
    const c = buildCatalog({ cards: [{ provider: 'p', model: 'm', periods: [{ from: '2026-01-01', input: 2, output: 8 }] }] });
    const r = priceCall(c, { provider: 'p', model: 'm', startedAtMs: at('2026-03-01T00:00:00Z'), serviceTier: 'standard', tokens: tokens({ cache_read: 1_000_000, cache_write: 1_000_000 }) });
    expect(cost(r)).toBe('4');
  });

  it('applies the batch multiplier (0.5 unless the card says otherwise) and card-given tier multipliers', () => {
    const call = { provider: 'anthropic', model: 'claude-sonnet-4-6', startedAtMs: at('2026-05-19T12:00:00Z'), tokens: tokens({ input: 1_000_000, output: 1_000_000 }) };
    expect(cost(priceCall(catalog, { ...call, serviceTier: 'standard' }))).toBe('18');
    expect(cost(priceCall(catalog, { ...call, serviceTier: 'batch' }))).toBe('9');
    expect(cost(priceCall(catalog, { ...call, serviceTier: 'priority' }))).toBe('27');
    const custom = buildCatalog({ cards: [{ provider: 'p', model: 'm', periods: [{ from: '2026-01-01', input: 1, output: 1, batch_multiplier: 0.6 }] }] });
    expect(cost(priceCall(custom, { ...call, provider: 'p', model: 'm', serviceTier: 'batch' }))).toBe('1.2');
  });

  it('leaves a tier without a price on the card unpriced instead of guessing', () => {
    const r = priceCall(catalog, { provider: 'anthropic', model: 'claude-sonnet-4-6', startedAtMs: at('2026-05-19T12:00:00Z'), serviceTier: 'flex', tokens: tokens({ input: 10 }) });
    expect(r.priced).toBe(false);
    expect(cost(r)).toMatch(/no flex price/);
  });

  it('switches cards exactly at the effective instant (from inclusive, to exclusive)', () => {
    const call = { provider: 'deepseek', model: 'deepseek-v4-pro', serviceTier: 'standard' as const, tokens: tokens({ input: 1_000_000, output: 1_000_000 }) };
    const before = priceCall(catalog, { ...call, startedAtMs: at('2026-05-31T23:59:59Z') });
    const after = priceCall(catalog, { ...call, startedAtMs: at('2026-06-01T00:00:00Z') });
    expect(cost(before)).toBe('1.305');
    expect(cost(after)).toBe('5.22');
    expect(after.priced && after.period.fromText).toBe('2026-06-01');
    expect(cost(priceCall(catalog, { ...call, startedAtMs: at('2026-05-31T23:59:59.999Z') }))).toBe('1.305');
  });

  it('prices an alias with its card', () => {
    const r = priceCall(catalog, { provider: 'deepseek', model: 'deepseek-reasoner', startedAtMs: at('2026-07-01T00:00:00Z'), serviceTier: 'standard', tokens: tokens({ cache_read: 1_000_000 }) });
    expect(cost(r)).toBe('0.145');
  });

  it('leaves an unknown model, or a date before any period, unpriced — never 0, never another card', () => {
    const unknown = priceCall(catalog, { provider: 'moonshot', model: 'kimi-k9', startedAtMs: at('2026-05-19T00:00:00Z'), serviceTier: 'standard', tokens: tokens({ input: 5 }) });
    expect(unknown).toEqual({ priced: false, reason: 'no price card for model "kimi-k9"' });
    const early = priceCall(catalog, { provider: 'deepseek', model: 'deepseek-v4-pro', startedAtMs: at('2025-12-31T23:59:59Z'), serviceTier: 'standard', tokens: tokens({ input: 5 }) });
    expect(early.priced).toBe(false);
    expect(cost(early)).toMatch(/no price of deepseek\/deepseek-v4-pro in force at 2025-12-31T23:59:59.000Z/);
  });

  it('picks among cards sharing a model name by the call provider, and refuses to pick when it cannot', () => {
    const shared = buildCatalog({
      cards: [
        { provider: 'openai', model: 'gpt-x', periods: [{ from: '2026-01-01', input: 1, output: 1 }] },
        { provider: 'azure.ai.openai', model: 'gpt-x', periods: [{ from: '2026-01-01', input: 2, output: 2 }] },
      ],
    });
    const call = { model: 'gpt-x', startedAtMs: at('2026-02-01T00:00:00Z'), serviceTier: 'standard' as const, tokens: tokens({ input: 1_000_000 }) };
    expect(cost(priceCall(shared, { ...call, provider: 'azure.ai.openai' }))).toBe('2');
    expect(cost(priceCall(shared, { ...call, provider: 'openai' }))).toBe('1');
    expect(cost(priceCall(shared, { ...call, provider: 'openrouter' }))).toBe(
      'unpriced: model "gpt-x" has price cards only for provider openai, azure.ai.openai, not for the call\'s provider "openrouter" (a card lists the resellers that charge the same in "providers")',
    );
    expect(cost(priceCall(shared, { ...call, provider: '' }))).toBe('unpriced: model "gpt-x" has cards of providers openai, azure.ai.openai; the call names no provider to pick one');
  });

  it("never prices a call with another provider's card, even when it is the only card of that model", () => {
    const call = { startedAtMs: at('2026-08-01T00:00:00Z'), serviceTier: 'standard' as const, tokens: tokens({ input: 1_000_000 }) };
    const c = loadDefaultCatalog();
    expect(cost(priceCall(c, { ...call, provider: 'openai', model: 'gpt-5.4' }))).toBe('2.5');
    expect(cost(priceCall(c, { ...call, provider: 'azure.ai.openai', model: 'gpt-5.4' }))).toBe(
      'unpriced: model "gpt-5.4" has price cards only for provider openai, not for the call\'s provider "azure.ai.openai" (a card lists the resellers that charge the same in "providers")',
    );
    expect(cost(priceCall(c, { ...call, provider: 'moonshot', model: 'kimi-k2.6' }))).toBe('0.95');
    expect(cost(priceCall(c, { ...call, provider: 'openrouter', model: 'kimi-k2.6' }))).toMatch(/^unpriced: model "kimi-k2\.6" has price cards only for provider moonshot, not for the call's provider "openrouter"/);
    // A call that names no provider (a dialect that carries none) is priced by the one card of its model.
    expect(cost(priceCall(c, { ...call, provider: '', model: 'kimi-k2.6' }))).toBe('0.95');
    // A reseller listed on the card is priced with it.
    const listed = buildCatalog({ cards: [{ ...proCard, providers: ['together'] }] });
    const pro = { ...call, model: 'deepseek-v4-pro', startedAtMs: at('2026-05-01T00:00:00Z') };
    expect(cost(priceCall(listed, { ...pro, provider: 'together' }))).toBe('0.435');
    expect(cost(priceCall(listed, { ...pro, provider: 'fireworks' }))).toMatch(/only for provider deepseek, together, not for the call's provider "fireworks"/);
  });

  it('prices a dated snapshot without a card of its own with the card of the model it was requested as', () => {
    const c = buildCatalog({
      cards: [
        { provider: 'openai', model: 'gpt-4o', periods: [{ from: '2025-01-01', input: 2.5, output: 10 }] },
        { provider: 'openai', model: 'gpt-4o-2024-05-13', periods: [{ from: '2025-01-01', input: 5, output: 15 }] },
      ],
    });
    const call = { provider: 'openai', startedAtMs: at('2026-02-01T00:00:00Z'), serviceTier: 'standard' as const, tokens: tokens({ input: 1_000_000 }) };
    const snapshot = priceCall(c, { ...call, model: 'gpt-4o-2024-08-06', requestModel: 'gpt-4o' });
    expect(cost(snapshot)).toBe('2.5');
    expect(snapshot.priced && snapshot.card.model).toBe('gpt-4o');
    // a snapshot with its own card keeps it
    expect(cost(priceCall(c, { ...call, model: 'gpt-4o-2024-05-13', requestModel: 'gpt-4o' }))).toBe('5');
    // without the request model, or when the response model is not a snapshot of it, there is nothing to fall back to
    expect(cost(priceCall(c, { ...call, model: 'gpt-4o-2024-08-06' }))).toBe('unpriced: no price card for model "gpt-4o-2024-08-06"');
    expect(cost(priceCall(c, { ...call, model: 'gpt-4o-mini-2024-07-18', requestModel: 'gpt-4' }))).toBe('unpriced: no price card for model "gpt-4o-mini-2024-07-18"');
    // nor for a provider the request model's card does not answer for
    expect(cost(priceCall(c, { ...call, provider: 'azure.ai.openai', model: 'gpt-4o-2024-08-06', requestModel: 'gpt-4o' }))).toMatch(
      /^unpriced: model "gpt-4o" has price cards only for provider openai, not for the call's provider "azure.ai.openai"/,
    );
  });
});

describe('pricing what the pipeline reads from each dialect', () => {
  const catalog = loadDefaultCatalog();
  const startedAtMs = at('2026-08-01T00:00:00Z');
  /** The span as the consumers read it (consumers/dialects.ts), priced with the shipped catalog. */
  const priced = (name: string, attributes: Record<string, string | number>) => {
    const role = spanRole(name, attributes);
    if (role.role !== 'llm_call') throw new Error(`${name} is not a priced LLM call: ${JSON.stringify(role)}`);
    return { provider: role.call.provider, cost: cost(priceCall(catalog, { ...role.call, startedAtMs })) };
  };
  const usage = { 'gen_ai.usage.input_tokens': 1_000_000, 'gen_ai.usage.output_tokens': 0 };

  it('prices a call by the card of the provider each dialect names, normalised to gen_ai.provider.name', () => {
    // OpenTelemetry GenAI (our SDK among them)
    expect(priced('chat', { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'anthropic', 'gen_ai.request.model': 'claude-sonnet-4-6', ...usage })).toEqual({ provider: 'anthropic', cost: '3' });
    // OpenLLMetry: gen_ai.system "OpenAI"
    expect(
      priced('openai.chat', { 'llm.request.type': 'chat', 'gen_ai.system': 'OpenAI', 'gen_ai.request.model': 'gpt-5.4', 'gen_ai.usage.prompt_tokens': 1_000_000, 'gen_ai.usage.completion_tokens': 0 }),
    ).toEqual({ provider: 'openai', cost: '2.5' });
    // OpenInference: llm.provider "xai"
    expect(priced('ChatCompletion', { 'openinference.span.kind': 'LLM', 'llm.provider': 'xai', 'llm.model_name': 'grok-4.3', 'llm.token_count.prompt': 1_000_000, 'llm.token_count.completion': 0 })).toEqual({
      provider: 'x_ai',
      cost: '0.2',
    });
    // Vercel AI SDK: ai.model.provider "<provider>.<api>"
    const vercel = (provider: string, model: string) =>
      priced('ai.generateText.doGenerate', { 'ai.operationId': 'ai.generateText.doGenerate', 'ai.model.provider': provider, 'ai.model.id': model, 'ai.usage.inputTokens': 1_000_000, 'ai.usage.outputTokens': 0 });
    expect(vercel('moonshotai.chat', 'kimi-k2.6')).toEqual({ provider: 'moonshot', cost: '0.95' });
    expect(vercel('deepseek.chat', 'deepseek-v4-flash')).toEqual({ provider: 'deepseek', cost: '0.28' });
    expect(vercel('google.generative-ai', 'gemini-2.5-pro')).toEqual({ provider: 'gcp.gemini', cost: '1.25' });
    // A span that names no provider: the one card of its model.
    expect(priced('chat', { 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'grok-4.3', ...usage })).toEqual({ provider: '', cost: '0.2' });
  });

  it("leaves a call whose dialect names another provider unpriced, naming both, instead of using that provider's card", () => {
    // An OpenAI client pointed at Moonshot, traced by OpenInference / the Vercel AI SDK: the span says openai.
    expect(priced('ChatCompletion', { 'openinference.span.kind': 'LLM', 'llm.provider': 'openai', 'llm.model_name': 'kimi-k2.6', 'llm.token_count.prompt': 10, 'llm.token_count.completion': 1 }).cost).toBe(
      'unpriced: model "kimi-k2.6" has price cards only for provider moonshot, not for the call\'s provider "openai" (a card lists the resellers that charge the same in "providers")',
    );
    const vercel = priced('ai.streamText.doStream', { 'ai.operationId': 'ai.streamText.doStream', 'ai.model.provider': 'openrouter.chat', 'ai.model.id': 'kimi-k2.6', 'ai.usage.inputTokens': 10, 'ai.usage.outputTokens': 1 });
    expect(vercel.cost).toMatch(/^unpriced: model "kimi-k2\.6" has price cards only for provider moonshot, not for the call's provider "openrouter"/);
    expect(priced('chat', { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'azure.ai.openai', 'gen_ai.request.model': 'gpt-5.4', ...usage }).cost).toMatch(/not for the call's provider "azure\.ai\.openai"/);
  });

  it("prices the SDK's 1-hour cache writes (fleet.usage.cache_write_1h.input_tokens) and reports its fleet.usage.invalid as the reason", () => {
    const sdkSpan = {
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': 'claude-sonnet-4-6',
      'gen_ai.usage.input_tokens': 1_000_000,
      'gen_ai.usage.cache_write.input_tokens': 1_000_000,
      'gen_ai.usage.output_tokens': 0,
    };
    // 750k × $3.75/M + 250k × $6/M
    expect(priced('chat claude-sonnet-4-6', { ...sdkSpan, 'fleet.usage.cache_write_1h.input_tokens': 250_000 }).cost).toBe('4.3125');
    expect(priced('chat claude-sonnet-4-6', sdkSpan).cost).toBe('3.75');
    expect(spanRole('chat claude-sonnet-4-6', { ...sdkSpan, 'fleet.usage.cache_write_1h.input_tokens': 1_000_001 })).toMatchObject({
      role: 'llm_call_invalid',
      reason: 'fleet.usage.cache_write_1h.input_tokens 1000001 exceeds the cache writes 1000000',
    });
    const { ['gen_ai.usage.input_tokens']: _i, ['gen_ai.usage.cache_write.input_tokens']: _w, ['gen_ai.usage.output_tokens']: _o, ...noUsage } = sdkSpan;
    expect(spanRole('chat claude-sonnet-4-6', { ...noUsage, 'fleet.usage.invalid': 'Anthropic Messages usage must be an object, got undefined' })).toEqual({
      role: 'llm_call_invalid',
      dialect: 'gen_ai',
      provider: 'anthropic',
      model: 'claude-sonnet-4-6',
      reason: 'Anthropic Messages usage must be an object, got undefined',
    });
  });
});

describe('default catalog', () => {
  it('loads, and holds the seed models at the reference prices', () => {
    const c = loadDefaultCatalog();
    const perMillion = (model: string, iso: string) => {
      const r = priceCall(c, { provider: '', model, startedAtMs: at(iso), serviceTier: 'standard', tokens: tokens({ input: 1_000_000 }) });
      const o = priceCall(c, { provider: '', model, startedAtMs: at(iso), serviceTier: 'standard', tokens: tokens({ output: 1_000_000 }) });
      return [cost(r), cost(o)];
    };
    expect(perMillion('deepseek-v4-flash', '2026-05-19T00:00:00Z')).toEqual(['0.28', '1.1']);
    expect(perMillion('deepseek-v4-pro', '2026-05-19T00:00:00Z')).toEqual(['0.435', '0.87']);
    expect(perMillion('deepseek-v4-pro', '2026-06-01T00:00:00Z')).toEqual(['1.74', '3.48']);
    expect(perMillion('claude-sonnet-4-6', '2026-05-19T00:00:00Z')).toEqual(['3', '15']);
    expect(perMillion('kimi-k2.6', '2026-05-19T00:00:00Z')).toEqual(['0.95', '4']);
    expect(perMillion('grok-4.3', '2026-05-19T00:00:00Z')).toEqual(['0.2', '1.5']);
    // Anthropic cache writes: 5 minutes at 1.25x input, 1 hour at 2x (platform.claude.com pricing page).
    for (const card of c.cards.filter((k) => k.provider === 'anthropic')) {
      for (const p of card.periods) {
        expect(p.prices.cache_write * 4n, `${card.model} cache_write`).toBe(p.prices.input * 5n);
        expect(p.cacheWrite1h, `${card.model} cache_write_1h`).toBe(p.prices.input * 2n);
      }
    }
    const sonnet = priceCall(c, { provider: 'anthropic', model: 'claude-sonnet-4-6', startedAtMs: at('2026-05-19T00:00:00Z'), serviceTier: 'standard', tokens: tokens({ cache_write: 1_000_000 }), cacheWrite1hTokens: 1_000_000 });
    expect(cost(sonnet)).toBe('6');
    for (const card of c.cards) expect(card.source, `${card.provider}/${card.model} has a source`).toBeTruthy();
  });
});

describe('LiteLLM import', () => {
  const litellm = {
    sample_spec: { input_cost_per_token: 0 },
    'gpt-4o': {
      litellm_provider: 'openai',
      mode: 'chat',
      input_cost_per_token: 2.5e-6,
      output_cost_per_token: 1e-5,
      cache_read_input_token_cost: 1.25e-6,
      input_cost_per_token_batches: 1.25e-6,
      output_cost_per_token_batches: 5e-6,
    },
    'claude-sonnet-4-6': {
      litellm_provider: 'anthropic',
      mode: 'chat',
      input_cost_per_token: 3e-6,
      output_cost_per_token: 1.5e-5,
      cache_read_input_token_cost: 3.0000000000000004e-7,
      cache_creation_input_token_cost: 3.75e-6,
      cache_creation_input_token_cost_above_1hr: 6e-6,
    },
    // batch prices that one multiplier cannot express: input halved, output not; and a ratio of 1/3
    'o-uneven': { litellm_provider: 'openai', mode: 'chat', input_cost_per_token: 2e-6, output_cost_per_token: 8e-6, input_cost_per_token_batches: 1e-6, output_cost_per_token_batches: 6e-6 },
    'o-third': { litellm_provider: 'openai', mode: 'chat', input_cost_per_token: 3e-6, output_cost_per_token: 3e-6, input_cost_per_token_batches: 1e-6, output_cost_per_token_batches: 1e-6 },
    'o-input-only': { litellm_provider: 'openai', mode: 'chat', input_cost_per_token: 2e-6, output_cost_per_token: 8e-6, input_cost_per_token_batches: 1e-6 },
    'xai/grok-4.3': { litellm_provider: 'xai', mode: 'chat', input_cost_per_token: 2e-7, output_cost_per_token: 1.5e-6, output_cost_per_reasoning_token: 1.5e-6 },
    'dall-e-3': { litellm_provider: 'openai', mode: 'image_generation', output_cost_per_image: 0.04 },
    'text-moderation': { litellm_provider: 'openai', mode: 'moderation' },
    'mystery': { litellm_provider: 'openai', mode: 'chat' },
  };

  it('converts per-token prices to an effective-dated catalog that validates and prices correctly', () => {
    const { catalog: json, skipped } = importLiteLlm(litellm, { from: '2026-11-01', source: 'litellm test' });
    const c = buildCatalog(json);
    expect(c.cards.map((x) => `${x.provider}/${x.model}`).sort()).toEqual([
      'anthropic/claude-sonnet-4-6',
      'openai/gpt-4o',
      'openai/o-input-only',
      'openai/o-third',
      'openai/o-uneven',
      'x_ai/grok-4.3',
    ]);
    expect(skipped.map((s) => s.name).sort()).toEqual(['dall-e-3', 'mystery', 'text-moderation']);
    const sonnet = json.cards.find((x) => x.model === 'claude-sonnet-4-6')!.periods[0]!;
    expect(sonnet).toEqual({ from: '2026-11-01', input: 3, output: 15, cache_read: 0.3, cache_write: 3.75, cache_write_1h: 6 });
    expect(json.cards.find((x) => x.model === 'grok-4.3')!.periods[0]!).toEqual({ from: '2026-11-01', input: 0.2, output: 1.5, reasoning: 1.5 });
    expect(json.cards.find((x) => x.model === 'gpt-4o')!.periods[0]!.batch_multiplier).toBe(0.5);
    const w = priceCall(c, { provider: 'anthropic', model: 'claude-sonnet-4-6', startedAtMs: at('2026-11-02T00:00:00Z'), serviceTier: 'standard', tokens: tokens({ cache_write: 1_000_000, cache_read: 1_000_000 }), cacheWrite1hTokens: 1_000_000 });
    expect(cost(w)).toBe('6.3');
    const r = priceCall(c, { provider: 'openai', model: 'gpt-4o', startedAtMs: at('2026-11-02T00:00:00Z'), serviceTier: 'batch', tokens: tokens({ input: 1_000_000, cache_read: 1_000_000 }) });
    expect(cost(r)).toBe('1.875');
    const before = priceCall(c, { provider: 'openai', model: 'gpt-4o', startedAtMs: at('2026-10-31T00:00:00Z'), serviceTier: 'standard', tokens: tokens({ input: 1 }) });
    expect(before.priced).toBe(false);
  });

  it('leaves batch_multiplier out, with a note, when input and output batch ratios differ or are not exact to 0.001', () => {
    const { catalog: json, notes } = importLiteLlm(litellm, { from: '2026-11-01' });
    const period = (model: string) => json.cards.find((x) => x.model === model)!.periods[0]!;
    for (const model of ['o-uneven', 'o-third', 'o-input-only']) expect(period(model).batch_multiplier, model).toBeUndefined();
    const tail = '; batch calls get the default multiplier 0.5 unless you set batch_multiplier';
    expect(notes).toEqual([
      { name: 'o-uneven', note: `batch prices not imported: input ratio 0.5 and output ratio 0.75 differ${tail}` },
      { name: 'o-third', note: `batch prices not imported: ratio 0.333333333333333333 has more than 3 decimal places${tail}` },
      { name: 'o-input-only', note: `batch prices not imported: LiteLLM gives only one of input_cost_per_token_batches and output_cost_per_token_batches${tail}` },
    ]);
    expect(period('o-uneven').note).toBe(notes[0]!.note);
  });

  it('filters by provider and rejects a file that is not a model map', () => {
    expect(importLiteLlm(litellm, { from: '2026-11-01', providers: ['x_ai'] }).catalog.cards.map((c) => c.model)).toEqual(['grok-4.3']);
    expect(() => importLiteLlm([1, 2], { from: '2026-11-01' })).toThrow(/JSON object keyed by model name/);
  });
});
