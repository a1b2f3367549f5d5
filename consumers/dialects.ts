/**
 * Span dialects: which spans are billed LLM calls, and what they cost in
 * tokens. Agents reach us traced by our own SDK (OpenTelemetry GenAI
 * conventions) or by OpenInference (Arize / Phoenix), OpenLLMetry
 * (Traceloop) or the Vercel AI SDK telemetry (v4–v7). Each names and counts
 * usage its own way; this module reads all of them into one LlmCall with
 * EXCLUSIVE token kinds (contract/tokens.ts), so nothing is counted twice.
 *
 * Which spans are calls
 *   - Only the span of the provider request is a call. Spans that aggregate
 *     their children (GenAI invoke_agent / create_agent, OpenInference
 *     CHAIN / AGENT, Traceloop workflow / task / agent, Vercel
 *     ai.generateText / ai.streamText / …) are 'other' even when they carry
 *     usage: counting them would count their children's tokens again.
 *   - Embedding spans are calls only when they carry token usage: wrappers
 *     around embedding clients often record none, and an embedding request
 *     without usage is not flagged as unpriced noise.
 *   - Chat / completion spans without any token usage ARE calls, but
 *     llm_call_invalid ("no token usage"): they were billed, we cannot say
 *     how much, so they must be priced as unpriced and never as 0. A failed
 *     request usually also has no usage (its `error.type`, when present, is
 *     named in the reason); the span status is not visible here.
 *
 * Dialect precedence (a span may carry several vocabularies): Vercel
 * (`ai.operationId`) > OpenInference (`openinference.span.kind`) > GenAI /
 * OpenLLMetry. Vercel spans also carry `gen_ai.*` copies of the same numbers
 * and OpenInference's Vercel processor adds `llm.token_count.*` to them; the
 * `ai.*` values are read once, gen_ai.* only fills what ai.* lacks.
 *
 * What each dialect means by each count (sources read for this file):
 *
 * GenAI (open-telemetry/semantic-conventions, docs/registry/attributes/gen-ai.md;
 *   model/gen-ai/registry.yaml): gen_ai.usage.input_tokens "SHOULD include all
 *   types of input tokens, including cached tokens"; cache_read.input_tokens
 *   and cache_creation.input_tokens (renamed cache_write.input_tokens) "SHOULD
 *   be included in gen_ai.usage.input_tokens"; reasoning.output_tokens is
 *   included in output_tokens (DESIGN.md). Older names: gen_ai.system,
 *   gen_ai.usage.prompt_tokens / completion_tokens. Calls: operation chat,
 *   text_completion, generate_content, embeddings; invoke_agent,
 *   create_agent, retrieval, execute_tool are not. Read strictly inclusive.
 *
 * OpenLLMetry (traceloop/openllmetry semconv_ai + instrumentations,
 *   traceloop/openllmetry-js ai-semantic-conventions): no gen_ai.operation.name
 *   (until their 1.40 migration); llm.request.type chat|completion|embedding|
 *   rerank; gen_ai.system "OpenAI" / "Anthropic"; gen_ai.usage.prompt_tokens /
 *   completion_tokens (newer: input_tokens / output_tokens);
 *   gen_ai.usage.cache_read_input_tokens / cache_creation_input_tokens (newer:
 *   the GenAI dotted names); gen_ai.usage.reasoning_tokens;
 *   llm.usage.total_tokens. Counting differs by instrumentation:
 *   - OpenAI: prompt_tokens is OpenAI's prompt_tokens, which includes
 *     prompt_tokens_details.cached_tokens; completion includes reasoning.
 *   - Anthropic (python, since traceloop/openllmetry#2175): input =
 *     input_tokens + cache_read + cache_creation (inclusive), total = input +
 *     output. The JS instrumentation reports input_tokens alone (cache
 *     excluded) and no cache counts at all.
 *   - Google GenAI (JS): completion = candidatesTokenCount, which EXCLUDES
 *     thoughtsTokenCount (reported as reasoning); total = totalTokenCount.
 *   Since the instrumentations disagree, llm.usage.total_tokens decides when it
 *   proves an exclusive reading (see resolveByTotal); otherwise inclusive.
 *
 * OpenInference (Arize-ai/openinference spec/semantic_conventions.md,
 *   "Token Count Details"): openinference.span.kind LLM / EMBEDDING / TOOL / …;
 *   llm.token_count.prompt, .completion, .total,
 *   .prompt_details.cache_read / .cache_write, .completion_details.reasoning.
 *   "The prompt_details.* values are sub-counts of llm.token_count.prompt"
 *   (Anthropic folded in since Arize-ai/openinference#1429); the google-genai
 *   instrumentor sets completion = candidates + thoughts (_utils.py), so
 *   reasoning is inside completion too. llm.model_name is the response model
 *   (llm.request.model_name / llm.response.model_name when they differ),
 *   llm.provider the host (azure, aws, google), llm.system the vendor.
 *   llm.cost.total is a reported cost in USD.
 *
 * Vercel AI SDK (vercel/ai content/docs/03-ai-sdk-core/60-telemetry.mdx,
 *   packages/ai/core|src/generate-text/*, packages/otel/src/*, providers):
 *   - v4: ai.usage.promptTokens / completionTokens (+ gen_ai.usage.input_tokens
 *     or prompt_tokens copies); cache and reasoning only in the JSON
 *     ai.response.providerMetadata: openai.cachedPromptTokens and
 *     openai.reasoningTokens (both inside the totals), anthropic.
 *     cacheReadInputTokens / cacheCreationInputTokens (outside promptTokens).
 *   - v5 (LanguageModelV2): ai.usage.inputTokens / outputTokens / totalTokens /
 *     reasoningTokens / cachedInputTokens. inputTokens is whatever the provider
 *     calls input: Anthropic input_tokens and Bedrock Converse inputTokens
 *     EXCLUDE cache (cache writes only in providerMetadata.anthropic.
 *     cacheCreationInputTokens / bedrock.usage.cacheWriteInputTokens); OpenAI,
 *     Gemini, DeepSeek… include it. Gemini outputTokens = candidatesTokenCount
 *     EXCLUDES reasoning (totalTokens = total incl. thoughts); OpenAI includes.
 *   - v6 (LanguageModelV3, convert-*-usage.ts): normalised inclusive totals plus
 *     ai.usage.inputTokenDetails.{noCacheTokens,cacheReadTokens,cacheWriteTokens}
 *     and ai.usage.outputTokenDetails.{textTokens,reasoningTokens}.
 *   - v7 (@ai-sdk/otel): GenAI-convention spans ("chat <model>", root
 *     invoke_agent, step agent_step, execute_tool), read as the GenAI dialect;
 *     its legacy integration still emits the v6 ai.* spans.
 *   Calls: ai.operationId ending .doGenerate / .doStream (and .doEmbed with
 *   ai.usage.tokens); ai.toolCall is a tool; the outer spans aggregate.
 *   ai.model.provider: "openai.chat", "anthropic.messages", "google.vertex.chat".
 */
