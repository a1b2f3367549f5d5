/**
 * The expected numbers for a planned fleet, computed independently of the
 * pipeline: prices read straight from the catalog JSON, exact bigint
 * arithmetic, grouping done here. Tests compare the views against this.
 */
import { readFileSync } from 'node:fs';
import type { PlannedAttempt, PlannedCall } from '../../demo/plan.ts';

interface Period { from: string; to?: string; input: number; output: number; cache_read?: number; cache_write?: number; reasoning?: number; batch_multiplier?: number }
interface Card { provider: string; model: string; aliases?: string[]; periods: Period[] }

/** A decimal number as integer units of 10^-scale (for catalog prices, which have few digits). */
function fixed(v: number, scale: number): bigint {
  const [i, f = ''] = v.toFixed(scale).split('.');
  return BigInt(i! + f);
}

export function loadCards(path = new URL('../../pricing/prices.json', import.meta.url).pathname): Card[] {
  return (JSON.parse(readFileSync(path, 'utf8')) as { cards: Card[] }).cards;
}

/** Cost of one call in atto-USD, or null when no card/period applies. */
export function callCostAtto(cards: Card[], c: PlannedCall): bigint | null {
  const card = cards.find((k) => k.model === c.model || (k.aliases ?? []).includes(c.model));
  const t = Number(c.startNs / 1_000_000n);
  const p = card?.periods.find((x) => Date.parse(x.from) <= t && (x.to === undefined || t < Date.parse(x.to)));
  if (!p) return null;
  const price = (v: number) => fixed(v, 9); // nano-USD per million tokens
  const sum =
    BigInt(c.tokens.input) * price(p.input) +
    BigInt(c.tokens.cache_read) * price(p.cache_read ?? p.input) +
    BigInt(c.tokens.cache_write) * price(p.cache_write ?? p.input) +
    BigInt(c.tokens.output) * price(p.output) +
    BigInt(c.tokens.reasoning) * price(p.reasoning ?? p.output);
  const mult = c.serviceTier === 'batch' ? fixed(p.batch_multiplier ?? 0.5, 3) : 1000n;
  // nano-USD/M × tokens × milli = 1e-9 × 1e-6 × 1e-3 USD = atto-USD ✓
  return sum * mult;
}

export function attemptCostAtto(cards: Card[], a: PlannedAttempt): bigint | null {
  let total = 0n;
  for (const c of a.calls) {
    const x = callCostAtto(cards, c);
    if (x === null) return null;
    total += x;
  }
  return total;
}

export const usd = (atto: bigint): string => {
  const s = atto.toString().padStart(19, '0');
  const frac = s.slice(-18).replace(/0+$/, '');
  return `${s.slice(0, -18)}${frac ? `.${frac}` : ''}`;
};

export interface ExpectedCell {
  tenant: string;
  model: string;
  spec_tier: string;
  canary: string;
  variant: string;
  attempts: number;
  passes: number;
  unpriced_attempts: number;
  cost_usd: string | null;
  cost_per_pass: string | null;
}

/** v_cost_per_pass as it must read for these attempts. */
export function expectedCostPerPass(cards: Card[], attempts: PlannedAttempt[]): ExpectedCell[] {
  const cells = new Map<string, { cell: Omit<ExpectedCell, 'cost_usd' | 'cost_per_pass'>; cost: bigint; priced: number }>();
  for (const a of attempts) {
    const key = [a.tenant, a.model, a.tier, a.canary, a.variant].join('\u0000');
    let e = cells.get(key);
    if (!e) {
      e = { cell: { tenant: a.tenant, model: a.model, spec_tier: a.tier, canary: a.canary, variant: a.variant, attempts: 0, passes: 0, unpriced_attempts: 0 }, cost: 0n, priced: 0 };
      cells.set(key, e);
    }
    e.cell.attempts++;
    if (a.outcome === 'pass') e.cell.passes++;
    const cost = attemptCostAtto(cards, a);
    if (cost === null) e.cell.unpriced_attempts++;
    else {
      e.cost += cost;
      e.priced++;
    }
  }
  return [...cells.values()].map(({ cell, cost, priced }) => ({
    ...cell,
    cost_usd: priced ? usd(cost) : null,
    cost_per_pass: priced && cell.passes ? usd((cost * BigInt(cell.attempts)) / (BigInt(priced) * BigInt(cell.passes))) : null,
  }));
}

export interface ExpectedSpec {
  tenant: string;
  spec_id: string;
  attempts: number;
  passes: number;
  first_pass_attempt: number | null;
  cost_until_first_pass: string | null;
  total_cost_usd: string | null;
}

