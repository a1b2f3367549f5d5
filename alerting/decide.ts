/**
 * The decision of each rule kind for one series, pure: window aggregates in,
 * an Observation (status, headline value, text, statistics) out. The
 * service feeds them from ClickHouse; the tests feed them simulated windows.
 */
import { formatDuration } from './config.ts';
import type { Details, Observation, ObservationStatus } from './lifecycle.ts';
import {
  betaBinomialDropPValue,
  cacheHitDropPValue,
  cacheHitRate,
  costPerPass,
  costPerPassIncreasePValue,
  wilsonInterval,
  zTestDropPValue,
  type CacheMoments,
  type CostMoments,
  type Proportion,
} from './stats.ts';

/** Comparisons of configured thresholds tolerate float noise (0.9 − 0.8 = 0.09999999999999998). */
const EPS = 1e-9;

// ------------------------------------------------------------------ formats

export const pct = (x: number): string => (Number.isFinite(x) ? `${(x * 100).toFixed(1)}%` : 'n/a');
export const pp = (x: number): string => `${(x * 100).toFixed(1)} pp`;
export function usd(x: number | null | undefined): string {
  if (x === null || x === undefined || Number.isNaN(x)) return 'n/a';
  if (x === Infinity) return '∞ (no passes)';
  if (x >= 100) return `$${x.toFixed(0)}`;
  if (x >= 1) return `$${x.toFixed(2)}`;
  return `$${x.toPrecision(3)}`;
}
export const pValue = (p: number): string => (p < 1e-4 ? p.toExponential(1) : p.toPrecision(2));
const ratio = (x: number): string => (x === Infinity ? '∞' : `×${x.toFixed(2)}`);
const iso = (ms: number): string => new Date(ms).toISOString().replace(/\.000Z$/, 'Z');

/** `deepseek-v4-flash (tenant=default, spec_tier=tier-3)`: the model first, the other labels after. */
export function seriesName(labels: Record<string, string>): string {
  const rest = Object.entries(labels)
    .filter(([k]) => k !== 'model')
    .map(([k, v]) => `${k}=${v === '' ? '""' : v}`);
  const head = labels.model !== undefined ? labels.model || '(no model)' : 'all models';
  return rest.length ? `${head} (${rest.join(', ')})` : head;
}

export interface Windows {
  /** [baselineSince, recentSince) and [recentSince, until), ms since the epoch. */
  baselineSince: number;
  recentSince: number;
  until: number;
}

const windowText = (w: Windows) => ({
  recent: `last ${formatDuration(w.until - w.recentSince)}, ${iso(w.recentSince)} – ${iso(w.until)}`,
  baseline: `the ${formatDuration(w.recentSince - w.baselineSince)} before, ${iso(w.baselineSince)} – ${iso(w.recentSince)}`,
});

// ------------------------------------------------------ pass-rate regression

export interface PassRateParams {
  method: 'beta-binomial' | 'z-test';
  alpha: number;
  minEffect: number;
  resolveEffect: number;
  minAttempts: number;
}

export interface PassRateDecision {
  status: ObservationStatus;
  baselineRate: number;
  recentRate: number;
  /** baseline − recent (positive = worse). */
  drop: number;
  /** One-sided p-value of "recent is lower" (NaN when not judged). */
  pValue: number;
}

/** The statistical core of the pass-rate rule. */
export function decidePassRate(baseline: Proportion, recent: Proportion, p: PassRateParams): PassRateDecision {
  const baselineRate = baseline.n ? baseline.k / baseline.n : NaN;
  const recentRate = recent.n ? recent.k / recent.n : NaN;
  const drop = baselineRate - recentRate;
  if (baseline.n < p.minAttempts || recent.n < p.minAttempts) return { status: 'nodata', baselineRate, recentRate, drop, pValue: NaN };
  const pv = p.method === 'z-test' ? zTestDropPValue(baseline, recent) : betaBinomialDropPValue(baseline, recent);
  const status: ObservationStatus = pv < p.alpha && drop >= p.minEffect - EPS ? 'firing' : drop <= p.resolveEffect + EPS ? 'clear' : 'hold';
  return { status, baselineRate, recentRate, drop, pValue: pv };
}