import { ATTR, GEN_AI, LLM_OPERATIONS, SERVICE_TIERS, TOOL_OPERATION, type ServiceTier } from '../contract/attributes.ts';
import { normalizeProvider } from '../contract/providers.ts';
import { InvalidUsageError, tokensFromGenAiUsage, type TokenCounts } from '../contract/tokens.ts';
import type { AttrValue } from '../otlp/codec.ts';
import { formatUsd, parseUsd } from '../pricing/decimal.ts';
import { noUsageReason } from '../pricing/engine.ts';
import { hostOf } from '../pricing/providers.ts';

export type Dialect = 'gen_ai' | 'openllmetry' | 'openinference' | 'vercel_ai';

export interface LlmCall {
  dialect: Dialect;
  /** Normalised to OpenTelemetry gen_ai.provider.name well-known values ('openai', 'anthropic', 'x_ai', 'gcp.gemini', 'aws.bedrock', 'mistral_ai', 'deepseek', …); lowercase raw value otherwise; '' when absent. */
  provider: string;
  /** The model that was billed: response model when present, else request model. */
  model: string;
  /** The requested model ('' when absent). */
  requestModel: string;
  serviceTier: ServiceTier;
  tokens: TokenCounts; // exclusive kinds
  /** Of tokens.cache_write, the 1-hour cache writes (fleet.usage.cache_write_1h.input_tokens), priced at their own rate. */
  cacheWrite1hTokens?: number;
  /** Provider-reported cost in USD as a plain decimal string (fleet.cost.reported_usd, OpenInference llm.cost.total), if any. */
  reportedCostUsd?: string;
  /** fleet.provider, normalised, when set: wins over every inference (pricing/providers.ts). */
  explicitProvider?: string;
  /** Host (`host[:port]`) the request went to, from server.address, url.full / http.url or a base-URL attribute, when known. */
  serverAddress?: string;
}

export type SpanRole =
  | { role: 'llm_call'; call: LlmCall }
  /** A billed call whose usage cannot be trusted (negative, non-integer, cached > input, unknown service tier …): priced as unpriced with this reason, never as 0. */
  | { role: 'llm_call_invalid'; dialect: Dialect; provider: string; model: string; reason: string; explicitProvider?: string; serverAddress?: string }
  | { role: 'tool_call' }
  | { role: 'other' };

type Attrs = Record<string, AttrValue>;

const TOOL: SpanRole = { role: 'tool_call' };
const OTHER: SpanRole = { role: 'other' };

/** Attribute names of the non-GenAI dialects (GenAI and fleet.* names come from contract/attributes.ts). */
const OI = {
  SPAN_KIND: 'openinference.span.kind',
  PROVIDER: 'llm.provider',
  SYSTEM: 'llm.system',
  MODEL_NAME: 'llm.model_name',
  REQUEST_MODEL_NAME: 'llm.request.model_name',
  RESPONSE_MODEL_NAME: 'llm.response.model_name',
  INVOCATION_PARAMETERS: 'llm.invocation_parameters',
  EMBEDDING_MODEL_NAME: 'embedding.model_name',
  EMBEDDING_INVOCATION_PARAMETERS: 'embedding.invocation_parameters',
  PROMPT: 'llm.token_count.prompt',
  COMPLETION: 'llm.token_count.completion',
  TOTAL: 'llm.token_count.total',
  CACHE_READ: 'llm.token_count.prompt_details.cache_read',
  CACHE_WRITE: 'llm.token_count.prompt_details.cache_write',
  REASONING: 'llm.token_count.completion_details.reasoning',
  COST_TOTAL: 'llm.cost.total',
} as const;

const TRACELOOP = {
  REQUEST_TYPE: 'llm.request.type',
  // On every OpenLLMetry OpenAI span, streaming ones included (which carry none of the names below).
  IS_STREAMING: 'gen_ai.is_streaming',
  LEGACY_IS_STREAMING: 'llm.is_streaming',
  API_BASE: 'gen_ai.openai.api_base',
  SPAN_KIND: 'traceloop.span.kind',
  TOTAL_TOKENS: 'llm.usage.total_tokens',
  CACHE_READ: 'gen_ai.usage.cache_read_input_tokens',
  CACHE_CREATION: 'gen_ai.usage.cache_creation_input_tokens',
  REASONING: 'gen_ai.usage.reasoning_tokens',
} as const;