/** v_spec_outcomes as it must read (priced fleets: a NULL cost means an unpriced attempt was included). */
export function expectedSpecOutcomes(cards: Card[], attempts: PlannedAttempt[]): ExpectedSpec[] {
  const specs = new Map<string, PlannedAttempt[]>();
  for (const a of attempts) specs.set(`${a.tenant}\u0000${a.specId}`, [...(specs.get(`${a.tenant}\u0000${a.specId}`) ?? []), a]);
  return [...specs.values()].map((tries) => {
    const firstPass = tries.filter((t) => t.outcome === 'pass').reduce<number | null>((m, t) => (m === null || t.attemptNumber < m ? t.attemptNumber : m), null);
    const sum = (xs: PlannedAttempt[]) => {
      let total = 0n;
      for (const x of xs) {
        const c = attemptCostAtto(cards, x);
        if (c === null) return null;
        total += c;
      }
      return usd(total);
    };
    return {
      tenant: tries[0]!.tenant,
      spec_id: tries[0]!.specId,
      attempts: tries.length,
      passes: tries.filter((t) => t.outcome === 'pass').length,
      first_pass_attempt: firstPass,
      cost_until_first_pass: firstPass === null ? null : sum(tries.filter((t) => t.attemptNumber <= firstPass)),
      total_cost_usd: sum(tries),
    };
  });
}

/** Wilson score lower bound, written out independently of the SQL function. */
export function wilsonLow(k: number, n: number, z: number): number {
  const p = k / n;
  const z2 = z * z;
  return (p + z2 / (2 * n) - z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n))) / (1 + z2 / n);
}

export interface ExpectedRoute {
  tenant: string;
  spec_tier: string;
  model: string;
  rank: number;
  attempts: number;
  passes: number;
  cost_per_pass: string | null;
}

/** v_routing_window(min_pass_rate, z) as it must read: per (tenant, tier) models meeting the bar, by $/pass, never-passing last. */
export function expectedRouting(cards: Card[], attempts: PlannedAttempt[], minPassRate: number, z: number): ExpectedRoute[] {
  const groups = new Map<string, { tenant: string; tier: string; model: string; attempts: number; passes: number; cost: bigint; priced: number }>();
  for (const a of attempts) {
    const key = [a.tenant, a.tier, a.model].join('\u0000');
    const g = groups.get(key) ?? { tenant: a.tenant, tier: a.tier, model: a.model, attempts: 0, passes: 0, cost: 0n, priced: 0 };
    g.attempts++;
    if (a.outcome === 'pass') g.passes++;
    const c = attemptCostAtto(cards, a);
    if (c !== null) {
      g.cost += c;
      g.priced++;
    }
    groups.set(key, g);
  }
  const eligible = [...groups.values()]
    .filter((g) => wilsonLow(g.passes, g.attempts, z) >= minPassRate)
    .map((g) => ({ ...g, perPass: g.passes && g.priced ? (g.cost * BigInt(g.attempts)) / (BigInt(g.priced) * BigInt(g.passes)) : null }));
  const out: ExpectedRoute[] = [];
  for (const tierKey of new Set(eligible.map((g) => `${g.tenant}\u0000${g.tier}`))) {
    const inTier = eligible
      .filter((g) => `${g.tenant}\u0000${g.tier}` === tierKey)
      .sort((x, y) => {
        if (x.perPass !== y.perPass) {
          if (x.perPass === null) return 1;
          if (y.perPass === null) return -1;
          return x.perPass < y.perPass ? -1 : 1;
        }
        return x.model < y.model ? -1 : 1;
      });
    inTier.forEach((g, i) => out.push({ tenant: g.tenant, spec_tier: g.tier, model: g.model, rank: i + 1, attempts: g.attempts, passes: g.passes, cost_per_pass: g.perPass === null ? null : usd(g.perPass) }));
  }
  return out;
}

/** The token columns of attempts and llm_calls: exclusive kinds, as the plan counts them. */
export interface TokenColumns {
  input_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
}

const tokenColumns = (t: PlannedCall['tokens']): TokenColumns => ({
  input_tokens: t.input,
  cache_read_tokens: t.cache_read,
  cache_write_tokens: t.cache_write,
  output_tokens: t.output,
  reasoning_tokens: t.reasoning,
});

/** One attempt's row of `attempts FINAL` as it must read (identity, figures, exact cost), times as ns strings. */
export interface ExpectedAttemptRow extends TokenColumns {
  attempt_id: string;
  tenant: string;
  spec_id: string;
  spec_tier: string;
  canary: string;
  variant: string;
  pool: string;
  model: string;
  attempt_number: number;
  outcome: string;
  reason: string;
  started_ns: string;
  ended_ns: string;
  llm_calls: number;
  tool_calls: number;
  cost_usd: string | null;
  reported_cost_usd: null;
  unpriced_calls: number;
  trace_id: string;
  span_id: string;
  sampling_rate: number;
}

/** The attempt id the pipeline derives when the span carries no fleet.attempt.id (DESIGN.md). */
export const plannedAttemptId = (a: PlannedAttempt): string => `${a.traceId}-${a.spanId}`;

