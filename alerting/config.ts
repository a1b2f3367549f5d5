/**
 * The alert rules file (JSON or YAML): rules, sinks, delivery and metrics
 * settings, validated with zod. Every field has a default, so `{}` is a
 * working configuration (every rule kind with its defaults, notifications to
 * the log). Strings may reference the environment as `${NAME}` (for secrets
 * such as webhook URLs and HMAC keys); an unset variable is an error naming
 * the field. docs/alerting.md documents every field.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

// ---------------------------------------------------------------- durations

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `90s`, `15m`, `1h30m`, `7d`, `1w`, `250ms` → milliseconds; a bare number is seconds. */
export function parseDuration(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isFinite(value) || value < 0) throw new RangeError('must be a non-negative number of seconds');
    return Math.round(value * 1000);
  }
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    end = re.lastIndex;
  }
  if (end === 0 || end !== text.length) throw new RangeError(`must be a duration like 90s, 15m, 1h30m, 7d (got ${JSON.stringify(value)})`);
  return Math.round(total);
}

/** Milliseconds → the shortest exact `1h30m` form. */
export function formatDuration(ms: number): string {
  if (ms === 0) return '0s';
  let rest = ms;
  let out = '';
  for (const [unit, size] of [['w', 604_800_000], ['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1_000], ['ms', 1]] as const) {
    if (rest >= size) {
      out += `${Math.floor(rest / size)}${unit}`;
      rest %= size;
    }
  }
  return out;
}

const duration = (fallback: string) =>
  z
    .union([z.number(), z.string()])
    .default(fallback)
    .transform((v, ctx) => {
      try {
        return parseDuration(v);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
        return z.NEVER;
      }
    });

const positiveDuration = (fallback: string) => duration(fallback).refine((ms) => ms > 0, 'must be longer than 0');

// ------------------------------------------------------------------- fields

const labelName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/, 'must be a label name ([a-zA-Z_][a-zA-Z0-9_]*)');
const ruleName = z.string().regex(/^[a-zA-Z_][a-zA-Z0-9_:.-]{0,127}$/, 'must start with a letter or _ and hold only letters, digits, _ : . -');
const probability = z.number().gt(0, 'must be > 0').max(0.5, 'must be ≤ 0.5');
const share = z.number().min(0).max(1);
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });

/** Columns of `attempts` an attempt-based rule may group and filter by. */
export const ATTEMPT_COLUMNS = ['tenant', 'model', 'spec_tier', 'canary', 'variant', 'pool'] as const;
/** Columns of `llm_calls` a call-based rule may group and filter by. */
export const CALL_COLUMNS = ['tenant', 'provider', 'model', 'service_tier'] as const;
export type AttemptColumn = (typeof ATTEMPT_COLUMNS)[number];
export type CallColumn = (typeof CALL_COLUMNS)[number];

const groupBy = <C extends readonly [string, ...string[]]>(columns: C, fallback: C[number][]) =>
  z
    .array(z.enum(columns))
    .min(1, 'needs at least one column')
    .refine((a) => new Set(a).size === a.length, 'lists a column twice')
    .default(fallback);

/** `{ column: [values…] }`: only rows whose column is one of the values. */
const filter = <C extends readonly [string, ...string[]]>(columns: C) =>
  z.partialRecord(z.enum(columns), z.array(z.string()).min(1, 'needs at least one value')).default({});

const common = {
  name: ruleName.optional(),
  enabled: z.boolean().default(true),
  severity: z.string().min(1).optional(),
  /** Extra labels on every alert of the rule (team, service, …). */
  labels: z.record(labelName, z.string()).default({}),
  /** Extra annotations (runbook_url, dashboard, …). */
  annotations: z.record(labelName, z.string()).default({}),
  /** Names of the sinks to notify (default: every sink). */
  sinks: z.array(z.string().min(1)).optional(),
  /** Consecutive evaluations with the condition cleared before an alert resolves. */
  resolveAfter: z.number().int().min(1).default(2),
  /** Notify again while firing after this long (0 = never). */
  renotifyInterval: duration('4h'),
  /** A firing alert whose series has had too little data for this long resolves (reason "no data"). */
  staleAfter: positiveDuration('24h'),
};