const VERCEL = {
  OPERATION_ID: 'ai.operationId',
  TOOL_CALL: 'ai.toolCall',
  MODEL_ID: 'ai.model.id',
  MODEL_PROVIDER: 'ai.model.provider',
  RESPONSE_MODEL: 'ai.response.model',
  PROVIDER_METADATA: 'ai.response.providerMetadata',
  PROMPT_TOKENS: 'ai.usage.promptTokens', // v4
  COMPLETION_TOKENS: 'ai.usage.completionTokens', // v4
  INPUT_TOKENS: 'ai.usage.inputTokens', // v5+
  OUTPUT_TOKENS: 'ai.usage.outputTokens', // v5+
  TOTAL_TOKENS: 'ai.usage.totalTokens', // v5+
  REASONING_TOKENS: 'ai.usage.reasoningTokens', // v5+
  CACHED_INPUT_TOKENS: 'ai.usage.cachedInputTokens', // v5+
  NO_CACHE_TOKENS: 'ai.usage.inputTokenDetails.noCacheTokens', // v6+
  CACHE_READ_TOKENS: 'ai.usage.inputTokenDetails.cacheReadTokens', // v6+
  CACHE_WRITE_TOKENS: 'ai.usage.inputTokenDetails.cacheWriteTokens', // v6+
  TEXT_TOKENS: 'ai.usage.outputTokenDetails.textTokens', // v6+
  OUTPUT_REASONING_TOKENS: 'ai.usage.outputTokenDetails.reasoningTokens', // v6+
  EMBED_TOKENS: 'ai.usage.tokens', // embed / embedMany
} as const;

/** Service-tier attributes, most authoritative first. */
const SERVICE_TIER_ATTRIBUTES = [ATTR.SERVICE_TIER, 'openai.response.service_tier', 'gen_ai.openai.response.service_tier'];

// GenAI usage names, current first. The underscore spellings are OpenLLMetry's
// (and deprecated aliases elsewhere); they count the same thing.
const GEN_AI_INPUT = [GEN_AI.USAGE_INPUT_TOKENS, GEN_AI.USAGE_PROMPT_TOKENS];
const GEN_AI_OUTPUT = [GEN_AI.USAGE_OUTPUT_TOKENS, GEN_AI.USAGE_COMPLETION_TOKENS];
const GEN_AI_CACHE_READ = [GEN_AI.USAGE_CACHE_READ_INPUT_TOKENS, TRACELOOP.CACHE_READ];
const GEN_AI_CACHE_WRITE = [GEN_AI.USAGE_CACHE_WRITE_INPUT_TOKENS, GEN_AI.USAGE_CACHE_CREATION_INPUT_TOKENS, TRACELOOP.CACHE_CREATION];
const GEN_AI_REASONING = [GEN_AI.USAGE_REASONING_OUTPUT_TOKENS, TRACELOOP.REASONING];
const GEN_AI_TOTAL = [TRACELOOP.TOTAL_TOKENS, 'gen_ai.usage.total_tokens'];
const GEN_AI_USAGE = [...GEN_AI_INPUT, ...GEN_AI_OUTPUT, ...GEN_AI_CACHE_READ, ...GEN_AI_CACHE_WRITE, ...GEN_AI_REASONING];

// ---------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------

export function spanRole(name: string, attributes: Record<string, AttrValue>): SpanRole {
  const vercelOp = vercelOperation(name, attributes);
  if (vercelOp !== undefined) return vercelRole(vercelOp, attributes);
  const oiKind = str(attributes, OI.SPAN_KIND);
  if (oiKind !== undefined) return openInferenceRole(oiKind.toUpperCase(), attributes);
  return genAiRole(attributes);
}

// ---------------------------------------------------------------------------
// Reading attributes
// ---------------------------------------------------------------------------

/** A token count as read: where it came from (for error messages) and its value. */
interface Count {
  name: string;
  value: number;
}

function str(a: Attrs, key: string): string | undefined {
  const v = a[key];
  if (typeof v !== 'string') return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

function show(v: unknown): string {
  let text: string;
  if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') text = String(v);
  else if (v instanceof Uint8Array) text = `<${v.length} bytes>`;
  else {
    try {
      text = JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? x.toString() : x)) ?? String(v);
    } catch {
      text = String(v);
    }
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** A count from an attribute value: number, bigint or numeric string (OTLP JSON int64). Throws naming the attribute. */
function toCount(name: string, v: unknown): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'bigint' && v >= 0n && v <= MAX_SAFE) return Number(v);
  if (typeof v === 'string' && /^\s*\d+\s*$/.test(v)) {
    const n = Number(v);
    if (Number.isSafeInteger(n)) return n;
  }
  throw new InvalidUsageError(`${name} must be a non-negative integer, got ${show(v)}`);
}

function readCount(a: Attrs, key: string): Count | undefined {
  const v = a[key];
  return v === undefined || v === null ? undefined : { name: key, value: toCount(key, v) };
}

/**
 * The first present of several names for one count. Names that say the same
 * thing must agree: two different values for it cannot both be trusted.
 */
function pick(candidates: (Count | undefined)[]): Count | undefined {
  let first: Count | undefined;
  for (const c of candidates) {
    if (c === undefined) continue;
    if (first === undefined) first = c;
    else if (c.value !== first.value) {
      throw new InvalidUsageError(`${first.name} ${first.value} and ${c.name} ${c.value} disagree`);
    }
  }
  return first;
}

const pickAttr = (a: Attrs, keys: readonly string[]): Count | undefined => pick(keys.map((k) => readCount(a, k)));

