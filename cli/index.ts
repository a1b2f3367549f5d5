/**
 * The `fleet` command line. Settings come from config/settings.ts (flags,
 * FLEET_* environment, --config file); each command takes the ones it uses.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Registry } from 'prom-client';
import { z } from 'zod';
import { KafkaPublisher, KafkaSubscriber, ensureTopics } from '../bus/kafka.ts';
import { startCollector } from '../collector/index.ts';
import { collectProcessMetrics } from '../collector/metrics.ts';
import { startAllInOne } from '../embedded/all-in-one.ts';
import { findOwner } from '../embedded/owner.ts';
import { exitNow, startWatchdog } from '../embedded/shutdown.ts';
import { ConfigError, envName, FILE_SETTINGS, flagName, resolveConfig, SETTINGS, type Config, type SettingKey } from '../config/settings.ts';
import { collectorSettings, configuredCatalog, configuredStore, hasStore, log, memoryPlan, prepareStore } from '../config/runtime.ts';
import { startRollupRefresher } from '../storage/rollups.ts';
import { FORWARD_DRAIN_MS, startConsumerThread } from '../threads/consumer-thread.ts';
import { applyAccess } from '../sql/access.ts';
import { buildCatalog, importLiteLlm } from '../pricing/index.ts';
import { WRITER_USER } from '../query/endpoint.ts';
import { loadedCatalog } from '../storage/prices.ts';
import { openStore, type Store } from '../storage/store.ts';
import { migrate } from '../sql/migrate.ts';
import { startConsoleServer } from '../console/server.ts';
import { DEMO_DEFAULTS, runDemo } from './demo.ts';
import { serveMetrics } from './metrics-server.ts';
import { formatInferred, formatUnpriced, unpricedCalls } from './prices-check.ts';
import { formatRepriceSummary, repriceWithProgress } from './reprice.ts';
import { checkFilters, FORMATS, formatReport, parseWhen, queryReport, REPORTS, type Format, type ReportFilters, type ReportName } from './report.ts';

const STORE: SettingKey[] = ['dataDir', 'database', 'clickhouseUrl', 'clickhouseUser', 'clickhousePassword', 'clickhouseCluster', 'spansTtlDays', 'prices'];
const KAFKA: SettingKey[] = ['kafkaBrokers', 'topic', 'deadLetterTopic', 'topicPartitions', 'kafkaCompression'];
const COLLECTOR: SettingKey[] = [
  'collectorHost',
  'collectorPort',
  'grpcPort',
  'maxBodyBytes',
  'maxMessageBytes',
  'authTokens',
  'maxConnections',
  'maxSpansPerRequest',
  'headersTimeoutMs',
  'bodyTimeoutMs',
  'minBodyBytesPerSecond',
  'keepAliveTimeoutMs',
  'maxInflightBytes',
  'maxTenantInflightBytes',
  'memoryBudgetBytes',
];
const CONSUMER: SettingKey[] = ['groupId', 'samplingPassRate', 'costOutlierUsd', 'durationOutlierMs', 'decisionWaitMs', 'traceTimeoutMs', 'rollupInterval', 'metricsPort', 'memoryBudgetBytes'];
const QUERY: SettingKey[] = ['queryHost', 'queryPort', 'queryToken', 'queryWriteToken', 'queryTokens', 'queryAllowedHosts'];
const FORWARD: SettingKey[] = ['forwardOtlp', 'forwardHeader', 'forwardProtocol', 'forwardCompression', 'forwardQueueBytes', 'forwardTenants'];

/** Adds `--flag <value>` for each setting, with its help and environment variable. */
function withSettings(cmd: Command, keys: SettingKey[]): Command {
  cmd.option('--config <file>', 'settings file, JSON or YAML (env FLEET_CONFIG)');
  // A secret's file variant (--query-token-file, …) goes with it.
  const withFiles = keys.flatMap((k) => [k, ...Object.entries(FILE_SETTINGS).filter(([, of]) => of === k).map(([f]) => f as SettingKey)]);
  for (const key of withFiles) {
    const option = new Option(`--${flagName(key)} <value>`, `${SETTINGS[key].help} (env ${envName(key)})`);
    // a repeatable flag collects its values; the setting's schema reads the list
    if ('repeatable' in SETTINGS[key]) option.argParser((v: string, previous: string[] | undefined) => [...(previous ?? []), v]);
    cmd.addOption(option);
  }
  return cmd;
}

