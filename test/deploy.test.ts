/**
 * The production topology, checked statically (Docker does not run here):
 * docker-compose.yml, the Dockerfile and .dockerignore, and every file under
 * deploy/ they mount — parsed and cross-checked against each other and
 * against the code (settings, alert rules schema, metrics ports, the
 * runtime's import graph).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadAlertRules } from '../alerting/config.ts';
import { envName, resolveConfig, SETTINGS } from '../config/settings.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

interface Healthcheck {
  test: string[] | string;
}
interface Service {
  image?: string;
  build?: string | { context: string; dockerfile?: string };
  command?: string[] | string;
  entrypoint?: string[] | string;
  environment?: Record<string, string | number | null>;
  ports?: string[];
  expose?: string[];
  volumes?: string[];
  depends_on?: Record<string, { condition: string }> | string[];
  healthcheck?: Healthcheck;
  restart?: string;
  profiles?: string[];
  deploy?: { replicas?: number };
}

const composeText = read('docker-compose.yml');
const compose = parseYaml(composeText, { merge: true }) as { services: Record<string, Service>; volumes: Record<string, unknown>; 'x-perpass-env': Record<string, string> };
const services = compose.services;
const KNOWN_ENV = new Set(Object.keys(SETTINGS).map(envName));

/** `${NAME:-default}` → default (what `docker compose` substitutes with nothing set), `$$` → `$`. */
const interpolate = (value: string): string =>
  value.replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_, _name: string, fallback?: string) => fallback ?? '').replace(/\$\$/g, '$');

const perpassEnv = compose['x-perpass-env'];
const setting = (name: string): string => {
  const v = perpassEnv[name];
  if (v === undefined) throw new Error(`${name} is not in x-perpass-env`);
  return interpolate(String(v));
};
const isPerpass = (s: Service) => s.image?.startsWith('perpass:') === true;
const isOneShot = (s: Service) => s.restart === 'no';
const commandOf = (s: Service) => (Array.isArray(s.command) ? s.command.join(' ') : (s.command ?? ''));
const portNumber = (entry: string) => Number(entry.split(':').at(-1)!.split('/')[0]);