const windows = {
  /** The window under test: [now − recentWindow, now). */
  recentWindow: positiveDuration('1h'),
  /** The reference: [now − recentWindow − baselineWindow, now − recentWindow). */
  baselineWindow: positiveDuration('7d'),
  alpha: probability.default(0.01),
};

const PassRateRule = z
  .strictObject({
    kind: z.literal('pass_rate_regression'),
    ...common,
    ...windows,
    groupBy: groupBy(ATTEMPT_COLUMNS, ['tenant', 'model', 'spec_tier']),
    filter: filter(ATTEMPT_COLUMNS),
    method: z.enum(['beta-binomial', 'z-test']).default('beta-binomial'),
    /** Smallest drop of the pass rate (absolute, 0.10 = 10 percentage points) that may fire. */
    minEffect: share.default(0.1),
    /** The alert clears when the drop is at most this (default minEffect / 2). */
    resolveEffect: share.optional(),
    /** Fewest attempts in each window for the rule to judge. */
    minAttempts: z.number().int().min(1).default(30),
  })
  .transform((r) => ({ ...r, name: r.name ?? r.kind, severity: r.severity ?? 'critical', resolveEffect: r.resolveEffect ?? r.minEffect / 2 }));

const CostRule = z
  .strictObject({
    kind: z.literal('cost_per_pass_increase'),
    ...common,
    ...windows,
    groupBy: groupBy(ATTEMPT_COLUMNS, ['tenant', 'model', 'spec_tier']),
    filter: filter(ATTEMPT_COLUMNS),
    /** Smallest recent ÷ baseline $/pass ratio that may fire. */
    factor: z.number().min(1).default(1.5),
    /** The alert clears when the ratio is at most this (default 1 + (factor − 1) / 2). */
    resolveFactor: z.number().min(1).optional(),
    minAttempts: z.number().int().min(2).default(30),
  })
  .transform((r) => ({ ...r, name: r.name ?? r.kind, severity: r.severity ?? 'warning', resolveFactor: r.resolveFactor ?? 1 + (r.factor - 1) / 2 }));

const UnpricedRule = z
  .strictObject({
    kind: z.literal('unpriced_model'),
    ...common,
    /** Unpriced calls that started in [now − lookback, now) keep the alert firing. */
    lookback: positiveDuration('1h'),
    /** Fewest unpriced calls of a (tenant, provider, model) that fire (1 = first sight). */
    minCalls: z.number().int().min(1).default(1),
  })
  .transform((r) => ({ ...r, name: r.name ?? r.kind, severity: r.severity ?? 'warning' }));

const CacheRule = z
  .strictObject({
    kind: z.literal('cache_hit_rate_drop'),
    ...common,
    ...windows,
    groupBy: groupBy(CALL_COLUMNS, ['tenant', 'model']),
    filter: filter(CALL_COLUMNS),
    /** Smallest drop of cache_read ÷ (input + cache_read + cache_write), absolute (0.2 = 20 pp). */
    minDrop: share.default(0.2),
    /** The alert clears when the drop is at most this (default minDrop / 2). */
    resolveDrop: share.optional(),
    /** Fewest input tokens (all kinds) in each window. */
    minTokens: z.number().int().min(0).default(1_000_000),
    /** Fewest attempts (the independent unit) with calls of the series in each window. */
    minAttempts: z.number().int().min(2).default(30),
  })
  .transform((r) => ({ ...r, name: r.name ?? r.kind, severity: r.severity ?? 'warning', resolveDrop: r.resolveDrop ?? r.minDrop / 2 }));

const HealthRule = z
  .strictObject({
    kind: z.literal('pipeline_health'),
    ...common,
    /** /metrics URLs of the consumers to scrape; unset = the health source the process provides. */
    scrapeUrls: z.array(httpUrl).optional(),
    scrapeTimeout: positiveDuration('5s'),
    /** Consumer lag (messages, summed over a topic's partitions) that fires… */
    maxLag: z.number().int().min(0).default(10_000),
    /** …when above it for this long (0 = on the first sample above). */
    lagFor: duration('5m'),
    /** The lag alert clears at or below this (default maxLag / 2). */
    resolveLag: z.number().int().min(0).optional(),
    /** Dead letters within this window… */
    deadLetterWindow: positiveDuration('15m'),
    /** …above this count fire (0 = any dead letter). */
    maxDeadLetters: z.number().int().min(0).default(0),
  })
  .transform((r) => ({ ...r, name: r.name ?? r.kind, severity: r.severity ?? 'critical', resolveLag: r.resolveLag ?? Math.floor(r.maxLag / 2) }));