/** Every span id an attempt's trace carries: the attempt span, its LLM calls, its tool calls. */
export const plannedSpanIds = (a: PlannedAttempt): string[] => [a.spanId, ...a.calls.map((c) => c.spanId), ...a.tools.map((t) => t.spanId)];

/** The tail-sampling policy a test configures, in the units of the design (USD string, ms). */
export interface ExpectedSamplingPolicy {
  passRate: number;
  costOutlierUsd: string | null;
  durationOutlierMs: number | null;
}

/**
 * Why an attempt's spans are kept, per DESIGN.md: every non-passing attempt;
 * passing outliers by cost or duration; otherwise `pass`, kept with
 * probability passRate (by a trace-id hash this computation does not repeat).
 */
export function expectedSampleReason(cards: Card[], a: PlannedAttempt, policy: ExpectedSamplingPolicy): 'failure' | 'outlier_cost' | 'outlier_duration' | 'pass' {
  if (a.outcome !== 'pass') return 'failure';
  const cost = attemptCostAtto(cards, a);
  if (policy.costOutlierUsd !== null && cost !== null && cost > attoOf(policy.costOutlierUsd)) return 'outlier_cost';
  if (policy.durationOutlierMs !== null && a.endNs - a.startNs > BigInt(policy.durationOutlierMs) * 1_000_000n) return 'outlier_duration';
  return 'pass';
}

/** A USD decimal string (e.g. '1', '0.25') as atto-USD, digit by digit (no float on the way). */
function attoOf(value: string): bigint {
  const m = /^(\d+)(?:\.(\d{1,18}))?$/.exec(value);
  if (!m) throw new Error(`not a USD amount with at most 18 decimals: ${JSON.stringify(value)}`);
  return BigInt(m[1]! + (m[2] ?? '').padEnd(18, '0'));
}

const sumTokens = (calls: PlannedCall[], kind: keyof PlannedCall['tokens']): number => calls.reduce((n, c) => n + c.tokens[kind], 0);

export type SampleReason = ReturnType<typeof expectedSampleReason>;

/**
 * `attempts FINAL` as it must read for these attempts (whose attempt spans
 * name no fleet.model: every call uses the attempt's model). `reasonOf` says
 * how each attempt was sampled (default: expectedSampleReason).
 */
export function expectedAttemptRows(
  cards: Card[],
  attempts: PlannedAttempt[],
  policy: ExpectedSamplingPolicy,
  reasonOf: (a: PlannedAttempt) => SampleReason = (a) => expectedSampleReason(cards, a, policy),
): ExpectedAttemptRow[] {
  return attempts.map((a) => {
    const costs = a.calls.map((c) => callCostAtto(cards, c));
    const unpriced = costs.filter((c) => c === null).length;
    return {
      attempt_id: plannedAttemptId(a),
      tenant: a.tenant,
      spec_id: a.specId,
      spec_tier: a.tier,
      canary: a.canary,
      variant: a.variant,
      pool: a.pool,
      model: a.model,
      attempt_number: a.attemptNumber,
      outcome: a.outcome,
      reason: a.reason,
      started_ns: a.startNs.toString(),
      ended_ns: a.endNs.toString(),
      llm_calls: a.calls.length,
      tool_calls: a.tools.length,
      ...tokenColumns({
        input: sumTokens(a.calls, 'input'),
        cache_read: sumTokens(a.calls, 'cache_read'),
        cache_write: sumTokens(a.calls, 'cache_write'),
        output: sumTokens(a.calls, 'output'),
        reasoning: sumTokens(a.calls, 'reasoning'),
      }),
      cost_usd: unpriced ? null : usd(costs.reduce<bigint>((s, c) => s + c!, 0n)),
      reported_cost_usd: null,
      unpriced_calls: unpriced,
      trace_id: a.traceId,
      span_id: a.spanId,
      sampling_rate: reasonOf(a) === 'pass' ? policy.passRate : 1,
    };
  });
}

/** One LLM call's row of `llm_calls FINAL` as it must read, times as ns strings. */
export interface ExpectedCallRow extends TokenColumns {
  tenant: string;
  attempt_id: string;
  trace_id: string;
  span_id: string;
  started_ns: string;
  ended_ns: string;
  provider: string;
  model: string;
  service_tier: string;
  cost_usd: string | null;
}

/** `llm_calls FINAL` as it must read: one row per planned call, priced with the card in force at its start. */
export function expectedCallRows(cards: Card[], attempts: PlannedAttempt[]): ExpectedCallRow[] {
  return attempts.flatMap((a) =>
    a.calls.map((c) => {
      const cost = callCostAtto(cards, c);
      return {
        tenant: a.tenant,
        attempt_id: plannedAttemptId(a),
        trace_id: a.traceId,
        span_id: c.spanId,
        started_ns: c.startNs.toString(),
        ended_ns: c.endNs.toString(),
        provider: c.provider,
        model: c.model,
        service_tier: c.serviceTier,
        ...tokenColumns(c.tokens),
        cost_usd: cost === null ? null : usd(cost),
      };
    }),
  );
}
