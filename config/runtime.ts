/**
 * What every command needs from the configuration: the store, the price
 * catalog, the migrated schema with the catalog loaded into `prices`, and the
 * consumer pipeline's settings.
 */
import { loadCatalogFile, loadDefaultCatalog, type Catalog } from '../pricing/catalog.ts';
import { migrate } from '../sql/migrate.ts';
import { loadPrices } from '../storage/prices.ts';
import { openStore, type Store } from '../storage/store.ts';
import type { ConsumerPipelineOptions } from '../consumers/pipeline.ts';
import type { Config } from './settings.ts';

export function configuredStore(config: Config): Store {
  return openStore({
    ...(config.clickhouseUrl && { url: config.clickhouseUrl }),
    ...(config.clickhouseUser !== undefined && { username: config.clickhouseUser }),
    ...(config.clickhousePassword !== undefined && { password: config.clickhousePassword }),
    dataDir: config.dataDir,
    database: config.database,
  });
}

export const configuredCatalog = (config: Config): Catalog => (config.prices ? loadCatalogFile(config.prices) : loadDefaultCatalog());

/** Migrations, then the catalog into `prices`. */
export async function prepareStore(store: Store, config: Config, catalog: Catalog): Promise<void> {
  await migrate(store, { spansTtlDays: config.spansTtlDays, ...(config.clickhouseCluster && { cluster: config.clickhouseCluster }) });
  await loadPrices(store, catalog, config.clickhouseCluster);
}

export const pipelineSettings = (config: Config): Pick<ConsumerPipelineOptions, 'sampling' | 'decisionWaitMs' | 'traceTimeoutMs'> => ({
  sampling: { passRate: config.samplingPassRate, costOutlierUsd: config.costOutlierUsd, durationOutlierMs: config.durationOutlierMs },
  decisionWaitMs: config.decisionWaitMs,
  traceTimeoutMs: config.traceTimeoutMs,
});

/** Writes `message` to stderr with a timestamp: the processes' log. */
export const log = (message: string): void => {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
};