const config = (cmd: Command): Config => resolveConfig(cmd.opts());

function requireKafka(c: Config, what: string): string[] {
  if (!c.kafkaBrokers?.length) throw new ConfigError(`${what} needs Kafka: set --kafka-brokers or FLEET_KAFKA_BROKERS (host:port,…); for one process without Kafka run fleet start`);
  return c.kafkaBrokers;
}

/**
 * Runs until SIGINT/SIGTERM, then `stop`, then exits (a second signal exits
 * at once). Exiting explicitly: once stop has written and committed
 * everything, a client library's leftover reconnect timers (kafkajs keeps
 * some after a broker outage) must not keep the process alive. With
 * `timeoutMs` (fleet start), the process ends by then whatever stop is
 * doing, and a second signal ends it without exit handlers: what is not
 * written yet is in its durable queue.
 */
function untilSignal(stop: () => Promise<boolean | void>, timeoutMs?: number): Promise<never> {
  return new Promise((_resolve, reject) => {
    const onSignal = (signal: NodeJS.Signals) => {
      log(`${signal}: shutting down${timeoutMs === undefined ? '' : ` within ${timeoutMs / 1000} s`} (send again to exit at once)`);
      const again = (code: number, s: 'SIGINT' | 'SIGTERM') => () => (timeoutMs === undefined ? process.exit(code) : exitNow(s));
      process.once('SIGINT', again(130, 'SIGINT'));
      process.once('SIGTERM', again(143, 'SIGTERM'));
      if (timeoutMs !== undefined) {
        setTimeout(() => {
          log(`shutdown timeout (${timeoutMs / 1000} s) reached: exiting`);
          exitNow('SIGTERM');
        }, Math.max(0, timeoutMs - 200)).unref();
        // the timer above needs a free event loop; this one does not
        startWatchdog(timeoutMs);
      }
      stop().then((complete) => (complete === false ? exitNow('SIGTERM') : process.exit(0)), reject);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
}

const CATALOG_CHANGED = 'the price catalog differs from the one loaded before: LLM calls already stored keep the prices they were given; re-price them with fleet prices reprice';

const answers = (url: string): Promise<boolean> => fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);

const endpointUrl = (c: Config) => `http://${c.queryHost === '0.0.0.0' ? '127.0.0.1' : c.queryHost}:${c.queryPort}`;

/**
 * The running `fleet start` a command reaches: --query-url when given (it
 * must answer); else the one that owns --data-dir (it holds chDB's lock,
 * whatever --query-port it runs on); else (`byPort`) the endpoint at
 * --query-host / --query-port. Undefined when none answers.
 */
async function runningInstance(c: Config, command: string, { byPort = true } = {}): Promise<{ url: string; writeMode?: boolean; pid?: number } | undefined> {
  if (c.queryUrl) {
    if (await answers(c.queryUrl)) return { url: c.queryUrl };
    throw new ConfigError(`${command}: no perpass query endpoint answers at ${c.queryUrl} (--query-url / FLEET_QUERY_URL)`);
  }
  const owner = findOwner(c.dataDir);
  if (owner && (await answers(owner.queryUrl))) return { url: owner.queryUrl, writeMode: owner.writeMode, pid: owner.pid };
  if (!byPort) return undefined;
  const url = endpointUrl(c);
  return (await answers(url)) ? { url } : undefined;
}

/**
 * The embedded store in --data-dir, opened directly: only when it exists.
 * A read command never creates one (chDB would make an empty store wherever
 * it is pointed, and the command would then fail on a missing view).
 */
function existingStore(c: Config, command: string): Store {
  if (!hasStore(c.dataDir, c.database)) {
    throw new ConfigError(
      `${command}: no running fleet start found (none owns ${path.resolve(c.dataDir)}, nothing answers at ${endpointUrl(c)}) and ${path.resolve(c.dataDir)} holds no perpass store (database ${c.database}). ` +
        'Give the running one\'s --query-port or --query-url, or the --data-dir it was started with',
    );
  }
  return configuredStore(c);
}

/** The store a read command uses: FLEET_CLICKHOUSE_URL, else the running fleet start's query endpoint, else an existing --data-dir. */
async function readerStore(c: Config, command: string): Promise<Store> {
  if (c.clickhouseUrl) return configuredStore(c);
  const running = await runningInstance(c, command);
  if (running) return openStore({ url: running.url, database: c.database, ...(c.queryToken && { username: 'default', password: c.queryToken }) });
  return existingStore(c, command);
}

/**
 * The store a command that writes uses (`fleet alerts` writes the alerts
 * tables, `fleet prices reprice` llm_calls and attempts): FLEET_CLICKHOUSE_URL,
 * or the running fleet start through its query endpoint's write mode, or
 * --data-dir. `prepared` says whether the owner already migrated it and
 * loaded its own catalog.
 */
async function writerStore(c: Config, command: string, { create }: { create: boolean }): Promise<{ store: Store; prepared: boolean }> {
  if (c.clickhouseUrl) return { store: configuredStore(c), prepared: false };
  // A store in --data-dir that no process holds is written directly, whatever else answers on --query-port.
  if (!c.queryUrl && hasStore(c.dataDir, c.database) && !findOwner(c.dataDir)) return { store: configuredStore(c), prepared: false };
  // A command that may create its store (alerts) does not write into whatever answers on the default port.
  const running = await runningInstance(c, command, { byPort: !create });
  if (!running) return { store: create ? configuredStore(c) : existingStore(c, command), prepared: false };
  const where = running.pid
    ? `the embedded store ${path.resolve(c.dataDir)} is open in the running fleet start (PID ${running.pid}, query endpoint ${running.url}) and chDB lets one process open it`
    : `the running fleet start at ${running.url} holds its store and chDB lets one process open it`;
  if (running.writeMode === false) {
    throw new ConfigError(
      `${command}: ${where}. Run it inside that process (fleet start --alert-rules FILE, --reprice-on-start), or restart it with --query-write-token TOKEN and give ${command} the same --query-write-token: it then writes through the query endpoint's write mode`,
    );
  }
  if (!c.queryWriteToken) throw new ConfigError(`${command}: ${where}; give ${command} the same --query-write-token (FLEET_QUERY_WRITE_TOKEN) it runs with to write through its query endpoint`);
  return { store: openStore({ url: running.url, database: c.database, username: WRITER_USER, password: c.queryWriteToken }), prepared: true };
}

const program = new Command('fleet')
  .description('perpass: live, exact cost per passing result ($/pass) of LLM agent fleets')
  .showHelpAfterError()
  .configureHelp({ showGlobalOptions: true });

withSettings(
  program.command('start').description('run everything in one process: OTLP receivers :4318 (HTTP) and :4317 (gRPC), durable queue in ./data/queue, consumers, embedded chDB in ./data, query endpoint :8123'),
  [...STORE, 'topic', ...COLLECTOR, ...CONSUMER.filter((k) => k !== 'groupId' && k !== 'metricsPort' && k !== 'memoryBudgetBytes'), ...QUERY, 'queueBytes', 'queueMaxBytes', 'shutdownTimeout', 'alertRules', ...FORWARD],
)
  .option('--reprice-on-start', `${SETTINGS.repriceOnStart.help} (env ${envName('repriceOnStart')})`)
  .action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const timeoutMs = Math.ceil(c.shutdownTimeout * 1000);
  const starting = startAllInOne(c, log);
  // Signals are ours from the first moment (a SIGTERM during start-up, e.g. while a backlog
  // replays, is a bounded shutdown too, not the default action).
  const stopped = untilSignal(async () => {
    const running = await starting;
    // a little before the hard exit, so the log says what was left
    const complete = await running.close(Math.max(0, timeoutMs - 500));
    if (complete) log('stopped; everything accepted is written');
    return complete;
  }, timeoutMs);
  stopped.catch(() => {}); // a failed start is reported below, by `await starting`
  const running = await starting;
  const query = running.query ? `${running.query.url} (read-only${running.query.writeMode ? ', write mode on' : ''})` : 'on the ClickHouse server';
  log(`perpass running: OTLP/HTTP ${running.collector.tracesUrl} · query ${query} · metrics ${running.collector.url}/metrics · store ${running.query ? c.dataDir : 'ClickHouse server'} · OTLP/gRPC port ${running.collector.grpcPort}`);
  if (running.query) log(`console: ${running.query.url}/console (same tokens as the query endpoint)`);
  log('try: fleet demo   then: fleet report cost-per-pass');
  await stopped;
});

