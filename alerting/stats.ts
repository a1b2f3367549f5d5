/**
 * The statistics of the alert rules: pure functions, no I/O.
 *
 * Pass-rate regression — Beta-Binomial posterior-predictive test (default).
 *   The baseline window's k_b passes of n_b attempts give the pass rate a
 *   Beta(1 + k_b, 1 + n_b − k_b) posterior (uniform prior). If nothing
 *   changed, the recent window's passes K_r follow the posterior predictive
 *   BetaBinomial(n_r, 1 + k_b, 1 + n_b − k_b), and the one-sided p-value of
 *   the observed k_r is P(K_r ≤ k_r) — summed exactly, no normal
 *   approximation. Why this and not the two-proportion z-test: the two
 *   windows are deliberately unbalanced (a week of baseline against an hour
 *   of recent traffic) and good models pass 90–99 % of the time; there the
 *   recent count is a small, skewed binomial and the z-test's normal tail is
 *   too thin. Enumerating every outcome at α = 0.01 (test/alerting.stats),
 *   the pooled z-test's real false-alarm rate reaches 1.8 % at p = 0.9 and
 *   3.6 % at p = 0.99 (n_b = 300, n_r = 30), while the Beta-Binomial test
 *   stays ≤ α everywhere on the grid and keeps near-α power at mid rates. The
 *   z-test remains available (`method: z-test`) for comparison.
 *
 * $/pass increase — one-sided z-test on log($/pass), delta method.
 *   $/pass = mean cost of a priced attempt ÷ pass rate, a ratio estimator;
 *   its log is close to normal for n ≥ 30 and its variance follows from the
 *   per-attempt moments (Σc, Σc², Σc·pass) the query returns, including the
 *   covariance between an attempt's cost and its passing.
 *
 * Prompt-cache hit rate — difference of two ratio estimators with
 *   cluster-robust (per-attempt) variance around the pooled rate: tokens
 *   arrive in large correlated chunks, so treating each token as a trial
 *   would make every wobble "significant"; the attempt is the independent
 *   unit.
 */

const LN_SQRT_2PI = 0.9189385332046728;

/** ln Γ(x) for x > 0: shift to x ≥ 10, then the Stirling series (error < 1e-15). */
export function logGamma(x: number): number {
  if (!(x > 0)) throw new RangeError(`logGamma needs x > 0, got ${x}`);
  let shift = 0;
  while (x < 10) {
    shift += Math.log(x);
    x += 1;
  }
  const inv = 1 / x;
  const inv2 = inv * inv;
  const series = inv * (1 / 12 - inv2 * (1 / 360 - inv2 * (1 / 1260 - inv2 * (1 / 1680 - inv2 * (1 / 1188)))));
  return (x - 0.5) * Math.log(x) - x + LN_SQRT_2PI + series - shift;
}

export const logBeta = (a: number, b: number): number => logGamma(a) + logGamma(b) - logGamma(a + b);

const logAddExp = (a: number, b: number): number => (a === -Infinity ? b : b === -Infinity ? a : Math.max(a, b) + Math.log1p(Math.exp(-Math.abs(a - b))));

/** P(K ≤ k) for K ~ BetaBinomial(n, a, b), summed exactly in log space. */
export function betaBinomialCdf(k: number, n: number, a: number, b: number): number {
  if (!(a > 0 && b > 0)) throw new RangeError('betaBinomialCdf needs a, b > 0');
  if (k < 0) return 0;
  if (k >= n) return 1;
  // log pmf(0) = log B(a, n + b) − log B(a, b); pmf(j+1)/pmf(j) = (n−j)(j+a) / ((j+1)(n−j−1+b))
  let logPmf = logBeta(a, n + b) - logBeta(a, b);
  let logSum = logPmf;
  for (let j = 0; j < k; j++) {
    logPmf += Math.log(n - j) + Math.log(j + a) - Math.log(j + 1) - Math.log(n - j - 1 + b);
    logSum = logAddExp(logSum, logPmf);
  }
  return Math.min(1, Math.exp(logSum));
}

/** Standard normal density. */
export const normalPdf = (x: number): number => Math.exp(-0.5 * x * x - LN_SQRT_2PI);

/**
 * Standard normal CDF Φ(x), accurate to ~1e-15 relative in both tails:
 * Marsaglia's Taylor series in the middle, a continued fraction for the
 * Mills ratio beyond |x| = 3 (so tiny p-values keep their digits).
 */
