/**
 * perpass instrumentation SDK: the wire contract (DESIGN.md) from a
 * TypeScript or JavaScript agent. setupPerpass once, then withAttempt around
 * each try of a spec, llmCall around each model call, withToolCall around
 * each tool call.
 */
export { setupPerpass, DEFAULT_SCHEDULED_DELAY_MS, OTLP_PROTOCOLS, type BatchOptions, type OtlpProtocol, type PerpassHandle, type PerpassOptions } from './setup.ts';
export { withAttempt, type Attempt, type AttemptOptions } from './attempt.ts';
export { llmCall, recordLlmCall, type LlmCall, type LlmCallOptions, type LlmOperation, type RecordLlmCallOptions } from './llm-call.ts';
export { withToolCall, type ToolCallOptions } from './tool-call.ts';
export type { CostPreview, UnpricedCall } from './cost-preview.ts';
export {
  USAGE_FORMATS,
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
  type ParsedUsage,
  type UsageFormat,
} from './usage/index.ts';
export { InvalidUsageError, type TokenCounts } from '../contract/tokens.ts';
export { OUTCOMES, SERVICE_TIERS, type Outcome, type ServiceTier } from '../contract/attributes.ts';
export { buildCatalog, loadCatalogFile, type Catalog } from '../pricing/index.ts';