const zero = (name: string): Count => ({ name, value: 0 });
const sum = (name: string, ...counts: Count[]): Count => ({ name, value: counts.reduce((s, c) => s + c.value, 0) });

/** Inclusive usage (cache inside input, reasoning inside output) with the names it was read from. */
interface Inclusive {
  input: Count;
  output: Count;
  cacheRead: Count;
  cacheWrite: Count;
  reasoning: Count;
}

/** Inclusive → exclusive kinds, checking that no part exceeds its whole (errors name the attributes). */
function exclusive(u: Inclusive): TokenCounts {
  const cache = u.cacheRead.value + u.cacheWrite.value;
  if (cache > u.input.value) {
    const parts = [u.cacheRead, u.cacheWrite].filter((c) => c.value > 0).map((c) => `${c.name} ${c.value}`);
    throw new InvalidUsageError(`cache tokens (${parts.join(' + ')}) exceed ${u.input.name} ${u.input.value}`);
  }
  if (u.reasoning.value > u.output.value) {
    throw new InvalidUsageError(`${u.reasoning.name} ${u.reasoning.value} exceeds ${u.output.name} ${u.output.value}`);
  }
  return tokensFromGenAiUsage({
    inputTokens: u.input.value,
    outputTokens: u.output.value,
    cacheReadTokens: u.cacheRead.value,
    cacheWriteTokens: u.cacheWrite.value,
    reasoningTokens: u.reasoning.value,
  });
}

interface Reading {
  cacheOutside: boolean;
  reasoningOutside: boolean;
}
const INSIDE: Reading = { cacheOutside: false, reasoningOutside: false };
const READINGS: Reading[] = [
  INSIDE,
  { cacheOutside: false, reasoningOutside: true },
  { cacheOutside: true, reasoningOutside: false },
  { cacheOutside: true, reasoningOutside: true },
];

/**
 * Providers whose own output count leaves reasoning out, for instrumentations
 * that pass the provider's numbers through (OpenLLMetry, Vercel ≤v5) when no
 * total says otherwise: Gemini's candidatesTokenCount excludes
 * thoughtsTokenCount; xAI's completion_tokens excludes reasoning_tokens
 * (vercel/ai#9774: 2640 + 182 + 672 = total 3494).
 */
const REASONING_OUTSIDE_OUTPUT = new Set(['gcp.gemini', 'gcp.vertex_ai', 'gcp.gen_ai', 'x_ai']);
const providerReading = (provider: string): Reading => ({ cacheOutside: false, reasoningOutside: REASONING_OUTSIDE_OUTPUT.has(provider) });

/**
 * For dialects whose instrumentations disagree on containment (OpenLLMetry,
 * OpenInference, Vercel ≤v5 reasoning): when the reported total proves that
 * cache or reasoning sits OUTSIDE prompt / completion (total = prompt +
 * completion + those parts, and differs from prompt + completion), fold them
 * in; otherwise read them as inside, per the conventions. Returns the
 * inclusive input and output.
 */
function resolveByTotal(
  prompt: Count,
  completion: Count,
  cacheRead: Count,
  cacheWrite: Count,
  reasoning: Count,
  total: Count | undefined,
  fallback: Reading = INSIDE,
): { input: Count; output: Count } {
  const cache = cacheRead.value + cacheWrite.value;
  const proven =
    total &&
    READINGS.find((r) => total.value === prompt.value + completion.value + (r.cacheOutside ? cache : 0) + (r.reasoningOutside ? reasoning.value : 0));
  const reading = proven || fallback;
  const why = proven ? `per ${total!.name} ${total!.value}` : 'as this provider reports it';
  return {
    input: reading.cacheOutside && cache > 0 ? sum(`${prompt.name} + cache tokens (outside it, ${why})`, prompt, cacheRead, cacheWrite) : prompt,
    output:
      reading.reasoningOutside && reasoning.value > 0
        ? sum(`${completion.name} + ${reasoning.name} (outside it, ${why})`, completion, reasoning)
        : completion,
  };
}

/** Service tier from the first tier attribute present; unknown values are an error naming them. */
function serviceTier(sources: { name: string; value: unknown }[]): ServiceTier {
  for (const { name, value } of sources) {
    if (value === undefined || value === null) continue;
    const v = typeof value === 'string' ? value.trim().toLowerCase() : value;
    if (v === '') continue;
    if (v === 'default' || v === 'auto') return 'standard'; // OpenAI's names for the standard tier
    if (typeof v === 'string' && (SERVICE_TIERS as readonly string[]).includes(v)) return v as ServiceTier;
    throw new InvalidUsageError(`unknown service tier ${show(value)} in ${name}`);
  }
  return 'standard';
}

const tierAttributes = (a: Attrs) => SERVICE_TIER_ATTRIBUTES.map((name) => ({ name, value: a[name] }));

/** A cost as a plain decimal string (no exponent), or undefined when absent or not a non-negative number. */
function plainUsd(v: unknown): string | undefined {
  if (typeof v === 'bigint') v = v.toString();
  if (typeof v !== 'number' && typeof v !== 'string') return undefined;
  if (typeof v === 'string' && v.trim() === '') return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) return undefined;
  try {
    return formatUsd(parseUsd(v));
  } catch {
    // More than 18 decimal places (a float such as 1.2345678901234567e-7): round to the atto-dollar.
    return n < 1e21 ? formatUsd(parseUsd(n.toFixed(18))) : undefined;
  }
}

/** JSON text attributes (Vercel providerMetadata, OpenInference invocation parameters); undefined when absent or malformed. */
function json(a: Attrs, key: string): unknown {
  const v = a[key];
  if (typeof v !== 'string') return v !== null && typeof v === 'object' && !(v instanceof Uint8Array) ? v : undefined;
  try {
    return JSON.parse(v) as unknown;
  } catch {
    return undefined;
  }
}

