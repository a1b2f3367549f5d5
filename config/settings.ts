/**
 * Every setting of every perpass process, in one table: its flag, its
 * environment variable (FLEET_*), its zod type and default. Values come
 * from defaults < config file (--config / FLEET_CONFIG, JSON or YAML) <
 * environment < flags; a bad value fails with an error naming the setting
 * and where it came from. docker-compose and the docs take the names from
 * here, so there is one place to change them.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { DEFAULT_MAX_MESSAGE_BYTES } from '../otlp/split.ts';

const int = (min = 0, tooSmall?: string) => z.coerce.number().int('must be an integer').min(min, tooSmall);
/** Seconds, decimal allowed: `10`, `2.5`. */
const seconds = z.coerce.number().positive('must be a positive number of seconds').max(86_400, 'must be at most 86400 s');
const list = z.preprocess((v) => (typeof v === 'string' ? v.split(',').map((s) => s.trim()).filter(Boolean) : v), z.array(z.string().min(1)));
const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*)');
const topic = z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/, 'must be a Kafka topic name');
/** `token=tenant,token2=tenant2` or an object. */
const tokenMap = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? Object.fromEntries(
          v
            .split(',')
            .filter(Boolean)
            .map((pair) => {
              const i = pair.indexOf('=');
              return i < 0 ? [pair, ''] : [pair.slice(0, i).trim(), pair.slice(i + 1).trim()];
            }),
        )
      : v,
  z.record(z.string().min(1), z.string().min(1, 'each token needs a tenant: token=tenant')),
);

/** `k=v` pairs (a repeated flag, or comma-separated in the environment) or an object: HTTP headers. */
const headerMap = z.preprocess(
  (v) => {
    const pairs = typeof v === 'string' ? v.split(',') : Array.isArray(v) ? v : undefined;
    if (!pairs) return v;
    return Object.fromEntries(
      pairs
        .map((p) => String(p).trim())
        .filter(Boolean)
        .map((pair) => {
          const i = pair.indexOf('=');
          return i < 1 ? [pair, undefined] : [pair.slice(0, i).trim(), pair.slice(i + 1).trim()];
        }),
    );
  },
  z.record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'header names are HTTP tokens (k=v)'), z.string({ error: 'must be name=value' })),
);
const otlpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
const forwardProtocol = z.enum(['http/protobuf', 'http/json']);
const forwardCompression = z.enum(['gzip', 'none']);
/** A tenant's own forward destinations (config file `forwardTenants`, or JSON in FLEET_FORWARD_TENANTS). */
const forwardRoute = z.strictObject({
  otlp: z.preprocess((v) => (typeof v === 'string' ? [v] : v), z.array(otlpUrl).min(1, 'needs at least one URL')),
  headers: headerMap.optional(),
  protocol: forwardProtocol.optional(),
  compression: forwardCompression.optional(),
});
const jsonText = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v, ctx) => {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v) as unknown;
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `must be JSON: ${(err as Error).message}` });
      return z.NEVER;
    }
  }, schema);