describe('docker-compose.yml', () => {
  it('runs the whole topology: Kafka, topics, ClickHouse, migrate, collectors behind one port, two consumers, alerts, Prometheus, Grafana', () => {
    expect(Object.keys(services).sort()).toEqual(
      ['alerts', 'clickhouse', 'collector', 'consumer-1', 'consumer-2', 'demo', 'grafana', 'kafka', 'kafka-init', 'migrate', 'otlp-gateway', 'prometheus'].sort(),
    );
    expect(services.kafka!.image).toMatch(/^apache\/kafka:4\.\d+\.\d+$/);
    expect(services.kafka!.environment!.KAFKA_PROCESS_ROLES).toBe('broker,controller'); // KRaft, no ZooKeeper
    expect(services.kafka!.environment!.KAFKA_AUTO_CREATE_TOPICS_ENABLE).toBe('false');
    expect(services.clickhouse!.image).toMatch(/^clickhouse\/clickhouse-server:\d+\.\d+$/);
    expect(services.grafana!.image).toMatch(/^grafana\/grafana:\d+\.\d+\.\d+$/);
    expect(String(services.grafana!.environment!.GF_PLUGINS_PREINSTALL_SYNC)).toContain('grafana-clickhouse-datasource');
    const run = (name: string) => commandOf(services[name]!);
    expect(run('migrate')).toBe('migrate');
    expect(run('collector')).toBe('collector');
    expect(services.collector!.deploy?.replicas).toBe(2);
    expect(run('consumer-1')).toBe('consumer');
    expect(run('consumer-2')).toBe('consumer');
    expect(run('alerts')).toBe('alerts');
    expect(run('demo')).toMatch(/^demo --endpoint http:\/\/otlp-gateway:\d+$/);
    expect(services.demo!.profiles).toEqual(['demo']); // not started by `up`
  });

  it('gives every service an image or a build, and builds perpass from the Dockerfile here', () => {
    for (const [name, s] of Object.entries(services)) {
      expect(s.image ?? s.build, name).toBeTruthy();
      if (s.build) {
        const b = typeof s.build === 'string' ? { context: s.build } : s.build;
        expect(existsSync(path.join(ROOT, b.context, b.dockerfile ?? 'Dockerfile')), name).toBe(true);
      }
      if (isPerpass(s)) expect(s.build, `${name} builds the image it runs`).toBeDefined();
    }
    // external images are pinned
    for (const [name, s] of Object.entries(services)) if (!isPerpass(s)) expect(s.image, name).toMatch(/:[\w.-]*\d[\w.-]*$/);
  });

  it('publishes one port per entry point, and each service exposes what it listens on', () => {
    const published = Object.entries(services).flatMap(([name, s]) => (s.ports ?? []).map((p) => ({ name, host: p.split(':').slice(0, -1).join(':'), container: portNumber(p) })));
    const hostPorts = published.map((p) => Number(p.host.split(':').at(-1)));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    expect(published.map((p) => `${p.name}:${p.container}`).sort()).toEqual(['clickhouse:8123', 'grafana:3000', 'otlp-gateway:4317', 'otlp-gateway:4318', 'prometheus:9090'].sort());
    // admin interfaces stay on the host's loopback
    for (const p of published.filter((x) => x.name === 'clickhouse' || x.name === 'prometheus')) expect(p.host.startsWith('127.0.0.1:'), p.name).toBe(true);
    // replicas cannot share a host port: collectors are reached through the gateway
    expect(services.collector!.ports).toBeUndefined();
    expect(services.collector!.expose).toEqual([setting('FLEET_COLLECTOR_PORT'), setting('FLEET_GRPC_PORT')]);
    for (const name of ['consumer-1', 'consumer-2', 'alerts']) expect(services[name]!.expose, name).toEqual([setting('FLEET_METRICS_PORT')]);
    expect(services.kafka!.expose).toContain(setting('FLEET_KAFKA_BROKERS').split(':')[1]);
    expect(services.clickhouse!.expose).toContain(new URL(setting('FLEET_CLICKHOUSE_URL')).port);
    // the gateway listens on the port it publishes and forwards to the collectors' port
    const nginx = read('deploy/nginx/otlp-gateway.conf');
    expect(nginx).toMatch(new RegExp(`listen ${portNumber(services['otlp-gateway']!.ports![0]!)};`));
    expect(nginx).toMatch(new RegExp(`server collector:${setting('FLEET_COLLECTOR_PORT')} resolve;`));
    expect(nginx).toMatch(new RegExp(`listen ${portNumber(services['otlp-gateway']!.ports![1]!)};\\s+http2 on;`));
    expect(nginx).toMatch(new RegExp(`server collector:${setting('FLEET_GRPC_PORT')} resolve;`));
    expect(nginx).toContain('resolver 127.0.0.11');
    expect(services['otlp-gateway']!.image).toMatch(/^nginx:1\.(2[89]|[3-9]\d)/); // `resolve` in upstream needs nginx >= 1.27.3
  });

  it('wires perpass only with FLEET_* settings that exist, all from one place, and valid', () => {
    const everywhere = [composeText, read('Dockerfile'), read('deploy/nginx/otlp-gateway.conf'), read('deploy/prometheus/prometheus.yml'), read('deploy/perpass/alerts.yaml')].join('\n');
    const used = new Set([...everywhere.matchAll(/\bFLEET_[A-Z0-9_]+/g)].map((m) => m[0]));
    expect(used.size).toBeGreaterThanOrEqual(15);
    for (const name of used) expect(KNOWN_ENV.has(name), `${name} is not a setting of config/settings.ts`).toBe(true);
    // every perpass process gets the same environment: the x-perpass-env block
    for (const [name, s] of Object.entries(services).filter(([, s]) => isPerpass(s))) expect(s.environment, name).toBe(perpassEnv);
    expect(services['kafka-init']!.environment).toBe(perpassEnv); // topic names and partitions from the same place
    // the values are what the processes accept (the real resolver, defaults of the ${…:-…} substituted)
    const env = Object.fromEntries(Object.entries(perpassEnv).map(([k, v]) => [k, interpolate(String(v))]));
    const config = resolveConfig({}, env);
    expect(config.kafkaBrokers).toEqual(['kafka:9092']);
    expect(config.topicPartitions).toBeGreaterThanOrEqual(2);
    expect(config.clickhouseUrl).toBe('http://clickhouse:8123');
    expect(config.authTokens).toBeUndefined(); // no PERPASS_AUTH_TOKENS = auth off
    expect(resolveConfig({}, { ...env, FLEET_AUTH_TOKENS: 'secret-a=team-a,secret-b=team-b' }).authTokens).toEqual({ 'secret-a': 'team-a', 'secret-b': 'team-b' });
    // the ClickHouse server's user and database are the ones perpass uses (YAML aliases, not copies)
    expect(services.clickhouse!.environment!.CLICKHOUSE_USER).toBe(perpassEnv.FLEET_CLICKHOUSE_USER);
    expect(services.clickhouse!.environment!.CLICKHOUSE_PASSWORD).toBe(perpassEnv.FLEET_CLICKHOUSE_PASSWORD);
    expect(services.clickhouse!.environment!.CLICKHOUSE_DB).toBe(perpassEnv.FLEET_DATABASE);
  });

  it('creates the topics before anything publishes, with the configured partitions, and never auto-creates', () => {
    const init = services['kafka-init']!;
    expect(isOneShot(init)).toBe(true);
    expect(init.image).toBe(services.kafka!.image);
    const script = commandOf(init);
    for (const v of ['FLEET_KAFKA_BROKERS', 'FLEET_TOPIC', 'FLEET_TOPIC_PARTITIONS', 'FLEET_DEAD_LETTER_TOPIC']) expect(script).toContain(`$$${v}`);
    expect(script).toMatch(/--create --if-not-exists --topic "\$\$FLEET_TOPIC" --partitions "\$\$FLEET_TOPIC_PARTITIONS"/);
    for (const name of ['collector', 'consumer-1', 'consumer-2']) expect(services[name]!.depends_on, name).toMatchObject({ 'kafka-init': { condition: 'service_completed_successfully' } });
  });

  it('orders startup by health and completion, and health-checks every long-running service', () => {
    for (const [name, s] of Object.entries(services)) {
      if (!isOneShot(s)) {
        expect(s.healthcheck?.test, `${name} needs a healthcheck`).toBeDefined();
        expect(s.restart, name).toBe('unless-stopped');
      } else {
        expect(s.healthcheck, `one-shot ${name}`).toBeUndefined();
      }
      expect(Array.isArray(s.depends_on), `${name}: depends_on needs conditions`).toBe(false);
      for (const [dep, { condition }] of Object.entries((s.depends_on ?? {}) as Record<string, { condition: string }>)) {
        expect(services[dep], `${name} depends on unknown ${dep}`).toBeDefined();
        expect(['service_healthy', 'service_completed_successfully'], `${name} → ${dep}`).toContain(condition);
        if (condition === 'service_healthy') expect(services[dep]!.healthcheck, `${dep} must be health-checked`).toBeDefined();
        else expect(isOneShot(services[dep]!), `${dep} must be one-shot`).toBe(true);
      }
    }
    // everything that touches ClickHouse waits for the migration
    for (const name of ['consumer-1', 'consumer-2', 'alerts', 'grafana']) expect(services[name]!.depends_on, name).toMatchObject({ migrate: { condition: 'service_completed_successfully' } });
    expect(services.migrate!.depends_on).toEqual({ clickhouse: { condition: 'service_healthy' } });
    // perpass health checks use the ports from the settings (read inside the container)
    for (const name of ['collector', 'consumer-1', 'alerts']) {
      const test = (services[name]!.healthcheck!.test as string[]).join(' ');
      expect(test).toMatch(/process\.env\.(FLEET_COLLECTOR_PORT|FLEET_METRICS_PORT)/);
      expect(test).toMatch(name === 'collector' ? /\/readyz/ : /\/healthz/);
    }
  });

  it('keeps state in named volumes and mounts only files that exist', () => {
    const declared = new Set(Object.keys(compose.volumes));
    const usedVolumes = new Set<string>();
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const [source, target] = v.split(':');
        expect(target, `${name}: ${v}`).toMatch(/^\//);
        if (source!.startsWith('.') || source!.startsWith('/')) {
          expect(existsSync(path.join(ROOT, source!)), `${name} mounts missing ${source}`).toBe(true);
          expect(v.endsWith(':ro'), `${name}: configuration is mounted read-only`).toBe(true);
        } else {
          expect(declared.has(source!), `${name}: volume ${source} is not declared`).toBe(true);
          usedVolumes.add(source!);
        }
      }
    }
    expect(usedVolumes).toEqual(declared);
    for (const [name, dir] of [
      ['kafka', '/var/lib/kafka/data'],
      ['clickhouse', '/var/lib/clickhouse'],
      ['prometheus', '/prometheus'],
      ['grafana', '/var/lib/grafana'],
    ] as const) {
      expect(services[name]!.volumes!.some((v) => v.endsWith(`:${dir}`) && !v.startsWith('.')), `${name} keeps ${dir} in a volume`).toBe(true);
    }
    expect(services.kafka!.environment!.KAFKA_LOG_DIRS).toBe('/var/lib/kafka/data');
  });
});

