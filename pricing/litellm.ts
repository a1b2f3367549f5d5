/**
 * Import from LiteLLM's `model_prices_and_context_window.json` (USD per
 * token, one entry per model) into our catalog format (USD per million
 * tokens, effective-dated). LiteLLM has no dates, so the user says from when
 * the imported prices hold.
 */
import type { CardJson, CatalogJson } from './catalog.ts';
import { MULTIPLIER_SCALE, PRICE_SCALE } from './catalog.ts';

interface LiteLlmEntry {
  litellm_provider?: string;
  mode?: string;
  input_cost_per_token?: number;
  output_cost_per_token?: number;
  cache_read_input_token_cost?: number;
  cache_creation_input_token_cost?: number;
  output_cost_per_reasoning_token?: number;
  input_cost_per_token_batches?: number;
  output_cost_per_token_batches?: number;
}

/** LiteLLM provider ids → OpenTelemetry `gen_ai.provider.name` well-known values. */
const PROVIDERS: Record<string, string> = {
  openai: 'openai',
  text_completion_openai: 'openai',
  anthropic: 'anthropic',
  azure: 'azure.ai.openai',
  azure_ai: 'azure.ai.inference',
  bedrock: 'aws.bedrock',
  bedrock_converse: 'aws.bedrock',
  gemini: 'gcp.gemini',
  vertex_ai: 'gcp.vertex_ai',
  xai: 'x_ai',
  mistral: 'mistral_ai',
  deepseek: 'deepseek',
  groq: 'groq',
  perplexity: 'perplexity',
  cohere: 'cohere',
  cohere_chat: 'cohere',
  watsonx: 'ibm.watsonx.ai',
};

const BILLED_MODES = new Set(['chat', 'completion', 'responses', 'embedding']);

export function providerFromLiteLlm(litellmProvider: string): string {
  const base = litellmProvider.startsWith('vertex_ai') ? 'vertex_ai' : litellmProvider;
  return PROVIDERS[base] ?? litellmProvider;
}

const round = (v: number, places: number): number => Number(v.toFixed(places));
const perMillion = (perToken: number): number => round(perToken * 1e6, PRICE_SCALE);

export interface LiteLlmImport {
  catalog: CatalogJson;
  /** Entries left out, with why (no token prices, not a billed mode, duplicate name). */
  skipped: { name: string; reason: string }[];
}

export interface LiteLlmImportOptions {
  /** Effective date of the imported prices (YYYY-MM-DD or ISO instant, UTC). */
  from: string;
  /** Keep only these providers (OpenTelemetry names or LiteLLM ids). */
  providers?: string[];
  /** Recorded as each card's source. */
  source?: string;
}

export function importLiteLlm(json: unknown, options: LiteLlmImportOptions): LiteLlmImport {
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new TypeError('LiteLLM price file must be a JSON object keyed by model name');
  }
  const skipped: LiteLlmImport['skipped'] = [];
  const cards = new Map<string, CardJson>();
  for (const [name, raw] of Object.entries(json as Record<string, LiteLlmEntry>)) {
    if (name === 'sample_spec') continue;
    const e = raw ?? {};
    const litellmProvider = e.litellm_provider ?? '';
    const provider = providerFromLiteLlm(litellmProvider);
    if (options.providers && !options.providers.includes(provider) && !options.providers.includes(litellmProvider)) continue;
    if (e.mode && !BILLED_MODES.has(e.mode)) {
      skipped.push({ name, reason: `mode ${e.mode} is not billed per token` });
      continue;
    }
    if (typeof e.input_cost_per_token !== 'number' || typeof e.output_cost_per_token !== 'number') {
      skipped.push({ name, reason: 'no input_cost_per_token/output_cost_per_token' });
      continue;
    }
    // LiteLLM keys often repeat the provider as a prefix ("gemini/gemini-2.5-pro"); the API model id is what spans carry.
    const model = name.startsWith(`${litellmProvider}/`) ? name.slice(litellmProvider.length + 1) : name;
    const key = `${provider}\u0000${model}`;
    if (cards.has(key)) {
      skipped.push({ name, reason: `duplicate of ${provider}/${model}` });
      continue;
    }
    const input = perMillion(e.input_cost_per_token);
    const period: CardJson['periods'][number] = { from: options.from, input, output: perMillion(e.output_cost_per_token) };
    if (typeof e.cache_read_input_token_cost === 'number') period.cache_read = perMillion(e.cache_read_input_token_cost);
    if (typeof e.cache_creation_input_token_cost === 'number') period.cache_write = perMillion(e.cache_creation_input_token_cost);
    if (typeof e.output_cost_per_reasoning_token === 'number') period.reasoning = perMillion(e.output_cost_per_reasoning_token);
    if (typeof e.input_cost_per_token_batches === 'number' && e.input_cost_per_token > 0) {
      period.batch_multiplier = round(e.input_cost_per_token_batches / e.input_cost_per_token, MULTIPLIER_SCALE);
    }
    cards.set(key, { provider, model, ...(options.source && { source: options.source }), periods: [period] });
  }
  return { catalog: { cards: [...cards.values()] }, skipped };
}