function at(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const p of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[p];
  }
  return cur;
}

// ---------------------------------------------------------------------------
// Building the role
// ---------------------------------------------------------------------------

interface CallParts {
  dialect: Dialect;
  provider: string;
  model: string;
  requestModel: string;
  /** Usage read as exclusive kinds; undefined when the span carries no usage at all. Throws InvalidUsageError. */
  tokens: () => TokenCounts | undefined;
  tier: () => ServiceTier;
  reportedCost: unknown[];
  /** Embedding spans without usage are not calls. */
  requireUsage: boolean;
  errorType?: string;
  /** fleet.usage.invalid: the perpass SDK found the usage untrustworthy and left it out. */
  usageInvalid?: string;
  /** fleet.usage.cache_write_1h.input_tokens, if any. Throws InvalidUsageError. */
  cacheWrite1h?: () => number | undefined;
  /** The span's attributes: fleet.provider and the server address are read from them. */
  attributes: Attrs;
}

/**
 * Where the request went: OTel's server.address (+ server.port), the HTTP
 * URL, or OpenLLMetry's base URL. OpenInference names the host's provider in
 * llm.provider instead (read as the instrumentation's provider).
 */
function serverAddress(a: Attrs): string {
  const server = str(a, 'server.address');
  if (server !== undefined) {
    const port = a['server.port'];
    const withPort = (typeof port === 'number' || typeof port === 'bigint') && port !== 443 && port !== 80 && port !== 443n && port !== 80n ? `${server}:${port}` : server;
    const host = hostOf(withPort);
    if (host !== '') return host;
  }
  for (const key of ['url.full', 'http.url', TRACELOOP.API_BASE]) {
    const host = hostOf(str(a, key));
    if (host !== '') return host;
  }
  return '';
}

function callRole(p: CallParts): SpanRole {
  const explicitProvider = normalizeProvider(str(p.attributes, ATTR.PROVIDER));
  const server = serverAddress(p.attributes);
  const evidence = { ...(explicitProvider && { explicitProvider }), ...(server && { serverAddress: server }) };
  const invalid = (reason: string): SpanRole => ({
    role: 'llm_call_invalid',
    dialect: p.dialect,
    provider: p.provider,
    model: p.model,
    reason,
    ...evidence,
  });
  if (p.usageInvalid) return invalid(p.usageInvalid);
  let tokens: TokenCounts | undefined;
  let tier: ServiceTier;
  let write1h: number | undefined;
  try {
    tokens = p.tokens();
    if (tokens === undefined) {
      if (p.requireUsage) return OTHER;
      return invalid(noUsageReason(p.errorType));
    }
    tier = p.tier();
    write1h = p.cacheWrite1h?.();
    if (write1h !== undefined && write1h > tokens.cache_write) {
      throw new InvalidUsageError(`${ATTR.USAGE_CACHE_WRITE_1H_INPUT_TOKENS} ${write1h} exceeds the cache writes ${tokens.cache_write}`);
    }
  } catch (err) {
    if (err instanceof InvalidUsageError) return invalid(err.message);
    throw err;
  }
  const call: LlmCall = {
    dialect: p.dialect,
    provider: p.provider,
    model: p.model,
    requestModel: p.requestModel,
    serviceTier: tier,
    tokens,
    ...(write1h && { cacheWrite1hTokens: write1h }),
    ...evidence,
  };
  for (const c of p.reportedCost) {
    const usd = plainUsd(c);
    if (usd !== undefined) {
      call.reportedCostUsd = usd;
      break;
    }
  }
  return { role: 'llm_call', call };
}

// ---------------------------------------------------------------------------
// OpenTelemetry GenAI and OpenLLMetry
// ---------------------------------------------------------------------------

/** OpenLLMetry's own attributes (absent from the GenAI conventions). */
function isOpenLlmetry(a: Attrs): boolean {
  if (
    TRACELOOP.REQUEST_TYPE in a ||
    TRACELOOP.IS_STREAMING in a ||
    TRACELOOP.LEGACY_IS_STREAMING in a ||
    TRACELOOP.API_BASE in a ||
    TRACELOOP.TOTAL_TOKENS in a ||
    TRACELOOP.CACHE_READ in a ||
    TRACELOOP.CACHE_CREATION in a ||
    TRACELOOP.REASONING in a
  ) {
    return true;
  }
  for (const k in a) if (k.startsWith('traceloop.')) return true;
  return false;
}

function genAiRole(a: Attrs): SpanRole {
  const dialect: Dialect = isOpenLlmetry(a) ? 'openllmetry' : 'gen_ai';
  const op = str(a, GEN_AI.OPERATION_NAME)?.toLowerCase();
  if (op !== undefined) {
    if (op === TOOL_OPERATION) return TOOL;
    // invoke_agent / create_agent aggregate their children; retrieval,
    // rerank, agent_step and custom operations are not model calls.
    if (!(LLM_OPERATIONS as readonly string[]).includes(op)) return OTHER;
    return genAiCall(dialect, a, op === 'embeddings');
  }
  const requestType = str(a, TRACELOOP.REQUEST_TYPE)?.toLowerCase();
  if (requestType === undefined) {
    const kind = str(a, TRACELOOP.SPAN_KIND)?.toLowerCase();
    if (kind === 'tool') return TOOL;
    if (kind !== undefined) return OTHER; // workflow / task / agent aggregate their children
    // GenAI conventions before gen_ai.operation.name (≤1.26): a span naming
    // its provider and carrying usage is a call.
    const named = str(a, GEN_AI.PROVIDER_NAME) ?? str(a, GEN_AI.SYSTEM);
    if (named !== undefined && GEN_AI_USAGE.some((k) => a[k] !== undefined && a[k] !== null)) return genAiCall(dialect, a, false);
    return OTHER;
  }
  if (requestType === 'chat' || requestType === 'completion') return genAiCall(dialect, a, false);
  if (requestType === 'rerank') return OTHER; // billed per search, not per token
  // 'embedding', 'unknown' or newer types: a call when it carries usage.
  return genAiCall(dialect, a, true);
}

