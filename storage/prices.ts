/**
 * Loads a price catalog into the `prices` table, replacing what was there
 * in one step (a staging table swapped in with EXCHANGE TABLES), so a query
 * never sees half a catalog and a period removed from the file disappears.
 */
import { randomBytes } from 'node:crypto';
import { formatInstant } from '../contract/rows.ts';
import { TOKEN_KINDS } from '../contract/tokens.ts';
import { MULTIPLIER_SCALE, PRICE_SCALE, type Catalog } from '../pricing/catalog.ts';
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