export const SETTINGS = {
  dataDir: { schema: z.string().min(1).default('./data'), help: 'directory of the embedded chDB store' },
  database: { schema: identifier.default('fleet'), help: 'ClickHouse database of the perpass tables' },
  clickhouseUrl: { schema: z.url().optional(), help: 'ClickHouse server URL (unset: embedded chDB in --data-dir)' },
  clickhouseUser: { schema: z.string().optional(), help: 'ClickHouse user' },
  clickhousePassword: { schema: z.string().optional(), help: 'ClickHouse password' },
  clickhousePasswordFile: { schema: z.string().min(1).optional(), help: 'file holding the ClickHouse password (instead of --clickhouse-password)' },
  clickhouseCluster: { schema: identifier.optional(), help: 'ClickHouse cluster: migrations render ON CLUSTER with Replicated engines' },
  spansTtlDays: { schema: int(1).default(14), help: 'days kept spans live (TTL of the spans table)' },
  prices: { schema: z.string().min(1).optional(), help: 'price catalog JSON (default: the shipped catalog)' },
  kafkaBrokers: {
    schema: list.pipe(z.array(z.string().regex(/^[^\s:]+:\d+$/, 'must be host:port'))).optional(),
    help: 'Kafka bootstrap brokers, comma-separated host:port',
  },
  topic: { schema: topic.default('otlp_spans'), help: 'topic of OTLP span messages' },
  deadLetterTopic: { schema: topic.default('otlp_spans_dlq'), help: 'topic of undecodable messages' },
  topicPartitions: { schema: int(1).default(6), help: 'partitions when perpass creates the topic' },
  kafkaCompression: {
    schema: z.enum(['zstd', 'gzip', 'none']).default('zstd'),
    help: 'compression of the record batches perpass produces: zstd (readable by every client since Kafka 2.1), gzip (for older readers) or none',
  },
  groupId: { schema: z.string().min(1).default('perpass-consumers'), help: 'Kafka consumer group of the consumers' },
  collectorHost: { schema: z.string().min(1).optional(), help: 'interface the OTLP receiver listens on (default: fleet start 127.0.0.1, fleet collector all; 0.0.0.0 opens fleet start to the network)' },
  collectorPort: { schema: int().max(65535).default(4318), help: 'port of the OTLP/HTTP receiver' },
  grpcPort: { schema: int().max(65535).default(4317), help: 'port of the OTLP/gRPC receiver (0: any free port)' },
  maxBodyBytes: { schema: int(1).default(64 * 1024 * 1024), help: 'cap on an OTLP request body, before and after decompression' },
  maxMessageBytes: {
    schema: int(1024).max(64 * 1024 * 1024).default(DEFAULT_MAX_MESSAGE_BYTES),
    help: "bound on one bus message: a trace's spans beyond it are split over several messages (keep it under the topic's max.message.bytes)",
  },
  authTokens: { schema: tokenMap.optional(), help: 'bearer tokens of the receiver: token=tenant,token2=tenant2 (unset: no auth)' },
  authTokensFile: { schema: z.string().min(1).optional(), help: 'file of receiver tokens, one token=tenant a line (instead of --auth-tokens)' },
  maxConnections: { schema: int(1).default(1024), help: 'cap on open connections to the OTLP receiver; past it the longest-idle one is closed (or the new one, when all are busy)' },
  maxSpansPerRequest: { schema: int(1).default(100_000), help: 'cap on spans in one OTLP request (413 beyond)' },
  headersTimeoutMs: { schema: int(1).default(10_000), help: 'time a client has to send a request\'s headers (408 after)' },
  bodyTimeoutMs: { schema: int(1).default(60_000), help: 'time a client has to send a request\'s body (408 after)' },
  minBodyBytesPerSecond: { schema: int().default(16 * 1024), help: 'slowest request body accepted after its first 2 s (408 below; 0: no minimum)' },
  keepAliveTimeoutMs: { schema: int(1).default(5_000), help: 'how long an idle keep-alive connection to the OTLP receiver stays open' },
  maxInflightBytes: { schema: int(1).optional(), help: 'bytes of OTLP request bodies being received and processed at once (429 beyond; default: an eighth of the memory budget, 64–256 MiB)' },
  maxTenantInflightBytes: { schema: int(1).optional(), help: 'share of --max-inflight-bytes one tenant may hold, with auth on (default: half)' },
  memoryBudgetBytes: {
    schema: int(64 * 1024 * 1024).optional(),
    help: 'memory (RSS) the process stays under; its bounds are derived from it (default: half the cgroup memory limit, else half the machine memory)',
  },
  queryHost: { schema: z.string().min(1).default('127.0.0.1'), help: 'interface of the embedded ClickHouse-compatible query endpoint' },
  queryPort: { schema: int().max(65535).default(8123), help: 'port of the embedded query endpoint' },
  queryUrl: { schema: z.url().optional(), help: 'base URL of a running fleet start\'s query endpoint, for the commands that read or write through it (default: found through --data-dir, then --query-host/--query-port)' },
  repriceOnStart: { schema: z.union([z.boolean(), z.stringbool()]).default(false), help: 'fleet start: re-price the stored LLM calls with the catalog when it differs from the one loaded last (as fleet prices reprice does)' },
  queryToken: { schema: z.string().min(1).optional(), help: 'password readers of the query endpoint must send (unset: none)' },
  queryTokenFile: { schema: z.string().min(1).optional(), help: 'file holding the query read token (instead of --query-token)' },
  queryWriteToken: { schema: z.string().min(16, 'must be at least 16 characters').optional(), help: 'fleet start: enables write mode of the query endpoint for this password (never the default); fleet alerts: writes through that endpoint with it' },
  queryWriteTokenFile: { schema: z.string().min(1).optional(), help: 'file holding the query write token (instead of --query-write-token)' },
  queryTokens: { schema: tokenMap.optional(), help: 'read tokens of the query endpoint bound to a tenant, token=tenant,…: such a reader sees only its tenant\'s rows' },
  queryTokensFile: { schema: z.string().min(1).optional(), help: 'file of tenant-bound read tokens, one token=tenant a line (instead of --query-tokens)' },
  queryAllowedHosts: { schema: list.optional(), help: 'Host header names the query endpoint answers besides its bound address (and localhost when bound to loopback), against DNS rebinding' },
  metricsPort: { schema: int().max(65535).default(9464), help: 'port of /metrics of a consumer or alerts process' },
  samplingPassRate: { schema: z.coerce.number().min(0).max(1).default(0.05), help: 'fraction of passing attempts whose spans are kept' },
  costOutlierUsd: { schema: z.string().regex(/^\d+(\.\d+)?$/, 'must be a decimal USD amount').default('1'), help: 'attempts costing more are kept whatever the outcome' },
  durationOutlierMs: { schema: int(1).default(900_000), help: 'attempts lasting longer are kept whatever the outcome' },
  decisionWaitMs: { schema: int().default(500), help: 'wait after an attempt ended for late child spans' },
  traceTimeoutMs: { schema: int(1).default(60_000), help: 'idle time after which undecided spans of a trace are decided' },
  rollupInterval: {
    schema: z.coerce.number().min(0, 'must be 0 (off) or a number of seconds').max(86_400, 'must be at most 86400 s').default(60),
    help: 'seconds between refreshes of the pre-aggregated attempt blocks the $/pass views read (0: no refresher in this process; the views stay exact and read raw what is not refreshed)',
  },
  queueBytes: { schema: int(1).optional(), help: "bound of what the embedded queue holds in memory (bytes awaiting the consumers or, for fleet start's durable queue, their fsync; per-message overhead included; default: an eighth of the memory budget, at most 256 MiB)" },
  queueMaxBytes: { schema: int(1024 * 1024, 'must be at least 1048576 (1 MiB)').optional(), help: "bound of fleet start's durable queue in <data-dir>/queue (bytes on disk awaiting the consumers; full = 503 + Retry-After); default: half the free space of the data directory's disk at start" },
  shutdownTimeout: { schema: seconds.default(10), help: 'seconds fleet start takes at most to stop after SIGTERM/SIGINT (what is left stays in the durable queue for the next start)' },
  readerTenants: { schema: list.optional(), help: 'fleet migrate on a ClickHouse server: create the reader role and a row-policy role per tenant (perpass_tenant_<tenant>), comma-separated tenants' },
  alertRules: { schema: z.string().min(1).optional(), help: 'alert rules file (JSON or YAML) of fleet alerts; given to fleet start, it runs them in that process' },
  forwardOtlp: {
    schema: list.pipe(z.array(otlpUrl)).optional(),
    repeatable: true,
    help: 'OTLP/HTTP trace endpoint the kept traces are forwarded to (repeatable; env: comma-separated); a URL without a path gets /v1/traces',
  },
  forwardHeader: { schema: headerMap.optional(), repeatable: true, help: 'header of every forward request, name=value (repeatable; env: comma-separated), e.g. an API key' },
  forwardProtocol: { schema: forwardProtocol.default('http/protobuf'), help: 'encoding of forwarded traces: http/protobuf or http/json' },
  forwardCompression: { schema: forwardCompression.default('gzip'), help: 'compression of forward requests: gzip or none' },
  forwardQueueBytes: { schema: int(1024).default(64 * 1024 * 1024), help: 'bound of each forward destination\'s queue (encoded bytes awaiting the backend); beyond it new kept traces are dropped and counted' },
  forwardTenants: {
    schema: jsonText(z.record(z.string().min(1), forwardRoute)).optional(),
    help: 'per-tenant forward destinations: { tenant: { otlp: [url], headers: {…}, protocol, compression } } (config file, or JSON); a listed tenant goes there instead of --forward-otlp',
  },
} as const;