function genAiCall(dialect: Dialect, a: Attrs, requireUsage: boolean): SpanRole {
  const requestModel = str(a, GEN_AI.REQUEST_MODEL) ?? '';
  const provider = normalizeProvider(str(a, GEN_AI.PROVIDER_NAME) ?? str(a, GEN_AI.SYSTEM));
  return callRole({
    dialect,
    provider,
    model: str(a, GEN_AI.RESPONSE_MODEL) ?? requestModel,
    requestModel,
    // The GenAI conventions say inclusive, and our SDK emits it so: read strictly.
    // OpenLLMetry's instrumentations disagree (see the header): its total decides, then the provider.
    tokens: () => genAiTokens(a, dialect === 'openllmetry' ? providerReading(provider) : undefined),
    tier: () => serviceTier(tierAttributes(a)),
    reportedCost: [a[ATTR.COST_REPORTED_USD]],
    requireUsage,
    errorType: str(a, 'error.type'),
    usageInvalid: str(a, ATTR.USAGE_INVALID),
    cacheWrite1h: () => readCount(a, ATTR.USAGE_CACHE_WRITE_1H_INPUT_TOKENS)?.value,
    attributes: a,
  });
}

/** `byTotal`: resolve containment from the reported total, else with this reading; undefined = strictly inclusive. */
function genAiTokens(a: Attrs, byTotal: Reading | undefined): TokenCounts | undefined {
  const input = pickAttr(a, GEN_AI_INPUT);
  const output = pickAttr(a, GEN_AI_OUTPUT);
  const cacheRead = pickAttr(a, GEN_AI_CACHE_READ);
  const cacheWrite = pickAttr(a, GEN_AI_CACHE_WRITE);
  const reasoning = pickAttr(a, GEN_AI_REASONING);
  if (!input && !output && !cacheRead && !cacheWrite && !reasoning) return undefined;
  const u: Inclusive = {
    input: input ?? zero(GEN_AI.USAGE_INPUT_TOKENS),
    output: output ?? zero(GEN_AI.USAGE_OUTPUT_TOKENS),
    cacheRead: cacheRead ?? zero(GEN_AI.USAGE_CACHE_READ_INPUT_TOKENS),
    cacheWrite: cacheWrite ?? zero(GEN_AI.USAGE_CACHE_WRITE_INPUT_TOKENS),
    reasoning: reasoning ?? zero(GEN_AI.USAGE_REASONING_OUTPUT_TOKENS),
  };
  if (byTotal) Object.assign(u, resolveByTotal(u.input, u.output, u.cacheRead, u.cacheWrite, u.reasoning, pickAttr(a, GEN_AI_TOTAL), byTotal));
  return exclusive(u);
}

// ---------------------------------------------------------------------------
// OpenInference
// ---------------------------------------------------------------------------

function openInferenceRole(kind: string, a: Attrs): SpanRole {
  if (kind === 'TOOL') return TOOL;
  if (kind === 'LLM') return openInferenceCall(a, false);
  if (kind === 'EMBEDDING') return openInferenceCall(a, true);
  return OTHER; // CHAIN, AGENT, RETRIEVER, RERANKER, GUARDRAIL, EVALUATOR, PROMPT
}

function invocationModel(a: Attrs, key: string): string | undefined {
  const m = at(json(a, key), ['model']) ?? at(json(a, key), ['model_name']);
  return typeof m === 'string' && m.trim() !== '' ? m.trim() : undefined;
}

function openInferenceCall(a: Attrs, embedding: boolean): SpanRole {
  const invoked = invocationModel(a, embedding ? OI.EMBEDDING_INVOCATION_PARAMETERS : OI.INVOCATION_PARAMETERS);
  const modelName = embedding ? (str(a, OI.EMBEDDING_MODEL_NAME) ?? str(a, OI.MODEL_NAME)) : str(a, OI.MODEL_NAME);
  // llm.model_name "should equal llm.response.model_name when known, falling back to llm.request.model_name".
  const model = str(a, OI.RESPONSE_MODEL_NAME) ?? modelName ?? str(a, OI.REQUEST_MODEL_NAME) ?? invoked ?? '';
  return callRole({
    dialect: 'openinference',
    // llm.provider is who hosts and bills (azure, aws, google); llm.system the model vendor.
    provider: normalizeProvider(str(a, OI.PROVIDER) ?? str(a, OI.SYSTEM)),
    model,
    requestModel: str(a, OI.REQUEST_MODEL_NAME) ?? invoked ?? modelName ?? '',
    tokens: () => openInferenceTokens(a),
    tier: () => serviceTier(tierAttributes(a)),
    reportedCost: [a[ATTR.COST_REPORTED_USD], a[OI.COST_TOTAL]],
    requireUsage: embedding,
    errorType: str(a, 'error.type'),
    attributes: a,
  });
}

