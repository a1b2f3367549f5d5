/**
 * Prices one LLM call with the card in force at its start instant. Pure and
 * exact: integer atto-dollars, no rounding. A call no card answers for is
 * *unpriced* — cost null with a reason — never 0 and never another card's
 * price (DESIGN.md "Never guess"). The SDK's cost preview and the consumers
 * both price through priceCall, so they cannot disagree.
 */
import type { ServiceTier } from '../contract/attributes.ts';
import { TOKEN_KINDS, type TokenCounts } from '../contract/tokens.ts';
import type { Catalog, PriceCard, PricePeriod } from './catalog.ts';
import { inferredProvider, resolveProvider, type ProviderEvidence, type ProviderSource } from './providers.ts';

export interface LlmCallToPrice {
  /** Normalised `gen_ai.provider.name`; '' when the call named none. */
  provider: string;
  /** The billed model: the response model when the provider named one, else the request model. */
  model: string;
  /** The model the agent asked for, when known: a dated snapshot of it without a card of its own is priced with its card. */
  requestModel?: string;
  /** Start of the call, epoch milliseconds (the card in force then applies). */
  startedAtMs: number;
  serviceTier: ServiceTier;
  /** Exclusive token kinds (contract/tokens.ts). */
  tokens: TokenCounts;
  /** Of tokens.cache_write, the writes to a 1-hour cache (Anthropic), priced at the period's cache_write_1h. */
  cacheWrite1hTokens?: number;
}

export type PriceResult =
  | { priced: true; costAtto: bigint; card: PriceCard; period: PricePeriod }
  | { priced: false; reason: string };

/** How the reason of a call whose usage could not be read begins: no catalog prices such a call. */
export const INVALID_USAGE_PREFIX = 'invalid usage: ';

/** Why a call that reported no token usage is unpriced (`errorType`: the call's `error.type`, when it failed). */
export const noUsageReason = (errorType?: string): string =>
  errorType ? `no token usage (the call failed: error.type ${errorType})` : 'no token usage';

/** A card prices a call of its own provider, of a provider it lists, or of one not named (dialects that carry none). */
const answersFor = (card: PriceCard, provider: string): boolean => provider === '' || card.provider === provider || card.providers.includes(provider);

const providersOf = (cards: readonly PriceCard[]): string => [...new Set(cards.flatMap((c) => [c.provider, ...c.providers]))].join(', ');

/** The card for (provider, model), or why there is none. Never a card of a provider it does not answer for. */
export function findCard(catalog: Catalog, provider: string, model: string): PriceCard | string {
  const named = catalog.byName.get(model);
  if (!named) return `no price card for model ${JSON.stringify(model)}`;
  const matching = named.filter((c) => answersFor(c, provider));
  if (matching.length === 1) return matching[0]!;
  if (matching.length === 0) {
    return `model ${JSON.stringify(model)} has price cards only for provider ${providersOf(named)}, not for the call's provider ${JSON.stringify(provider)} (a card lists the resellers that charge the same in "providers")`;
  }
  return `model ${JSON.stringify(model)} has cards of providers ${providersOf(matching)}; the call names no provider to pick one`;
}

export const periodAt = (card: PriceCard, ms: number): PricePeriod | undefined =>
  card.periods.find((p) => p.from <= ms && ms < p.to);

/** "gpt-4o-2024-08-06" requested as "gpt-4o": a dated snapshot of the request model. */
const isSnapshotOf = (model: string, requestModel: string | undefined): requestModel is string =>
  requestModel !== undefined && requestModel !== '' && requestModel !== model && model.startsWith(`${requestModel}-`);

/**
 * The card of the billed model; when it has none (no card or alias answers
 * to it for this provider) and it is a dated snapshot of the request model,
 * the request model's card: that is the card the provider bills the
 * snapshot by, not a guess at another model.
 */
export function cardOf(catalog: Catalog, call: Pick<LlmCallToPrice, 'provider' | 'model' | 'requestModel'>): PriceCard | string {
  const card = findCard(catalog, call.provider, call.model);
  if (typeof card !== 'string' || !isSnapshotOf(call.model, call.requestModel)) return card;
  const base = findCard(catalog, call.provider, call.requestModel);
  // When the request model has cards, of other providers only, that is the more telling reason.
  return typeof base !== 'string' || catalog.byName.has(call.requestModel) ? base : card;
}

export function priceCall(catalog: Catalog, call: LlmCallToPrice): PriceResult {
  const card = cardOf(catalog, call);
  if (typeof card === 'string') return { priced: false, reason: card };
  const when = Number.isFinite(call.startedAtMs) ? new Date(call.startedAtMs).toISOString() : String(call.startedAtMs);
  const period = periodAt(card, call.startedAtMs);
  if (!period) return { priced: false, reason: `no price of ${card.provider}/${card.model} in force at ${when}` };
  const multiplier = period.multipliers[call.serviceTier];
  if (multiplier === undefined) {
    return { priced: false, reason: `${card.provider}/${card.model} has no ${call.serviceTier} price (period from ${period.fromText})` };
  }
  const write1h = call.cacheWrite1hTokens ?? 0;
  if (!Number.isSafeInteger(write1h) || write1h < 0 || write1h > call.tokens.cache_write) {
    return { priced: false, reason: `1-hour cache writes (${write1h}) must be a count of at most the cache writes (${call.tokens.cache_write})` };
  }
  let costAtto = 0n;
  for (const kind of TOKEN_KINDS) costAtto += BigInt(call.tokens[kind]) * period.prices[kind];
  // The 1-hour writes are inside cache_write, priced above at the 5-minute rate: reprice that subset.
  costAtto += BigInt(write1h) * (period.cacheWrite1h - period.prices.cache_write);
  return { priced: true, costAtto: costAtto * multiplier, card, period };
}

/** A call priced under the provider its evidence resolves to (pricing/providers.ts). */
export interface ResolvedPrice {
  /** The provider the call is priced under. */
  provider: string;
  providerSource: ProviderSource;
  result: PriceResult;
}

/**
 * Prices a call whose provider is still to be resolved from the span's
 * evidence: fleet.provider, then the host, then the instrumentation's name,
 * then (that name being only the SDK's) the model's one other provider.
 */
export function priceWithEvidence(catalog: Catalog, call: Omit<LlmCallToPrice, 'provider'>, evidence: ProviderEvidence): ResolvedPrice {
  const resolved = resolveProvider(catalog, evidence);
  const result = priceCall(catalog, { ...call, provider: resolved.provider });
  if (result.priced) return { provider: resolved.provider, providerSource: resolved.source, result };
  const inferred =
    inferredProvider(catalog, resolved, call.model) ?? (isSnapshotOf(call.model, call.requestModel) ? inferredProvider(catalog, resolved, call.requestModel) : undefined);
  if (inferred !== undefined) return { provider: inferred, providerSource: 'inferred', result: priceCall(catalog, { ...call, provider: inferred }) };
  // Say where the provider came from: "azure.ai.openai" is the host's, not the agent's.
  const why = resolved.source === 'host' ? ` (the request went to ${evidence.serverAddress})` : resolved.source === 'fleet.provider' ? ' (fleet.provider)' : '';
  return { provider: resolved.provider, providerSource: resolved.source, result: { priced: false, reason: `${result.reason}${why}` } };
}
