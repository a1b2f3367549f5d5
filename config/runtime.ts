/**
 * What every command needs from the configuration: the store, the price
 * catalog, the migrated schema with the catalog loaded into `prices`, and the
 * consumer pipeline's settings.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { defaultMemoryBudget, planMemory, type CollectorOptions, type MemoryPlan } from '../collector/index.ts';
import { findOwner, lockHolder } from '../embedded/owner.ts';
import { loadCatalogFile, loadDefaultCatalog, type Catalog } from '../pricing/catalog.ts';
import { migrate } from '../sql/migrate.ts';
import { catalogFingerprint, loadedCatalog, loadPrices } from '../storage/prices.ts';
import { openStore, type Store } from '../storage/store.ts';
import type { ConsumerPipelineOptions } from '../consumers/pipeline.ts';
import type { Config } from './settings.ts';

/**
 * The configured store. An embedded store another process holds (chDB
 * locks its directory) fails with a message saying who holds it and what to
 * do instead of chDB's "Cannot lock file …/status".
 */
export function configuredStore(config: Config): Store {
  try {
    return openStore({
      ...(config.clickhouseUrl && { url: config.clickhouseUrl }),
      ...(config.clickhouseUser !== undefined && { username: config.clickhouseUser }),
      ...(config.clickhousePassword !== undefined && { password: config.clickhousePassword }),
      dataDir: config.dataDir,
      database: config.database,
    });
  } catch (err) {
    if (config.clickhouseUrl || (err as { code?: unknown }).code !== 'CHDB_CONNECTION') throw err;
    const owner = findOwner(config.dataDir);
    const dir = path.resolve(config.dataDir);
    if (owner) {
      throw new StoreLockedError(
        `the embedded store ${dir} is open in the running fleet start (PID ${owner.pid}, query endpoint ${owner.queryUrl}); chDB lets one process open it. ` +
          'Read through that endpoint (fleet report, prices check and demo find it themselves), or stop fleet start first',
        { cause: err },
      );
    }
    const pid = lockHolder(config.dataDir);
    if (pid === undefined) throw err;
    throw new StoreLockedError(
      `the embedded store ${dir} is open in another process (PID ${pid}); chDB lets one process open it. Stop that process, or point this command at a ClickHouse server (--clickhouse-url)`,
      { cause: err },
    );
  }
}

/** Whether `dataDir` holds the perpass database `database` (without opening it: chDB would create a store there). */
export const hasStore = (dataDir: string, database: string): boolean => existsSync(path.join(path.resolve(dataDir), 'metadata', `${database}.sql`));

/** The embedded store is held by another process. */
export class StoreLockedError extends Error {
  override name = 'StoreLockedError';
}

export const configuredCatalog = (config: Config): Catalog => (config.prices ? loadCatalogFile(config.prices) : loadDefaultCatalog());

/**
 * Migrations, then the catalog into `prices`. Returns whether it replaced a
 * different catalog: the calls already stored are still priced with that one
 * (`fleet prices reprice` re-prices them).
 */
export async function prepareStore(store: Store, config: Config, catalog: Catalog): Promise<{ catalogChanged: boolean }> {
  await migrate(store, { spansTtlDays: config.spansTtlDays, ...(config.clickhouseCluster && { cluster: config.clickhouseCluster }) });
  const [{ rows = 0 } = {}] = await store.query<{ rows: number }>(`SELECT count() AS rows FROM ${store.database}.prices`);
  // A previous catalog this version cannot read back counts as a different one: it is replaced either way.
  const before = Number(rows) > 0 ? await loadedCatalog(store).then(catalogFingerprint, () => 'unreadable') : undefined;
  await loadPrices(store, catalog, config.clickhouseCluster);
  return { catalogChanged: before !== undefined && before !== catalogFingerprint(catalog) };
}

/** How this process's memory budget (--memory-budget-bytes, else derived from the real memory limit) is divided. */
export const memoryPlan = (config: Config): MemoryPlan => planMemory(config.memoryBudgetBytes ?? defaultMemoryBudget(), config.maxBodyBytes);

/**
 * Real bytes a buffered span costs the consumers beyond its share of the
 * message (decoded record, attribute maps, index entries): the span limit
 * is the consumers' share of the budget at this cost, and the decision
 * cache's entries (a few hundred bytes each) get the same share.
 */
const BUFFERED_SPAN_BYTES = 2048;
const DECIDED_SPAN_BYTES = 256;
/** An encoded row waiting in the store's batch (a flat string, ~0.5–1 KiB); the writer holds up to 4 batches. */
const PENDING_ROW_BYTES = 1024;

export const pipelineSettings = (config: Config): Pick<ConsumerPipelineOptions, 'sampling' | 'decisionWaitMs' | 'traceTimeoutMs' | 'limits' | 'writer'> => {
  const { consumerBytes } = memoryPlan(config);
  return {
    sampling: { passRate: config.samplingPassRate, costOutlierUsd: config.costOutlierUsd, durationOutlierMs: config.durationOutlierMs },
    decisionWaitMs: config.decisionWaitMs,
    traceTimeoutMs: config.traceTimeoutMs,
    limits: {
      maxBytes: consumerBytes,
      maxSpans: Math.min(500_000, Math.max(10_000, Math.floor(consumerBytes / BUFFERED_SPAN_BYTES))),
      decisionCacheSpans: Math.min(1_000_000, Math.max(50_000, Math.floor(consumerBytes / DECIDED_SPAN_BYTES))),
    },
    writer: { maxRows: Math.min(20_000, Math.max(1_000, Math.floor(consumerBytes / 4 / PENDING_ROW_BYTES))) },
  };
};

/** The collector options of the settings, its in-flight budget and memory guard from the memory plan. */
export function collectorSettings(config: Config, plan: MemoryPlan): Omit<CollectorOptions, 'publisher'> {
  const inflight = config.maxInflightBytes ?? plan.inflightBytes;
  return {
    port: config.collectorPort,
    grpcPort: config.grpcPort,
    topic: config.topic,
    maxBodyBytes: config.maxBodyBytes,
    maxMessageBytes: config.maxMessageBytes,
    maxSpansPerRequest: config.maxSpansPerRequest,
    maxConnections: config.maxConnections,
    headersTimeoutMs: config.headersTimeoutMs,
    bodyTimeoutMs: config.bodyTimeoutMs,
    minBodyBytesPerSecond: config.minBodyBytesPerSecond,
    keepAliveTimeoutMs: config.keepAliveTimeoutMs,
    maxInflightBytes: Math.max(inflight, config.maxBodyBytes),
    ...(config.maxTenantInflightBytes !== undefined && { maxTenantInflightBytes: config.maxTenantInflightBytes }),
    refuseAboveRssBytes: plan.refuseAboveBytes,
    ...(config.collectorHost && { host: config.collectorHost }),
    ...(config.authTokens && { authTokens: config.authTokens }),
  };
}

/** Writes `message` to stderr with a timestamp: the processes' log. */
export const log = (message: string): void => {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
};
