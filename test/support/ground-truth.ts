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