describe('deploy/ configuration', () => {
  const mountTarget = (service: string, source: string) => services[service]!.volumes!.find((v) => v.startsWith(`${source}:`))!.split(':')[1]!;

  it('scrapes every perpass process on the ports they serve /metrics on', () => {
    const prom = parseYaml(read('deploy/prometheus/prometheus.yml')) as {
      scrape_configs: { job_name: string; static_configs?: { targets: string[] }[]; dns_sd_configs?: { names: string[]; port: number }[] }[];
    };
    const targets = prom.scrape_configs.flatMap((j) => [
      ...(j.static_configs ?? []).flatMap((c) => c.targets),
      ...(j.dns_sd_configs ?? []).flatMap((c) => c.names.map((n) => `${n}:${c.port}`)),
    ]);
    expect(targets.sort()).toEqual(
      [`collector:${setting('FLEET_COLLECTOR_PORT')}`, `consumer-1:${setting('FLEET_METRICS_PORT')}`, `consumer-2:${setting('FLEET_METRICS_PORT')}`, `alerts:${setting('FLEET_METRICS_PORT')}`].sort(),
    );
    expect(mountTarget('prometheus', './deploy/prometheus/prometheus.yml')).toBe('/etc/prometheus/prometheus.yml');
  });

  it('has alert rules that validate, scraping the consumers it runs next to', () => {
    const file = path.join(ROOT, 'deploy/perpass/alerts.yaml');
    expect(setting('FLEET_ALERT_RULES')).toBe(`${mountTarget('alerts', './deploy/perpass')}/alerts.yaml`);
    const rules = loadAlertRules(file, {});
    expect(rules.rules.map((r) => r.kind).sort()).toEqual(['cache_hit_rate_drop', 'cost_per_pass_increase', 'pass_rate_regression', 'pipeline_health', 'unpriced_model']);
    const health = rules.rules.find((r) => r.kind === 'pipeline_health') as { scrapeUrls?: string[] };
    for (const url of health.scrapeUrls!) {
      const u = new URL(url);
      expect(services[u.hostname]?.command, url).toEqual(['consumer']);
      expect(u.port).toBe(setting('FLEET_METRICS_PORT'));
      expect(u.pathname).toBe('/metrics');
    }
    expect(health.scrapeUrls).toHaveLength(Object.values(services).filter((s) => commandOf(s) === 'consumer').length);
  });

  it('provisions Grafana: both datasources with the uids the dashboard uses, the dashboards provider and the dashboard file', () => {
    const ds = parseYaml(read('deploy/grafana/provisioning/datasources/perpass.yaml')) as {
      datasources: { uid: string; type: string; url?: string; jsonData: Record<string, string | number>; secureJsonData?: Record<string, string> }[];
    };
    const ch = ds.datasources.find((d) => d.type === 'grafana-clickhouse-datasource')!;
    const prom = ds.datasources.find((d) => d.type === 'prometheus')!;
    expect(services[String(ch.jsonData.host)]).toBe(services.clickhouse);
    expect(String(ch.jsonData.port)).toBe(new URL(setting('FLEET_CLICKHOUSE_URL')).port);
    expect(ch.jsonData.protocol).toBe('http');
    expect(ch.jsonData.defaultDatabase).toBe(setting('FLEET_DATABASE'));
    expect(ch.jsonData.username).toBe('grafana'); // the read-only user, never the writer
    const secret = /^\$\{(\w+)\}$/.exec(ch.secureJsonData!.password!)![1]!;
    expect(services.grafana!.environment![secret]).toBe(services.clickhouse!.environment![secret]);
    expect(`${new URL(prom.url!).hostname}`).toBe('prometheus');

    const dashboardJson = JSON.parse(read('deploy/grafana/dashboards/perpass.json')) as { uid: string; panels: { datasource?: { uid: string } }[] };
    const uids = new Set(dashboardJson.panels.map((p) => p.datasource?.uid).filter(Boolean));
    expect(uids).toEqual(new Set([ch.uid, prom.uid]));

    const providers = parseYaml(read('deploy/grafana/provisioning/dashboards/perpass.yaml')) as { providers: { type: string; options: { path: string } }[] };
    expect(providers.providers).toHaveLength(1);
    const dashboardsDir = providers.providers[0]!.options.path;
    expect(mountTarget('grafana', './deploy/grafana/dashboards')).toBe(dashboardsDir);
    expect(existsSync(path.join(ROOT, 'deploy/grafana/dashboards/perpass.json'))).toBe(true);
    expect(String(services.grafana!.environment!.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH)).toBe(`${dashboardsDir}/perpass.json`);
    expect(mountTarget('grafana', './deploy/grafana/provisioning/datasources')).toBe('/etc/grafana/provisioning/datasources');
    expect(mountTarget('grafana', './deploy/grafana/provisioning/dashboards')).toBe('/etc/grafana/provisioning/dashboards');
  });

  it('gives dashboards a read-only ClickHouse user that may read the perpass database only', () => {
    const xml = read('deploy/clickhouse/users.d/perpass-readonly.xml');
    const user = /<grafana>([\s\S]*?)<\/grafana>/.exec(xml)![1]!;
    const profile = /<profile>(\w+)<\/profile>/.exec(user)![1]!;
    expect(new RegExp(`<${profile}>[\\s\\S]*?<readonly>1</readonly>`).test(xml)).toBe(true);
    expect(xml).toMatch(/<max_execution_time>[\s\S]*?<changeable_in_readonly\/>/); // Grafana's plugin sets it on every query
    expect(user).toContain(`GRANT SELECT ON ${setting('FLEET_DATABASE')}.*`);
    const passwordVar = /<password from_env="(\w+)"\/>/.exec(user)![1]!;
    expect(services.clickhouse!.environment![passwordVar]).toBeDefined();
    expect(mountTarget('clickhouse', './deploy/clickhouse/users.d/perpass-readonly.xml')).toBe('/etc/clickhouse-server/users.d/perpass-readonly.xml');
  });

  it('ships a cluster example that defines the macros the cluster DDL uses and writes to shards synchronously', () => {
    const config = read('deploy/clickhouse/cluster/config.d/perpass-cluster.xml');
    expect(config).toMatch(/<remote_servers>\s*<perpass>/);
    expect(config).toMatch(/<macros>[\s\S]*<shard [^>]*\/>[\s\S]*<replica [^>]*\/>[\s\S]*<\/macros>/);
    expect((config.match(/<shard>/g) ?? []).length).toBeGreaterThanOrEqual(2);
    expect(config).toMatch(/<internal_replication>true<\/internal_replication>/);
    const writer = read('deploy/clickhouse/cluster/users.d/perpass-writer.xml');
    expect(writer).toContain('<distributed_foreground_insert>1</distributed_foreground_insert>');
    expect(writer).toMatch(new RegExp(`<users>\\s*<${setting('FLEET_CLICKHOUSE_USER')}>`));
  });
});