withSettings(program.command('collector').description('run the OTLP/HTTP (:4318) and OTLP/gRPC (:4317) receivers publishing to Kafka'), [...KAFKA, ...COLLECTOR]).action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const brokers = requireKafka(c, 'fleet collector');
  await ensureTopics(brokers, [{ topic: c.topic, partitions: c.topicPartitions }, { topic: c.deadLetterTopic, partitions: 1 }]);
  if (!c.authTokens) {
    log(
      `WARNING collector: no auth configured (--auth-tokens / FLEET_AUTH_TOKENS): anyone who reaches ${c.collectorHost ?? 'every interface'}:${c.collectorPort} can write spans into every tenant; set tokens, or bind it to a private interface (--collector-host)`,
    );
  }
  const collector = await startCollector({
    ...collectorSettings(c, memoryPlan(c)),
    // With the topic, /readyz also checks that it exists and every partition has a leader.
    publisher: new KafkaPublisher({ brokers, topic: c.topic, compression: c.kafkaCompression }),
  });
  log(`collector: ${collector.tracesUrl} → Kafka ${brokers.join(',')} topic ${c.topic}; OTLP/gRPC port ${collector.grpcPort}`);
  await untilSignal(collector.close);
});

withSettings(program.command('consumer').description('run one consumer-group member: Kafka → attempts, llm_calls, spans in ClickHouse'), [...STORE, ...KAFKA, ...CONSUMER, ...FORWARD]).action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const brokers = requireKafka(c, 'fleet consumer');
  await ensureTopics(brokers, [{ topic: c.topic, partitions: c.topicPartitions }, { topic: c.deadLetterTopic, partitions: 1 }]);
  const store = configuredStore(c);
  const catalog = configuredCatalog(c);
  const { catalogChanged } = await prepareStore(store, c, catalog);
  if (catalogChanged) log(CATALOG_CHANGED);
  const registry = new Registry();
  collectProcessMetrics(registry);
  const deadLetters = new KafkaPublisher({ brokers, compression: c.kafkaCompression });
  // the pipeline and the forwarder on a thread of their own: this one keeps answering /metrics and heartbeating the group
  const consumers = await startConsumerThread({
    config: c,
    store,
    subscriber: new KafkaSubscriber({ brokers, groupId: c.groupId, topic: c.topic, onCrash: (e) => log(`kafka consumer restarted after: ${e.message}`) }),
    deadLetter: { publisher: deadLetters, topic: c.deadLetterTopic },
    registry,
    log,
  });
  const metrics = await serveMetrics(registry, c.metricsPort);
  const rollups = c.rollupInterval > 0 ? startRollupRefresher(store, { intervalMs: c.rollupInterval * 1000, log }) : undefined;
  log(`consumer: group ${c.groupId} on ${c.topic} → ${store.location}; metrics :${metrics.port}/metrics`);
  await untilSignal(async () => {
    await rollups?.stop();
    await consumers.stop({});
    await consumers.close(FORWARD_DRAIN_MS);
    await deadLetters.close();
    await metrics.close();
    await store.close();
    // decided attempts still inside their settle window stay uncommitted: the next member re-reads them, idempotently
    log('consumer: left the group; everything decided is written, and committed up to the attempts still settling');
  });
});

