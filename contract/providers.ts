/**
 * Provider names as OpenTelemetry's `gen_ai.provider.name` spells them, from
 * the many spellings agents and instrumentations emit. Shared by the SDK
 * (which picks the usage reader by provider) and the consumers (which price
 * by provider), so both read a provider the same way.
 */

/** gen_ai.provider.name well-known values, kept as they are. */
const WELL_KNOWN_PROVIDERS = new Set([
  'openai', 'anthropic', 'cohere', 'deepseek', 'groq', 'perplexity', 'mistral_ai', 'x_ai', 'aws.bedrock',
  'azure.ai.inference', 'azure.ai.openai', 'gcp.gemini', 'gcp.gen_ai', 'gcp.vertex_ai', 'ibm.watsonx.ai',
]);

/**
 * Other spellings → well-known value. Keys are lowercase and may be a dotted
 * prefix of the raw value (longest prefix wins: 'google.vertex.chat' →
 * 'google.vertex'). Sources: OpenInference llm.system / llm.provider values,
 * Traceloop's VENDOR_MAPPING, Vercel ai.model.provider ids, older GenAI values.
 */
const PROVIDER_ALIASES: Record<string, string> = {
  xai: 'x_ai', // GenAI ≤1.36 gen_ai.system, OpenInference, Vercel 'xai.chat'
  mistral: 'mistral_ai', // Vercel 'mistral.chat'
  mistralai: 'mistral_ai', // OpenInference, Traceloop 'MistralAI'
  google: 'gcp.gemini', // Vercel '@ai-sdk/google' = Gemini API; Traceloop 'Google'
  gemini: 'gcp.gemini',
  'google.generative-ai': 'gcp.gemini', // Vercel v4–v6
  'google-generative-ai': 'gcp.gemini',
  vertex: 'gcp.vertex_ai', // Vercel 'vertex.anthropic.messages'
  vertexai: 'gcp.vertex_ai', // OpenInference llm.system
  vertex_ai: 'gcp.vertex_ai',
  'google.vertex': 'gcp.vertex_ai', // Vercel 'google.vertex.chat'
  'google-vertex': 'gcp.vertex_ai',
  bedrock: 'aws.bedrock',
  'amazon-bedrock': 'aws.bedrock', // Vercel
  aws: 'aws.bedrock', // OpenInference llm.provider, Traceloop 'AWS'
  amazon: 'aws.bedrock', // OpenInference llm.system ("Amazon Bedrock native")
  azure: 'azure.ai.openai', // OpenInference llm.provider (Azure-hosted OpenAI)
  'azure-openai': 'azure.ai.openai', // Vercel 'azure-openai.chat'
  'az.ai.openai': 'azure.ai.openai', // GenAI ≤1.36
  'az.ai.inference': 'azure.ai.inference', // GenAI ≤1.36
  moonshotai: 'moonshot', // Vercel 'moonshotai.chat'
  google_genai: 'gcp.gen_ai', // @google/genai SDK instrumentations: AI Studio or Vertex, backend unknown
};

/**
 * A provider name as gen_ai.provider.name would spell it. `apiSuffix` (Vercel
 * ids like 'openrouter.chat') drops the API flavour of an unknown provider.
 */
export function normalizeProvider(raw: string | undefined, apiSuffix = false): string {
  const lower = (raw ?? '').trim().toLowerCase();
  if (lower === '' || WELL_KNOWN_PROVIDERS.has(lower)) return lower;
  const parts = lower.split('.');
  for (let n = parts.length; n >= 1; n--) {
    const prefix = parts.slice(0, n).join('.');
    const alias = PROVIDER_ALIASES[prefix];
    if (alias !== undefined) return alias;
    if (WELL_KNOWN_PROVIDERS.has(prefix)) return prefix;
  }
  return apiSuffix ? (parts[0] ?? lower) : lower;
}