const KINDS = ['pass_rate_regression', 'cost_per_pass_increase', 'unpriced_model', 'cache_hit_rate_drop', 'pipeline_health'] as const;
export type RuleKind = (typeof KINDS)[number];

const Rule = z.discriminatedUnion('kind', [PassRateRule, CostRule, UnpricedRule, CacheRule, HealthRule], {
  error: (issue) => (issue.code === 'invalid_union' ? `kind must be one of ${KINDS.join(', ')}` : undefined),
});

const sinkCommon = {
  /** Name rules route by and metrics report (default: the type). */
  name: z.string().min(1).optional(),
};
const headers = z.record(z.string().min(1), z.string()).default({});

const Sink = z.discriminatedUnion(
  'type',
  [
    z.strictObject({ type: z.literal('log'), ...sinkCommon, format: z.enum(['text', 'json']).default('text') }),
    z.strictObject({
      type: z.literal('webhook'),
      ...sinkCommon,
      url: httpUrl,
      /** HMAC-SHA256 key: the body's signature goes in X-Perpass-Signature-256: sha256=<hex>. */
      secret: z.string().min(1).optional(),
      headers,
    }),
    z.strictObject({ type: z.literal('slack'), ...sinkCommon, url: httpUrl }),
    z.strictObject({
      type: z.literal('alertmanager'),
      ...sinkCommon,
      /** Alertmanager base URL, e.g. http://alertmanager:9093 (POST {url}/api/v2/alerts). */
      url: httpUrl,
      headers,
      /** Firing alerts are re-posted this often so Alertmanager keeps them active (0 = only on changes). */
      resendInterval: duration('1m'),
    }),
    z.strictObject({ type: z.literal('kafka'), ...sinkCommon, topic: z.string().regex(/^[a-zA-Z0-9._-]{1,249}$/, 'must be a Kafka topic name') }),
  ],
  { error: (issue) => (issue.code === 'invalid_union' ? 'type must be one of log, webhook, slack, alertmanager, kafka' : undefined) },
).transform((s) => ({ ...s, name: s.name ?? s.type }));

export const AlertRulesSchema = z
  .strictObject({
    /** How often `fleet alerts` evaluates. */
    evaluationInterval: positiveDuration('1m'),
    /** Link put in notifications (Alertmanager generatorURL), e.g. a dashboard. */
    externalUrl: httpUrl.optional(),
    rules: z
      .array(Rule)
      .prefault(() => KINDS.map((kind) => ({ kind }))),
    sinks: z.array(Sink).prefault(() => [{ type: 'log' as const }]),
    delivery: z
      .strictObject({
        /** Notifications waiting per sink; beyond it the oldest is dropped (and counted). */
        queueSize: z.number().int().min(1).default(1000),
        /** Tries per notification before it is reported failed. */
        maxAttempts: z.number().int().min(1).default(10),
        initialBackoff: positiveDuration('1s'),
        maxBackoff: positiveDuration('1m'),
        /** Per-request timeout. */
        timeout: positiveDuration('10s'),
        /** On start, notifications persisted this recently but never delivered (process died) are sent. */
        redeliverWithin: duration('1h'),
        /** How long stop() and checkAlerts wait for queued deliveries. */
        drainTimeout: duration('30s'),
      })
      .prefault({}),
    metrics: z
      .strictObject({
        /** Windows of the fleet_pass_rate / fleet_cost_per_pass_usd / fleet_cache_hit_ratio gauges (label `window`). */
        windows: z.array(positiveDuration('1h')).min(1).prefault(['1h']),
        /** Per tenant, models with their own fleet_* series (by attempts); the rest are summed as model="other". */
        topModels: z.number().int().min(1).max(1000).default(20),
        /** Tenants with their own fleet_* series (by attempts); the rest are summed as tenant="other". */
        maxTenants: z.number().int().min(1).max(10_000).default(50),
        /** Label values (tenant, model, spec_tier) longer than this are cut; control characters are always removed. */
        maxLabelLength: z.number().int().min(8).max(1024).default(64),
      })
      .prefault({}),
  })
  .superRefine((cfg, ctx) => {
    const seen = new Map<string, number>();
    cfg.rules.forEach((r, i) => {
      if (seen.has(r.name)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'name'], message: `duplicate rule name ${JSON.stringify(r.name)} (rules[${seen.get(r.name)}] has it): give each rule of a kind a distinct name` });
      seen.set(r.name, i);
    });
    const sinks = new Map<string, number>();
    cfg.sinks.forEach((s, i) => {
      if (sinks.has(s.name)) ctx.addIssue({ code: 'custom', path: ['sinks', i, 'name'], message: `duplicate sink name ${JSON.stringify(s.name)}: give each sink of a type a distinct name` });
      sinks.set(s.name, i);
    });
    cfg.rules.forEach((r, i) =>
      r.sinks?.forEach((name, j) => {
        if (!sinks.has(name)) ctx.addIssue({ code: 'custom', path: ['rules', i, 'sinks', j], message: `no sink named ${JSON.stringify(name)} (sinks: ${[...sinks.keys()].join(', ')})` });
      }),
    );
  });

