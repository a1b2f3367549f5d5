/**
 * Re-pricing stored LLM calls with a catalog (`fleet prices reprice`,
 * `fleet start --reprice-on-start`): after a missing card was added, a
 * typo fixed, or a provider announced a retroactive price.
 *
 * Only through the tables' own versioning, never ALTER UPDATE: a call whose
 * price changes is written again at its version + 1 (ReplacingMergeTree
 * keeps the newest, FINAL sees one row per call), then every attempt whose
 * cost or unpriced count no longer equals what its calls say is written
 * again at its version + 1 with the sum of its calls. Both steps compare
 * before they write, so a second run writes nothing, and a run cut short is
 * finished by the next one (the attempts step checks every attempt in scope
 * against its calls, not only the calls this run changed).
 *
 * Each call is priced exactly as the consumers price it (priceWithEvidence):
 * its provider resolved again from what the span said (fleet.provider, the
 * host, the instrumentation's name) against this catalog's hosts and cards.
 * Calls whose usage was invalid stay unpriced: no catalog prices them.
 */
import type { ServiceTier } from '../contract/attributes.ts';
import { formatInstant } from '../contract/rows.ts';
import type { Catalog } from '../pricing/catalog.ts';
import { formatUsd, parseUsd } from '../pricing/decimal.ts';
import { INVALID_USAGE_PREFIX, priceWithEvidence } from '../pricing/engine.ts';
import type { Store } from './store.ts';

/** What an llm_calls row says about the call's provider and model: what pricing it again starts from. */
export interface StoredCallIdentity {
  provider: string;
  provider_source: string;
  instrumented_provider: string;
  server_address: string;
  model: string;
  request_model: string;
  service_tier: string;
  /** The card model that priced it at ingest ('' when none). */
  price_model: string;
}

/**
 * The call as the pricing engine sees it again: its provider evidence (an
 * explicit fleet.provider is kept; host and instrumentation are resolved
 * anew), and the card model that priced it standing in for the request
 * model on rows written before request_model was kept.
 */
export const storedCall = (c: StoredCallIdentity) => ({
  model: c.model,
  requestModel: c.request_model || c.price_model,
  evidence: { explicit: c.provider_source === 'fleet.provider' ? c.provider : '', serverAddress: c.server_address, instrumented: c.instrumented_provider },
});

/** The llm_calls row as stored (inserted_at left out: the new row gets its own). */
interface CallRow extends StoredCallIdentity {
  tenant: string;
  attempt_id: string;
  span_id: string;
  started_at: string;
  input_tokens: number;
  cache_read_tokens: number;
  cache_write_tokens: number;
  output_tokens: number;
  reasoning_tokens: number;
  cache_write_1h_tokens: number;
  cost_usd: string | null;
  price_provider: string;
  price_from: string | null;
  unpriced_reason: string;
  version: number;
  [column: string]: unknown;
}

export interface RepriceOptions {
  /** Only calls started at or after this instant (DateTime64(9) text); all when absent. */
  since?: string;
  /** Called after each day of calls: calls examined so far, and in all. */
  onProgress?: (done: number, total: number) => void;
}

export interface RepriceSummary {
  /** Calls in scope, and those written again with another price. */
  calls: number;
  repriced: number;
  /** Attempts written again with the sum of their calls. */
  attempts: number;
  /** Σ cost of the repriced calls before and after (priced ones only), exact USD. */
  beforeUsd: string;
  afterUsd: string;
  /** Repriced calls that were unpriced before, and those now unpriced. */
  unpricedBefore: number;
  /** Calls in scope left unpriced, by reason, most first. */
  stillUnpriced: { reason: string; calls: number }[];
}

/** DateTime64(9) text → epoch ms, truncated as the consumers truncate span starts. */
const instantMs = (text: string): number => Date.parse(`${text.slice(0, 23).replace(' ', 'T')}Z`);

/** The call priced again; undefined when nothing about its price changes. */
function repriced(catalog: Catalog, c: CallRow): CallRow | undefined {
  if (c.unpriced_reason.startsWith(INVALID_USAGE_PREFIX)) return undefined;
  const { model, requestModel, evidence } = storedCall(c);
  const { provider, providerSource, result } = priceWithEvidence(
    catalog,
    {
      model,
      requestModel,
      startedAtMs: instantMs(c.started_at),
      serviceTier: c.service_tier as ServiceTier,
      tokens: { input: c.input_tokens, cache_read: c.cache_read_tokens, cache_write: c.cache_write_tokens, output: c.output_tokens, reasoning: c.reasoning_tokens },
      cacheWrite1hTokens: c.cache_write_1h_tokens,
    },
    evidence,
  );
  const next = {
    provider,
    provider_source: providerSource,
    cost_usd: result.priced ? formatUsd(result.costAtto) : null,
    price_provider: result.priced ? result.card.provider : '',
    price_model: result.priced ? result.card.model : '',
    price_from: result.priced ? formatInstant(BigInt(result.period.from) * 1_000_000n) : null,
    unpriced_reason: result.priced ? '' : result.reason,
  };
  const same = (k: keyof typeof next) => {
    const [a, b] = [c[k], next[k]];
    if (k === 'cost_usd') return a === null || b === null ? a === b : parseUsd(a as string) === parseUsd(b as string);
    if (k === 'price_from') return a === null || b === null ? a === b : instantMs(a as string) === instantMs(b as string);
    return a === b;
  };
  if ((Object.keys(next) as (keyof typeof next)[]).every(same)) return undefined;
  return { ...c, ...next, version: Number(c.version) + 1 };
}

