/**
 * The alerting statistics against independent computations: exact rational
 * arithmetic, published constants, exhaustive enumeration of outcomes and
 * seeded simulations of stationary traffic.
 */
import { describe, expect, it } from 'vitest';
import { decideCacheHitRate, decideCostPerPass, decidePassRate, type PassRateParams } from '../alerting/decide.ts';
import {
  betaBinomialCdf,
  betaBinomialDropPValue,
  cacheHitDropPValue,
  costPerPass,
  costPerPassIncreasePValue,
  logGamma,
  normalCdf,
  normalQuantile,
  wilsonInterval,
  zTestDropPValue,
  type CacheMoments,
  type CostMoments,
} from '../alerting/stats.ts';
import { prng } from '../demo/plan.ts';

const DEFAULTS: PassRateParams = { method: 'beta-binomial', alpha: 0.01, minEffect: 0.1, resolveEffect: 0.05, minAttempts: 30 };

// ---------------------------------------------------------------- helpers

function factorial(n: number): bigint {
  let f = 1n;
  for (let i = 2n; i <= BigInt(n); i++) f *= i;
  return f;
}
/** Exact Beta-Binomial pmf with integer a, b as a fraction: C(n,k) B(k+a, n−k+b) / B(a,b), B(x,y) = (x−1)!(y−1)!/(x+y−1)!. */
function exactBetaBinomialPmf(k: number, n: number, a: number, b: number): [bigint, bigint] {
  const choose = factorial(n) / (factorial(k) * factorial(n - k));
  const num = choose * factorial(k + a - 1) * factorial(n - k + b - 1) * factorial(a + b - 1);
  const den = factorial(n + a + b - 1) * factorial(a - 1) * factorial(b - 1);
  return [num, den];
}
function exactBetaBinomialCdf(k: number, n: number, a: number, b: number): number {
  let num = 0n;
  const den = factorial(n + a + b - 1) * factorial(a - 1) * factorial(b - 1);
  for (let j = 0; j <= k; j++) {
    const [pn, pd] = exactBetaBinomialPmf(j, n, a, b);
    num += (pn * den) / pd; // pd === den for every j
  }
  // scaled by 10^80 so tiny tails keep ≥ 40 significant digits through the division
  return Number((num * 10n ** 80n) / den) / 1e80;
}

const logChoose = (n: number, k: number) => logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
const binomialPmf = (n: number, k: number, p: number) => Math.exp(logChoose(n, k) + k * Math.log(p) + (n - k) * Math.log1p(-p));

/** Exact probability that `fires(kb, kr)` under H0 (both windows binomial with the same p). */
function exactFiringRate(nb: number, nr: number, p: number, fires: (kb: number, kr: number) => boolean): number {
  const pr = Array.from({ length: nr + 1 }, (_, k) => binomialPmf(nr, k, p));
  let total = 0;
  for (let kb = 0; kb <= nb; kb++) {
    const pb = binomialPmf(nb, kb, p);
    if (pb < 1e-14) continue;
    for (let kr = 0; kr <= nr; kr++) if (fires(kb, kr)) total += pb * pr[kr]!;
  }
  return total;
}