withSettings(program.command('migrate').description('apply the ClickHouse migrations and load the price catalog into `prices`'), [...STORE, 'readerTenants']).action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const store = configuredStore(c);
  try {
    const { catalogChanged } = await prepareStore(store, c, configuredCatalog(c));
    log(`migrated ${store.location} database ${store.database}`);
    if (catalogChanged) log(CATALOG_CHANGED);
    if (c.readerTenants?.length) {
      const statements = await applyAccess(store, { tenants: c.readerTenants, ...(c.clickhouseCluster && { cluster: c.clickhouseCluster }) });
      log(`access: role perpass_reader and row policies for ${c.readerTenants.join(', ')} (${statements.length} statements; see docs/operations.md)`);
    }
  } finally {
    await store.close();
  }
});

const report = withSettings(program.command('report').description('print live $/pass, spec outcomes or the routing table'), [...STORE, 'queryHost', 'queryPort', 'queryUrl', 'queryToken'])
  .argument('<report>', REPORTS.join(' | '), (v: string) => {
    if (!(REPORTS as readonly string[]).includes(v)) throw new InvalidArgumentError(`must be one of ${REPORTS.join(', ')}`);
    return v;
  })
  .option('--since <when>', 'window start: ISO date/time or 7d, 12h, 30m', '30d')
  .option('--until <when>', 'window end (default: now and later)')
  .option('--tenant <tenant>')
  .option('--tier <tier>')
  .option('--model <model>')
  .option('--canary <canary>')
  .option('--variant <variant>')
  .option('--min-pass-rate <rate>', 'routing: bar on the Wilson lower bound of the pass rate', (v) => probability(v), 0.8)
  .option('--z <z>', 'routing: z of the Wilson bound (0 = point estimate)', (v) => nonNegative(v), 1.959963984540054)
  .addOption(new Option('--format <format>', 'output').choices(FORMATS).default('table'));
