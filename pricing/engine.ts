/**
 * Prices one LLM call with the card in force at its start instant. Pure and
 * exact: integer atto-dollars, no rounding. A call no card answers for is
 * *unpriced* — cost null with a reason — never 0 and never another card's
 * price (DESIGN.md "Never guess").
 */
import type { ServiceTier } from '../contract/attributes.ts';
import { TOKEN_KINDS, type TokenCounts } from '../contract/tokens.ts';
import type { Catalog, PriceCard, PricePeriod } from './catalog.ts';

export interface LlmCallToPrice {
  provider: string;
  model: string;
  /** Start of the call, epoch milliseconds (the card in force then applies). */
  startedAtMs: number;
  serviceTier: ServiceTier;
  /** Exclusive token kinds (contract/tokens.ts). */
  tokens: TokenCounts;
}

export type PriceResult =
  | { priced: true; costAtto: bigint; card: PriceCard; period: PricePeriod }
  | { priced: false; reason: string };

/** The card for (provider, model): the only card answering to the name, else the one of the call's provider. */
export function findCard(catalog: Catalog, provider: string, model: string): PriceCard | string {
  const candidates = catalog.byName.get(model);
  if (!candidates) return `no price card for model ${JSON.stringify(model)}`;
  if (candidates.length === 1) return candidates[0]!;
  const ofProvider = candidates.filter((c) => c.provider === provider);
  if (ofProvider.length === 1) return ofProvider[0]!;
  return `model ${JSON.stringify(model)} has cards of providers ${candidates.map((c) => c.provider).join(', ')}; the call's provider ${JSON.stringify(provider)} picks none`;
}

export const periodAt = (card: PriceCard, ms: number): PricePeriod | undefined =>
  card.periods.find((p) => p.from <= ms && ms < p.to);

export function priceCall(catalog: Catalog, call: LlmCallToPrice): PriceResult {
  const card = findCard(catalog, call.provider, call.model);
  if (typeof card === 'string') return { priced: false, reason: card };
  const when = Number.isFinite(call.startedAtMs) ? new Date(call.startedAtMs).toISOString() : String(call.startedAtMs);
  const period = periodAt(card, call.startedAtMs);
  if (!period) return { priced: false, reason: `no price of ${card.provider}/${card.model} in force at ${when}` };
  const multiplier = period.multipliers[call.serviceTier];
  if (multiplier === undefined) {
    return { priced: false, reason: `${card.provider}/${card.model} has no ${call.serviceTier} price (period from ${period.fromText})` };
  }
  let costAtto = 0n;
  for (const kind of TOKEN_KINDS) costAtto += BigInt(call.tokens[kind]) * period.prices[kind];
  return { priced: true, costAtto: costAtto * multiplier, card, period };
}
