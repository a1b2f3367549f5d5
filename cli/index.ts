/**
 * The `fleet` command line. Settings come from config/settings.ts (flags,
 * FLEET_* environment, --config file); each command takes the ones it uses.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { Registry, collectDefaultMetrics } from 'prom-client';
import { z } from 'zod';
import { KafkaPublisher, KafkaSubscriber, ensureTopics } from '../bus/kafka.ts';
import { startCollector } from '../collector/index.ts';
import { ConsumerPipeline } from '../consumers/pipeline.ts';
import { startForwarder } from '../forward/start.ts';
import { startAllInOne } from '../embedded/all-in-one.ts';
import { findOwner } from '../embedded/owner.ts';
import { exitNow, startWatchdog } from '../embedded/shutdown.ts';
import { ConfigError, envName, flagName, resolveConfig, SETTINGS, type Config, type SettingKey } from '../config/settings.ts';
import { configuredCatalog, configuredStore, log, pipelineSettings, prepareStore } from '../config/runtime.ts';
import { buildCatalog, importLiteLlm } from '../pricing/index.ts';
import { WRITER_USER } from '../query/endpoint.ts';
import { openStore, type Store } from '../storage/store.ts';
import { DEMO_DEFAULTS, runDemo } from './demo.ts';
import { serveMetrics } from './metrics-server.ts';
import { formatUnpriced, unpricedCalls } from './prices-check.ts';
import { checkFilters, FORMATS, formatReport, queryReport, REPORTS, type Format, type ReportFilters, type ReportName } from './report.ts';

const STORE: SettingKey[] = ['dataDir', 'database', 'clickhouseUrl', 'clickhouseUser', 'clickhousePassword', 'clickhouseCluster', 'spansTtlDays', 'prices'];
const KAFKA: SettingKey[] = ['kafkaBrokers', 'topic', 'deadLetterTopic', 'topicPartitions'];
const COLLECTOR: SettingKey[] = ['collectorHost', 'collectorPort', 'maxBodyBytes', 'maxMessageBytes', 'authTokens'];
const CONSUMER: SettingKey[] = ['groupId', 'samplingPassRate', 'costOutlierUsd', 'durationOutlierMs', 'decisionWaitMs', 'traceTimeoutMs', 'metricsPort'];
const QUERY: SettingKey[] = ['queryHost', 'queryPort', 'queryToken', 'queryWriteToken'];
const FORWARD: SettingKey[] = ['forwardOtlp', 'forwardHeader', 'forwardProtocol', 'forwardCompression', 'forwardQueueBytes', 'forwardTenants'];

/** Adds `--flag <value>` for each setting, with its help and environment variable. */
function withSettings(cmd: Command, keys: SettingKey[]): Command {
  cmd.option('--config <file>', 'settings file, JSON or YAML (env FLEET_CONFIG)');
  for (const key of keys) {
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

const answers = (url: string): Promise<boolean> => fetch(`${url}/ping`, { signal: AbortSignal.timeout(1000) }).then((r) => r.ok, () => false);

/**
 * The store a report reads: FLEET_CLICKHOUSE_URL if set; else the query
 * endpoint of the `fleet start` that owns --data-dir (it holds chDB's lock,
 * whatever --query-port it runs on); else the endpoint at --query-host /
 * --query-port; else --data-dir directly.
 */
async function readerStore(c: Config): Promise<Store> {
  if (c.clickhouseUrl) return configuredStore(c);
  const reader = (url: string) => openStore({ url, database: c.database, ...(c.queryToken && { username: 'default', password: c.queryToken }) });
  const owner = findOwner(c.dataDir);
  if (owner && (await answers(owner.queryUrl))) return reader(owner.queryUrl);
  const url = `http://${c.queryHost === '0.0.0.0' ? '127.0.0.1' : c.queryHost}:${c.queryPort}`;
  if (await answers(url)) return reader(url);
  return configuredStore(c);
}

/**
 * The store a command that writes uses (`fleet alerts` writes the alerts
 * tables): FLEET_CLICKHOUSE_URL, or --data-dir — through the running
 * `fleet start`'s write mode when it owns the directory. `prepared` says
 * whether the owner already migrated it and loaded its own catalog.
 */
function writerStore(c: Config, command: string): { store: Store; prepared: boolean } {
  const owner = c.clickhouseUrl ? undefined : findOwner(c.dataDir);
  if (!owner) return { store: configuredStore(c), prepared: false };
  const where = `the embedded store ${c.dataDir} is open in the running fleet start (PID ${owner.pid}, query endpoint ${owner.queryUrl}) and chDB lets one process open it`;
  if (!owner.writeMode) {
    throw new ConfigError(
      `${command}: ${where}. Run alerting inside it (fleet start --alert-rules FILE), or restart it with --query-write-token TOKEN and give ${command} the same --query-write-token: it then writes through the query endpoint's write mode`,
    );
  }
  if (!c.queryWriteToken) throw new ConfigError(`${command}: ${where}; its write mode is on: give ${command} the same --query-write-token (FLEET_QUERY_WRITE_TOKEN) to write through it`);
  return { store: openStore({ url: owner.queryUrl, database: c.database, username: WRITER_USER, password: c.queryWriteToken }), prepared: true };
}

const program = new Command('fleet')
  .description('perpass: live, exact cost per passing result ($/pass) of LLM agent fleets')
  .showHelpAfterError()
  .configureHelp({ showGlobalOptions: true });

withSettings(
  program.command('start').description('run everything in one process: OTLP receiver :4318, durable queue in ./data/queue, consumers, embedded chDB in ./data, query endpoint :8123'),
  [...STORE, 'topic', ...COLLECTOR, ...CONSUMER.filter((k) => k !== 'groupId' && k !== 'metricsPort'), ...QUERY, 'queueMaxBytes', 'shutdownTimeout', 'alertRules', ...FORWARD],
).action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const running = await startAllInOne(c, log);
  const query = running.query ? `${running.query.url} (read-only${running.query.writeMode ? ', write mode on' : ''})` : 'on the ClickHouse server';
  log(`perpass running: OTLP/HTTP ${running.collector.tracesUrl} · query ${query} · metrics ${running.collector.url}/metrics · store ${running.query ? c.dataDir : 'ClickHouse server'}`);
  log('try: fleet demo   then: fleet report cost-per-pass');
  const timeoutMs = Math.ceil(c.shutdownTimeout * 1000);
  await untilSignal(async () => {
    // a little before the hard exit, so the log says what was left
    const complete = await running.close(Math.max(0, timeoutMs - 500));
    if (complete) log('stopped; everything accepted is written');
    return complete;
  }, timeoutMs);
});

