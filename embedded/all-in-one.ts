/**
 * `fleet start`: the whole pipeline in one process, no services — the
 * collector on :4318, the in-process bounded queue in place of Kafka, the
 * consumers, embedded chDB in ./data in place of a ClickHouse server, and the
 * read-only ClickHouse-compatible query endpoint on :8123 — and, given alert
 * rules, the alerts service. The same code as the distributed mode. With
 * FLEET_CLICKHOUSE_URL the store is that ClickHouse server instead, and there
 * is no query endpoint: the server answers queries itself.
 *
 * The queue is durable (a DurableLog per partition in <data-dir>/queue):
 * the collector answers 200 only once a request's spans are fsynced there,
 * and a start replays everything the consumers had not committed — so a
 * crash loses nothing acknowledged.
 *
 * Shutdown is bounded (close(timeoutMs)): stop accepting (503 +
 * Retry-After), answer the requests in flight, let the consumers take,
 * decide, write and commit what they can in the time left, close. Whatever
 * is left stays in the queue for the next start.
 */
import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { Registry } from 'prom-client';
import { loadAlertRules, registryHealthSource, startAlerts, type AlertsService } from '../alerting/index.ts';
import { heldBytes, MemoryBus } from '../bus/memory.ts';
import { queueMetrics } from '../bus/metrics.ts';
import { QueueShares, startCollector, type RunningCollector } from '../collector/index.ts';
import { collectProcessMetrics } from '../collector/metrics.ts';
import { startQueryEndpoint, type RunningQueryEndpoint } from '../query/endpoint.ts';
import type { Config } from '../config/settings.ts';
import { collectorSettings, configuredCatalog, configuredStore, memoryPlan, prepareStore } from '../config/runtime.ts';
import { offerReprice } from '../storage/reprice.ts';
import { startRollupRefresher } from '../storage/rollups.ts';
import { FORWARD_DRAIN_MS, startConsumerThread } from '../threads/consumer-thread.ts';
import { deadLetterTable } from '../storage/dead-letters.ts';
import { announceOwner, lockQueue } from './owner.ts';

export interface RunningAllInOne {
  collector: RunningCollector;
  /** The embedded query endpoint; absent with a ClickHouse server (FLEET_CLICKHOUSE_URL), which is queried directly. */
  query?: RunningQueryEndpoint;
  /** The in-process queue: OTLP spans on `config.topic` (durable on disk), and what kafka alert sinks publish to their topics (in memory). */
  bus: MemoryBus;
  registry: Registry;
  /**
   * Graceful stop within `timeoutMs` (default: unbounded): resolves true once
   * everything acknowledged is written and committed, false when time ran
   * out first (the rest stays in the durable queue; the caller exits).
   */
  close(timeoutMs?: number): Promise<boolean>;
}

/** Partitions of the in-process queue: the consumers decide them one batch at a time (of at most 100 messages: short turns of the event loop keep a bounded shutdown bounded). */
export const QUEUE_PARTITIONS = 4;

/** Where the durable queue lives in the data directory. */
export const queueDir = (dataDir: string) => path.join(path.resolve(dataDir), 'queue');

/** --queue-max-bytes by default: half the free space of the data directory's disk now, at least 64 MiB. */
async function defaultQueueBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return Math.max(64 * 1024 * 1024, Math.floor((s.bavail * s.bsize) / 2));
}