function gaussian(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** Upper bound of a firing rate over `trials` if the true rate were α: α + 3 standard errors. */
const ceiling = (alpha: number, trials: number) => alpha + 3 * Math.sqrt((alpha * (1 - alpha)) / trials);

// ------------------------------------------------------------------ tests

describe('special functions', () => {
  it('logGamma matches log n! summed term by term and Γ(½) = √π', () => {
    for (const n of [1, 2, 5, 10, 20, 50, 100, 170]) {
      let log = 0;
      for (let i = 2; i <= n; i++) log += Math.log(i);
      expect(logGamma(n + 1)).toBeCloseTo(log, 10);
    }
    expect(logGamma(0.5)).toBeCloseTo(0.5 * Math.log(Math.PI), 13);
    // ln Γ(10^6) = Σ ln i for i < 10^6, compensated (Kahan) summation
    let sum = 0;
    let carry = 0;
    for (let i = 2; i < 1e6; i++) {
      const y = Math.log(i) - carry;
      const t = sum + y;
      carry = t - sum - y;
      sum = t;
    }
    expect(logGamma(1e6)).toBeCloseTo(sum, 6);
  });

  it('normalCdf and normalQuantile reproduce the published values, tails included', () => {
    const table: [number, number][] = [
      [0, 0.5],
      [1, 0.8413447460685429],
      [-1.959963984540054, 0.025],
      [2.3263478740408408, 0.99],
      [-3, 0.0013498980316300946],
      [-5, 2.866515718791939e-7],
      [-10, 7.619853024160527e-24],
    ];
    for (const [x, p] of table) expect(Math.abs(normalCdf(x) - p) / p).toBeLessThan(1e-12);
    expect(normalQuantile(0.975)).toBeCloseTo(1.959963984540054, 12);
    expect(normalQuantile(0.995)).toBeCloseTo(2.5758293035489004, 12);
    expect(normalQuantile(0.01)).toBeCloseTo(-2.3263478740408408, 12);
    expect(normalQuantile(1e-10)).toBeCloseTo(-6.361340902404056, 9);
  });

  it('Beta-Binomial CDF equals exact rational arithmetic', () => {
    // BetaBinomial(n, 1, 1) is uniform on 0..n
    for (const k of [0, 3, 7, 10]) expect(betaBinomialCdf(k, 10, 1, 1)).toBeCloseTo((k + 1) / 11, 13);
    for (const [k, n, a, b] of [
      [3, 10, 2, 3],
      [12, 30, 28, 4],
      [15, 30, 271, 31],
      [5, 40, 181, 21],
      [0, 25, 90, 12],
    ] as const) {
      const exact = exactBetaBinomialCdf(k, n, a, b);
      expect(Math.abs(betaBinomialCdf(k, n, a, b) - exact) / exact).toBeLessThan(1e-10);
    }
    expect(betaBinomialCdf(-1, 10, 2, 2)).toBe(0);
    expect(betaBinomialCdf(10, 10, 2, 2)).toBe(1);
  });

  it('the z-test p-value is the textbook pooled statistic', () => {
    // baseline 90/100, recent 15/30: pooled p = 105/130
    const p = 105 / 130;
    const z = (0.9 - 0.5) / Math.sqrt(p * (1 - p) * (1 / 100 + 1 / 30));
    expect(zTestDropPValue({ n: 100, k: 90 }, { n: 30, k: 15 })).toBeCloseTo(1 - normalCdf(z), 14);
    expect(z).toBeCloseTo(4.8756, 3);
  });

  it('the Wilson interval is the published 95 % interval', () => {
    // 81/263: Wilson 95 % interval [0.2553, 0.3662] (Newcombe 1998, table I, example e)
    const { low, high } = wilsonInterval(81, 263);
    expect(low).toBeCloseTo(0.2553, 4);
    expect(high).toBeCloseTo(0.3662, 4);
  });
});

describe('pass-rate regression decision', () => {
  it('never judges below the minimum N, however large the drop', () => {
    expect(decidePassRate({ n: 1000, k: 950 }, { n: 29, k: 0 }, DEFAULTS).status).toBe('nodata');
    expect(decidePassRate({ n: 29, k: 29 }, { n: 1000, k: 0 }, DEFAULTS).status).toBe('nodata');
    expect(decidePassRate({ n: 1000, k: 950 }, { n: 30, k: 0 }, DEFAULTS).status).toBe('firing');
  });

  it('fires on a real drop (90 % → 50 %) and reports the test', () => {
    const d = decidePassRate({ n: 300, k: 270 }, { n: 30, k: 15 }, DEFAULTS);
    expect(d.status).toBe('firing');
    expect(d.drop).toBeCloseTo(0.4, 12);
    expect(d.pValue).toBeLessThan(1e-5);
    expect(d.pValue).toBeCloseTo(exactBetaBinomialCdf(15, 30, 271, 31), 15);
  });

  it('uses the configured test', () => {
    const b = { n: 300, k: 291 };
    const r = { n: 30, k: 26 };
    expect(decidePassRate(b, r, { ...DEFAULTS, method: 'z-test' }).pValue).toBe(zTestDropPValue(b, r));
    expect(decidePassRate(b, r, DEFAULTS).pValue).toBe(betaBinomialDropPValue(b, r));
    // 97 % → 86.7 %: the z-test's thin normal tail calls 26/30 significant at 1 % (p ≈ 0.003); the exact tail does not (p ≈ 0.022)
    expect(zTestDropPValue(b, r)).toBeLessThan(0.01);
    expect(betaBinomialDropPValue(b, r)).toBeGreaterThan(0.01);
  });

  it('needs both significance and the minimum effect', () => {
    // a 40-point drop on 30 attempts each side is significant
    expect(decidePassRate({ n: 30, k: 27 }, { n: 30, k: 15 }, DEFAULTS).status).toBe('firing');
    // a 5-point drop on 100 000 attempts is significant but smaller than 10 points
    const small = decidePassRate({ n: 100_000, k: 90_000 }, { n: 100_000, k: 85_000 }, DEFAULTS);
    expect(small.pValue).toBeLessThan(1e-10);
    expect(small.status).toBe('clear');
    // a 15-point drop on 30 attempts is not significant at 1 %
    const noisy = decidePassRate({ n: 300, k: 240 }, { n: 30, k: 20 }, DEFAULTS);
    expect(noisy.drop).toBeGreaterThan(0.1);
    expect(noisy.pValue).toBeGreaterThan(0.01);
    expect(noisy.status).toBe('hold');
  });

  it('clears only once the drop is within the resolve effect (hysteresis band)', () => {
    // 90 % → 87.5 %: 2.5 pp ≤ 5 pp, recovered
    expect(decidePassRate({ n: 300, k: 270 }, { n: 40, k: 35 }, DEFAULTS).status).toBe('clear');
    // 90 % → 82.5 %: 7.5 pp, neither bad enough to fire nor recovered
    expect(decidePassRate({ n: 300, k: 270 }, { n: 40, k: 33 }, DEFAULTS).status).toBe('hold');
  });

  it('keeps the false-alarm rate ≤ α exactly, where the z-test does not (exhaustive enumeration)', () => {
    const grid: [number, number][] = [
      [30, 30],
      [300, 30],
      [1000, 60],
    ];
    for (const [nb, nr] of grid) {
      for (const p of [0.3, 0.5, 0.7, 0.9, 0.95, 0.99]) {
        const pure = { ...DEFAULTS, minEffect: 0 };
        const bb = exactFiringRate(nb, nr, p, (kb, kr) => decidePassRate({ n: nb, k: kb }, { n: nr, k: kr }, pure).status === 'firing');
        expect(bb, `Beta-Binomial, n_b=${nb} n_r=${nr} p=${p}`).toBeLessThanOrEqual(0.01);
        const guarded = exactFiringRate(nb, nr, p, (kb, kr) => decidePassRate({ n: nb, k: kb }, { n: nr, k: kr }, DEFAULTS).status === 'firing');
        expect(guarded).toBeLessThanOrEqual(bb);
      }
    }
    // why not the z-test: a week of baseline against an hour, good models
    const z = (p: number) => exactFiringRate(300, 30, p, (kb, kr) => zTestDropPValue({ n: 300, k: kb }, { n: 30, k: kr }) < 0.01);
    expect(z(0.9)).toBeGreaterThan(0.015);
    expect(z(0.99)).toBeGreaterThan(0.03);
  });

  it('fires on ≤ α of 2,000 simulated stationary windows', () => {
    const rand = prng(20260520);
    const binomial = (n: number, p: number) => {
      let k = 0;
      for (let i = 0; i < n; i++) if (rand() < p) k++;
      return k;
    };
    const trials = 2_000;
    for (const [p, nb, nr] of [
      [0.9, 300, 30],
      [0.97, 500, 40],
      [0.5, 300, 40],
    ] as const) {
      let fired = 0;
      let firedPure = 0;
      for (let t = 0; t < trials; t++) {
        const b = { n: nb, k: binomial(nb, p) };
        const r = { n: nr, k: binomial(nr, p) };
        if (decidePassRate(b, r, DEFAULTS).status === 'firing') fired++;
        if (decidePassRate(b, r, { ...DEFAULTS, minEffect: 0 }).status === 'firing') firedPure++;
      }
      expect(fired / trials, `p=${p}`).toBeLessThanOrEqual(ceiling(0.01, trials));
      expect(firedPure / trials, `p=${p} without the effect guard`).toBeLessThanOrEqual(ceiling(0.01, trials));
    }
  });

  it('has the power to see 90 % → 60 % within 40 attempts', () => {
    const rand = prng(7);
    let fired = 0;
    for (let t = 0; t < 500; t++) {
      let kb = 0;
      let kr = 0;
      for (let i = 0; i < 300; i++) if (rand() < 0.9) kb++;
      for (let i = 0; i < 40; i++) if (rand() < 0.6) kr++;
      if (decidePassRate({ n: 300, k: kb }, { n: 40, k: kr }, DEFAULTS).status === 'firing') fired++;
    }
    expect(fired / 500).toBeGreaterThan(0.9);
  });
});

describe('$/pass increase decision', () => {
  const params = { alpha: 0.01, factor: 1.5, resolveFactor: 1.25, minAttempts: 30 };
  function window(rand: () => number, normal: () => number, n: number, p: number, scale = 1): CostMoments {
    const m: CostMoments = { attempts: n, passes: 0, priced: n, pricedPasses: 0, costSum: 0, costSqSum: 0, passCostSum: 0 };
    for (let i = 0; i < n; i++) {
      const c = scale * Math.exp(-2 + 0.8 * normal());
      const pass = rand() < p;
      m.costSum += c;
      m.costSqSum += c * c;
      if (pass) {
        m.passes++;
        m.pricedPasses++;
        m.passCostSum += c;
      }
    }
    return m;
  }

  it('is Σcost ÷ passes and its log-variance is the delta method by hand', () => {
    const m: CostMoments = { attempts: 4, passes: 2, priced: 4, pricedPasses: 2, costSum: 1 + 2 + 3 + 4, costSqSum: 1 + 4 + 9 + 16, passCostSum: 1 + 3 };
    expect(costPerPass(m)).toBeCloseTo(10 / 2, 14);
    // costs 1,2,3,4 (passes on 1 and 3): mean 2.5, s² = 5/3, cov(c, pass) = (4 − 10·2/4)/3 = −1/3
    const b: CostMoments = { ...m };
    const r: CostMoments = { attempts: 4, passes: 1, priced: 4, pricedPasses: 1, costSum: 10, costSqSum: 30, passCostSum: 4 };
    const varB = 5 / 3 / (4 * 2.5 * 2.5) + 0.5 / (4 * 0.5) - (2 * (-1 / 3)) / (4 * 2.5 * 0.5);
    const covR = (4 - (10 * 1) / 4) / 3;
    const varR = 5 / 3 / (4 * 2.5 * 2.5) + 0.75 / (4 * 0.25) - (2 * covR) / (4 * 2.5 * 0.25);
    const z = (Math.log(2.5 / 0.25) - Math.log(2.5 / 0.5)) / Math.sqrt(varB + varR);
    expect(costPerPassIncreasePValue(b, r)).toBeCloseTo(1 - normalCdf(z), 14);
  });

  it('does not judge below the minimum N and fires on a real 2× increase', () => {
    const rand = prng(3);
    const normal = gaussian(rand);
    const base = window(rand, normal, 300, 0.9);
    expect(decideCostPerPass(base, window(rand, normal, 29, 0.9, 5), params).status).toBe('nodata');
    const d = decideCostPerPass(base, window(rand, normal, 60, 0.9, 2), params);
    expect(d.status).toBe('firing');
    expect(d.ratio).toBeGreaterThan(1.5);
  });

  it('fires on ≤ α of 2,000 simulated stationary windows (skewed costs)', () => {
    const rand = prng(11);
    const normal = gaussian(rand);
    const trials = 2_000;
    let fired = 0;
    let firedPure = 0;
    for (let t = 0; t < trials; t++) {
      const b = window(rand, normal, 300, 0.8);
      const r = window(rand, normal, 40, 0.8);
      if (decideCostPerPass(b, r, params).status === 'firing') fired++;
      if (decideCostPerPass(b, r, { ...params, factor: 1, resolveFactor: 1 }).status === 'firing') firedPure++;
    }
    expect(fired / trials).toBeLessThanOrEqual(ceiling(0.01, trials));
    expect(firedPure / trials).toBeLessThanOrEqual(ceiling(0.01, trials));
  });
});

describe('prompt-cache hit-rate drop decision', () => {
  const params = { alpha: 0.01, minDrop: 0.2, resolveDrop: 0.1, minTokens: 1_000_000, minAttempts: 30 };
  function window(rand: () => number, normal: () => number, n: number, hit: number): CacheMoments {
    const m: CacheMoments = { clusters: n, readSum: 0, totalSum: 0, readSqSum: 0, totalSqSum: 0, readTotalSum: 0 };
    for (let i = 0; i < n; i++) {
      const t = Math.round(Math.exp(11 + 0.8 * normal()));
      const share = 1 / (1 + Math.exp(-(Math.log(hit / (1 - hit)) + normal())));
      const r = Math.round(t * share);
      m.readSum += r;
      m.totalSum += t;
      m.readSqSum += r * r;
      m.totalSqSum += t * t;
      m.readTotalSum += r * t;
    }
    return m;
  }

  it('is the pooled, per-attempt clustered statistic by hand', () => {
    // baseline: attempts (r, t) = (80,100), (60,100); recent: (10,100), (30,100)
    const b: CacheMoments = { clusters: 2, readSum: 140, totalSum: 200, readSqSum: 6400 + 3600, totalSqSum: 20000, readTotalSum: 8000 + 6000 };
    const r: CacheMoments = { clusters: 2, readSum: 40, totalSum: 200, readSqSum: 100 + 900, totalSqSum: 20000, readTotalSum: 1000 + 3000 };
    const h0 = 180 / 400;
    const v = (pairs: [number, number][]) => pairs.reduce((s, [x, t]) => s + (x - h0 * t) ** 2, 0) / 1 / (2 * 100 * 100);
    const z = (0.7 - 0.2) / Math.sqrt(v([[80, 100], [60, 100]]) + v([[10, 100], [30, 100]]));
    expect(cacheHitDropPValue(b, r)).toBeCloseTo(1 - normalCdf(z), 14);
  });

  it('needs the minimum token volume and attempts, and fires on thrashing (71 % → 18 %)', () => {
    const rand = prng(5);
    const normal = gaussian(rand);
    const base = window(rand, normal, 300, 0.71);
    expect(decideCacheHitRate(base, window(rand, normal, 29, 0.18), params).status).toBe('nodata');
    expect(decideCacheHitRate(base, window(rand, normal, 40, 0.18), { ...params, minTokens: 1e12 }).status).toBe('nodata');
    const d = decideCacheHitRate(base, window(rand, normal, 40, 0.18), params);
    expect(d.status).toBe('firing');
    expect(d.drop).toBeGreaterThan(0.4);
  });

  it('fires on ≤ α of 2,000 simulated stationary windows', () => {
    const rand = prng(13);
    const normal = gaussian(rand);
    const trials = 2_000;
    let fired = 0;
    let firedPure = 0;
    for (let t = 0; t < trials; t++) {
      const b = window(rand, normal, 300, 0.7);
      const r = window(rand, normal, 30, 0.7);
      if (decideCacheHitRate(b, r, params).status === 'firing') fired++;
      if (decideCacheHitRate(b, r, { ...params, minDrop: 0, resolveDrop: 0 }).status === 'firing') firedPure++;
    }
    expect(fired / trials).toBeLessThanOrEqual(ceiling(0.01, trials));
    expect(firedPure / trials).toBeLessThanOrEqual(ceiling(0.01, trials));
  });
});
