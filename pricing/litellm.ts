/**
 * Import from LiteLLM's `model_prices_and_context_window.json` (USD per
 * token, one entry per model) into our catalog format (USD per million
 * tokens, effective-dated). LiteLLM has no dates, so the user says from when
 * the imported prices hold.
 */
import type { CardJson, CatalogJson } from './catalog.ts';
import { MULTIPLIER_SCALE, PRICE_SCALE } from './catalog.ts';
import { formatScaled, toScaled } from './decimal.ts';

interface LiteLlmEntry {
  litellm_provider?: string;
  mode?: string;
  input_cost_per_token?: number;
  output_cost_per_token?: number;
  cache_read_input_token_cost?: number;
  cache_creation_input_token_cost?: number;
  cache_creation_input_token_cost_above_1hr?: number;
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
  /** Entries imported with a price left out, with why (also the period's `note`). */
  notes: { name: string; note: string }[];
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
  const notes: LiteLlmImport['notes'] = [];
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
    if (typeof e.cache_creation_input_token_cost_above_1hr === 'number') period.cache_write_1h = perMillion(e.cache_creation_input_token_cost_above_1hr);
    if (typeof e.output_cost_per_reasoning_token === 'number') period.reasoning = perMillion(e.output_cost_per_reasoning_token);
    const batch = batchMultiplier(e.input_cost_per_token, e.output_cost_per_token, e.input_cost_per_token_batches, e.output_cost_per_token_batches);
    if (typeof batch === 'number') period.batch_multiplier = batch;
    else if (batch !== undefined) {
      const note = `batch prices not imported: ${batch}; batch calls get the default multiplier 0.5 unless you set batch_multiplier`;
      period.note = note;
      notes.push({ name, note });
    }
    cards.set(key, { provider, model, ...(options.source && { source: options.source }), periods: [period] });
  }
  return { catalog: { cards: [...cards.values()] }, skipped, notes };
}

/**
 * The catalog's one batch multiplier for LiteLLM's batch prices, or why
 * there is none (undefined: LiteLLM gives no batch price). It must be the
 * same ratio for input and output and exact at MULTIPLIER_SCALE: a rounded
 * or input-only ratio would misprice batch output.
 */
function batchMultiplier(input: number, output: number, batchInput: number | undefined, batchOutput: number | undefined): number | string | undefined {
  if (batchInput === undefined && batchOutput === undefined) return undefined;
  if (typeof batchInput !== 'number' || typeof batchOutput !== 'number') {
    return 'LiteLLM gives only one of input_cost_per_token_batches and output_cost_per_token_batches';
  }
  const exact = (v: number) => toScaled(perMillion(v), PRICE_SCALE);
  const [inBase, outBase, inBatch, outBatch] = [input, output, batchInput, batchOutput].map(exact) as [bigint, bigint, bigint, bigint];
  if (inBase === 0n || outBase === 0n) return 'a zero base price leaves the batch ratio undefined';
  const ratio = (batch: bigint, base: bigint) => formatScaled((batch * 10n ** 18n) / base, 18);
  // batch/base as fractions: equal iff inBatch × outBase = outBatch × inBase.
  if (inBatch * outBase !== outBatch * inBase) {
    return `input ratio ${ratio(inBatch, inBase)} and output ratio ${ratio(outBatch, outBase)} differ`;
  }
  const unit = 10n ** BigInt(MULTIPLIER_SCALE);
  if ((inBatch * unit) % inBase !== 0n) return `ratio ${ratio(inBatch, inBase)} has more than ${MULTIPLIER_SCALE} decimal places`;
  return Number(formatScaled((inBatch * unit) / inBase, MULTIPLIER_SCALE));
}
