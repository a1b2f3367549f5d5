/**
 * The rows the consumers write and users query (ClickHouse tables
 * `attempts` and `llm_calls`), in the JSONEachRow shape they are inserted
 * in: money as exact decimal strings (Decimal(38, 18)), instants as
 * 'YYYY-MM-DD hh:mm:ss.nnnnnnnnn' UTC strings (DateTime64(9, 'UTC')).
 * Token columns hold the exclusive kinds of tokens.ts.
 */
import { z } from 'zod';
import { OUTCOMES, SERVICE_TIERS, UNKNOWN_OUTCOME } from './attributes.ts';

const count = z.number().int().min(0);
const usd = z.string().regex(/^-?\d+(\.\d{1,18})?$/, 'must be a decimal string with at most 18 decimal places');
const instant = z.string().regex(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9}$/, "must be 'YYYY-MM-DD hh:mm:ss.nnnnnnnnn' (UTC)");

const tokenColumns = {
  input_tokens: count,
  cache_read_tokens: count,
  cache_write_tokens: count,
  output_tokens: count,
  reasoning_tokens: count,
};

/** How an attempt came to be decided (DESIGN.md "Tail-based sampling"). */
export const DECISIONS = ['ended', 'late_span', 'overflow', 'timeout', 'shutdown'] as const;
export type Decision = (typeof DECISIONS)[number];

export const AttemptRowSchema = z.object({
  attempt_id: z.string().min(1),
  tenant: z.string().min(1),
  spec_id: z.string().min(1),
  spec_tier: z.string().min(1),
  canary: z.string(),
  variant: z.string(),
  pool: z.string(),
  model: z.string(),
  attempt_number: z.number().int().min(1),
  outcome: z.enum([...OUTCOMES, UNKNOWN_OUTCOME]),
  reason: z.string(),
  started_at: instant,
  ended_at: instant,
  duration_ms: z.number().min(0),
  llm_calls: count,
  tool_calls: count,
  ...tokenColumns,
  /** NULL when any LLM call of the attempt is unpriced: a partial sum is not its cost. */
  cost_usd: usd.nullable(),
  reported_cost_usd: usd.nullable(),
  unpriced_calls: count,
  trace_id: z.string(),
  span_id: z.string(),
  /** Whether the attempt's spans were kept by tail sampling, and at which rate. */
  sampled: z.boolean(),
  sampling_rate: z.number().min(0).max(1),
  decision: z.enum(DECISIONS),
  /** Spans counted into the row; ReplacingMergeTree keeps the most complete version. */
  version: count,
});
export type AttemptRow = z.infer<typeof AttemptRowSchema>;

export const LlmCallRowSchema = z.object({
  tenant: z.string().min(1),
  attempt_id: z.string().min(1),
  trace_id: z.string(),
  span_id: z.string(),
  started_at: instant,
  ended_at: instant,
  /** The provider the call is priced under. */
  provider: z.string(),
  /** How it was found: fleet.provider, host (the request's server), instrumentation, or inferred (the SDK's name only; the model's one other provider). */
  provider_source: z.enum(['fleet.provider', 'host', 'instrumentation', 'inferred']).default('instrumentation'),
  /** The provider the instrumentation named (absent: the table's default, `provider`), and the host the request went to ('' unknown): what re-pricing resolves the provider from again. */
  instrumented_provider: z.string().optional(),
  server_address: z.string().default(''),
  model: z.string(),
  /** The model the agent asked for ('' when not reported). */
  request_model: z.string().default(''),
  service_tier: z.enum(SERVICE_TIERS),
  ...tokenColumns,
  /** Of cache_write_tokens, those written to a 1-hour cache (priced at the card's cache_write_1h). */
  cache_write_1h_tokens: count,
  cost_usd: usd.nullable(),
  reported_cost_usd: usd.nullable(),
  /** The card and period that priced the call (empty / NULL when unpriced). */
  price_provider: z.string(),
  price_model: z.string(),
  price_from: instant.nullable(),
  /** Why the call is unpriced; empty when priced. */
  unpriced_reason: z.string(),
  /** Which attribute convention the call was read from. */
  dialect: z.string(),
  /** The roll-up version of the attempt that wrote the row (attempts.version): the newest wins. */
  version: count,
  /** 1: the span wraps another LLM call of the attempt (a framework span around the client's), not billed; FINAL hides it. */
  is_deleted: z.union([z.literal(0), z.literal(1)]),
});
export type LlmCallRow = z.infer<typeof LlmCallRowSchema>;

/**
 * `YYYY-MM-DD hh:mm:ss` of the seconds formatted lately: spans of concurrent
 * attempts interleave a few dozen distinct seconds, so one remembered second
 * missed most of the time (Date#toISOString per call). Bounded: cleared when full.
 */
const secondsText = new Map<number, string>();
const SECONDS_CACHED = 4096;

/** Nanoseconds since the epoch → the DateTime64(9) text ClickHouse reads and writes. */
export function formatInstant(nanos: bigint): string {
  let seconds = nanos / 1_000_000_000n;
  let frac = nanos % 1_000_000_000n;
  if (frac < 0n) {
    seconds -= 1n;
    frac += 1_000_000_000n;
  }
  const s = Number(seconds);
  let text = secondsText.get(s);
  if (text === undefined) {
    if (secondsText.size >= SECONDS_CACHED) secondsText.clear();
    const iso = new Date(s * 1000).toISOString(); // YYYY-MM-DDThh:mm:ss.mmmZ
    text = `${iso.slice(0, 10)} ${iso.slice(11, 19)}`;
    secondsText.set(s, text);
  }
  return `${text}.${String(frac).padStart(9, '0')}`;
}

/** The inverse of formatInstant. */
export function parseInstant(text: string): bigint {
  const m = /^(\d{4}-\d\d-\d\d)[ T](\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z?$/.exec(text);
  if (!m) throw new RangeError(`not a UTC instant: ${JSON.stringify(text)}`);
  const seconds = BigInt(Date.parse(`${m[1]}T${m[2]}Z`) / 1000);
  return seconds * 1_000_000_000n + BigInt((m[3] ?? '').padEnd(9, '0'));
}