export function normalCdf(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return 1;
  if (x === -Infinity) return 0;
  if (Math.abs(x) < 3) {
    let s = x;
    let t = 0;
    let term = x;
    const q = x * x;
    for (let i = 1; s !== t; ) {
      t = s;
      i += 2;
      term *= q / i;
      s = t + term;
    }
    return 0.5 + s * normalPdf(x);
  }
  const upper = normalUpperTail(Math.abs(x));
  return x < 0 ? upper : 1 - upper;
}

/** Q(x) = 1 − Φ(x) for x ≥ 3: φ(x) / (x + 1/(x + 2/(x + 3/(x + …)))) by modified Lentz. */
function normalUpperTail(x: number): number {
  const tiny = 1e-300;
  let f = x;
  let c = x;
  let d = 0;
  for (let i = 1; i < 500; i++) {
    d = x + i * d;
    d = Math.abs(d) < tiny ? tiny : d;
    c = x + i / c;
    c = Math.abs(c) < tiny ? tiny : c;
    d = 1 / d;
    const delta = c * d;
    f *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return normalPdf(x) / f;
}

/** Φ⁻¹(p): Acklam's rational approximation refined by one Halley step (~1e-15). */
export function normalQuantile(p: number): number {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`normalQuantile needs 0 ≤ p ≤ 1, got ${p}`);
  if (p === 0) return -Infinity;
  if (p === 1) return Infinity;
  const a = [-3.969683028665376e1, 2.209460984245205e2, -2.759285104469687e2, 1.38357751867269e2, -3.066479806614716e1, 2.506628277459239];
  const b = [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
  const c = [-7.784894002430293e-3, -3.223964580411365e-1, -2.400758277161838, -2.549732539343734, 4.374664141464968, 2.938163982698783];
  const d = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  let x: number;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    x = (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  } else if (p <= 1 - low) {
    const q = p - 0.5;
    const r = q * q;
    x = ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) / (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1);
  } else {
    const q = Math.sqrt(-2 * Math.log(1 - p));
    x = -(((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) / ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1);
  }
  // Halley step on Φ(x) − p, computed on the smaller tail for precision
  const e = p < 0.5 ? normalCdf(x) - p : 1 - p - normalCdf(-x);
  const u = e * Math.sqrt(2 * Math.PI) * Math.exp((x * x) / 2);
  return x - u / (1 + (x * u) / 2);
}

/** Wilson score interval for k successes of n at z (same formula as the SQL UDFs fleet_wilson_low/high). */
export function wilsonInterval(k: number, n: number, z = 1.959963984540054): { low: number; high: number } {
  if (n === 0) return { low: NaN, high: NaN };
  const p = k / n;
  const z2 = z * z;
  const centre = p + z2 / (2 * n);
  const spread = z * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { low: (centre - spread) / (1 + z2 / n), high: (centre + spread) / (1 + z2 / n) };
}

export interface Proportion {
  /** Trials (attempts). */
  n: number;
  /** Successes (passes). */
  k: number;
}

/** One-sided p-value that `recent`'s rate is below `baseline`'s: Beta-Binomial posterior predictive (see the top of the file). */
export function betaBinomialDropPValue(baseline: Proportion, recent: Proportion): number {
  return betaBinomialCdf(recent.k, recent.n, 1 + baseline.k, 1 + baseline.n - baseline.k);
}

/** One-sided pooled two-proportion z-test that `recent`'s rate is below `baseline`'s. */
export function zTestDropPValue(baseline: Proportion, recent: Proportion): number {
  const pooled = (baseline.k + recent.k) / (baseline.n + recent.n);
  if (pooled === 0 || pooled === 1) return 1;
  const se = Math.sqrt(pooled * (1 - pooled) * (1 / baseline.n + 1 / recent.n));
  return 1 - normalCdf((baseline.k / baseline.n - recent.k / recent.n) / se);
}

/**
 * Per-window moments of attempts for $/pass: cost over priced attempts
 * (cost_usd not NULL), passes over all attempts.
 */
export interface CostMoments {
  attempts: number;
  passes: number;
  /** Attempts with a cost (every LLM call priced). */
  priced: number;
  /** Passes among priced attempts. */
  pricedPasses: number;
  /** Σ cost, Σ cost², Σ cost over passing attempts — all over priced attempts, USD. */
  costSum: number;
  costSqSum: number;
  passCostSum: number;
}

/** $/pass as the views define it: mean priced cost ÷ pass rate (∞ when nothing passed, NaN when nothing is priced). */
export function costPerPass(m: CostMoments): number {
  if (m.priced === 0 || m.attempts === 0) return NaN;
  if (m.passes === 0) return Infinity;
  return m.costSum / m.priced / (m.passes / m.attempts);
}

/**
 * log($/pass) and its delta-method variance. With no passes the pass rate
 * in the statistic is (k + ½)/(n + 1) (Haldane–Anscombe), so a window that
 * stopped passing still yields a finite, testable estimate.
 */
export function logCostPerPass(m: CostMoments): { log: number; variance: number } {
  if (m.priced < 2 || m.attempts === 0 || m.costSum <= 0) return { log: NaN, variance: NaN };
  const mean = m.costSum / m.priced;
  const p = m.passes === 0 || m.passes === m.attempts ? (m.passes + 0.5) / (m.attempts + 1) : m.passes / m.attempts;
  const costVar = Math.max(0, (m.costSqSum - (m.costSum * m.costSum) / m.priced) / (m.priced - 1));
  const cov = (m.passCostSum - (m.costSum * m.pricedPasses) / m.priced) / (m.priced - 1);
  const variance = costVar / (m.priced * mean * mean) + (1 - p) / (m.attempts * p) - (2 * cov) / (m.attempts * mean * p);
  return { log: Math.log(mean) - Math.log(p), variance: Math.max(variance, 0) };
}

/** One-sided p-value that `recent`'s $/pass is above `baseline`'s (z-test on the log ratio). */
export function costPerPassIncreasePValue(baseline: CostMoments, recent: CostMoments): number {
  const b = logCostPerPass(baseline);
  const r = logCostPerPass(recent);
  const se = Math.sqrt(b.variance + r.variance);
  if (!Number.isFinite(b.log) || !Number.isFinite(r.log) || !(se > 0)) return r.log > b.log ? 0 : 1;
  return 1 - normalCdf((r.log - b.log) / se);
}

/** Per-window moments of prompt-cache tokens, one cluster per attempt. */
export interface CacheMoments {
  /** Clusters (attempts with calls of the series). */
  clusters: number;
  /** Σ cache_read tokens r_i and Σ all input tokens t_i = input + cache_read + cache_write. */
  readSum: number;
  totalSum: number;
  /** Σ r_i², Σ t_i², Σ r_i·t_i over clusters. */
  readSqSum: number;
  totalSqSum: number;
  readTotalSum: number;
}

export const cacheHitRate = (m: CacheMoments): number => (m.totalSum > 0 ? m.readSum / m.totalSum : NaN);

/**
 * Linearised (cluster-robust) variance of the ratio estimator Σr/Σt around
 * hit rate `h` (default: the window's own rate).
 */
export function cacheHitRateVariance(m: CacheMoments, h = cacheHitRate(m)): number {
  if (m.clusters < 2 || m.totalSum <= 0) return NaN;
  const meanT = m.totalSum / m.clusters;
  // Σ (r_i − h t_i)² = Σr² − 2hΣrt + h²Σt²
  const ss = Math.max(0, m.readSqSum - 2 * h * m.readTotalSum + h * h * m.totalSqSum);
  return ss / (m.clusters - 1) / (m.clusters * meanT * meanT);
}

/**
 * One-sided p-value that `recent`'s cache hit rate is below `baseline`'s.
 * The variances are taken around the pooled rate (the null hypothesis'
 * common rate, as in a score test): in simulation this holds the false-alarm
 * rate near α where variances around each window's own rate, with a
 * skewed 30-attempt window, reach 2–3 × α.
 */
export function cacheHitDropPValue(baseline: CacheMoments, recent: CacheMoments): number {
  const total = baseline.totalSum + recent.totalSum;
  if (!(total > 0)) return 1;
  const pooled = (baseline.readSum + recent.readSum) / total;
  const se = Math.sqrt(cacheHitRateVariance(baseline, pooled) + cacheHitRateVariance(recent, pooled));
  const diff = cacheHitRate(baseline) - cacheHitRate(recent);
  if (!Number.isFinite(diff)) return 1;
  if (!(se > 0)) return diff > 0 ? 0 : 1;
  return 1 - normalCdf(diff / se);
}
