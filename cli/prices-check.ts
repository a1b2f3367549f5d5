/**
 * `fleet prices check`: is every LLM call seen in traffic priced by *this*
 * catalog (--prices, else the shipped one)? Each distinct (provider, model,
 * service tier) of `llm_calls`, over the time its calls span, is priced with
 * the pricing engine against the catalog — not read from what was priced at
 * ingest — and the calls no card in force prices are listed.
 */
import type { ServiceTier } from '../contract/attributes.ts';
import { zeroTokens } from '../contract/tokens.ts';
import type { Catalog, PriceCard } from '../pricing/catalog.ts';
import { cardOf, priceCall } from '../pricing/engine.ts';
import type { Store } from '../storage/store.ts';

/** LLM calls of one (provider, model, service tier) with the card that priced them at ingest. */
interface Seen {
  provider: string;
  model: string;
  service_tier: string;
  /** Card model that priced some of the calls at ingest ('' = none was priced). */
  price_model: string;
  calls: number;
  attempts: number;
  first_ms: number;
  last_ms: number;
}

export interface UnpricedCalls {
  provider: string;
  model: string;
  serviceTier: string;
  calls: number;
  attempts: number;
  /** Start of the first and last unpriced call, epoch ms. */
  firstMs: number;
  lastMs: number;
  /** The pricing engine's reason for the first of them. */
  reason: string;
}

/**
 * The parts of [fromMs, toMs] (both inclusive, whole milliseconds as the
 * engine prices them) where `card` has no price for `tier`: half-open
 * [start, end) intervals, in order.
 */
export function uncovered(card: PriceCard, tier: string, fromMs: number, toMs: number): [number, number][] {
  const holes: [number, number][] = [];
  let t = fromMs;
  for (const p of card.periods) {
    if (p.to <= t || p.multipliers[tier as ServiceTier] === undefined) continue;
    if (p.from > toMs) break;
    if (p.from > t) holes.push([t, p.from]);
    t = p.to;
    if (t > toMs) return holes;
  }
  holes.push([t, toMs + 1]);
  return holes;
}

/**
 * The calls as the pricing engine picks their card: the card model that
 * priced them at ingest stands in for the request model (llm_calls keeps no
 * request model), so a dated snapshot priced with its base model's card
 * ("gpt-4o-2024-08-06" → "gpt-4o") is checked against that card.
 */
const asCall = (s: Seen) => ({ provider: s.provider, model: s.model, requestModel: s.price_model });

const reasonAt = (catalog: Catalog, s: Seen, ms: number): string => {
  const r = priceCall(catalog, { ...asCall(s), startedAtMs: ms, serviceTier: s.service_tier as ServiceTier, tokens: zeroTokens() });
  return r.priced ? '' : r.reason;
};

/** The calls in `llm_calls` that `catalog` leaves unpriced, most calls first. */
export async function unpricedCalls(store: Store, catalog: Catalog): Promise<UnpricedCalls[]> {
  const db = store.database;
  const seen = await store.query<Seen>(
    `SELECT provider, model, service_tier, anyIf(price_model, price_model != '') AS price_model, count() AS calls, uniqExact(attempt_id) AS attempts,
            toUnixTimestamp64Milli(min(started_at)) AS first_ms, toUnixTimestamp64Milli(max(started_at)) AS last_ms
     FROM ${db}.llm_calls FINAL GROUP BY provider, model, service_tier`,
  );
  const out: UnpricedCalls[] = [];
  for (const s of seen) {
    const card = cardOf(catalog, asCall(s));
    const base = { provider: s.provider, model: s.model, serviceTier: s.service_tier };
    if (typeof card === 'string') {
      out.push({ ...base, calls: s.calls, attempts: s.attempts, firstMs: s.first_ms, lastMs: s.last_ms, reason: card });
      continue;
    }
    const holes = uncovered(card, s.service_tier, s.first_ms, s.last_ms);
    if (holes.length === 0) continue;
    const params: Record<string, unknown> = { provider: s.provider, model: s.model, tier: s.service_tier };
    holes.forEach(([from, to], i) => Object.assign(params, { [`from${i}`]: from, [`to${i}`]: to }));
    const inHoles = holes.map((_, i) => `(started_at >= fromUnixTimestamp64Milli({from${i}:Int64}) AND started_at < fromUnixTimestamp64Milli({to${i}:Int64}))`).join(' OR ');
    const [hit] = await store.query<Pick<Seen, 'calls' | 'attempts' | 'first_ms' | 'last_ms'>>(
      `SELECT count() AS calls, uniqExact(attempt_id) AS attempts,
              toUnixTimestamp64Milli(min(started_at)) AS first_ms, toUnixTimestamp64Milli(max(started_at)) AS last_ms
       FROM ${db}.llm_calls FINAL
       WHERE provider = {provider:String} AND model = {model:String} AND service_tier = {tier:String} AND (${inHoles})`,
      params,
    );
    if (!hit || hit.calls === 0) continue;
    out.push({ ...base, calls: hit.calls, attempts: hit.attempts, firstMs: hit.first_ms, lastMs: hit.last_ms, reason: reasonAt(catalog, s, hit.first_ms) });
  }
  return out.sort((a, b) => b.calls - a.calls || `${a.provider}/${a.model}`.localeCompare(`${b.provider}/${b.model}`));
}

const iso = (ms: number) => new Date(ms).toISOString();

export function formatUnpriced(rows: UnpricedCalls[], catalogName: string): string {
  return (
    `${rows.length} model(s) seen without a price in force in ${catalogName} — with it their attempts would cost NULL (add a card, a period or an alias):\n` +
    rows.map((r) => `  ${r.provider || '(no provider)'}/${r.model} (${r.serviceTier}): ${r.calls} calls in ${r.attempts} attempts from ${iso(r.firstMs)} to ${iso(r.lastMs)} — ${r.reason}\n`).join('')
  );
}
