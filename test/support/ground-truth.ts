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