function openInferenceTokens(a: Attrs): TokenCounts | undefined {
  const prompt = readCount(a, OI.PROMPT);
  const completion = readCount(a, OI.COMPLETION);
  const cacheRead = readCount(a, OI.CACHE_READ);
  const cacheWrite = readCount(a, OI.CACHE_WRITE);
  const reasoning = readCount(a, OI.REASONING);
  if (!prompt && !completion && !cacheRead && !cacheWrite && !reasoning) return undefined;
  const u: Inclusive = {
    input: prompt ?? zero(OI.PROMPT),
    output: completion ?? zero(OI.COMPLETION),
    cacheRead: cacheRead ?? zero(OI.CACHE_READ),
    cacheWrite: cacheWrite ?? zero(OI.CACHE_WRITE),
    reasoning: reasoning ?? zero(OI.REASONING),
  };
  // Inclusive per the spec; an older instrumentor that reported Anthropic's
  // exclusive input_tokens is recognised only through llm.token_count.total.
  Object.assign(u, resolveByTotal(u.input, u.output, u.cacheRead, u.cacheWrite, u.reasoning, readCount(a, OI.TOTAL)));
  return exclusive(u);
}

// ---------------------------------------------------------------------------
// Vercel AI SDK
// ---------------------------------------------------------------------------

function vercelOperation(name: string, a: Attrs): string | undefined {
  const id = str(a, VERCEL.OPERATION_ID);
  if (id !== undefined) return id;
  // Span processors that rewrite ai.* into gen_ai.* sometimes move the
  // operation id into gen_ai.operation.name ('ai.generateText.doGenerate').
  const op = str(a, GEN_AI.OPERATION_NAME);
  if (op?.startsWith('ai.')) return op;
  // Without ai.operationId, the span name is the operation id (docs: "ai.generateText.doGenerate (span)").
  if (/^ai\.[A-Za-z]+(\.do[A-Z][A-Za-z]*)?$/.test(name) && (VERCEL.MODEL_ID in a || 'ai.toolCall.name' in a)) return name;
  return undefined;
}

function vercelRole(op: string, a: Attrs): SpanRole {
  if (op === VERCEL.TOOL_CALL) return TOOL;
  if (op.endsWith('.doGenerate') || op.endsWith('.doStream')) return vercelCall(a, false);
  if (op.endsWith('.doEmbed')) return vercelCall(a, true);
  return OTHER; // ai.generateText, ai.streamText, ai.generateObject, ai.embed, … aggregate their steps
}

function vercelCall(a: Attrs, embedding: boolean): SpanRole {
  // Traceloop's AI-SDK processor deletes ai.model.provider in favour of gen_ai.system ('Anthropic').
  const rawProvider = str(a, VERCEL.MODEL_PROVIDER) ?? str(a, GEN_AI.PROVIDER_NAME) ?? str(a, GEN_AI.SYSTEM);
  const provider = normalizeProvider(rawProvider, true);
  const requestModel = str(a, VERCEL.MODEL_ID) ?? str(a, GEN_AI.REQUEST_MODEL) ?? '';
  const meta = json(a, VERCEL.PROVIDER_METADATA);
  return callRole({
    dialect: 'vercel_ai',
    provider,
    model: str(a, VERCEL.RESPONSE_MODEL) ?? str(a, GEN_AI.RESPONSE_MODEL) ?? requestModel,
    requestModel,
    tokens: () => (embedding ? vercelEmbedTokens(a) : vercelTokens(a, meta, rawProvider, provider)),
    tier: () =>
      serviceTier([
        ...tierAttributes(a),
        { name: `${VERCEL.PROVIDER_METADATA}.openai.serviceTier`, value: at(meta, ['openai', 'serviceTier']) },
        { name: `${VERCEL.PROVIDER_METADATA}.anthropic.usage.service_tier`, value: at(meta, ['anthropic', 'usage', 'service_tier']) },
      ]),
    // OpenRouter reports its own billing in providerMetadata.openrouter.usage.cost.
    reportedCost: [a[ATTR.COST_REPORTED_USD], at(meta, ['openrouter', 'usage', 'cost'])],
    requireUsage: embedding,
    errorType: str(a, 'error.type'),
    attributes: a,
  });
}

/**
 * Before v6, ai.usage.inputTokens is the provider's own input count, which for
 * Anthropic (messages API, also on Vertex) and Bedrock Converse leaves cache
 * reads and writes out (vercel/ai anthropic-messages-language-model.ts V2,
 * bedrock-chat-language-model.ts V2; the V3 converters add them back).
 */
function cacheOutsideInput(raw: string | undefined, provider: string): boolean {
  return provider === 'anthropic' || provider === 'aws.bedrock' || (raw ?? '').toLowerCase().includes('anthropic');
}

function metaCount(meta: unknown, path: readonly string[]): Count | undefined {
  const v = at(meta, path);
  if (v === undefined || v === null) return undefined;
  const name = `${VERCEL.PROVIDER_METADATA}.${path.join('.')}`;
  return { name, value: toCount(name, v) };
}

function vercelEmbedTokens(a: Attrs): TokenCounts | undefined {
  const tokens = pickAttr(a, [VERCEL.EMBED_TOKENS, GEN_AI.USAGE_INPUT_TOKENS]);
  return tokens && exclusive({ input: tokens, output: zero(GEN_AI.USAGE_OUTPUT_TOKENS), cacheRead: zero(''), cacheWrite: zero(''), reasoning: zero('') });
}