/** Attempt aggregates of one series in both windows, plus the exact $/pass the views compute. */
export interface AttemptWindows {
  labels: Record<string, string>;
  baseline: CostMoments;
  recent: CostMoments;
  /** Exact decimal $/pass (fleet_cost_per_pass), null when ∞ or unpriced. */
  baselineCostPerPass: string | null;
  recentCostPerPass: string | null;
}

const costOf = (exact: string | null, m: CostMoments) => (exact !== null ? Number(exact) : costPerPass(m));

export function observePassRate(series: AttemptWindows, params: PassRateParams, w: Windows): Observation {
  const b = { n: series.baseline.attempts, k: series.baseline.passes };
  const r = { n: series.recent.attempts, k: series.recent.passes };
  const d = decidePassRate(b, r, params);
  const name = seriesName(series.labels);
  const bCost = costOf(series.baselineCostPerPass, series.baseline);
  const rCost = costOf(series.recentCostPerPass, series.recent);
  const costChange = Number.isFinite(bCost) && bCost > 0 ? rCost / bCost : NaN;
  const bi = wilsonInterval(b.k, b.n);
  const ri = wilsonInterval(r.k, r.n);
  const wt = windowText(w);
  const test = params.method === 'z-test' ? 'one-sided two-proportion z-test' : 'one-sided Beta-Binomial test';
  const summary =
    d.status === 'nodata'
      ? `Pass rate of ${name}: too few attempts to judge (${r.n} recent, ${b.n} baseline; need ${params.minAttempts})`
      : d.status === 'clear'
        ? `Pass rate of ${name} is back to ${pct(d.recentRate)} (baseline ${pct(d.baselineRate)})`
        : `Pass rate of ${name} fell from ${pct(d.baselineRate)} to ${pct(d.recentRate)}`;
  const description = [
    `Recent: ${pct(d.recentRate)} (${r.k}/${r.n} attempts passed, ${wt.recent}; 95% Wilson interval ${pct(ri.low)}–${pct(ri.high)}).`,
    `Baseline: ${pct(d.baselineRate)} (${b.k}/${b.n}, ${wt.baseline}; 95% Wilson interval ${pct(bi.low)}–${pct(bi.high)}).`,
    Number.isNaN(d.pValue)
      ? `Not judged: each window needs ${params.minAttempts} attempts.`
      : `Change ${d.drop >= 0 ? '−' : '+'}${pp(Math.abs(d.drop))}; ${test} p = ${pValue(d.pValue)} (fires below α = ${params.alpha} with a drop ≥ ${pp(params.minEffect)}).`,
    `$/pass ${usd(bCost)} → ${usd(rCost)}${Number.isFinite(costChange) || costChange === Infinity ? ` (${ratio(costChange)})` : ''}.`,
  ].join('\n');
  const details: Details = {
    recent_attempts: r.n,
    recent_passes: r.k,
    recent_pass_rate: d.recentRate,
    recent_pass_rate_low: ri.low,
    recent_pass_rate_high: ri.high,
    baseline_attempts: b.n,
    baseline_passes: b.k,
    baseline_pass_rate: d.baselineRate,
    baseline_pass_rate_low: bi.low,
    baseline_pass_rate_high: bi.high,
    drop: d.drop,
    p_value: Number.isNaN(d.pValue) ? null : d.pValue,
    alpha: params.alpha,
    test: params.method,
    recent_cost_per_pass: series.recentCostPerPass,
    baseline_cost_per_pass: series.baselineCostPerPass,
    cost_per_pass_ratio: Number.isFinite(costChange) ? costChange : null,
    recent_since: iso(w.recentSince),
    baseline_since: iso(w.baselineSince),
    until: iso(w.until),
  };
  return { labels: series.labels, status: d.status, value: d.recentRate, summary, description, details };
}

// --------------------------------------------------------- $/pass increase

export interface CostParams {
  alpha: number;
  factor: number;
  resolveFactor: number;
  minAttempts: number;
}

export interface CostDecision {
  status: ObservationStatus;
  baselineCostPerPass: number;
  recentCostPerPass: number;
  /** recent ÷ baseline (∞ when the recent window has no pass). */
  ratio: number;
  pValue: number;
}

