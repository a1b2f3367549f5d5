/**
 * The Grafana dashboard (deploy/grafana/dashboards/perpass.json) against
 * real data: a planned fleet of two tenants — including a model without a
 * price card — is sent as OTLP through the real collector onto the bus, the
 * real consumer pipeline writes it into chDB, the catalog is loaded into
 * `prices` and the real alerting engine records an alert. Then every
 * ClickHouse query of the dashboard (panels, annotations, variables) has its
 * Grafana macros and variables substituted the way Grafana and the
 * ClickHouse plugin do, runs as a read-only user would run it, and must
 * return rows — and the headline numbers must be the hand computation's.
 * The Prometheus queries must name metrics the processes really export.
 */
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAlertRules } from '../alerting/config.ts';
import { checkAlerts } from '../alerting/service.ts';
import { MemoryBus } from '../bus/memory.ts';
import { startCollector } from '../collector/index.ts';
import { ConsumerPipeline } from '../consumers/pipeline.ts';
import { planFleet, SEED_FLEET, type FleetConfig, type PlannedAttempt } from '../demo/plan.ts';
import { encodeTraceRequest } from '../otlp/codec.ts';
import { loadDefaultCatalog } from '../pricing/catalog.ts';
import { closingParen } from '../sql/cluster.ts';
import { loadPrices } from '../storage/prices.ts';
import type { Store } from '../storage/store.ts';
import { expectedCostPerPass, loadCards } from './support/ground-truth.ts';
import { attemptSpans, traceRequest } from './support/otlp-fleet.ts';
import { freshStore } from './support/store.ts';

const DB = 'fleet';
const TOPIC = 'otlp_spans';
const CH_UID = 'perpass-clickhouse';
const PROM_UID = 'perpass-prometheus';
const dashboard = JSON.parse(readFileSync(new URL('../deploy/grafana/dashboards/perpass.json', import.meta.url), 'utf8')) as Dashboard;

interface Target {
  datasource?: { type: string; uid: string };
  rawSql?: string;
  expr?: string;
  refId?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  panels: Panel[];
  annotations: { list: { name: string; datasource: { type: string; uid: string }; target?: Target }[] };
  templating: { list: { name: string; type: string; query: string | { rawSql: string }; datasource?: { uid: string } }[] };
}

/** A model no price card answers for: its calls must show up as unpriced. */
const UNPRICED: FleetConfig = {
  provider: 'acme',
  model: 'acme-coder-1',
  variant: 'baseline',
  passRate: { 'tier-2': 0.8, 'tier-3': 0.5 },
  failure: 'fail',
  callTokens: { input: 20_000, cache_read: 10_000, cache_write: 0, output: 3_000, reasoning: 0 },
  callsPerAttempt: 2,
};
const NOW = Date.now();
const TENANTS = ['team-a', 'team-b'];
const plan: PlannedAttempt[] = TENANTS.flatMap((tenant, i) =>
  // 16 specs per cell: the 16 all-passing attempts of claude-sonnet on tier-2 just meet the routing bar (Wilson 95 % ≥ 0.8)
  planFleet({ specsPerCell: 16, seed: 31 + i, tenant, specPrefix: tenant, startNs: BigInt(NOW - 30 * 60_000) * 1_000_000n, spacingMs: 2_000, configs: [...SEED_FLEET, UNPRICED] }),
);

// ------------------------------------------------------------ Grafana side

const panelsOf = (panels: Panel[]): Panel[] => panels.flatMap((p) => [p, ...panelsOf(p.panels ?? [])]);

interface Query {
  where: string;
  sql: string;
}

function clickHouseQueries(d: Dashboard): Query[] {
  const out: Query[] = [];
  for (const p of panelsOf(d.panels)) {
    for (const t of p.targets ?? []) if ((t.datasource ?? p.datasource)?.uid === CH_UID) out.push({ where: `panel "${p.title}" ${t.refId}`, sql: t.rawSql! });
  }
  for (const a of d.annotations.list) if (a.datasource.uid === CH_UID) out.push({ where: `annotation "${a.name}"`, sql: a.target!.rawSql! });
  for (const v of d.templating.list) if (v.type === 'query' && v.datasource?.uid === CH_UID) out.push({ where: `variable ${v.name}`, sql: (v.query as { rawSql: string }).rawSql });
  return out;
}

