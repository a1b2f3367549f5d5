import { describe, expect, it } from 'vitest';
import { zeroTokens, type TokenCounts } from '../contract/tokens.ts';
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
  periods: [{ from: '2025-01-01', input: 3, output: 15, cache_read: 0.3, cache_write: 3.75, priority_multiplier: 1.5 }],
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

  it('rejects two cards answering to the same provider/model name', () => {
    expect(() => buildCatalog({ cards: [proCard, { ...proCard, model: 'deepseek-v4-pro-2', aliases: ['deepseek-reasoner'] }] })).toThrow(
      /deepseek\/deepseek-reasoner is named by two cards/,
    );
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
    expect(cost(priceCall(shared, { ...call, provider: 'openrouter' }))).toMatch(/picks none/);
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
    },
    'xai/grok-4.3': { litellm_provider: 'xai', mode: 'chat', input_cost_per_token: 2e-7, output_cost_per_token: 1.5e-6, output_cost_per_reasoning_token: 1.5e-6 },
    'dall-e-3': { litellm_provider: 'openai', mode: 'image_generation', output_cost_per_image: 0.04 },
    'text-moderation': { litellm_provider: 'openai', mode: 'moderation' },
    'mystery': { litellm_provider: 'openai', mode: 'chat' },
  };

  it('converts per-token prices to an effective-dated catalog that validates and prices correctly', () => {
    const { catalog: json, skipped } = importLiteLlm(litellm, { from: '2026-11-01', source: 'litellm test' });
    const c = buildCatalog(json);
    expect(c.cards.map((x) => `${x.provider}/${x.model}`).sort()).toEqual(['anthropic/claude-sonnet-4-6', 'openai/gpt-4o', 'x_ai/grok-4.3']);
    expect(skipped.map((s) => s.name).sort()).toEqual(['dall-e-3', 'mystery', 'text-moderation']);
    const sonnet = json.cards.find((x) => x.model === 'claude-sonnet-4-6')!.periods[0]!;
    expect(sonnet).toMatchObject({ from: '2026-11-01', input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 });
    expect(json.cards.find((x) => x.model === 'gpt-4o')!.periods[0]!.batch_multiplier).toBe(0.5);
    const r = priceCall(c, { provider: 'openai', model: 'gpt-4o', startedAtMs: at('2026-11-02T00:00:00Z'), serviceTier: 'batch', tokens: tokens({ input: 1_000_000, cache_read: 1_000_000 }) });
    expect(cost(r)).toBe('1.875');
    const before = priceCall(c, { provider: 'openai', model: 'gpt-4o', startedAtMs: at('2026-10-31T00:00:00Z'), serviceTier: 'standard', tokens: tokens({ input: 1 }) });
    expect(before.priced).toBe(false);
  });

  it('filters by provider and rejects a file that is not a model map', () => {
    expect(importLiteLlm(litellm, { from: '2026-11-01', providers: ['x_ai'] }).catalog.cards.map((c) => c.model)).toEqual(['grok-4.3']);
    expect(() => importLiteLlm([1, 2], { from: '2026-11-01' })).toThrow(/JSON object keyed by model name/);
  });
});
