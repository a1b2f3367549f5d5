/**
 * `fleet start`: the whole pipeline in one process, no services — the
 * collector on :4318, the in-process bounded queue in place of Kafka, the
 * consumers, embedded chDB in ./data in place of a ClickHouse server, and the
 * read-only ClickHouse-compatible query endpoint on :8123 — and, given alert
 * rules, the alerts service. The same code as the distributed mode. With
 * FLEET_CLICKHOUSE_URL the store is that ClickHouse server instead, and there
 * is no query endpoint: the server answers queries itself.
 *
 * Shutdown keeps every promise the collector made: stop accepting, let the
 * consumers take everything queued, decide and write it all, commit, close.
 */
import { collectDefaultMetrics, Registry } from 'prom-client';
import { loadAlertRules, registryHealthSource, startAlerts, type AlertsService } from '../alerting/index.ts';
import { MemoryBus } from '../bus/memory.ts';
import { startCollector, type RunningCollector } from '../collector/index.ts';
import { ConsumerPipeline } from '../consumers/pipeline.ts';
import { startForwarder } from '../forward/start.ts';
import { startQueryEndpoint, type RunningQueryEndpoint } from '../query/endpoint.ts';
import { deadLetterTable } from '../storage/dead-letters.ts';
import type { Config } from '../config/settings.ts';
import { configuredCatalog, configuredStore, pipelineSettings, prepareStore } from '../config/runtime.ts';
import { announceOwner } from './owner.ts';

export interface RunningAllInOne {
  collector: RunningCollector;
  /** The embedded query endpoint; absent with a ClickHouse server (FLEET_CLICKHOUSE_URL), which is queried directly. */
  query?: RunningQueryEndpoint;
  /** The in-process queue: OTLP spans on `config.topic`, and what kafka alert sinks publish to their topics. */
  bus: MemoryBus;
  registry: Registry;
  /** Graceful stop: everything the collector acknowledged is written before it resolves. */
  close(): Promise<void>;
}

/** Partitions of the in-process queue: the consumers decide them one batch at a time. */
const QUEUE_PARTITIONS = 4;

/** A ClickHouse URL fit for a log line: no password. */
function redacted(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}

/**
 * Starts every part in order. If one fails, the parts already started are
 * stopped in reverse order (so no port, queue or store lock outlives the
 * failure) and the error is rethrown.
 */
export async function startAllInOne(config: Config, log: (message: string) => void): Promise<RunningAllInOne> {
  if (config.kafkaBrokers?.length) {
    log(`kafka brokers are set (${config.kafkaBrokers.join(',')}, FLEET_KAFKA_BROKERS or the config file) but fleet start always uses its in-process queue and ignores them; for Kafka run fleet collector and fleet consumer`);
  }
  // Read before anything starts: a bad rules file stops fleet start at once.
  const alertRules = config.alertRules ? loadAlertRules(config.alertRules) : undefined;
  const stops: { what: string; stop: () => Promise<void> | void }[] = [];
  const stopAll = async () => {
    for (const { what, stop } of stops.splice(0).reverse()) {
      try {
        await stop();
      } catch (err) {
        log(`stopping ${what}: ${(err as Error).message}`);
      }
    }
  };

  try {
    if (config.clickhouseUrl) log(`storing in ClickHouse at ${redacted(config.clickhouseUrl)} (FLEET_CLICKHOUSE_URL)`);
    const store = configuredStore(config);
    stops.push({ what: 'the store', stop: () => store.close() });
    const catalog = configuredCatalog(config);
    await prepareStore(store, config, catalog);

    const registry = new Registry();
    collectDefaultMetrics({ register: registry });
    const bus = new MemoryBus({ partitions: QUEUE_PARTITIONS, maxBytes: config.queueBytes });
    // stopped after the consumers (stops run in reverse), so it gets what their last decisions kept
    const forward = startForwarder(config, registry, log);
    if (forward) stops.push({ what: 'the forwarder', stop: () => forward.close() });
    const pipeline = new ConsumerPipeline({
      topic: config.topic,
      store,
      subscriber: bus.subscriber(config.topic),
      catalog,
      deadLetter: { publisher: deadLetterTable(store), topic: 'dead_letters' },
      registry,
      log: (m) => log(`consumer: ${m}`),
      ...pipelineSettings(config),
      ...(forward && { forward }),
    });
    await pipeline.start();
    stops.push({
      what: 'the consumers',
      stop: async () => {
        // The collector is closed by now: let the consumers take what it queued, decide and write all of it.
        await bus.idle();
        await pipeline.stop({ drain: true });
        bus.close();
      },
    });

    let query: RunningQueryEndpoint | undefined;
    if (store.dataDir) {
      const endpoint = await startQueryEndpoint({
        store,
        host: config.queryHost,
        port: config.queryPort,
        ...(config.queryToken && { readToken: config.queryToken }),
        ...(config.queryWriteToken && { writeToken: config.queryWriteToken }),
      });
      query = endpoint;
      stops.push({ what: 'the query endpoint', stop: () => endpoint.close() });
      const forget = announceOwner(store.dataDir, { queryUrl: endpoint.url, writeMode: endpoint.writeMode });
      stops.push({ what: 'the owner record', stop: forget });
    } else {
      log(`no query endpoint: the store is a ClickHouse server, query it directly (${redacted(store.location)})`);
    }

    const collector = await startCollector({
      publisher: bus.publisher(),
      port: config.collectorPort,
      topic: config.topic,
      maxBodyBytes: config.maxBodyBytes,
      maxMessageBytes: config.maxMessageBytes,
      maxInflightBytes: Math.max(config.maxBodyBytes, 256 * 1024 * 1024),
      registry,
      ...(config.collectorHost && { host: config.collectorHost }),
      ...(config.authTokens && { authTokens: config.authTokens }),
    });
    stops.push({ what: 'the collector', stop: () => collector.close() });

    if (alertRules) {
      const alerts: AlertsService = await startAlerts({
        store,
        rules: alertRules,
        registry,
        healthSource: registryHealthSource(registry),
        // kafka sinks publish to the in-process queue: there is no Kafka here
        publisher: bus.publisher(),
        log,
      });
      stops.push({ what: 'the alerts service', stop: () => alerts.stop() });
    }

    let closing: Promise<void> | undefined;
    return { collector, ...(query && { query }), bus, registry, close: () => (closing ??= stopAll()) };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
