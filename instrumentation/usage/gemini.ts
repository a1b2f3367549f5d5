/**
 * Gemini / Vertex AI `usageMetadata`. `promptTokenCount` includes
 * `cachedContentTokenCount`; `candidatesTokenCount` does NOT include
 * `thoughtsTokenCount`, and `toolUsePromptTokenCount` (tool results fed back
 * to the model) is not part of the prompt count either: Google documents
 * `totalTokenCount` as the sum of prompt, candidates, tool-use prompt and
 * thoughts counts (https://ai.google.dev/api/generate-content#UsageMetadata,
 * googleapis.github.io/js-genai GenerateContentResponseUsageMetadata).
 * Thoughts and tool-use prompts are billed (as output and input), so both
 * are added to the inclusive totals here. Proto3 JSON omits zero counts,
 * hence the parts are optional; but a usage with neither promptTokenCount
 * nor totalTokenCount says nothing and is an error, not zero tokens, and a
 * totalTokenCount that is not the sum of the parts is one too.
 */
import { InvalidUsageError, type TokenCounts } from '../../contract/tokens.ts';
import { count, fromInclusive, isObject, present, stringField, usageObject, type ResponseMetadata, type ResponseReader } from './fields.ts';

const PROVIDER = 'Gemini';

export function parseGeminiUsage(usageMetadata: unknown): TokenCounts {
  const u = usageObject(PROVIDER, usageMetadata);
  if (!present(u, 'promptTokenCount') && !present(u, 'totalTokenCount')) {
    throw new InvalidUsageError(`${PROVIDER} usage: promptTokenCount is missing (and there is no totalTokenCount)`);
  }
  const prompt = count(PROVIDER, u, 'promptTokenCount', false);
  const cached = count(PROVIDER, u, 'cachedContentTokenCount', false);
  const toolUse = count(PROVIDER, u, 'toolUsePromptTokenCount', false);
  const candidates = count(PROVIDER, u, 'candidatesTokenCount', false);
  const thoughts = count(PROVIDER, u, 'thoughtsTokenCount', false);
  if (present(u, 'totalTokenCount')) {
    const total = count(PROVIDER, u, 'totalTokenCount', true);
    if (total !== prompt + candidates + toolUse + thoughts) {
      throw new InvalidUsageError(
        `${PROVIDER} usage: totalTokenCount (${total}) does not equal promptTokenCount (${prompt}) + candidatesTokenCount (${candidates}) + toolUsePromptTokenCount (${toolUse}) + thoughtsTokenCount (${thoughts})`,
      );
    }
  }
  // The cache is part of the prompt: check it against the prompt alone, before the tool-use prompt is added.
  if (cached > prompt) throw new InvalidUsageError(`${PROVIDER} usage: cachedContentTokenCount (${cached}) exceeds promptTokenCount (${prompt})`);
  return fromInclusive(PROVIDER, {
    input: ['promptTokenCount + toolUsePromptTokenCount', prompt + toolUse],
    cacheRead: ['cachedContentTokenCount', cached],
    cacheWrite: ['(none)', 0],
    output: ['candidatesTokenCount + thoughtsTokenCount', candidates + thoughts],
    reasoning: ['thoughtsTokenCount', thoughts],
  });
}

export function geminiMetadata(response: unknown): ResponseMetadata {
  const responseModel = stringField(response, 'modelVersion');
  const responseId = stringField(response, 'responseId');
  return { ...(responseModel && { responseModel }), ...(responseId && { responseId }) };
}

export const geminiReader: ResponseReader = {
  usage: (response) => ({ tokens: parseGeminiUsage(isObject(response) ? response.usageMetadata : undefined) }),
  metadata: geminiMetadata,
};