export type SettingKey = keyof typeof SETTINGS;
export type Config = { [K in SettingKey]: z.output<(typeof SETTINGS)[K]['schema']> };

export const envName = (key: string): string => `FLEET_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
export const flagName = (key: string): string => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

/** Settings whose secret may come from a file instead (`--x-file`), so it need not sit in argv or the environment. */
export const FILE_SETTINGS = {
  clickhousePasswordFile: 'clickhousePassword',
  authTokensFile: 'authTokens',
  queryTokenFile: 'queryToken',
  queryWriteTokenFile: 'queryWriteToken',
  queryTokensFile: 'queryTokens',
} as const satisfies Partial<Record<SettingKey, SettingKey>>;

/** A setting with a bad value; the message says which, where from and why. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config file ${path}: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new ConfigError(`config file ${path}: must be an object of settings`);
  const unknown = Object.keys(parsed).filter((k) => !(k in SETTINGS));
  if (unknown.length) throw new ConfigError(`config file ${path}: unknown setting ${unknown.join(', ')} (known: ${Object.keys(SETTINGS).join(', ')})`);
  return parsed as Record<string, unknown>;
}

/**
 * Resolves the configuration. `flags` holds only the flags given on the
 * command line (commander's values for options the user set).
 */
export function resolveConfig(flags: Partial<Record<SettingKey | 'config', unknown>>, env: NodeJS.ProcessEnv = process.env): Config {
  const configPath = (flags.config as string | undefined) ?? env.FLEET_CONFIG;
  const file = configPath ? readConfigFile(configPath) : {};
  const out: Record<string, unknown> = {};
  const problems: string[] = [];
  for (const [key, setting] of Object.entries(SETTINGS)) {
    let raw: unknown;
    let from = 'default';
    if (flags[key as SettingKey] !== undefined) {
      raw = flags[key as SettingKey];
      from = `--${flagName(key)}`;
    } else if (env[envName(key)] !== undefined && env[envName(key)] !== '') {
      raw = env[envName(key)];
      from = envName(key);
    } else if (file[key] !== undefined) {
      raw = file[key];
      from = `${configPath}: ${key}`;
    }
    const parsed = (setting.schema as z.ZodType).safeParse(raw);
    if (parsed.success) out[key] = parsed.data;
    else problems.push(`${from} ${/Tokens?$|Password$/.test(key) || key === 'forwardHeader' || key === 'forwardTenants' ? '(value hidden)' : JSON.stringify(raw)}: ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  for (const [fileKey, key] of Object.entries(FILE_SETTINGS) as Array<[keyof typeof FILE_SETTINGS, SettingKey]>) {
    const file = out[fileKey] as string | undefined;
    if (file === undefined) continue;
    if (out[key] !== undefined) {
      problems.push(`--${flagName(key)} and --${flagName(fileKey)} are both set: give one`);
      continue;
    }
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(`--${flagName(fileKey)} ${file}: ${(err as Error).message}`);
      continue;
    }
    // Token maps: one token=tenant a line (# comments); a single secret: the file's text without its final newline.
    const raw = key === 'authTokens' || key === 'queryTokens'
      ? text.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#')).join(',')
      : text.replace(/\r?\n$/, '');
    const parsed = (SETTINGS[key].schema as z.ZodType).safeParse(raw);
    if (parsed.success) out[key] = parsed.data;
    else problems.push(`${file} (--${flagName(fileKey)}, value hidden): ${parsed.error.issues.map((i) => i.message).join('; ')}`);
  }
  if (problems.length) throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  return out as Config;
}
