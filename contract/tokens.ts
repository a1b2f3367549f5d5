/**
 * Token kinds, kept separately end to end. Internally (rows, pricing) the
 * kinds are *exclusive*: `input` is uncached input only and `output` excludes
 * reasoning, so cost = Σ count(kind) × price(kind) counts nothing twice. On
 * the wire the GenAI convention is *inclusive* (cache counts inside
 * input_tokens, reasoning inside output_tokens); convert with the functions
 * below.
 */
export const TOKEN_KINDS = ['input', 'cache_read', 'cache_write', 'output', 'reasoning'] as const;
export type TokenKind = (typeof TOKEN_KINDS)[number];
export type TokenCounts = Record<TokenKind, number>;

export const zeroTokens = (): TokenCounts => ({ input: 0, cache_read: 0, cache_write: 0, output: 0, reasoning: 0 });

export function addTokens(a: TokenCounts, b: TokenCounts): TokenCounts {
  return {
    input: a.input + b.input,
    cache_read: a.cache_read + b.cache_read,
    cache_write: a.cache_write + b.cache_write,
    output: a.output + b.output,
    reasoning: a.reasoning + b.reasoning,
  };
}

/** Usage as the GenAI convention states it (inclusive counts). */
export interface GenAiUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadTokens: number;
  cacheWriteTokens: number;
  reasoningTokens: number;
}

/** A usage that cannot be right (negative, fractional, parts larger than the whole). */
export class InvalidUsageError extends Error {
  override name = 'InvalidUsageError';
}

function count(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new InvalidUsageError(`${name} must be a non-negative integer, got ${v}`);
  return v;
}

/** Inclusive GenAI usage → exclusive token kinds. Throws InvalidUsageError naming the bad field. */
export function tokensFromGenAiUsage(u: GenAiUsage): TokenCounts {
  const input = count('input_tokens', u.inputTokens);
  const output = count('output_tokens', u.outputTokens);
  const cacheRead = count('cache_read.input_tokens', u.cacheReadTokens);
  const cacheWrite = count('cache_write.input_tokens', u.cacheWriteTokens);
  const reasoning = count('reasoning.output_tokens', u.reasoningTokens);
  if (cacheRead + cacheWrite > input) {
    throw new InvalidUsageError(`cache tokens (read ${cacheRead} + write ${cacheWrite}) exceed input_tokens ${input}`);
  }
  if (reasoning > output) throw new InvalidUsageError(`reasoning.output_tokens ${reasoning} exceeds output_tokens ${output}`);
  return { input: input - cacheRead - cacheWrite, cache_read: cacheRead, cache_write: cacheWrite, output: output - reasoning, reasoning };
}

/** Exclusive token kinds → inclusive GenAI usage (what the SDK emits). */
export function genAiUsageFromTokens(t: TokenCounts): GenAiUsage {
  return {
    inputTokens: t.input + t.cache_read + t.cache_write,
    outputTokens: t.output + t.reasoning,
    cacheReadTokens: t.cache_read,
    cacheWriteTokens: t.cache_write,
    reasoningTokens: t.reasoning,
  };
}
