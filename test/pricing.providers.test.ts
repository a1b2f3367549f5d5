/**
 * Provider resolution (pricing/providers.ts): fleet.provider, then the host
 * the request went to, then the instrumentation's name, then the model's one
 * other provider when that name is only the SDK's — read from real span
 * shapes through the dialects, priced through the engine.
 */
import { describe, expect, it } from 'vitest';
import { spanRole, type LlmCall } from '../consumers/dialects.ts';
import type { AttrValue } from '../otlp/codec.ts';
import { buildCatalog, CatalogError, formatUsd, hostOf, priceWithEvidence, providerOfHost, type Catalog } from '../pricing/index.ts';

const card = (provider: string, model: string, extra: object = {}) => ({ provider, model, periods: [{ from: '2026-01-01', input: 1, output: 2 }], ...extra });
const catalog: Catalog = buildCatalog({
  cards: [
    card('openai', 'gpt-5.4'),
    card('deepseek', 'deepseek-v4-flash'),
    card('moonshot', 'kimi-k2.6'),
    // one model sold by two providers at different prices: nothing to infer
    card('together_ai', 'llama-5-70b'),
    card('fireworks_ai', 'llama-5-70b'),
    // a self-hosted vLLM declared on its card
    card('acme_vllm', 'qwen-4-32b', { hosts: ['vllm.internal:8000'] }),
  ],
});

/** An OpenLLMetry OpenAI span as opentelemetry-instrumentation-openai 0.62 writes it (see test/python-agents.test.ts). */
const openLlmetry = (model: string, apiBase: string, extra: Record<string, AttrValue> = {}): Record<string, AttrValue> => ({
  'gen_ai.operation.name': 'chat',
  'gen_ai.provider.name': 'openai',
  'gen_ai.request.model': model,
  'gen_ai.response.model': model,
  'gen_ai.is_streaming': true,
  'gen_ai.openai.api_base': apiBase,
  'gen_ai.usage.input_tokens': 1_000_000,
  'gen_ai.usage.output_tokens': 500_000,
  ...extra,
});

function priced(attributes: Record<string, AttrValue>) {
  const role = spanRole('openai.chat', attributes);
  if (role.role !== 'llm_call') throw new Error(`not a call: ${JSON.stringify(role)}`);
  const c: LlmCall = role.call;
  const r = priceWithEvidence(
    catalog,
    { model: c.model, requestModel: c.requestModel, startedAtMs: Date.parse('2026-12-01'), serviceTier: c.serviceTier, tokens: c.tokens },
    { explicit: c.explicitProvider ?? '', serverAddress: c.serverAddress ?? '', instrumented: c.provider },
  );
  return { dialect: c.dialect, provider: r.provider, source: r.providerSource, cost: r.result.priced ? formatUsd(r.result.costAtto) : null, reason: r.result.priced ? '' : r.result.reason };
}