export function decideCostPerPass(baseline: CostMoments, recent: CostMoments, p: CostParams): CostDecision {
  const b = costPerPass(baseline);
  const r = costPerPass(recent);
  const ratio = r / b;
  const judged =
    baseline.attempts >= p.minAttempts && recent.attempts >= p.minAttempts && baseline.priced >= 2 && recent.priced >= 2 && Number.isFinite(b) && b > 0 && !Number.isNaN(r);
  if (!judged) return { status: 'nodata', baselineCostPerPass: b, recentCostPerPass: r, ratio, pValue: NaN };
  const pv = costPerPassIncreasePValue(baseline, recent);
  const status: ObservationStatus = pv < p.alpha && ratio >= p.factor - EPS ? 'firing' : ratio <= p.resolveFactor + EPS ? 'clear' : 'hold';
  return { status, baselineCostPerPass: b, recentCostPerPass: r, ratio, pValue: pv };
}

export function observeCostPerPass(series: AttemptWindows, params: CostParams, w: Windows): Observation {
  const d = decideCostPerPass(series.baseline, series.recent, params);
  const name = seriesName(series.labels);
  const bCost = costOf(series.baselineCostPerPass, series.baseline);
  const rCost = costOf(series.recentCostPerPass, series.recent);
  const wt = windowText(w);
  const rate = (m: CostMoments) => `${pct(m.attempts ? m.passes / m.attempts : NaN)} (${m.passes}/${m.attempts})`;
  const mean = (m: CostMoments) => usd(m.priced ? m.costSum / m.priced : NaN);
  const summary =
    d.status === 'nodata'
      ? `$/pass of ${name}: too little data to judge`
      : d.status === 'clear'
        ? `$/pass of ${name} is back to ${usd(rCost)} (baseline ${usd(bCost)})`
        : `$/pass of ${name} rose ${ratio(d.ratio)}: ${usd(bCost)} → ${usd(rCost)}`;
  const description = [
    `Recent: ${usd(rCost)} per pass = ${mean(series.recent)} per attempt ÷ pass rate ${rate(series.recent)}, ${wt.recent}.`,
    `Baseline: ${usd(bCost)} per pass = ${mean(series.baseline)} per attempt ÷ pass rate ${rate(series.baseline)}, ${wt.baseline}.`,
    Number.isNaN(d.pValue)
      ? `Not judged: each window needs ${params.minAttempts} attempts, priced ones and a baseline pass.`
      : `Ratio ${ratio(d.ratio)}; one-sided z-test on log $/pass p = ${pValue(d.pValue)} (fires below α = ${params.alpha} at ≥ ×${params.factor}).`,
  ].join('\n');
  const details: Details = {
    recent_cost_per_pass: series.recentCostPerPass,
    baseline_cost_per_pass: series.baselineCostPerPass,
    ratio: Number.isFinite(d.ratio) ? d.ratio : null,
    p_value: Number.isNaN(d.pValue) ? null : d.pValue,
    alpha: params.alpha,
    factor: params.factor,
    recent_attempts: series.recent.attempts,
    recent_passes: series.recent.passes,
    recent_priced_attempts: series.recent.priced,
    baseline_attempts: series.baseline.attempts,
    baseline_passes: series.baseline.passes,
    baseline_priced_attempts: series.baseline.priced,
    recent_since: iso(w.recentSince),
    baseline_since: iso(w.baselineSince),
    until: iso(w.until),
  };
  return { labels: series.labels, status: d.status, value: d.ratio, summary, description, details };
}

// ------------------------------------------------------- prompt-cache drop

export interface CacheParams {
  alpha: number;
  minDrop: number;
  resolveDrop: number;
  minTokens: number;
  minAttempts: number;
}

export interface CacheDecision {
  status: ObservationStatus;
  baselineRate: number;
  recentRate: number;
  drop: number;
  pValue: number;
}

export function decideCacheHitRate(baseline: CacheMoments, recent: CacheMoments, p: CacheParams): CacheDecision {
  const baselineRate = cacheHitRate(baseline);
  const recentRate = cacheHitRate(recent);
  const drop = baselineRate - recentRate;
  const enough = (m: CacheMoments) => m.clusters >= p.minAttempts && m.totalSum >= p.minTokens && m.totalSum > 0;
  if (!enough(baseline) || !enough(recent)) return { status: 'nodata', baselineRate, recentRate, drop, pValue: NaN };
  const pv = cacheHitDropPValue(baseline, recent);
  const status: ObservationStatus = pv < p.alpha && drop >= p.minDrop - EPS ? 'firing' : drop <= p.resolveDrop + EPS ? 'clear' : 'hold';
  return { status, baselineRate, recentRate, drop, pValue: pv };
}

