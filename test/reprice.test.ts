/**
 * Re-pricing stored calls (storage/reprice.ts) on a real chDB store: exact,
 * only through new row versions, idempotent, finishing a run cut short, and
 * leaving alone what no catalog can price. And the catalog the store loaded,
 * read back whole (providers, hosts) as prices check and reprice use it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatInstant } from '../contract/rows.ts';
import { buildCatalog, loadDefaultCatalog, type CatalogJson } from '../pricing/index.ts';
import { catalogFingerprint, loadedCatalog, loadPrices } from '../storage/prices.ts';
import { reprice } from '../storage/reprice.ts';
import { REPRICE_SLOTS } from '../consumers/rollup.ts';
import type { Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

const DAY = 86_400_000;
const NOW = Date.now();
const at = (ms: number) => formatInstant(BigInt(ms) * 1_000_000n);

const card = (provider: string, model: string, input: number, output: number, extra: object = {}) => ({ provider, model, periods: [{ from: '2026-01-01', input, output }], ...extra });
const BEFORE: CatalogJson = { cards: [card('moonshot', 'kimi-k2.6', 1, 2)] };
// the fix: kimi-k2.6 at its real price, a card for kimi-k3, and the company gateway's host
const AFTER: CatalogJson = { cards: [card('moonshot', 'kimi-k2.6', 0.95, 4), card('moonshot', 'kimi-k3', 2, 8), card('acme', 'qwen-4', 1, 1, { hosts: ['gw.acme.internal'], providers: ['acme_eu'] })] };

function call(attempt: string, span: string, model: string, cost: string | null, over: object = {}) {
  return {
    tenant: 't', attempt_id: attempt, trace_id: `tr-${attempt}`, span_id: span, started_at: at(NOW - DAY), ended_at: at(NOW - DAY + 1000),
    provider: 'openai', provider_source: 'instrumentation', instrumented_provider: 'openai', server_address: '', model, request_model: model,
    service_tier: 'standard', input_tokens: 1_000_000, cache_read_tokens: 0, cache_write_tokens: 0, output_tokens: 1_000_000, reasoning_tokens: 0, cache_write_1h_tokens: 0,
    cost_usd: cost, reported_cost_usd: null, price_provider: cost ? 'moonshot' : '', price_model: cost ? model : '', price_from: cost ? '2026-01-01 00:00:00' : null,
    unpriced_reason: cost ? '' : `no price card for model "${model}"`, dialect: 'openllmetry', version: 3, is_deleted: 0, ...over,
  };
}
const attempt = (id: string, cost: string | null, unpriced: number, outcome = 'pass') => ({
  attempt_id: id, tenant: 't', spec_id: `spec-${id}`, spec_tier: 'tier-r', canary: '', variant: '', pool: '', model: 'kimi-k2.6', attempt_number: 1, outcome, reason: '',
  started_at: at(NOW - DAY), ended_at: at(NOW - DAY + 2000), duration_ms: 2000, llm_calls: 2, tool_calls: 0, input_tokens: 0, cache_read_tokens: 0, cache_write_tokens: 0,
  output_tokens: 0, reasoning_tokens: 0, cost_usd: cost, reported_cost_usd: null, unpriced_calls: unpriced, trace_id: `tr-${id}`, span_id: `sp-${id}`, sampled: false,
  sampling_rate: 1, decision: 'ended', version: 3,
});

describe('re-pricing stored calls', () => {
  let store: Store;
  beforeAll(async () => {
    store = await freshStore('reprice');
    await store.insert('llm_calls', [
      call('a1', 'c1', 'kimi-k2.6', '3', { provider: 'moonshot', provider_source: 'inferred' }), // 1 × 1 + 1 × 2 with the wrong card
      call('a1', 'c2', 'kimi-k3', null),
      call('a2', 'c3', 'qwen-4', null, { server_address: 'gw.acme.internal' }), // unknown host until the card declares it
      call('a2', 'c4', 'kimi-k2.6', null, { unpriced_reason: 'invalid usage: no token usage', input_tokens: 0, output_tokens: 0 }),
      // written before request_model was kept, priced with its base model's card: stays with it
      call('a3', 'c5', 'kimi-k2.6-2026-04-20', '3', { request_model: '', price_model: 'kimi-k2.6', provider: 'moonshot' }),
      call('old', 'c6', 'kimi-k3', null, { started_at: at(NOW - 40 * DAY), ended_at: at(NOW - 40 * DAY + 1) }),
    ]);
    await store.insert('attempts', [attempt('a1', null, 1), attempt('a2', null, 2), attempt('a3', '3', 0), { ...attempt('old', null, 1), started_at: at(NOW - 40 * DAY), ended_at: at(NOW - 40 * DAY + 1) }]);
    await loadPrices(store, buildCatalog(BEFORE));
  });
  afterAll(() => store?.close());

  const calls = () => store.query<{ span_id: string; provider: string; provider_source: string; cost_usd: string | null; unpriced_reason: string; version: number }>(
    `SELECT span_id, provider, provider_source, cost_usd, unpriced_reason, version FROM ${store.database}.llm_calls FINAL ORDER BY span_id`,
  );
  const attempts = () => store.query<{ attempt_id: string; cost_usd: string | null; unpriced_calls: number; version: number }>(
    `SELECT attempt_id, cost_usd, unpriced_calls, version FROM ${store.database}.attempts FINAL ORDER BY attempt_id`,
  );

  it('reads back the catalog the store loaded, providers and hosts included', async () => {
    const catalog = buildCatalog(AFTER);
    await loadPrices(store, catalog);
    const back = await loadedCatalog(store);
    expect(catalogFingerprint(back)).toBe(catalogFingerprint(catalog));
    expect(back.cards.find((c) => c.model === 'qwen-4')).toMatchObject({ provider: 'acme', hosts: ['gw.acme.internal'], providers: ['acme_eu'] });
    const shipped = loadDefaultCatalog();
    await loadPrices(store, shipped);
    expect(catalogFingerprint(await loadedCatalog(store))).toBe(catalogFingerprint(shipped));
    await loadPrices(store, buildCatalog(BEFORE));
  });

  it('re-prices only what changes, in the window, as new versions; invalid usage stays unpriced', async () => {
    const summary = await reprice(store, buildCatalog(AFTER), { since: at(NOW - 7 * DAY) });
    // c1: 0.95 + 4 = 4.95 (was 3); c2: 2 + 8 = 10 (was NULL); c3: the gateway's card, 1 + 1 = 2; c5 its base card 4.95
    expect(summary).toEqual({
      calls: 5, repriced: 4, attempts: 3, beforeUsd: '6', afterUsd: '21.9', unpricedBefore: 2,
      stillUnpriced: [{ reason: 'invalid usage: no token usage', calls: 1 }],
    });
    expect(await calls()).toEqual([
      { span_id: 'c1', provider: 'moonshot', provider_source: 'inferred', cost_usd: '4.95', unpriced_reason: '', version: 4 },
      { span_id: 'c2', provider: 'moonshot', provider_source: 'inferred', cost_usd: '10', unpriced_reason: '', version: 4 },
      { span_id: 'c3', provider: 'acme', provider_source: 'host', cost_usd: '2', unpriced_reason: '', version: 4 },
      { span_id: 'c4', provider: 'openai', provider_source: 'instrumentation', cost_usd: null, unpriced_reason: 'invalid usage: no token usage', version: 3 },
      { span_id: 'c5', provider: 'moonshot', provider_source: 'inferred', cost_usd: '4.95', unpriced_reason: '', version: 4 },
      { span_id: 'c6', provider: 'openai', provider_source: 'instrumentation', cost_usd: null, unpriced_reason: 'no price card for model "kimi-k3"', version: 3 }, // before --since
    ]);
    expect(await attempts()).toEqual([
      { attempt_id: 'a1', cost_usd: '14.95', unpriced_calls: 0, version: 4 },
      { attempt_id: 'a2', cost_usd: null, unpriced_calls: 1, version: 4 },
      { attempt_id: 'a3', cost_usd: '4.95', unpriced_calls: 0, version: 4 },
      { attempt_id: 'old', cost_usd: null, unpriced_calls: 1, version: 3 },
    ]);
    // the older versions are still there underneath: nothing was updated in place
    const [raw] = await store.query<{ n: number }>(`SELECT count() AS n FROM ${store.database}.llm_calls`);
    expect(raw!.n).toBe(10);
  });

  it('writes nothing the second time', async () => {
    const again = await reprice(store, buildCatalog(AFTER), { since: at(NOW - 7 * DAY) });
    expect(again).toMatchObject({ calls: 5, repriced: 0, attempts: 0, beforeUsd: '0', afterUsd: '0' });
    expect((await attempts()).map((a) => a.version)).toEqual([4, 4, 4, 3]);
  });

  it('finishes a run that stopped between the calls and the attempts', async () => {
    // as if a run had written c6's new price and died before its attempt
    await store.insert('llm_calls', [call('old', 'c6', 'kimi-k3', '10', { provider: 'moonshot', provider_source: 'inferred', price_from: '2026-01-01 00:00:00', version: 4, started_at: at(NOW - 40 * DAY), ended_at: at(NOW - 40 * DAY + 1) })]);
    const resumed = await reprice(store, buildCatalog(AFTER));
    expect(resumed).toMatchObject({ calls: 6, repriced: 0, attempts: 1 });
    expect((await attempts()).find((a) => a.attempt_id === 'old')).toEqual({ attempt_id: 'old', cost_usd: '10', unpriced_calls: 0, version: 4 });
  });
});

describe('re-pricing next to a late re-assembly', () => {
  let store: Store;
  afterAll(() => store?.close());

  it('never lets a re-priced partial attempt outrank its more complete re-assembly, however often it was re-priced', async () => {
    store = await freshStore('reprice_late');
    const db = store.database;
    // a partial assembly: the attempt span and one of its two calls (2 members), priced with the wrong card
    const partial = 2 * REPRICE_SLOTS;
    await store.insert('llm_calls', [call('p1', 'd1', 'kimi-k2.6', '3', { provider: 'moonshot', provider_source: 'inferred', version: partial })]);
    await store.insert('attempts', [{ ...attempt('p1', '3', 0), llm_calls: 1, version: partial }]);
    // two catalog fixes, each re-pricing the partial rows (version + 1 each time)
    const fixes: CatalogJson[] = [{ cards: [card('moonshot', 'kimi-k2.6', 0.95, 4)] }, { cards: [card('moonshot', 'kimi-k2.6', 0.6, 2.5)] }];
    for (const fix of fixes) {
      await loadPrices(store, buildCatalog(fix));
      await reprice(store, buildCatalog(fix));
    }
    const repriced = await store.query<{ version: number; cost_usd: string }>(`SELECT version, cost_usd FROM ${db}.attempts FINAL WHERE attempt_id = 'p1'`);
    expect(repriced).toEqual([{ version: partial + 2, cost_usd: '3.1' }]);
    // the late second call arrives: the consumer rolls the attempt up again from 3 members, priced with the catalog in force
    const complete = 3 * REPRICE_SLOTS;
    await store.insert('llm_calls', [
      call('p1', 'd1', 'kimi-k2.6', '3.1', { provider: 'moonshot', provider_source: 'inferred', version: complete }),
      call('p1', 'd2', 'kimi-k2.6', '3.1', { provider: 'moonshot', provider_source: 'inferred', version: complete }),
    ]);
    await store.insert('attempts', [{ ...attempt('p1', '6.2', 0), llm_calls: 2, version: complete }]);
    expect(await store.query(`SELECT version, cost_usd, llm_calls FROM ${db}.attempts FINAL WHERE attempt_id = 'p1'`)).toEqual([{ version: complete, cost_usd: '6.2', llm_calls: 2 }]);
    expect(await store.query(`SELECT span_id, version, cost_usd FROM ${db}.llm_calls FINAL WHERE attempt_id = 'p1' ORDER BY span_id`)).toEqual([
      { span_id: 'd1', version: complete, cost_usd: '3.1' },
      { span_id: 'd2', version: complete, cost_usd: '3.1' },
    ]);
    // and a third re-pricing with the same catalog writes nothing over it
    expect((await reprice(store, buildCatalog(fixes[1]))).repriced).toBe(0);
  });
});
