/**
 * Attribute names of the wire contract (DESIGN.md "Wire contract"). Every
 * component imports names from here; none spells them itself.
 */

/** Attempt span attributes (`fleet.*`). */
export const ATTR = {
  SPEC_ID: 'fleet.spec.id',
  SPEC_TIER: 'fleet.spec.tier',
  ATTEMPT_NUMBER: 'fleet.attempt.number',
  ATTEMPT_OUTCOME: 'fleet.attempt.outcome',
  ATTEMPT_REASON: 'fleet.attempt.reason',
  ATTEMPT_ID: 'fleet.attempt.id',
  CANARY: 'fleet.canary',
  VARIANT: 'fleet.variant',
  POOL: 'fleet.pool',
  MODEL: 'fleet.model',
  TENANT: 'fleet.tenant',
  COST_REPORTED_USD: 'fleet.cost.reported_usd',
  SERVICE_TIER: 'fleet.service_tier',
  /** The provider that served and bills an LLM call; wins over the host and the instrumentation's name (pricing/providers.ts). */
  PROVIDER: 'fleet.provider',
  /** LLM call: of gen_ai.usage.cache_write.input_tokens, the writes to a 1-hour cache (Anthropic), priced at the card's cache_write_1h. */
  USAGE_CACHE_WRITE_1H_INPUT_TOKENS: 'fleet.usage.cache_write_1h.input_tokens',
  /** LLM call: why the SDK left the token counts out (usage missing or untrustworthy); the call is unpriced with this reason. */
  USAGE_INVALID: 'fleet.usage.invalid',
  /** Stamped by the consumers on every span kept by tail sampling. */
  SAMPLING_RATE: 'fleet.sampling.rate',
} as const;

/** OpenTelemetry GenAI semantic convention names (current and older ones). */
export const GEN_AI = {
  OPERATION_NAME: 'gen_ai.operation.name',
  PROVIDER_NAME: 'gen_ai.provider.name',
  /** Older name of gen_ai.provider.name. */
  SYSTEM: 'gen_ai.system',
  REQUEST_MODEL: 'gen_ai.request.model',
  RESPONSE_MODEL: 'gen_ai.response.model',
  USAGE_INPUT_TOKENS: 'gen_ai.usage.input_tokens',
  USAGE_OUTPUT_TOKENS: 'gen_ai.usage.output_tokens',
  /** Older names of the two above. */
  USAGE_PROMPT_TOKENS: 'gen_ai.usage.prompt_tokens',
  USAGE_COMPLETION_TOKENS: 'gen_ai.usage.completion_tokens',
  USAGE_CACHE_READ_INPUT_TOKENS: 'gen_ai.usage.cache_read.input_tokens',
  USAGE_CACHE_CREATION_INPUT_TOKENS: 'gen_ai.usage.cache_creation.input_tokens',
  /** Newer name of cache_creation; both are accepted. */
  USAGE_CACHE_WRITE_INPUT_TOKENS: 'gen_ai.usage.cache_write.input_tokens',
  USAGE_REASONING_OUTPUT_TOKENS: 'gen_ai.usage.reasoning.output_tokens',
  TOOL_NAME: 'gen_ai.tool.name',
  /** The provider's id of the tool call the model asked for (e.g. Anthropic `toolu_…`, OpenAI `call_…`). */
  TOOL_CALL_ID: 'gen_ai.tool.call.id',
  RESPONSE_ID: 'gen_ai.response.id',
} as const;

/** Values of gen_ai.operation.name that denote a billed model call. */
export const LLM_OPERATIONS = ['chat', 'text_completion', 'generate_content', 'embeddings'] as const;
export const TOOL_OPERATION = 'execute_tool';

export const OUTCOMES = ['pass', 'fail', 'error', 'timeout', 'cancelled'] as const;
export type Outcome = (typeof OUTCOMES)[number];
/** Recorded when an attempt span ended without a verdict: counted as not passing. */
export const UNKNOWN_OUTCOME = 'unknown';
export type RecordedOutcome = Outcome | typeof UNKNOWN_OUTCOME;

export const SERVICE_TIERS = ['standard', 'batch', 'flex', 'priority'] as const;
export type ServiceTier = (typeof SERVICE_TIERS)[number];

export const DEFAULT_TENANT = 'default';