withSettings(program.command('collector').description('run the OTLP/HTTP receiver publishing to Kafka'), [...KAFKA, ...COLLECTOR]).action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const brokers = requireKafka(c, 'fleet collector');
  await ensureTopics(brokers, [{ topic: c.topic, partitions: c.topicPartitions }, { topic: c.deadLetterTopic, partitions: 1 }]);
  const collector = await startCollector({
    // With the topic, /readyz also checks that it exists and every partition has a leader.
    publisher: new KafkaPublisher({ brokers, topic: c.topic }),
    port: c.collectorPort,
    topic: c.topic,
    maxBodyBytes: c.maxBodyBytes,
    maxMessageBytes: c.maxMessageBytes,
    ...(c.collectorHost && { host: c.collectorHost }),
    ...(c.authTokens && { authTokens: c.authTokens }),
  });
  log(`collector: ${collector.tracesUrl} → Kafka ${brokers.join(',')} topic ${c.topic}`);
  await untilSignal(collector.close);
});

withSettings(program.command('consumer').description('run one consumer-group member: Kafka → attempts, llm_calls, spans in ClickHouse'), [...STORE, ...KAFKA, ...CONSUMER, ...FORWARD]).action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const brokers = requireKafka(c, 'fleet consumer');
  await ensureTopics(brokers, [{ topic: c.topic, partitions: c.topicPartitions }, { topic: c.deadLetterTopic, partitions: 1 }]);
  const store = configuredStore(c);
  const catalog = configuredCatalog(c);
  await prepareStore(store, c, catalog);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const deadLetters = new KafkaPublisher({ brokers });
  const forward = await startForwarder(c, registry, log);
  const pipeline = new ConsumerPipeline({
    topic: c.topic,
    store,
    subscriber: new KafkaSubscriber({ brokers, groupId: c.groupId, topic: c.topic, onCrash: (e) => log(`kafka consumer restarted after: ${e.message}`) }),
    catalog,
    deadLetter: { publisher: deadLetters, topic: c.deadLetterTopic },
    registry,
    log: (m) => log(`consumer: ${m}`),
    ...pipelineSettings(c),
    ...(forward && { forward }),
  });
  await pipeline.start();
  const metrics = await serveMetrics(registry, c.metricsPort);
  log(`consumer: group ${c.groupId} on ${c.topic} → ${store.location}; metrics :${metrics.port}/metrics`);
  await untilSignal(async () => {
    await pipeline.stop();
    await forward?.close();
    await deadLetters.close();
    await metrics.close();
    await store.close();
    // decided attempts still inside their settle window stay uncommitted: the next member re-reads them, idempotently
    log('consumer: left the group; everything decided is written, and committed up to the attempts still settling');
  });
});

