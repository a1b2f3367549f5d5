/**
 * `fleet start`: the whole pipeline in one process, no services — the
 * collector on :4318, the in-process bounded queue in place of Kafka, the
 * consumers, embedded chDB in ./data in place of a ClickHouse server, and the
 * read-only ClickHouse-compatible query endpoint on :8123 — and, given alert
 * rules, the alerts service. The same code as the distributed mode.
 *
 * Shutdown keeps every promise the collector made: stop accepting, let the
 * consumers take everything queued, decide and write it all, commit, close.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { loadAlertRules, registryHealthSource, startAlerts, type AlertsService } from '../alerting/index.ts';
import { MemoryBus } from '../bus/memory.ts';
import { startCollector, type RunningCollector } from '../collector/index.ts';
import { ConsumerPipeline } from '../consumers/pipeline.ts';
import { startQueryEndpoint, type RunningQueryEndpoint } from '../query/endpoint.ts';
import { deadLetterTable } from '../storage/dead-letters.ts';
import type { Config } from '../config/settings.ts';
import { configuredCatalog, configuredStore, pipelineSettings, prepareStore } from '../config/runtime.ts';

export interface RunningAllInOne {
  collector: RunningCollector;
  query: RunningQueryEndpoint;
  registry: Registry;
  /** Graceful stop: everything the collector acknowledged is written before it resolves. */
  close(): Promise<void>;
}

/** Partitions of the in-process queue: the consumers decide them one batch at a time. */
const QUEUE_PARTITIONS = 4;

export async function startAllInOne(config: Config, log: (message: string) => void): Promise<RunningAllInOne> {
  if (config.clickhouseUrl) log(`storing in ClickHouse at ${config.clickhouseUrl} (FLEET_CLICKHOUSE_URL)`);
  const store = configuredStore(config);
  const catalog = configuredCatalog(config);
  await prepareStore(store, config, catalog);

  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const bus = new MemoryBus({ partitions: QUEUE_PARTITIONS, maxBytes: config.queueBytes });
  const pipeline = new ConsumerPipeline({
    topic: config.topic,
    store,
    subscriber: bus.subscriber(config.topic),
    catalog,
    deadLetter: { publisher: deadLetterTable(store), topic: 'dead_letters' },
    registry,
    log: (m) => log(`consumer: ${m}`),
    ...pipelineSettings(config),
  });
  await pipeline.start();

  const query = await startQueryEndpoint({
    store,
    host: config.queryHost,
    port: config.queryPort,
    ...(config.queryToken && { readToken: config.queryToken }),
    ...(config.queryWriteToken && { writeToken: config.queryWriteToken }),
  });
  const collector = await startCollector({
    publisher: bus.publisher(),
    port: config.collectorPort,
    topic: config.topic,
    maxBodyBytes: config.maxBodyBytes,
    maxInflightBytes: Math.max(config.maxBodyBytes, 256 * 1024 * 1024),
    registry,
    ...(config.collectorHost && { host: config.collectorHost }),
    ...(config.authTokens && { authTokens: config.authTokens }),
  });

  let alerts: AlertsService | undefined;
  if (config.alertRules) {
    alerts = await startAlerts({ store, rules: loadAlertRules(config.alertRules), registry, healthSource: registryHealthSource(registry), log: (m) => log(`alerts: ${m}`) });
  }

  let closing: Promise<void> | undefined;
  return {
    collector,
    query,
    registry,
    close: () =>
      (closing ??= (async () => {
        await alerts?.stop();
        await collector.close();
        await bus.idle();
        await pipeline.stop({ drain: true });
        bus.close();
        await query.close();
        await store.close();
      })()),
  };
}