describe('Dockerfile', () => {
  const lines = read('Dockerfile')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: { from: string; name: string; lines: string[] }[] = [];
  for (const line of lines) {
    const from = /^FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(line);
    if (from) stages.push({ from: from[1]!, name: from[2] ?? '', lines: [] });
    else stages.at(-1)?.lines.push(line);
  }
  const args = Object.fromEntries(lines.filter((l) => /^ARG\s+\w+=/.test(l)).map((l) => l.slice(4).split('=') as [string, string]));
  const image = (from: string) => from.replace(/\$\{(\w+)\}/g, (_, n: string) => args[n] ?? '');

  it('is multi-stage: dependencies in one stage, the runtime copies them', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    expect(stages.every((s) => s.name)).toBe(true);
    const runtime = stages.at(-1)!;
    const deps = stages.find((s) => s.lines.some((l) => /\bnpm ci\b/.test(l)))!;
    expect(deps).not.toBe(runtime);
    expect(runtime.lines).toContainEqual(expect.stringMatching(new RegExp(`^COPY --from=${deps.name} /app/node_modules`)));
    expect(runtime.lines.some((l) => /\bnpm (ci|install|i)\b/.test(l))).toBe(false);
  });

  it('installs production dependencies only, exactly as locked', () => {
    const install = lines.filter((l) => /\bnpm (ci|install|i)\b/.test(l));
    expect(install).toHaveLength(1);
    expect(install[0]).toMatch(/\bnpm ci\b/);
    expect(install[0]).toMatch(/--omit=dev\b/);
    expect(install[0]).not.toMatch(/--omit=optional|--no-optional/); // chDB's native library is an optional dependency
    expect(lines).toContainEqual(expect.stringMatching(/^COPY package\.json package-lock\.json/));
  });

  it('runs bin/fleet.js as a non-root user on a glibc Node 24 image (chDB needs glibc)', () => {
    const runtime = stages.at(-1)!;
    const users = runtime.lines.filter((l) => /^USER\s/i.test(l));
    expect(users).toHaveLength(1);
    expect(users[0]!.split(/\s+/)[1]).not.toMatch(/^(root|0)(:|$)/);
    expect(runtime.lines.findIndex((l) => /^USER\s/i.test(l))).toBeGreaterThan(runtime.lines.findIndex((l) => /^COPY \. \./.test(l)));
    const entry = runtime.lines.find((l) => /^ENTRYPOINT\s/.test(l))!;
    expect(JSON.parse(entry.slice('ENTRYPOINT'.length))).toEqual(['node', 'bin/fleet.js']);
    for (const s of stages) {
      expect(image(s.from)).toMatch(/^node:24(\.\d+)*-(slim|bookworm|trixie)/);
      expect(image(s.from)).not.toMatch(/alpine/);
    }
    // the build fails when chDB's native library for the platform is missing (require('chdb') loads it)
    expect(stages[0]!.lines).toContainEqual(`RUN node -e "require('chdb')"`);
    expect(read('node_modules/chdb/index.js')).toMatch(/require\('\.\/dist\/loader\.js'\)\.loadNative\(\)/);
    const lock = JSON.parse(read('package-lock.json')) as { packages: Record<string, { libc?: string[] }> };
    for (const lib of ['@chdb/lib-linux-x64-gnu', '@chdb/lib-linux-arm64-gnu']) expect(lock.packages[`node_modules/${lib}`]?.libc, lib).toEqual(['glibc']);
  });

  it('ships every file the runtime imports, and only production packages', () => {
    const ignore = read('.dockerignore')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    expect(ignore).toContain('node_modules');
    expect(ignore).toContain('.git');
    const glob = (p: string) => new RegExp(`^${p.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*\*/g, '\u0000').replace(/\*/g, '[^/]*').replace(/\u0000/g, '.*')}$`);
    const patterns = ignore.map(glob);
    /** Docker's rule: a path is left out when it or a directory above it matches a pattern. */
    const ignored = (rel: string) => rel.split('/').some((_, i, parts) => patterns.some((p) => p.test(parts.slice(0, i + 1).join('/'))));
    const pkg = JSON.parse(read('package.json')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };

    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string) => {
      const rel = path.relative(ROOT, file);
      if (seen.has(rel)) return;
      seen.add(rel);
      expect(existsSync(file), `${rel} is imported but missing`).toBe(true);
      expect(ignored(rel), `${rel} is needed at runtime but .dockerignore leaves it out`).toBe(false);
      if (statSync(file).isDirectory() || !/\.(ts|js|mjs)$/.test(file)) return;
      const source = readFileSync(file, 'utf8');
      const specifiers = [
        ...[...source.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!),
        ...[...source.matchAll(/^\s*import\s+['"]([^'"]+)['"]/gm)].map((m) => m[1]!),
        ...[...source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)].map((m) => m[1]!),
        ...[...source.matchAll(/new URL\(\s*['"]([^'"]+)['"],\s*import\.meta\.url\)/g)].map((m) => m[1]!),
      ];
      for (const spec of specifiers) {
        if (spec.startsWith('node:')) continue;
        if (spec.startsWith('.')) visit(path.resolve(path.dirname(file), spec));
        else packages.add(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!);
      }
    };
    visit(path.join(ROOT, 'bin/fleet.js'));
    // files read by path at runtime
    visit(path.join(ROOT, 'sql/migrations'));
    visit(path.join(ROOT, 'pricing/prices.json'));
    expect(seen.size).toBeGreaterThan(40);
    for (const dir of ['cli', 'collector', 'consumers', 'alerting', 'storage', 'sql', 'embedded']) expect([...seen].some((f) => f.startsWith(`${dir}/`)), dir).toBe(true);
    for (const name of packages) {
      expect(pkg.dependencies[name], `${name} is imported at runtime but is not a production dependency`).toBeDefined();
    }
    expect(packages).toContain('chdb');
    expect(packages).toContain('kafkajs');
  });
});

