/**
 * `fleet prices check`: is every LLM call seen in traffic priced by *this*
 * catalog (--prices, else the one the store loaded)? Each distinct (provider
 * evidence, model, service tier) of `llm_calls`, over the time its calls
 * span, is priced with the pricing engine against the catalog — its provider
 * resolved again, not read from what was priced at ingest — and the calls no
 * card in force prices are listed, with the models priced under an inferred
 * provider.
 */
import type { ServiceTier } from '../contract/attributes.ts';
import { zeroTokens } from '../contract/tokens.ts';
import type { Catalog, PriceCard } from '../pricing/catalog.ts';
import { cardOf, priceWithEvidence } from '../pricing/engine.ts';
import type { ProviderSource } from '../pricing/providers.ts';
import { storedCall, type StoredCallIdentity } from '../storage/reprice.ts';
import type { Store } from '../storage/store.ts';

/** LLM calls of one (provider evidence, model, service tier) with the card that priced them at ingest. */
interface Seen extends StoredCallIdentity {
  calls: number;
  attempts: number;
  first_ms: number;
  last_ms: number;
}

export interface UnpricedCalls {
  /** The provider the catalog resolves the calls to, and how (pricing/providers.ts). */
  provider: string;
  providerSource: ProviderSource;
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

/** Calls the SDK named `openai` that the catalog prices under the model's one other provider. */
export interface InferredCalls {
  instrumentedProvider: string;
  provider: string;
  model: string;
  calls: number;
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

const priceAt = (catalog: Catalog, s: Seen, ms: number) => {
  const { model, requestModel, evidence } = storedCall(s);
  return priceWithEvidence(catalog, { model, requestModel, startedAtMs: ms, serviceTier: s.service_tier as ServiceTier, tokens: zeroTokens() }, evidence);
};

const GROUP = ['provider', 'provider_source', 'instrumented_provider', 'server_address', 'model', 'request_model', 'service_tier'] as const;

/** The calls in `llm_calls` that `catalog` leaves unpriced (most calls first), and those it prices under an inferred provider. */
export async function unpricedCalls(store: Store, catalog: Catalog): Promise<{ unpriced: UnpricedCalls[]; inferred: InferredCalls[] }> {
  const db = store.database;
  const seen = await store.query<Seen>(
    `SELECT ${GROUP.join(', ')}, anyIf(price_model, price_model != '') AS price_model, count() AS calls, uniqExact(attempt_id) AS attempts,
            toUnixTimestamp64Milli(min(started_at)) AS first_ms, toUnixTimestamp64Milli(max(started_at)) AS last_ms
     FROM ${db}.llm_calls FINAL GROUP BY ${GROUP.join(', ')}`,
  );
  const out: UnpricedCalls[] = [];
  const inferred = new Map<string, InferredCalls>();
  for (const s of seen) {
    const first = priceAt(catalog, s, s.first_ms);
    const base = { provider: first.provider, providerSource: first.providerSource, model: s.model, serviceTier: s.service_tier };
    if (first.providerSource === 'inferred') {
      const key = `${s.instrumented_provider}\u0000${first.provider}\u0000${s.model}`;
      const seenBefore = inferred.get(key);
      if (seenBefore) seenBefore.calls += s.calls;
      else inferred.set(key, { instrumentedProvider: s.instrumented_provider, provider: first.provider, model: s.model, calls: s.calls });
    }
    const { model, requestModel } = storedCall(s);
    const card = cardOf(catalog, { provider: first.provider, model, requestModel });
    if (typeof card === 'string') {
      out.push({ ...base, calls: s.calls, attempts: s.attempts, firstMs: s.first_ms, lastMs: s.last_ms, reason: first.result.priced ? card : first.result.reason });
      continue;
    }
    const holes = uncovered(card, s.service_tier, s.first_ms, s.last_ms);
    if (holes.length === 0) continue;
    const params: Record<string, unknown> = Object.fromEntries(GROUP.map((k) => [k, s[k]]));
    holes.forEach(([from, to], i) => Object.assign(params, { [`from${i}`]: from, [`to${i}`]: to }));
    const inHoles = holes.map((_, i) => `(started_at >= fromUnixTimestamp64Milli({from${i}:Int64}) AND started_at < fromUnixTimestamp64Milli({to${i}:Int64}))`).join(' OR ');
    const [hit] = await store.query<Pick<Seen, 'calls' | 'attempts' | 'first_ms' | 'last_ms'>>(
      `SELECT count() AS calls, uniqExact(attempt_id) AS attempts,
              toUnixTimestamp64Milli(min(started_at)) AS first_ms, toUnixTimestamp64Milli(max(started_at)) AS last_ms
       FROM ${db}.llm_calls FINAL
       WHERE ${GROUP.map((k) => `${k} = {${k}:String}`).join(' AND ')} AND (${inHoles})`,
      params,
    );
    if (!hit || hit.calls === 0) continue;
    const at = priceAt(catalog, s, hit.first_ms);
    out.push({ ...base, calls: hit.calls, attempts: hit.attempts, firstMs: hit.first_ms, lastMs: hit.last_ms, reason: at.result.priced ? '' : at.result.reason });
  }
  return {
    unpriced: out.sort((a, b) => b.calls - a.calls || `${a.provider}/${a.model}`.localeCompare(`${b.provider}/${b.model}`)),
    inferred: [...inferred.values()].sort((a, b) => b.calls - a.calls || a.model.localeCompare(b.model)),
  };
}

const iso = (ms: number) => new Date(ms).toISOString();

export function formatUnpriced(rows: UnpricedCalls[], catalogName: string): string {
  return (
    `${rows.length} model(s) seen without a price in force in ${catalogName} — with it their attempts would cost NULL (add a card, a period or an alias):\n` +
    rows.map((r) => `  ${r.provider || '(no provider)'}/${r.model} (${r.serviceTier}${r.providerSource === 'instrumentation' ? '' : `, provider from ${r.providerSource}`}): ${r.calls} calls in ${r.attempts} attempts from ${iso(r.firstMs)} to ${iso(r.lastMs)} — ${r.reason}\n`).join('')
  );
}

export function formatInferred(rows: InferredCalls[]): string {
  return (
    `${rows.length} model(s) priced under a provider inferred from the model's cards — the instrumentation named only its SDK (set fleet.provider, or declare the API host on the card, to say it):\n` +
    rows.map((r) => `  ${r.model}: ${r.calls} calls named ${r.instrumentedProvider}, priced as ${r.provider}\n`).join('')
  );
}