function vercelTokens(a: Attrs, meta: unknown, rawProvider: string | undefined, provider: string): TokenCounts | undefined {
  // ai.* first; the gen_ai.* copies on the same span hold the same numbers
  // (v4 generateObject uses the older prompt_tokens names). pick() checks they agree.
  const input = pickAttr(a, [VERCEL.INPUT_TOKENS, VERCEL.PROMPT_TOKENS, ...GEN_AI_INPUT]);
  const output = pickAttr(a, [VERCEL.OUTPUT_TOKENS, VERCEL.COMPLETION_TOKENS, ...GEN_AI_OUTPUT]);
  const detailed = [VERCEL.NO_CACHE_TOKENS, VERCEL.CACHE_READ_TOKENS, VERCEL.CACHE_WRITE_TOKENS, VERCEL.TEXT_TOKENS, VERCEL.OUTPUT_REASONING_TOKENS].some(
    (k) => a[k] !== undefined && a[k] !== null,
  );
  return detailed ? vercelV6Tokens(a, input, output) : vercelV5Tokens(a, meta, input, output, rawProvider, provider);
}

/** v6+: inclusive totals with their breakdown; the breakdown must add up to the totals it is given with. */
function vercelV6Tokens(a: Attrs, input: Count | undefined, output: Count | undefined): TokenCounts {
  const noCache = readCount(a, VERCEL.NO_CACHE_TOKENS);
  const cacheRead = pickAttr(a, [VERCEL.CACHE_READ_TOKENS, VERCEL.CACHED_INPUT_TOKENS, ...GEN_AI_CACHE_READ]) ?? zero(VERCEL.CACHE_READ_TOKENS);
  const cacheWrite = pickAttr(a, [VERCEL.CACHE_WRITE_TOKENS, ...GEN_AI_CACHE_WRITE]) ?? zero(VERCEL.CACHE_WRITE_TOKENS);
  const text = readCount(a, VERCEL.TEXT_TOKENS);
  const reasoning = pickAttr(a, [VERCEL.OUTPUT_REASONING_TOKENS, VERCEL.REASONING_TOKENS, ...GEN_AI_REASONING]) ?? zero(VERCEL.OUTPUT_REASONING_TOKENS);
  const inputTotal = input ?? (noCache ? sum(`${noCache.name} + cache tokens`, noCache, cacheRead, cacheWrite) : zero(VERCEL.INPUT_TOKENS));
  const outputTotal = output ?? (text ? sum(`${text.name} + ${reasoning.name}`, text, reasoning) : zero(VERCEL.OUTPUT_TOKENS));
  if (noCache && noCache.value + cacheRead.value + cacheWrite.value !== inputTotal.value) {
    throw new InvalidUsageError(
      `${noCache.name} ${noCache.value} + ${cacheRead.name} ${cacheRead.value} + ${cacheWrite.name} ${cacheWrite.value} ≠ ${inputTotal.name} ${inputTotal.value}`,
    );
  }
  if (text && text.value + reasoning.value !== outputTotal.value) {
    throw new InvalidUsageError(`${text.name} ${text.value} + ${reasoning.name} ${reasoning.value} ≠ ${outputTotal.name} ${outputTotal.value}`);
  }
  return exclusive({ input: inputTotal, output: outputTotal, cacheRead, cacheWrite, reasoning });
}

/** v4 / v5: the provider's own counts, with cache and reasoning containment depending on the provider. */
function vercelV5Tokens(
  a: Attrs,
  meta: unknown,
  input: Count | undefined,
  output: Count | undefined,
  rawProvider: string | undefined,
  provider: string,
): TokenCounts | undefined {
  const cacheRead = pick([
    readCount(a, VERCEL.CACHED_INPUT_TOKENS),
    ...GEN_AI_CACHE_READ.map((k) => readCount(a, k)),
    metaCount(meta, ['openai', 'cachedPromptTokens']), // v4 OpenAI
    metaCount(meta, ['anthropic', 'cacheReadInputTokens']), // v4 Anthropic
    metaCount(meta, ['anthropic', 'usage', 'cache_read_input_tokens']), // v5 Anthropic raw usage
  ]);
  const cacheWrite = pick([
    ...GEN_AI_CACHE_WRITE.map((k) => readCount(a, k)),
    metaCount(meta, ['anthropic', 'cacheCreationInputTokens']), // v4, v5 Anthropic
    metaCount(meta, ['anthropic', 'usage', 'cache_creation_input_tokens']), // v5 Anthropic raw usage
    metaCount(meta, ['bedrock', 'usage', 'cacheWriteInputTokens']), // v5 Bedrock
  ]);
  const reasoning = pick([
    readCount(a, VERCEL.REASONING_TOKENS),
    ...GEN_AI_REASONING.map((k) => readCount(a, k)),
    metaCount(meta, ['openai', 'reasoningTokens']), // v4 OpenAI
  ]);
  if (!input && !output && !cacheRead && !cacheWrite && !reasoning) return undefined;
  const cr = cacheRead ?? zero(VERCEL.CACHED_INPUT_TOKENS);
  const cw = cacheWrite ?? zero(`${VERCEL.PROVIDER_METADATA}.anthropic.cacheCreationInputTokens`);
  const r = reasoning ?? zero(VERCEL.REASONING_TOKENS);
  const rawInput = input ?? zero(VERCEL.INPUT_TOKENS);
  const rawOutput = output ?? zero(VERCEL.OUTPUT_TOKENS);
  const cacheOutside = cacheOutsideInput(rawProvider, provider);
  const inputTotal = cacheOutside && cr.value + cw.value > 0 ? sum(`${rawInput.name} + cache tokens (Anthropic-style input excludes cache)`, rawInput, cr, cw) : rawInput;
  // Reasoning: inside outputTokens for OpenAI, outside it for Gemini and xAI;
  // ai.usage.totalTokens (the provider's total) tells which, else the provider.
  const { output: outputTotal } = resolveByTotal(rawInput, rawOutput, zero(''), zero(''), r, readCount(a, VERCEL.TOTAL_TOKENS), providerReading(provider));
  return exclusive({ input: inputTotal, output: outputTotal, cacheRead: cr, cacheWrite: cw, reasoning: r });
}