report.action(async (name: ReportName, o: Record<string, unknown>, cmd: Command) => {
  const filters: ReportFilters = {
    since: o.since as string,
    ...(o.until !== undefined && { until: o.until as string }),
    ...Object.fromEntries(['tenant', 'tier', 'model', 'canary', 'variant'].filter((k) => o[k] !== undefined).map((k) => [k, o[k]])),
    minPassRate: o.minPassRate as number,
    z: o.z as number,
  };
  checkFilters(name, filters); // before opening a store
  const store = await readerStore(config(cmd), `fleet report ${name}`);
  try {
    const rows = await queryReport(store, name, filters);
    process.stdout.write(formatReport(name, rows, o.format as Format));
  } finally {
    await store.close();
  }
});

function probability(v: string): number {
  const n = Number(v);
  if (!(n >= 0 && n <= 1)) throw new InvalidArgumentError('must be a number from 0 to 1');
  return n;
}
function nonNegative(v: string): number {
  const n = Number(v);
  if (!(n >= 0)) throw new InvalidArgumentError('must be a number ≥ 0');
  return n;
}

const prices = program.command('prices').description('the price catalog');
withSettings(
  prices
    .command('check')
    .description(
      'price every LLM call seen in traffic with the catalog the store loaded (the running fleet start\'s), or with --prices FILE (validated first): lists what it leaves unpriced, exits 1 if anything',
    ),
  [...STORE, 'queryHost', 'queryPort', 'queryUrl', 'queryToken'],
).action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const file = c.prices ? configuredCatalog(c) : undefined; // a bad file fails before any store is looked for
  if (file) log(`catalog ${c.prices}: ${file.cards.length} cards, valid`);
  const store = await readerStore(c, 'fleet prices check');
  try {
    const catalog = file ?? (await loadedCatalog(store));
    const name = c.prices ? `catalog ${c.prices}` : `the catalog loaded in ${store.location} (${catalog.cards.length} cards)`;
    const check = await unpricedCalls(store, catalog);
    if (check.inferred.length) process.stdout.write(formatInferred(check.inferred));
    if (check.unpriced.length === 0) {
      process.stdout.write(`every LLM call seen has a price in force in ${name}\n`);
      return;
    }
    process.stdout.write(formatUnpriced(check.unpriced, name));
    process.exitCode = 1;
  } finally {
    await store.close();
  }
});

