/**
 * Loads a price catalog into the `prices` table, replacing what was there
 * in one step (a staging table swapped in with EXCHANGE TABLES), so a query
 * never sees half a catalog and a period removed from the file disappears.
 */
import { createHash, randomBytes } from 'node:crypto';
import { formatInstant } from '../contract/rows.ts';
import { TOKEN_KINDS } from '../contract/tokens.ts';
import { buildCatalog, MULTIPLIER_SCALE, PRICE_SCALE, type CardJson, type Catalog } from '../pricing/catalog.ts';
import { formatScaled } from '../pricing/decimal.ts';
import { assertIdentifier, type Store } from './store.ts';

const msToInstant = (ms: number) => formatInstant(BigInt(ms) * 1_000_000n);

export function priceRows(catalog: Catalog): object[] {
  return catalog.cards.flatMap((card) =>
    card.periods.map((p) => {
      const multiplier = (tier: 'batch' | 'flex' | 'priority') => {
        const m = p.multipliers[tier];
        return m === undefined ? null : formatScaled(m, MULTIPLIER_SCALE);
      };
      return {
        provider: card.provider,
        model: card.model,
        aliases: card.aliases,
        providers: card.providers,
        hosts: card.hosts,
        valid_from: msToInstant(p.from),
        valid_to: Number.isFinite(p.to) ? msToInstant(p.to) : null,
        ...Object.fromEntries(TOKEN_KINDS.map((k) => [k, formatScaled(p.prices[k], PRICE_SCALE)])),
        cache_write_1h: formatScaled(p.cacheWrite1h, PRICE_SCALE),
        batch_multiplier: multiplier('batch'),
        flex_multiplier: multiplier('flex'),
        priority_multiplier: multiplier('priority'),
        source: card.source ?? '',
      };
    }),
  );
}

/** `cluster`: the ClickHouse cluster the schema was migrated on (the swap then happens on every node). */
export async function loadPrices(store: Store, catalog: Catalog, cluster?: string): Promise<number> {
  const db = store.database;
  const staging = `prices_load_${randomBytes(6).toString('hex')}`;
  const onCluster = cluster ? ` ON CLUSTER ${assertIdentifier(cluster, 'cluster')}` : '';
  const rows = priceRows(catalog);
  await store.command(`CREATE TABLE ${db}.${staging}${onCluster} AS ${db}.prices`);
  try {
    await store.insert(staging, rows);
    await store.command(`EXCHANGE TABLES ${db}.prices AND ${db}.${staging}${onCluster}`);
  } finally {
    await store.command(`DROP TABLE IF EXISTS ${db}.${staging}${onCluster}${cluster ? ' SYNC' : ''}`);
  }
  return rows.length;
}

interface PriceRow {
  provider: string;
  model: string;
  aliases: string[];
  providers: string[];
  hosts: string[];
  valid_from: string;
  valid_to: string | null;
  input: string;
  cache_read: string;
  cache_write: string;
  cache_write_1h: string;
  output: string;
  reasoning: string;
  batch_multiplier: string | null;
  flex_multiplier: string | null;
  priority_multiplier: string | null;
  source: string;
}

/** `2026-06-01 00:00:00.000` → `2026-06-01` at midnight, else the ISO instant: how the catalog would write it. */
function catalogDate(text: string): string {
  const iso = `${text.replace(' ', 'T')}Z`;
  return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso;
}

/**
 * The catalog loaded into `prices` (by the running `fleet start`, or the
 * last `fleet migrate`), read back as a catalog file would say it: what
 * `fleet prices check` and `fleet prices reprice` use unless given --prices.
 * Exact: prices travel as decimal strings.
 */
export async function loadedCatalog(store: Store): Promise<Catalog> {
  const rows = await store.query<PriceRow>(`SELECT * FROM ${store.database}.prices ORDER BY provider, model, valid_from`);
  if (rows.length === 0) throw new Error(`the prices table of ${store.location} database ${store.database} is empty: no catalog was loaded (fleet start or fleet migrate loads one; or give --prices)`);
  const cards = new Map<string, CardJson>();
  for (const r of rows) {
    const key = `${r.provider}\u0000${r.model}`;
    let card = cards.get(key);
    if (!card) {
      card = {
        provider: r.provider,
        model: r.model,
        ...(r.aliases.length && { aliases: r.aliases }),
        ...(r.providers.length && { providers: r.providers }),
        ...(r.hosts.length && { hosts: r.hosts }),
        ...(r.source && { source: r.source }),
        periods: [],
      };
      cards.set(key, card);
    }
    const price = (v: string) => Number(v); // ≤ 9 decimals: the double's shortest text is the same decimal
    card.periods.push({
      from: catalogDate(r.valid_from),
      ...(r.valid_to !== null && { to: catalogDate(r.valid_to) }),
      input: price(r.input),
      cache_read: price(r.cache_read),
      cache_write: price(r.cache_write),
      cache_write_1h: price(r.cache_write_1h),
      output: price(r.output),
      reasoning: price(r.reasoning),
      ...(r.batch_multiplier !== null && { batch_multiplier: price(r.batch_multiplier) }),
      ...(r.flex_multiplier !== null && { flex_multiplier: price(r.flex_multiplier) }),
      ...(r.priority_multiplier !== null && { priority_multiplier: price(r.priority_multiplier) }),
    });
  }
  return buildCatalog({ cards: [...cards.values()] }, `the prices table of ${store.location}`);
}

/** A fingerprint of a catalog as `prices` holds it: equal when loading it would change nothing. */
export const catalogFingerprint = (catalog: Catalog): string =>
  createHash('sha256')
    .update(priceRows(catalog).map((r) => JSON.stringify(r)).sort().join('\n'))
    .digest('hex');