export async function reprice(store: Store, catalog: Catalog, options: RepriceOptions = {}): Promise<RepriceSummary> {
  const db = store.database;
  const since = options.since ?? '1970-01-01 00:00:00';
  const params = { since };
  const inScope = `started_at >= {since:DateTime64(9)}`;
  const days = await store.query<{ day: string; calls: number }>(
    `SELECT toString(toDate(started_at)) AS day, count() AS calls FROM ${db}.llm_calls FINAL WHERE ${inScope} GROUP BY day ORDER BY day`,
    params,
  );
  const total = days.reduce((n, d) => n + Number(d.calls), 0);
  const summary: RepriceSummary = { calls: total, repriced: 0, attempts: 0, beforeUsd: '0', afterUsd: '0', unpricedBefore: 0, stillUnpriced: [] };
  let before = 0n;
  let after = 0n;
  let done = 0;
  const unpriced = new Map<string, number>();
  options.onProgress?.(0, total);
  for (const { day, calls } of days) {
    const rows = await store.query<CallRow>(
      `SELECT * EXCEPT (inserted_at) FROM ${db}.llm_calls FINAL WHERE toDate(started_at) = {day:Date} AND ${inScope}`,
      { ...params, day },
    );
    const changed: CallRow[] = [];
    for (const row of rows) {
      const next = repriced(catalog, row);
      const now = next ?? row;
      if (now.cost_usd === null) unpriced.set(now.unpriced_reason, (unpriced.get(now.unpriced_reason) ?? 0) + 1);
      if (!next) continue;
      changed.push(next);
      if (row.cost_usd === null) summary.unpricedBefore++;
      else before += parseUsd(row.cost_usd);
      if (next.cost_usd !== null) after += parseUsd(next.cost_usd);
    }
    await store.insert('llm_calls', changed);
    summary.repriced += changed.length;
    done += Number(calls);
    options.onProgress?.(done, total);
  }
  summary.attempts = await reconcileAttempts(store, params);
  summary.beforeUsd = formatUsd(before);
  summary.afterUsd = formatUsd(after);
  summary.stillUnpriced = [...unpriced].map(([reason, calls]) => ({ reason, calls })).sort((a, b) => b.calls - a.calls || a.reason.localeCompare(b.reason));
  return summary;
}

/**
 * Attempts with a call in scope whose cost or unpriced count differs from
 * the sum of their billed calls (what the consumers roll up): written again
 * at version + 1 with the calls' figures. Returns how many.
 */
async function reconcileAttempts(store: Store, params: { since: string }): Promise<number> {
  const db = store.database;
  const rows = await store.query<Record<string, unknown> & { version: number; new_cost: string | null; new_unpriced: number }>(
    `SELECT a.* EXCEPT (inserted_at), c.new_cost AS new_cost, c.new_unpriced AS new_unpriced
     FROM ${db}.attempts AS a FINAL
     INNER JOIN (
       SELECT tenant, attempt_id,
              if(countIf(cost_usd IS NULL) > 0, NULL, sum(assumeNotNull(cost_usd))) AS new_cost,
              toUInt32(countIf(cost_usd IS NULL)) AS new_unpriced
       FROM ${db}.llm_calls FINAL
       WHERE attempt_id IN (SELECT attempt_id FROM ${db}.llm_calls WHERE started_at >= {since:DateTime64(9)})
       GROUP BY tenant, attempt_id
     ) AS c ON a.tenant = c.tenant AND a.attempt_id = c.attempt_id
     WHERE (a.cost_usd IS NULL) != (c.new_cost IS NULL) OR ifNull(a.cost_usd != c.new_cost, 0) OR a.unpriced_calls != c.new_unpriced`,
    params,
  );
  const updated = rows.map(({ new_cost, new_unpriced, ...a }) => ({ ...a, cost_usd: new_cost, unpriced_calls: new_unpriced, version: Number(a.version) + 1 }));
  await store.insert('attempts', updated);
  return updated.length;
}

/**
 * `fleet start` loaded a catalog that differs from the one loaded before:
 * with --reprice-on-start the stored calls are re-priced now, before any
 * new traffic is consumed; otherwise the log says how to.
 */
export async function offerReprice(store: Store, catalog: Catalog, config: { repriceOnStart: boolean }, log: (message: string) => void): Promise<void> {
  if (!config.repriceOnStart) {
    log(
      'the price catalog differs from the one loaded before: LLM calls already stored keep the prices they were given. Re-price them with `fleet prices reprice` (give it this process\'s --query-write-token), or start with --reprice-on-start',
    );
    return;
  }
  log('the price catalog differs from the one loaded before: re-pricing the stored LLM calls (--reprice-on-start)');
  const s = await reprice(store, catalog);
  const unpriced = s.stillUnpriced.reduce((n, u) => n + u.calls, 0);
  log(`re-priced ${s.repriced} of ${s.calls} LLM calls ($${s.beforeUsd} → $${s.afterUsd}), ${s.attempts} attempts rewritten; ${unpriced} calls still unpriced`);
}