/** Resolves true when `work` settles within `ms` (unbounded when not finite), false otherwise (work keeps running). */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  // setTimeout(Infinity) would fire after 1 ms: an unbounded stop (a failed start) would be cut short
  if (!Number.isFinite(ms)) return work.then(() => true);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms))));
  try {
    return await Promise.race([work.then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Where fleet start's OTLP receiver listens unless told otherwise: this machine only (it has no auth by default). */
export const DEFAULT_COLLECTOR_HOST = '127.0.0.1';

const mib = (bytes: number): string => `${Math.round(bytes / 1024 / 1024)} MiB`;

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
  /** When a bounded close() must be done (epoch ms). */
  let deadline = Infinity;
  /** Set when a bounded close() ran out of time draining: the rest is left for the process exit. */
  let outOfTime = false;
  const stopAll = async () => {
    for (const { what, stop } of stops.splice(0).reverse()) {
      if (outOfTime) break;
      try {
        await stop();
      } catch (err) {
        log(`stopping ${what}: ${(err as Error).message}`);
      }
    }
    return !outOfTime;
  };

  try {
    if (config.clickhouseUrl) log(`storing in ClickHouse at ${redacted(config.clickhouseUrl)} (FLEET_CLICKHOUSE_URL)`);
    const store = configuredStore(config);
    stops.push({ what: 'the store', stop: () => store.close() });
    const catalog = configuredCatalog(config);
    const { catalogChanged } = await prepareStore(store, config, catalog);
    if (catalogChanged) await offerReprice(store, catalog, config, log);

    const registry = new Registry();
    collectProcessMetrics(registry);
    // One memory budget bounds the collector's in-flight bytes, what the queue holds in memory and the consumers' buffers.
    const plan = memoryPlan(config);
    const queueBytes = config.queueBytes ?? plan.queueBytes;
    // With auth on, each tenant gets an equal share of what the queue holds in memory: a flooding tenant gets 429s, not the others.
    const tenants = config.authTokens ? new Set(Object.values(config.authTokens)).size : 0;
    const queueShares = tenants > 0 ? new QueueShares(queueBytes, tenants, heldBytes) : undefined;
    const dir = queueDir(config.dataDir);
    stops.push({ what: 'the queue lock', stop: lockQueue(dir) });
    const maxDiskBytes = config.queueMaxBytes ?? (await defaultQueueBytes(dir));
    const syncs = queueMetrics(registry);
    const bus = await MemoryBus.open({
      dir,
      topics: [config.topic],
      partitions: QUEUE_PARTITIONS,
      maxBytes: queueBytes,
      maxDiskBytes,
      maxBatchMessages: 100,
      log: (m) => log(m),
      onSync: syncs.observe,
      ...(queueShares && { meter: queueShares.meter }),
    });
    syncs.watch(bus);
    stops.push({ what: 'the durable queue', stop: () => bus.shutdown() });
    log(
      `memory budget ${mib(plan.budgetBytes)} (${config.memoryBudgetBytes ? '--memory-budget-bytes' : 'half the memory limit'}): ` +
        `in-flight ${mib(Math.max(config.maxInflightBytes ?? plan.inflightBytes, config.maxBodyBytes))}, queue in memory ${mib(queueBytes)}, consumers ${mib(plan.consumerBytes)}; new requests get 503 above RSS ${mib(plan.refuseAboveBytes)}`,
    );
    const backlog = (await bus.subscriber(config.topic).lag()).reduce((n, p) => n + p.lag, 0);
    log(`durable queue ${dir}: ${backlog} message(s) not yet in the store${backlog ? ' (replaying them now)' : ''}; bound ${maxDiskBytes} bytes on disk`);
    // The consumers (and the forwarder, which sends what they keep) run on a thread of their own.
    const consumers = await startConsumerThread({
      config,
      store,
      subscriber: bus.subscriber(config.topic),
      deadLetter: { publisher: deadLetterTable(store), topic: 'dead_letters' },
      forwardQueueDir: path.join(config.dataDir, 'forward'),
      registry,
      log,
    });
    // stopped before the queue and after the consumers (stops run in reverse), so it gets what their last decisions kept
    stops.push({ what: 'the forwarder and the consumer thread', stop: () => consumers.close(Math.min(FORWARD_DRAIN_MS, Math.max(0, deadline - Date.now()))) });
    stops.push({
      what: 'the consumers',
      stop: async () => {
        // The collector is closed by now: let the consumers take what it queued (two thirds of
        // the time left), then write and commit what they decided (the rest of it). Undecided
        // traces are decided early only when the queue is drained: with a backlog left, the next
        // start reads them whole again, and deciding thousands at once would hold the event loop.
        bus.close();
        const drained = await within(bus.idle(), ((deadline - Date.now()) * 2) / 3);
        const left = deadline - Date.now();
        const stopping = consumers.stop({ drain: drained, ...(Number.isFinite(left) && { timeoutMs: Math.max(1, Math.floor(left)) }) });
        if (!(await within(stopping, left))) {
          outOfTime = true;
          const lag = (await bus.subscriber(config.topic).lag()).reduce((n, p) => n + p.lag, 0);
          log(`shutdown timeout: ${lag} message(s) stay in the durable queue ${dir} and are written on the next start`);
        }
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
        ...(config.queryTokens && { tenantTokens: config.queryTokens }),
        ...(config.queryAllowedHosts && { allowedHosts: config.queryAllowedHosts }),
      });
      query = endpoint;
      stops.push({ what: 'the query endpoint', stop: () => endpoint.close() });
      const forget = announceOwner(store.dataDir, { queryUrl: endpoint.url, writeMode: endpoint.writeMode });
      stops.push({ what: 'the owner record', stop: forget });
    } else {
      log(`no query endpoint: the store is a ClickHouse server, query it directly (${redacted(store.location)})`);
    }

    const collector = await startCollector({
      ...collectorSettings(config, plan),
      host: config.collectorHost ?? DEFAULT_COLLECTOR_HOST,
      publisher: bus.publisher(),
      shutdownTimeoutMs: Math.ceil(config.shutdownTimeout * 1000),
      registry,
      ...(queueShares && { queueShares }),
    });
    // Stops accepting (503 + Retry-After) first and stops listening last: until the process
    // ends, a client hears "retry later", never "connection refused".
    stops.push({ what: 'the collector', stop: () => collector.stopAccepting() });
    stops.unshift({ what: 'the collector', stop: () => collector.close() });
    const stopAccepting = () => collector.stopAccepting();
    const rss = process.memoryUsage.rss();
    if (rss > plan.refuseAboveBytes) {
      log(`WARNING memory budget ${mib(plan.budgetBytes)} is too small: RSS is already ${mib(rss)} at start, above the ${mib(plan.refuseAboveBytes)} at which the collector answers 503; raise --memory-budget-bytes`);
    }

    if (config.rollupInterval > 0) {
      const rollups = startRollupRefresher(store, { intervalMs: config.rollupInterval * 1000, log });
      stops.push({ what: 'the rollup refresher', stop: () => rollups.stop() });
    }

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

    let closing: Promise<boolean> | undefined;
    const close = (timeoutMs?: number) => {
      if (timeoutMs !== undefined) deadline = Math.min(deadline, Date.now() + timeoutMs);
      return (closing ??= stopAccepting().then(stopAll));
    };
    return { collector, ...(query && { query }), bus, registry, close };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
