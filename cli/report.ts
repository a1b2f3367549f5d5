/**
 * `fleet report …`: the views as tables, JSON or CSV. The queries are the
 * views' own, with the filters as query parameters; formatting is pure.
 */
import Table from 'cli-table3';
import type { Store } from '../storage/store.ts';

export const REPORTS = ['cost-per-pass', 'specs', 'routing'] as const;
export type ReportName = (typeof REPORTS)[number];
export const FORMATS = ['table', 'json', 'csv'] as const;
export type Format = (typeof FORMATS)[number];

export interface ReportFilters {
  since?: string;
  until?: string;
  tenant?: string;
  tier?: string;
  model?: string;
  canary?: string;
  variant?: string;
  /** routing: pass-rate bar on the Wilson lower bound (default 0.8) and its z (default 1.96). */
  minPassRate?: number;
  z?: number;
}

/** Attempts below this make a pass rate too uncertain to route on. */
export const LOW_N = 10;

type Row = Record<string, unknown>;

const FILTERS = ['tenant', 'tier', 'model', 'canary', 'variant'] as const;
type Filter = (typeof FILTERS)[number];
const COLUMN: Record<Filter, string> = { tenant: 'tenant', tier: 'spec_tier', model: 'model', canary: 'canary', variant: 'variant' };

/** The filters each report applies; any other is refused, never silently dropped. */
const APPLIES: Record<ReportName, Partial<Record<Filter, (param: string) => string>>> = {
  'cost-per-pass': Object.fromEntries(FILTERS.map((f) => [f, (p: string) => `${COLUMN[f]} = ${p}`])),
  routing: { tenant: (p) => `tenant = ${p}`, tier: (p) => `spec_tier = ${p}`, model: (p) => `model = ${p}` },
  // a spec can be tried on several models: it matches if any attempt used the model
  specs: { tenant: (p) => `tenant = ${p}`, tier: (p) => `spec_tier = ${p}`, canary: (p) => `canary = ${p}`, model: (p) => `has(models, ${p})` },
};
const WHY_NOT: Record<ReportName, string> = {
  'cost-per-pass': '',
  routing: 'it ranks models per tier over every canary and variant (fleet report cost-per-pass splits them)',
  specs: "a spec's attempts are not tied to one variant (fleet report cost-per-pass --variant splits them)",
};

/** Refuses a filter the report cannot apply, naming it and why. */
export function checkFilters(report: ReportName, filters: ReportFilters): void {
  const refused = FILTERS.filter((f) => filters[f] !== undefined && !APPLIES[report][f]);
  if (refused.length) throw new RangeError(`report ${report} cannot filter by ${refused.map((f) => `--${f}`).join(', ')}: ${WHY_NOT[report]}`);
  // Bad times are told before any store is opened.
  for (const [flag, when] of [['--since', filters.since], ['--until', filters.until]] as const) {
    if (when === undefined) continue;
    try {
      parseWhen(when);
    } catch (err) {
      throw new RangeError(`${flag}: ${(err as Error).message}`);
    }
  }
}

function where(report: ReportName, filters: ReportFilters): { sql: string; params: Record<string, unknown> } {
  checkFilters(report, filters);
  const clauses: string[] = [];
  const params: Record<string, unknown> = {};
  for (const f of FILTERS) {
    const clause = APPLIES[report][f];
    if (filters[f] === undefined || !clause) continue;
    clauses.push(clause(`{${f}:String}`));
    params[f] = filters[f];
  }
  return { sql: clauses.length ? `WHERE ${clauses.join(' AND ')}` : '', params };
}

/** `2026-06-01 10:00[:00[.000]]` or `2026-06-01T10:00…` without an offset: DESIGN's times are UTC. */
const WITHOUT_OFFSET = /^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)$/;

/** What DateTime64(9) holds: 1900-01-01 up to 2262-04-11 23:47:16 UTC. */
const DATETIME64_MIN_MS = Date.UTC(1900, 0, 1);
const DATETIME64_END_MS = Date.UTC(2262, 3, 11, 23, 47, 16);