withSettings(
  prices
    .command('reprice')
    .description(
      'price the stored LLM calls again with the catalog the store loaded (or --prices FILE) and write the calls and attempts whose cost changes as new row versions: exact, idempotent',
    )
    .option('--since <when>', 'only calls started since: ISO date/time or 30d, 12h (default: all)'),
  [...STORE, 'queryHost', 'queryPort', 'queryUrl', 'queryWriteToken'],
).action(async (o: { since?: string }, cmd: Command) => {
  const c = config(cmd);
  const since = o.since === undefined ? undefined : parseWhen(o.since);
  const file = c.prices ? configuredCatalog(c) : undefined;
  const { store, prepared } = await writerStore(c, 'fleet prices reprice', { create: false });
  try {
    if (!prepared) await migrate(store, { spansTtlDays: c.spansTtlDays, ...(c.clickhouseCluster && { cluster: c.clickhouseCluster }) });
    const catalog = file ?? (await loadedCatalog(store));
    log(`re-pricing the LLM calls${since ? ` started since ${since}` : ''} in ${store.location} with ${c.prices ? `catalog ${c.prices}` : 'the catalog it loaded'} (${catalog.cards.length} cards)`);
    const summary = await repriceWithProgress(store, catalog, since);
    process.stdout.write(formatRepriceSummary(summary));
  } finally {
    await store.close();
  }
});

prices
  .command('import-litellm')
  .description("convert LiteLLM's model_prices_and_context_window.json into a perpass catalog")
  .argument('<file>', 'LiteLLM price file')
  .requiredOption('--from <date>', 'date the imported prices take effect (UTC, YYYY-MM-DD)', (v: string) => effectiveDate(v))
  .option('--provider <names...>', 'keep only these providers')
  .option('--out <file>', 'write the catalog here (default: stdout)')
  .action((file: string, o: { from: string; provider?: string[]; out?: string }) => {
    const { catalog, skipped } = importLiteLlm(JSON.parse(readFileSync(file, 'utf8')), {
      from: o.from,
      source: `LiteLLM ${file}, effective ${o.from}`,
      ...(o.provider && { providers: o.provider }),
    });
    buildCatalog(catalog, 'imported catalog'); // validates before anything is written
    const text = `${JSON.stringify(catalog, null, 2)}\n`;
    if (o.out) writeFileSync(o.out, text);
    else process.stdout.write(text);
    log(`imported ${catalog.cards.length} cards, skipped ${skipped.length} entries${skipped.length ? ` (e.g. ${skipped.slice(0, 3).map((s) => `${s.name}: ${s.reason}`).join('; ')})` : ''}`);
  });

const EFFECTIVE_DATE = z.union([z.iso.date(), z.iso.datetime({ offset: true })]);
function effectiveDate(v: string): string {
  if (!EFFECTIVE_DATE.safeParse(v).success) throw new InvalidArgumentError('must be a UTC date YYYY-MM-DD (or an ISO instant with offset, e.g. 2026-11-01T00:00:00Z)');
  return v;
}

withSettings(
  program
    .command('demo')
    .description('send the seed canary fleet through the real OTLP exporter to a running collector, then print the $/pass table')
    .option('--endpoint <url>', 'collector base URL', 'http://localhost:4318')
    .option('--specs <n>', 'specs per model × tier cell', (v) => positiveInt(v), DEMO_DEFAULTS.specsPerCell)
    .option('--seed <n>', 'seed of the traffic plan', (v) => positiveInt(v), DEMO_DEFAULTS.seed)
    .option('--token <token>', 'bearer token of the collector, when auth is on'),
  ['dataDir', 'database', 'queryHost', 'queryPort', 'queryUrl', 'queryToken'],
).action(async (o: { endpoint: string; specs: number; seed: number; token?: string }, cmd: Command) => {
  const c = config(cmd);
  await runDemo({ endpoint: o.endpoint, specsPerCell: o.specs, seed: o.seed, ...(o.token && { token: o.token }), openReader: () => readerStore(c, 'fleet demo') });
});