describe('provider resolution', () => {
  it('labels an OpenLLMetry streaming span openllmetry, as its non-streaming one', () => {
    expect(priced(openLlmetry('deepseek-v4-flash', 'https://api.deepseek.com/v1')).dialect).toBe('openllmetry');
  });

  it('prices a call through base_url by the API host: DeepSeek, Moonshot (.ai and .cn)', () => {
    expect(priced(openLlmetry('deepseek-v4-flash', 'https://api.deepseek.com/v1'))).toMatchObject({ provider: 'deepseek', source: 'host', cost: '2' });
    expect(priced(openLlmetry('kimi-k2.6', 'https://api.moonshot.cn/v1/'))).toMatchObject({ provider: 'moonshot', source: 'host', cost: '2' });
    expect(priced(openLlmetry('kimi-k2.6', 'https://x', { 'server.address': 'api.moonshot.ai', 'server.port': 443 }))).toMatchObject({ provider: 'moonshot', source: 'host' });
    expect(priced(openLlmetry('kimi-k2.6', 'https://x', { 'url.full': 'https://api.moonshot.ai/v1/chat/completions' }))).toMatchObject({ provider: 'moonshot', source: 'host' });
  });

  it('never prices a known distinct host at another provider\'s rates: Azure stays unpriced, saying where the call went', () => {
    expect(priced(openLlmetry('gpt-5.4', 'https://acme-east.openai.azure.com/openai/'))).toEqual({
      dialect: 'openllmetry',
      provider: 'azure.ai.openai',
      source: 'host',
      cost: null,
      reason: expect.stringMatching(/^model "gpt-5\.4" has price cards only for provider openai, not for the call's provider "azure\.ai\.openai" .*\(the request went to acme-east\.openai\.azure\.com\)$/),
    });
    // A known host that sells another model is not inferred away either.
    expect(priced(openLlmetry('kimi-k2.6', 'https://api.openai.com/v1'))).toMatchObject({ provider: 'openai', source: 'host', cost: null });
  });

  it('infers the provider when the span names only the SDK and the model has cards of one other provider', () => {
    expect(priced(openLlmetry('kimi-k2.6', 'http://10.0.0.7:8080/v1'))).toMatchObject({ provider: 'moonshot', source: 'inferred', cost: '2' });
    // two providers sell it: not guessed
    expect(priced(openLlmetry('llama-5-70b', 'http://10.0.0.7:8080/v1'))).toMatchObject({
      provider: 'openai',
      source: 'instrumentation',
      cost: null,
      reason: expect.stringMatching(/has price cards only for provider together_ai, fireworks_ai, not for the call's provider "openai"/),
    });
  });

  it('takes fleet.provider over the host and the instrumentation, and never infers past it', () => {
    expect(priced(openLlmetry('llama-5-70b', 'https://gateway.example/v1', { 'fleet.provider': 'fireworks_ai' }))).toMatchObject({ provider: 'fireworks_ai', source: 'fleet.provider', cost: '2' });
    expect(priced(openLlmetry('kimi-k2.6', 'http://10.0.0.7/v1', { 'fleet.provider': 'openrouter' }))).toMatchObject({
      provider: 'openrouter',
      source: 'fleet.provider',
      cost: null,
      reason: expect.stringMatching(/\(fleet\.provider\)$/),
    });
  });

  it('takes the hosts a card declares before the built-in table', () => {
    expect(priced(openLlmetry('qwen-4-32b', 'http://vllm.internal:8000/v1'))).toMatchObject({ provider: 'acme_vllm', source: 'host', cost: '2' });
    expect(providerOfHost(catalog, 'vllm.internal:9000')).toBeUndefined();
    expect(providerOfHost(catalog, 'eu-west.openai.azure.com')).toBe('azure.ai.openai');
    expect(providerOfHost(catalog, 'us-central1-aiplatform.googleapis.com')).toBe('gcp.vertex_ai');
    expect(providerOfHost(undefined, 'openai.azure.com.evil.example')).toBeUndefined();
  });

  it('reads hosts from URLs and bare host attributes', () => {
    expect(hostOf('https://API.DeepSeek.com/v1/')).toBe('api.deepseek.com');
    expect(hostOf('http://127.0.0.1:43977/v1')).toBe('127.0.0.1:43977');
    expect(hostOf('api.x.ai')).toBe('api.x.ai');
    expect(hostOf('not a url at all')).toBe('');
  });

  it('refuses a host declared by cards of two providers', () => {
    expect(() => buildCatalog({ cards: [card('a', 'm1', { hosts: ['gw.example'] }), card('b', 'm2', { hosts: ['GW.example'] })] })).toThrow(CatalogError);
    expect(() => buildCatalog({ cards: [card('a', 'm1', { hosts: ['gw.example'] }), card('b', 'm2', { hosts: ['GW.example'] })] })).toThrow(/host gw\.example is declared by cards of two providers \(a and b\)/);
  });
});