/** A time bound as ClickHouse DateTime64 text: ISO dates and instants (UTC unless they carry an offset), or relative `7d`, `12h`, `30m`. */
export function parseWhen(text: string, now = Date.now()): string {
  const rel = /^(\d+)([dhm])$/.exec(text);
  const utc = WITHOUT_OFFSET.exec(text);
  const ms = rel ? now - Number(rel[1]) * { d: 86_400_000, h: 3_600_000, m: 60_000 }[rel[2] as 'd' | 'h' | 'm'] : Date.parse(utc ? `${utc[1]}T${utc[2]}Z` : text);
  if (!Number.isFinite(ms)) throw new RangeError(`not a time: ${JSON.stringify(text)} (use an ISO date/time or 7d, 12h, 30m)`);
  if (ms < DATETIME64_MIN_MS || ms >= DATETIME64_END_MS) {
    throw new RangeError(`time ${JSON.stringify(text)} is out of range: times must fall from 1900-01-01 to 2262-04-11 (ClickHouse DateTime64(9))`);
  }
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

/**
 * Per (tenant, model as attempts name it), the input and output price, USD
 * per million tokens, of the card in force now among those that priced its
 * calls in the window: the card that actually prices the row, never a card
 * of another provider that happens to share the model's name. NULL when its
 * calls are unpriced or several cards priced them.
 */
const pricingCards = (db: string) => `
  SELECT c.tenant AS card_tenant, c.name AS name, toNullable(p.input) AS input_price, toNullable(p.output) AS output_price
  FROM (SELECT tenant, if(request_model != '', request_model, model) AS name, any(price_provider) AS card_provider, any(price_model) AS card_model
        FROM ${db}.llm_calls FINAL
        WHERE started_at >= {since:DateTime64(9)} AND started_at < {until:DateTime64(9)} AND price_model != ''
        GROUP BY tenant, name HAVING uniqExact(price_provider, price_model) = 1) AS c
  INNER JOIN (SELECT provider, model, input, output FROM ${db}.prices WHERE valid_from <= now64(3) AND (valid_to IS NULL OR now64(3) < valid_to)) AS p
    ON p.provider = c.card_provider AND p.model = c.card_model`;

export async function queryReport(store: Store, report: ReportName, filters: ReportFilters): Promise<Row[]> {
  const db = store.database;
  const w = where(report, filters);
  const window = {
    since: parseWhen(filters.since ?? '30d'),
    until: filters.until ? parseWhen(filters.until) : '2262-01-01 00:00:00',
  };
  if (report === 'cost-per-pass') {
    return store.query(
      `SELECT tenant, model, spec_tier, canary, variant, input_price, output_price, attempts, passes, pass_rate, pass_rate_low, pass_rate_high,
              cost_usd, cost_per_call, cost_per_pass, expected_attempts, unpriced_attempts
       FROM (SELECT * FROM ${db}.v_cost_per_pass_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)}) ${w.sql}) AS c
       LEFT JOIN (${pricingCards(db)}) AS p ON p.name = c.model AND p.card_tenant = c.tenant
       ORDER BY tenant, spec_tier, cost_per_pass ASC NULLS LAST, model`,
      { ...window, ...w.params },
    );
  }
  if (report === 'routing') {
    return store.query(
      `SELECT tenant, spec_tier, rank, model, attempts, passes, pass_rate, pass_rate_low, cost_per_call, cost_per_pass, expected_attempts, unpriced_attempts
       FROM ${db}.v_routing_window(since = {since:DateTime64(9)}, until = {until:DateTime64(9)}, min_pass_rate = {min:Float64}, z = {z:Float64}) ${w.sql}
       ORDER BY tenant, spec_tier, rank`,
      { ...window, ...w.params, min: filters.minPassRate ?? 0.8, z: filters.z ?? 1.959963984540054 },
    );
  }
  return store.query(
    `SELECT tenant, spec_id, spec_tier, canary, attempts, passes, passed, first_pass_attempt, first_attempt_passed, first_attempt_model,
            cost_until_first_pass, total_cost_usd, unpriced_attempts
     FROM ${db}.v_spec_outcomes ${w.sql ? `${w.sql} AND` : 'WHERE'} first_started_at >= {since:DateTime64(9)} AND first_started_at < {until:DateTime64(9)}
     ORDER BY tenant, spec_tier, spec_id`,
    { ...window, ...w.params },
  );
}

const money = (v: unknown): string => {
  if (v === null || v === undefined) return '';
  const n = Number(v);
  return n >= 100 ? `$${n.toFixed(0)}` : n >= 1 ? `$${n.toFixed(2)}` : `$${n.toPrecision(2)}`;
};
const pct = (v: unknown) => (v === null || v === undefined ? '' : `${(Number(v) * 100).toFixed(0)}%`);

/** Human cells: ∞ where nothing passed, intervals, a low-N mark. */
function humanRow(report: ReportName, r: Row): Record<string, string> {
  if (report === 'specs') {
    return {
      tenant: String(r.tenant),
      spec: String(r.spec_id),
      tier: String(r.spec_tier),
      attempts: String(r.attempts),
      passed: r.passed ? `yes (#${r.first_pass_attempt})` : 'no',
      'first try': r.first_attempt_passed ? 'pass' : 'fail',
      'cost to first pass': r.passed ? (r.cost_until_first_pass === null ? 'unpriced' : money(r.cost_until_first_pass)) : '∞',
      'total cost': r.total_cost_usd === null ? 'unpriced' : money(r.total_cost_usd),
    };
  }
  const n = Number(r.attempts);
  const unpriced = Number(r.unpriced_attempts) > 0 ? ` (${r.unpriced_attempts} unpriced)` : '';
  const base: Record<string, string> = {};
  if (report === 'routing') base.rank = String(r.rank);
  Object.assign(base, {
    tenant: String(r.tenant),
    tier: String(r.spec_tier),
    model: String(r.model),
  });
  if (report === 'cost-per-pass') {
    Object.assign(base, {
      canary: String(r.canary),
      variant: String(r.variant),
      '$/M in · out': r.input_price === null || r.output_price === null ? 'unpriced' : `${money(r.input_price)} · ${money(r.output_price)}`,
    });
  }
  return {
    ...base,
    'pass rate': `${pct(r.pass_rate)} (${r.passes}/${n})`,
    'wilson 95%': report === 'routing' ? `≥ ${pct(r.pass_rate_low)}` : `${pct(r.pass_rate_low)}–${pct(r.pass_rate_high)}`,
    N: n < LOW_N ? `${n} low N` : String(n),
    '$/call': r.cost_per_call === null ? 'unpriced' : money(r.cost_per_call),
    '$/pass': Number(r.passes) === 0 ? '∞' : r.cost_per_pass === null ? 'unpriced' : `${money(r.cost_per_pass)}${unpriced}`,
  };
}

function csvCell(v: unknown): string {
  const s = v === null || v === undefined ? '' : Array.isArray(v) ? v.join(';') : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function formatReport(report: ReportName, rows: Row[], format: Format): string {
  if (format === 'json') return `${JSON.stringify(rows, null, 2)}\n`;
  if (format === 'csv') {
    const columns = rows[0] ? Object.keys(rows[0]) : [];
    return [columns.join(','), ...rows.map((r) => columns.map((c) => csvCell(r[c])).join(','))].join('\n') + '\n';
  }
  if (rows.length === 0) return report === 'routing' ? 'no model meets the pass-rate bar in this window (try --min-pass-rate or more traffic)\n' : 'no attempts in this window\n';
  const human = rows.map((r) => humanRow(report, r));
  const table = new Table({ head: Object.keys(human[0]!), style: { head: [], border: [] } });
  for (const h of human) table.push(Object.values(h));
  const lowN = report !== 'specs' && rows.some((r) => Number(r.attempts) < LOW_N);
  return `${table.toString()}\n${lowN ? `rows marked "low N" have fewer than ${LOW_N} attempts: their pass rate (and $/pass) is uncertain — see the Wilson interval.\n` : ''}`;
}
