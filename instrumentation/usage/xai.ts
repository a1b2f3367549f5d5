/**
 * xAI (Grok) usage. The Chat Completions shape, but reasoning is NOT part of
 * `completion_tokens`: "reasoning token consumption will be counted
 * separately from completion_tokens, but will be counted in the
 * total_tokens" (docs.x.ai, Consumption and Rate Limits; vercel/ai#12425:
 * grok-3-mini completion_tokens 1, reasoning_tokens 386, total_tokens 399).
 * Both are billed at the completion price, so output = completion +
 * reasoning. `prompt_tokens` includes `prompt_tokens_details.cached_tokens`.
 *
 * `total_tokens`, when present, is the check: it must be prompt + completion
 * + reasoning. Gateways that re-normalise xAI's usage to OpenAI's convention
 * (reasoning inside completion_tokens, as vercel/ai#11536 once assumed)
 * report total = prompt + completion; the total proves that reading too.
 * Any other total is an error. The Responses API counts reasoning inside
 * `output_tokens` (vercel/ai convert-xai-responses-usage.ts), as OpenAI's does.
 */
import { InvalidUsageError, type TokenCounts } from '../../contract/tokens.ts';
import { count, fromInclusive, isObject, present, usageObject, type Field, type JsonObject, type ResponseReader } from './fields.ts';
import { chatCompletionsFields, openAiMetadata, parseOpenAiResponsesUsage } from './openai.ts';

const PROVIDER = 'xAI';

/** output_tokens in the inclusive form: completion + reasoning, unless total_tokens proves reasoning is already inside. */
function output(u: JsonObject, prompt: number, completion: number, reasoning: number): Field {
  const outside: Field = ['completion_tokens + completion_tokens_details.reasoning_tokens', completion + reasoning];
  if (!present(u, 'total_tokens')) return outside;
  const total = count(PROVIDER, u, 'total_tokens', true);
  if (total === prompt + completion + reasoning) return outside;
  if (total === prompt + completion) return ['completion_tokens', completion];
  throw new InvalidUsageError(
    `${PROVIDER} usage: total_tokens (${total}) is neither prompt_tokens (${prompt}) + completion_tokens (${completion}) + completion_tokens_details.reasoning_tokens (${reasoning}) nor prompt_tokens + completion_tokens`,
  );
}

function responsesTotal(u: JsonObject): void {
  if (!present(u, 'total_tokens')) return;
  const [input, out, total] = ['input_tokens', 'output_tokens', 'total_tokens'].map((k) => count(PROVIDER, u, k, true)) as [number, number, number];
  if (total !== input + out) throw new InvalidUsageError(`${PROVIDER} usage: total_tokens (${total}) does not equal input_tokens (${input}) + output_tokens (${out})`);
}

export function parseXaiUsage(usage: unknown): TokenCounts {
  const u = usageObject(PROVIDER, usage);
  if (!('prompt_tokens' in u) && 'input_tokens' in u) {
    responsesTotal(u);
    return parseOpenAiResponsesUsage(u, PROVIDER);
  }
  const fields = chatCompletionsFields(PROVIDER, u);
  return fromInclusive(PROVIDER, { ...fields, output: output(u, fields.input[1], fields.output[1], fields.reasoning[1]) });
}

export const xaiReader: ResponseReader = {
  usage: (response) => ({ tokens: parseXaiUsage(isObject(response) ? response.usage : undefined) }),
  metadata: openAiMetadata,
};