interface Selection {
  fromMs: number;
  toMs: number;
  intervalS: number;
  /** Selected values per multi-value variable; 'All' = Grafana's All option. */
  vars: Record<string, string[] | 'All'>;
  /** The routing bar (custom variable `bar`). */
  bar: string;
}

/** Arguments of a macro call starting at `open` (the '('), split at top-level commas. */
function macroArgs(sql: string, open: number): { args: string[]; end: number } {
  const end = closingParen(sql, open);
  const inner = sql.slice(open + 1, end - 1);
  const args: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < inner.length; i++) {
    const c = inner[i]!;
    if (c === "'") {
      for (i++; i < inner.length && inner[i] !== "'"; i++) if (inner[i] === '\\') i++;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === ',' && depth === 0) {
      args.push(inner.slice(start, i).trim());
      start = i + 1;
    }
  }
  args.push(inner.slice(start).trim());
  return { args, end };
}

/**
 * What Grafana and the ClickHouse plugin (pkg/macros/macros.go,
 * $__conditionalAll in the frontend) make of a query: dashboard variables,
 * then the plugin's time macros.
 */
function substitute(sql: string, s: Selection): string {
  const seconds = (ms: number) => Math.floor(ms / 1000);
  let out = sql;
  for (let at = out.indexOf('$__conditionalAll('); at >= 0; at = out.indexOf('$__conditionalAll(')) {
    const { args, end } = macroArgs(out, at + '$__conditionalAll'.length);
    expect(args).toHaveLength(2);
    const name = /^\$\{?(\w+)\}?$/.exec(args[1]!)?.[1];
    expect(name, `second argument of $__conditionalAll: ${args[1]}`).toBeDefined();
    out = out.slice(0, at) + (s.vars[name!] === 'All' ? '1=1' : args[0]!) + out.slice(end);
  }
  out = out.replace(/\$\{(\w+):singlequote\}/g, (_, name: string) => {
    const v = s.vars[name];
    expect(Array.isArray(v), `variable ${name} is All outside $__conditionalAll`).toBe(true);
    return (v as string[]).map((x) => `'${x.replace(/'/g, "\\'")}'`).join(',');
  });
  out = out.replace(/\$\{db\}/g, DB).replace(/\$\{bar\}/g, s.bar);
  for (const [macro, fn] of [
    ['$__timeFilter', (col: string) => `${col} >= toDateTime(${seconds(s.fromMs)}) AND ${col} <= toDateTime(${seconds(s.toMs)})`],
    ['$__timeInterval', (col: string) => `toStartOfInterval(toDateTime(${col}), INTERVAL ${s.intervalS} second)`],
  ] as const) {
    for (let at = out.indexOf(`${macro}(`); at >= 0; at = out.indexOf(`${macro}(`)) {
      const { args, end } = macroArgs(out, at + macro.length);
      out = out.slice(0, at) + fn(args[0]!) + out.slice(end);
    }
  }
  out = out
    .replaceAll('$__fromTime', `toDateTime(${seconds(s.fromMs)})`)
    .replaceAll('$__toTime', `toDateTime(${seconds(s.toMs)})`)
    .replaceAll('$__interval_s', String(s.intervalS));
  expect(out, 'a macro or variable the test does not know').not.toMatch(/\$/);
  return out;
}

/** Decimal text → atto-USD. */
const atto = (v: string | null): bigint | null => {
  if (v === null) return null;
  const [int, frac = ''] = v.split('.');
  return BigInt(int!) * 10n ** 18n + BigInt(frac.padEnd(18, '0'));
};