withSettings(
  program
    .command('alerts')
    .description('evaluate the alert rules on an interval (or once, with `check`, for cron/CI: exits 1 while anything fires)')
    .argument('[mode]', 'check = evaluate once, print, exit', (v: string) => {
      if (v !== 'check') throw new InvalidArgumentError('the only mode is check');
      return v;
    }),
  [...STORE, 'alertRules', 'metricsPort', 'kafkaBrokers', 'queryHost', 'queryPort', 'queryUrl', 'queryWriteToken'],
).action(async (mode: string | undefined, _o, cmd: Command) => {
  const c = config(cmd);
  const { checkAlerts, defaultAlertRules, formatDuration, loadAlertRules, startAlerts } = await import('../alerting/index.ts');
  const rules = c.alertRules ? loadAlertRules(c.alertRules) : defaultAlertRules();
  const { store, prepared } = await writerStore(c, mode === 'check' ? 'fleet alerts check' : 'fleet alerts', { create: true });
  if (!prepared) await prepareStore(store, c, configuredCatalog(c));
  const publisher = c.kafkaBrokers?.length ? new KafkaPublisher({ brokers: c.kafkaBrokers }) : undefined;
  const options = { store, rules, log, ...(publisher && { publisher }) };
  if (mode === 'check') {
    try {
      const result = await checkAlerts(options);
      for (const e of result.errors) log(`alerts: rule ${e.rule} failed: ${e.error}`);
      process.stdout.write(`${result.firing.length} firing, ${result.fired.length} newly fired, ${result.resolved.length} resolved\n`);
      for (const a of result.firing) process.stdout.write(`  FIRING ${a.rule} ${JSON.stringify(a.labels)}: ${a.summary}\n`);
      process.exitCode = result.firing.length > 0 || result.errors.length > 0 ? 1 : 0;
    } finally {
      await publisher?.close();
      await store.close();
    }
    return;
  }
  const registry = new Registry();
  collectProcessMetrics(registry);
  const service = await startAlerts({ ...options, registry });
  const metrics = await serveMetrics(registry, c.metricsPort);
  log(`alerts: evaluating every ${formatDuration(rules.evaluationInterval)} against ${store.location}; metrics :${metrics.port}/metrics`);
  await untilSignal(async () => {
    await service.stop();
    await publisher?.close();
    await metrics.close();
    await store.close();
  });
});

withSettings(
  program
    .command('console')
    .description("serve the web console against a ClickHouse server (fleet start serves it at its query endpoint's /console)")
    .option('--console-host <host>', 'interface the console listens on', '127.0.0.1')
    .option('--console-port <port>', 'port of the console (0: any free port)', (v) => port(v), 8124),
  ['clickhouseUrl'],
).action(async (o: { consoleHost: string; consolePort: number }, cmd: Command) => {
  const c = config(cmd);
  if (!c.clickhouseUrl) throw new ConfigError('fleet console: give --clickhouse-url (FLEET_CLICKHOUSE_URL): the ClickHouse server whose perpass database the console reads');
  const running = await startConsoleServer({ clickhouseUrl: c.clickhouseUrl, host: o.consoleHost, port: o.consolePort });
  log(`console: ${running.url} → ${new URL(c.clickhouseUrl).origin} (sign in as a ClickHouse user with the perpass_reader or a perpass_tenant_* role)`);
  await untilSignal(running.close);
});

function port(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('must be a port, 0-65535');
  return n;
}

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be a positive integer');
  return n;
}

try {
  await program.parseAsync();
} catch (err) {
  process.stderr.write(`fleet: ${(err as Error).message}\n`);
  process.exitCode = 1;
}