export type AlertRulesInput = z.input<typeof AlertRulesSchema>;
export type AlertRulesConfig = z.output<typeof AlertRulesSchema>;
export type RuleConfig = AlertRulesConfig['rules'][number];
export type SinkConfig = AlertRulesConfig['sinks'][number];
export type DeliveryConfig = AlertRulesConfig['delivery'];
export type RuleOf<K extends RuleKind> = Extract<RuleConfig, { kind: K }>;

/** A rules file that does not validate; the message names each bad field. */
export class AlertRulesError extends Error {
  override name = 'AlertRulesError';
  readonly issues: { path: string; message: string }[];
  constructor(source: string, issues: { path: string; message: string }[]) {
    super(`${source}: ${issues.map((i) => (i.path ? `${i.path}: ${i.message}` : i.message)).join('; ')}`);
    this.issues = issues;
  }
}

const formatPath = (path: readonly PropertyKey[]): string =>
  path.reduce<string>((out, p) => (typeof p === 'number' ? `${out}[${p}]` : out ? `${out}.${String(p)}` : String(p)), '');

/** Replaces `${NAME}` in every string with the environment variable; unset names are reported with their field. */
function interpolate(value: unknown, env: NodeJS.ProcessEnv, path: PropertyKey[], issues: { path: string; message: string }[]): unknown {
  if (typeof value === 'string')
    return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (whole, name: string) => {
      const v = env[name];
      if (v === undefined) {
        issues.push({ path: formatPath(path), message: `environment variable ${name} is not set` });
        return whole;
      }
      return v;
    });
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, env, [...path, i], issues));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, [...path, k], issues)]));
  return value;
}

/** Validates a parsed rules document (`source` names it in errors). */
export function parseAlertRules(document: unknown, source = 'alert rules', env: NodeJS.ProcessEnv = process.env): AlertRulesConfig {
  const issues: { path: string; message: string }[] = [];
  const expanded = interpolate(document ?? {}, env, [], issues);
  if (issues.length) throw new AlertRulesError(source, issues);
  const result = AlertRulesSchema.safeParse(expanded);
  if (!result.success)
    throw new AlertRulesError(
      source,
      result.error.issues.flatMap((i) =>
        i.code === 'unrecognized_keys'
          ? i.keys.map((key) => ({ path: formatPath([...i.path, key]), message: 'unknown field (a typo? docs/alerting.md lists the fields)' }))
          : [{ path: formatPath(i.path), message: i.message }],
      ),
    );
  return result.data;
}

/** Reads and validates a rules file: YAML for .yaml/.yml, else JSON. */
export function loadAlertRules(path: string, env: NodeJS.ProcessEnv = process.env): AlertRulesConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new AlertRulesError(`alert rules ${path}`, [{ path: '', message: (err as Error).message }]);
  }
  let document: unknown;
  try {
    document = /\.ya?ml$/i.test(path) ? parseYaml(text) : JSON.parse(text);
  } catch (err) {
    throw new AlertRulesError(`alert rules ${path}`, [{ path: '', message: `not valid ${/\.ya?ml$/i.test(path) ? 'YAML' : 'JSON'}: ${(err as Error).message}` }]);
  }
  return parseAlertRules(document, `alert rules ${path}`, env);
}

/** The configuration with every default (what `{}` means). */
export const defaultAlertRules = (): AlertRulesConfig => parseAlertRules({}, 'default alert rules', {});