describe('the Grafana dashboard on real pipeline data', () => {
  let store: Store;
  const registries = { collector: new Registry(), consumer: new Registry(), alerts: new Registry() };
  const readonly = (sql: string) => store.query<Record<string, unknown>>(sql, undefined, { readonly: '1' });

  beforeAll(async () => {
    store = await freshStore(DB);
    const catalog = loadDefaultCatalog();
    await loadPrices(store, catalog);
    const bus = new MemoryBus({ partitions: 4 });
    const pipeline = new ConsumerPipeline({
      topic: TOPIC,
      store,
      subscriber: bus.subscriber(TOPIC),
      catalog,
      deadLetter: { publisher: bus.publisher(), topic: 'otlp_spans_dlq' },
      decisionWaitMs: 0,
      registry: registries.consumer,
      log: () => {},
    });
    await pipeline.start();
    const collector = await startCollector({ publisher: bus.publisher(), port: 0, host: '127.0.0.1', topic: TOPIC, registry: registries.collector });
    try {
      // 20 attempts per export request, as an SDK's batch processor would send them
      for (const tenant of TENANTS) {
        const attempts = plan.filter((a) => a.tenant === tenant);
        for (let i = 0; i < attempts.length; i += 20) {
          const body = encodeTraceRequest(traceRequest(attempts.slice(i, i + 20).flatMap(attemptSpans), tenant));
          const res = await fetch(collector.tracesUrl, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
          expect(res.status).toBe(200);
        }
      }
    } finally {
      await collector.close();
    }
    await bus.idle();
    await pipeline.settle();
    await pipeline.stop();
    const [written] = await store.query<{ n: number }>(`SELECT count() AS n FROM ${DB}.attempts FINAL`);
    expect(written!.n).toBe(plan.length);
    // the real alerting engine notices the unpriced model
    const result = await checkAlerts({
      store,
      rules: parseAlertRules({ rules: [{ kind: 'unpriced_model' }], sinks: [{ type: 'log' }] }, 'dashboard test rules', {}),
      registry: registries.alerts,
      log: () => {},
      write: () => {},
    });
    expect(result.fired.map((a) => a.labels.model)).toContain(UNPRICED.model);
  });
  afterAll(async () => store?.close());

  const selection = (vars: Selection['vars'], bar = '0.8'): Selection => ({ fromMs: NOW - 2 * 3_600_000, toMs: NOW + 10 * 60_000, intervalS: 60, vars, bar });

  it('has its ClickHouse queries on the provisioned datasource and a stable uid', () => {
    expect(dashboard.uid).toBe('perpass-cost-per-pass');
    const queries = clickHouseQueries(dashboard);
    expect(queries.length).toBeGreaterThanOrEqual(12);
    const sources = panelsOf(dashboard.panels).filter((p) => p.type !== 'row').map((p) => p.datasource?.uid);
    expect(new Set(sources)).toEqual(new Set([CH_UID, PROM_UID]));
    // the required panels are there
    const text = JSON.stringify(dashboard);
    for (const what of ['v_cost_per_pass_window', 'fleet_wilson_low', 'v_pass_rate_window', '.alerts FINAL', '.prices AS p', 'cache_read_tokens', 'cost_usd IS NULL', 'fleet_consumer_lag_messages']) {
      expect(text).toContain(what);
    }
  });

  it('returns rows for every ClickHouse query, with every tenant and tier, and with one of each selected', async () => {
    // the queries run as the dashboards' read-only ClickHouse user would: readonly = 1 refuses writes
    await expect(store.command(`INSERT INTO ${DB}.prices SELECT * FROM ${DB}.prices LIMIT 0`, undefined, { readonly: '1' })).rejects.toThrow(/readonly/i);
    const all = selection({ tenant: 'All', tier: 'All' });
    const tenants = (await readonly(substitute('SELECT DISTINCT tenant FROM ${db}.attempts ORDER BY tenant', all))).map((r) => r.tenant as string);
    expect(tenants).toEqual(TENANTS);
    const cases: [Selection['vars'], string][] = [
      [{ tenant: 'All', tier: 'All' }, '0.8'],
      [{ tenant: ['team-b'], tier: ['tier-3'] }, '0.5'],
      [{ tenant: ['team-a', 'team-b'], tier: ['tier-2'] }, '0.8'],
    ];
    for (const [vars, bar] of cases) {
      for (const q of clickHouseQueries(dashboard)) {
        const sql = substitute(q.sql, selection(vars, bar));
        const rows = await readonly(sql).catch((err: Error) => {
          throw new Error(`${q.where} failed: ${err.message}\n${sql}`);
        });
        expect(rows.length, `${q.where} with ${JSON.stringify(vars)} returned no rows:\n${sql}`).toBeGreaterThan(0);
      }
    }
  });

  it('shows the exact $/pass of the hand computation per model and tier', async () => {
    const panel = panelsOf(dashboard.panels).find((p) => p.title === '$/pass by model × tier')!;
    const rows = await readonly(substitute(panel.targets![0]!.rawSql!, selection({ tenant: ['team-a'], tier: 'All' })));
    const expected = expectedCostPerPass(loadCards(), plan).filter((c) => c.tenant === 'team-a');
    expect(rows).toHaveLength(expected.length); // one canary and variant per model × tier here
    for (const e of expected) {
      const r = rows.find((x) => x.model === e.model && x.tier === e.spec_tier)!;
      expect({ attempts: r.n_attempts, passes: r.n_passes, unpriced: r.n_unpriced, cost: r.cost, cost_per_pass: r.cost_per_pass }, `${e.model} ${e.spec_tier}`).toEqual({
        attempts: e.attempts,
        passes: e.passes,
        unpriced: e.unpriced_attempts,
        cost: e.cost_usd,
        cost_per_pass: e.cost_per_pass,
      });
    }
    const acme = rows.filter((r) => r.model === UNPRICED.model);
    expect(acme.map((r) => [r.cost, Number(r.n_unpriced) > 0])).toEqual([
      [null, true],
      [null, true],
    ]);
  });

  it('splits cost per token kind so that the kinds add up exactly to the priced calls', async () => {
    const panel = panelsOf(dashboard.panels).find((p) => p.title === 'Cost per token kind by model')!;
    const rows = await readonly(substitute(panel.targets![0]!.rawSql!, selection({ tenant: 'All', tier: 'All' })));
    expect(rows.map((r) => r.model)).toEqual([...new Set(SEED_FLEET.map((c) => c.model))].sort());
    const kinds = ['input_usd', 'cache_read_usd', 'cache_write_usd', 'output_usd', 'reasoning_usd'];
    let total = 0n;
    for (const r of rows) for (const k of kinds) total += atto(r[k] as string)!;
    const [priced] = await store.query<{ c: string }>(`SELECT toString(sum(cost_usd)) AS c FROM ${DB}.llm_calls FINAL WHERE cost_usd IS NOT NULL`);
    expect(total).toBe(atto(priced!.c));
    // and per model the same
    const perModel = await store.query<{ model: string; c: string }>(`SELECT model, toString(sum(cost_usd)) AS c FROM ${DB}.llm_calls FINAL WHERE cost_usd IS NOT NULL GROUP BY model`);
    for (const m of perModel) {
      const r = rows.find((x) => x.model === m.model)!;
      expect(kinds.reduce((n, k) => n + atto(r[k] as string)!, 0n), m.model).toBe(atto(m.c));
    }
  });

  it('annotates the alert the alerting engine recorded, and lists the unpriced model', async () => {
    const annotation = dashboard.annotations.list.find((a) => a.datasource.uid === CH_UID)!;
    const anno = await readonly(substitute(annotation.target!.rawSql!, selection({ tenant: 'All', tier: 'All' })));
    expect(anno.map((a) => a.tags)).toContainEqual('unpriced_model,unpriced_model,warning');
    expect(anno.every((a) => typeof a.time === 'string' && typeof a.text === 'string' && a.timeEnd !== undefined)).toBe(true);
    const unpriced = panelsOf(dashboard.panels).find((p) => p.title === 'Unpriced LLM calls')!;
    const rows = await readonly(substitute(unpriced.targets![0]!.rawSql!, selection({ tenant: 'All', tier: 'All' })));
    expect(rows.map((r) => [r.provider, r.model])).toEqual([[UNPRICED.provider, UNPRICED.model]]);
    expect(rows[0]!.calls).toBe(plan.filter((a) => a.model === UNPRICED.model).reduce((n, a) => n + a.calls.length, 0));
  });

  it('asks Prometheus only for metrics the collector, consumers and alerts service export', async () => {
    const exported = new Set<string>();
    for (const registry of Object.values(registries)) for (const m of await registry.getMetricsAsJSON()) exported.add(m.name);
    expect(exported).toContain('fleet_consumer_lag_messages');
    const exprs = panelsOf(dashboard.panels).flatMap((p) => (p.targets ?? []).filter((t) => (t.datasource ?? p.datasource)?.uid === PROM_UID).map((t) => t.expr!));
    expect(exprs.length).toBeGreaterThanOrEqual(6);
    for (const expr of exprs) {
      const names = [...expr.matchAll(/\bfleet_[a-z_]+/g)].map((m) => m[0]);
      expect(names.length, expr).toBeGreaterThan(0);
      for (const name of names) expect(exported.has(name) || exported.has(name.replace(/_(bucket|sum|count)$/, '')), `${name} in ${expr}`).toBe(true);
    }
  });
});