withSettings(program.command('migrate').description('apply the ClickHouse migrations and load the price catalog into `prices`'), STORE).action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const store = configuredStore(c);
  try {
    await prepareStore(store, c, configuredCatalog(c));
    log(`migrated ${store.location} database ${store.database}`);
  } finally {
    await store.close();
  }
});

const report = withSettings(program.command('report').description('print live $/pass, spec outcomes or the routing table'), [...STORE, 'queryHost', 'queryPort', 'queryToken'])
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
  const store = await readerStore(config(cmd));
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
  prices.command('check').description('validate the catalog (--prices, else the shipped one) and price every LLM call seen in traffic with it: lists what it leaves unpriced, exits 1 if anything'),
  [...STORE, 'queryHost', 'queryPort', 'queryToken'],
).action(async (_o, cmd: Command) => {
  const c = config(cmd);
  const catalog = configuredCatalog(c);
  const name = c.prices ? `catalog ${c.prices}` : 'the shipped catalog';
  log(`${name}: ${catalog.cards.length} cards, valid`);
  const store = await readerStore(c);
  try {
    const unpriced = await unpricedCalls(store, catalog);
    if (unpriced.length === 0) {
      process.stdout.write(`every LLM call seen has a price in force in ${name}\n`);
      return;
    }
    process.stdout.write(formatUnpriced(unpriced, name));
    process.exitCode = 1;
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
  ['dataDir', 'database', 'queryHost', 'queryPort', 'queryToken'],
).action(async (o: { endpoint: string; specs: number; seed: number; token?: string }, cmd: Command) => {
  const c = config(cmd);
  await runDemo({ endpoint: o.endpoint, specsPerCell: o.specs, seed: o.seed, ...(o.token && { token: o.token }), openReader: () => readerStore(c) });
});

withSettings(
  program
    .command('alerts')
    .description('evaluate the alert rules on an interval (or once, with `check`, for cron/CI: exits 1 while anything fires)')
    .argument('[mode]', 'check = evaluate once, print, exit', (v: string) => {
      if (v !== 'check') throw new InvalidArgumentError('the only mode is check');
      return v;
    }),
  [...STORE, 'alertRules', 'metricsPort', 'kafkaBrokers', 'queryWriteToken'],
).action(async (mode: string | undefined, _o, cmd: Command) => {
  const c = config(cmd);
  const { checkAlerts, defaultAlertRules, formatDuration, loadAlertRules, startAlerts } = await import('../alerting/index.ts');
  const rules = c.alertRules ? loadAlertRules(c.alertRules) : defaultAlertRules();
  const { store, prepared } = writerStore(c, mode === 'check' ? 'fleet alerts check' : 'fleet alerts');
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
  collectDefaultMetrics({ register: registry });
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