export interface CacheWindows {
  labels: Record<string, string>;
  baseline: CacheMoments;
  recent: CacheMoments;
}

const tokens = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(0)}k` : String(n));

export function observeCacheHitRate(series: CacheWindows, params: CacheParams, w: Windows): Observation {
  const d = decideCacheHitRate(series.baseline, series.recent, params);
  const name = seriesName(series.labels);
  const wt = windowText(w);
  const summary =
    d.status === 'nodata'
      ? `Prompt-cache hit rate of ${name}: too little traffic to judge`
      : d.status === 'clear'
        ? `Prompt-cache hit rate of ${name} is back to ${pct(d.recentRate)} (baseline ${pct(d.baselineRate)})`
        : `Prompt-cache hit rate of ${name} fell from ${pct(d.baselineRate)} to ${pct(d.recentRate)}`;
  const line = (m: CacheMoments, when: string) =>
    `${pct(cacheHitRate(m))} of ${tokens(m.totalSum)} input tokens read from cache (${tokens(m.readSum)}) over ${m.clusters} attempts, ${when}`;
  const description = [
    `Recent: ${line(series.recent, wt.recent)}.`,
    `Baseline: ${line(series.baseline, wt.baseline)}.`,
    Number.isNaN(d.pValue)
      ? `Not judged: each window needs ${params.minAttempts} attempts and ${tokens(params.minTokens)} input tokens.`
      : `Drop ${pp(d.drop)}; one-sided test (per-attempt clustered) p = ${pValue(d.pValue)} (fires below α = ${params.alpha} with a drop ≥ ${pp(params.minDrop)}). Cache misses are billed at the full input price: thrashing multiplies the input bill.`,
  ].join('\n');
  const details: Details = {
    recent_hit_rate: Number.isFinite(d.recentRate) ? d.recentRate : null,
    baseline_hit_rate: Number.isFinite(d.baselineRate) ? d.baselineRate : null,
    drop: Number.isFinite(d.drop) ? d.drop : null,
    p_value: Number.isNaN(d.pValue) ? null : d.pValue,
    recent_cache_read_tokens: series.recent.readSum,
    recent_input_tokens_total: series.recent.totalSum,
    recent_attempts: series.recent.clusters,
    baseline_cache_read_tokens: series.baseline.readSum,
    baseline_input_tokens_total: series.baseline.totalSum,
    baseline_attempts: series.baseline.clusters,
    recent_since: iso(w.recentSince),
    baseline_since: iso(w.baselineSince),
    until: iso(w.until),
  };
  return { labels: series.labels, status: d.status, value: d.recentRate, summary, description, details };
}

// ------------------------------------------------------------ unpriced model

export interface UnpricedSeries {
  tenant: string;
  provider: string;
  model: string;
  calls: number;
  attempts: number;
  reasons: string[];
  firstSeen: number;
  lastSeen: number;
}

export function observeUnpriced(s: UnpricedSeries, minCalls: number, lookbackMs: number): Observation {
  const labels = { tenant: s.tenant, provider: s.provider, model: s.model };
  const status: ObservationStatus = s.calls >= minCalls ? 'firing' : s.calls === 0 ? 'clear' : 'hold';
  const what = `${s.provider || '(no provider)'}/${s.model || '(no model)'}`;
  const summary =
    status === 'clear'
      ? `No unpriced calls of ${what} (tenant ${s.tenant}) in the last ${formatDuration(lookbackMs)}`
      : `Unpriced model ${what} (tenant ${s.tenant}): ${s.calls} LLM call${s.calls === 1 ? '' : 's'} with no price card in force`;
  const description =
    status === 'clear'
      ? `Calls of ${what} are priced again, or stopped.`
      : [
          `${s.calls} call${s.calls === 1 ? '' : 's'} in ${s.attempts} attempt${s.attempts === 1 ? '' : 's'} of ${what} had no price card in force (cost NULL, never guessed), ${iso(s.firstSeen)} – ${iso(s.lastSeen)}.`,
          `Reason: ${s.reasons.join('; ') || '(none recorded)'}.`,
          `$/pass of these attempts is unknown until a card is added: add ${what} (or an alias) to the price catalog (--prices / FLEET_PRICES) and re-price.`,
        ].join('\n');
  return {
    labels,
    status,
    value: s.calls,
    summary,
    description,
    details: { calls: s.calls, attempts: s.attempts, reasons: s.reasons.join('; '), first_seen: iso(s.firstSeen), last_seen: iso(s.lastSeen) },
  };
}

// ------------------------------------------------------------ pipeline health

/** One evaluation's health sample: summed lag per topic, cumulative dead letters per target. */
export interface HealthPoint {
  at: number;
  value: number;
}

export interface LagParams {
  maxLag: number;
  resolveLag: number;
  lagForMs: number;
}

/**
 * Lag fires when it has been above maxLag at every sample for at least
 * lagFor (the streak of samples above the threshold, ending now, spans it).
 * `points` are the topic's summed lag per evaluation, oldest first.
 */
export function decideLag(points: readonly HealthPoint[], p: LagParams): { status: ObservationStatus; lag: number; aboveSinceMs: number | null } {
  const last = points.at(-1);
  if (!last) return { status: 'nodata', lag: NaN, aboveSinceMs: null };
  let since: number | null = null;
  for (let i = points.length - 1; i >= 0 && points[i]!.value > p.maxLag; i--) since = points[i]!.at;
  const status: ObservationStatus = since !== null && last.at - since >= p.lagForMs ? 'firing' : last.value <= p.resolveLag ? 'clear' : 'hold';
  return { status, lag: last.value, aboveSinceMs: since };
}

/** Increase of a cumulative counter over its samples (oldest first), counting a drop as a restart from 0. */
export function counterIncrease(points: readonly HealthPoint[]): number {
  let total = 0;
  for (let i = 1; i < points.length; i++) {
    const delta = points[i]!.value - points[i - 1]!.value;
    total += delta >= 0 ? delta : points[i]!.value;
  }
  return total;
}

export function observeLag(topic: string, points: readonly HealthPoint[], p: LagParams): Observation {
  const d = decideLag(points, p);
  const summary =
    d.status === 'firing'
      ? `Consumer lag on ${topic}: ${d.lag} messages behind for ${formatDuration(points.at(-1)!.at - d.aboveSinceMs!)}`
      : `Consumer lag on ${topic}: ${Number.isNaN(d.lag) ? 'unknown' : `${d.lag} messages`}`;
  const description =
    d.status === 'firing'
      ? `The consumers are ${d.lag} messages behind the end of ${topic} (threshold ${p.maxLag}, sustained ${formatDuration(p.lagForMs)}). $/pass and every alert on it lag behind the traffic; scale consumers out or check ClickHouse inserts.`
      : `Lag ${Number.isNaN(d.lag) ? 'unknown' : d.lag} (fires above ${p.maxLag} for ${formatDuration(p.lagForMs)}, clears at ≤ ${p.resolveLag}).`;
  return { labels: { signal: 'consumer_lag', topic }, status: d.status, value: d.lag, summary, description, details: { lag_messages: Number.isNaN(d.lag) ? null : d.lag, max_lag: p.maxLag } };
}

export function observeDeadLetters(increase: number, maxDeadLetters: number, windowMs: number, samples: number): Observation {
  const status: ObservationStatus = samples < 1 ? 'nodata' : increase > maxDeadLetters ? 'firing' : increase === 0 ? 'clear' : 'hold';
  const summary =
    status === 'firing'
      ? `${increase} message${increase === 1 ? '' : 's'} dead-lettered in the last ${formatDuration(windowMs)}`
      : `Dead letters in the last ${formatDuration(windowMs)}: ${increase}`;
  const description =
    status === 'firing'
      ? `The consumers could not decode ${increase} bus message${increase === 1 ? '' : 's'} (threshold ${maxDeadLetters}); they are kept on the dead-letter topic (or the dead_letters table in embedded mode). Their spans are missing from $/pass until re-sent.`
      : `No growth beyond ${maxDeadLetters} in the window.`;
  return { labels: { signal: 'dead_letters' }, status, value: increase, summary, description, details: { dead_letters: increase, max_dead_letters: maxDeadLetters, window: formatDuration(windowMs) } };
}