describe('docs/operations.md', () => {
  const doc = read('docs/operations.md');
  it('documents every setting the topology sets, and names no setting that does not exist', () => {
    for (const name of Object.keys(perpassEnv)) expect(doc, `${name} is set in docker-compose.yml`).toContain(name);
    for (const [m] of doc.matchAll(/\bFLEET_[A-Z0-9_]+/g)) expect(KNOWN_ENV.has(m), `${m} in docs/operations.md`).toBe(true);
    for (const metric of ['fleet_consumer_lag_messages', 'fleet_collector_requests_total', 'fleet_consumer_insert_errors_total', 'fleet_alerts_firing']) expect(doc).toContain(metric);
  });

  it('names only metrics the processes register', () => {
    const registered = new Set(
      ['collector/metrics.ts', 'consumers/metrics.ts', 'alerting/metrics.ts', 'bus/metrics.ts', 'forward/metrics.ts'].flatMap((f) => [...read(f).matchAll(/'(fleet_[a-z_]+)'/g)].map((m) => m[1]!)),
    );
    expect(registered.size).toBeGreaterThan(25);
    const named = [...doc.matchAll(/`(fleet_[a-z_]+)[`{*]/g)].map((m) => m[1]!);
    expect(named.length).toBeGreaterThan(15);
    for (const name of named) {
      const known = name.endsWith('_') ? [...registered].some((r) => r.startsWith(name)) : registered.has(name);
      expect(known, `${name} in docs/operations.md is not a registered metric`).toBe(true);
    }
  });
});
