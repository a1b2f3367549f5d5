/**
 * Bounded label cardinality for the fleet_* gauges. Their `tenant` and
 * `model` label values come from spans (anyone who can send a span picks
 * them), so each is made safe before it becomes a Prometheus series:
 * control characters removed, length capped; per tenant only the top
 * `topModels` models by attempts keep their own series, the rest are summed
 * into model `other`; beyond the top `maxTenants` tenants, the same with
 * tenant `other`. The series count is then at most
 * (maxTenants + 1) × (topModels + 1) × tiers × windows, whatever is sent.
 */
import type { FleetGaugeRow } from './queries.ts';

export interface CardinalityLimits {
  /** Models per tenant with their own series; the rest become model="other". */
  topModels: number;
  /** Tenants with their own series; the rest become tenant="other". */
  maxTenants: number;
  /** Longer label values are cut to this many characters (ending in "…"). */
  maxLabelLength: number;
}

/** The bucket name for what is folded together. */
export const OTHER = 'other';

/** A label value safe to export: no control or format characters, at most `max` characters (code points). */
export function sanitizeLabelValue(value: string, max: number): string {
  const clean = [...value.replace(/[\p{Cc}\p{Cf}\p{Co}\p{Cs}\p{Zl}\p{Zp}]/gu, '')];
  return clean.length <= max ? clean.join('') : `${clean.slice(0, max - 1).join('')}…`;
}

/** Same formula as the SQL function fleet_cost_per_pass (sql/migrations/0002_views.sql). */
const costPerPass = (cost: number, attempts: number, priced: number, passes: number): number | null =>
  passes === 0 || priced === 0 ? null : (cost * attempts) / (priced * passes);

function add(into: FleetGaugeRow, r: FleetGaugeRow): void {
  into.attempts += r.attempts;
  into.passes += r.passes;
  into.unpriced_attempts += r.unpriced_attempts;
  into.cost_usd += r.cost_usd;
  into.cache_read_tokens += r.cache_read_tokens;
  into.input_tokens_total += r.input_tokens_total;
}

/** The top `n` keys by attempts (ties by name, so the choice is stable between evaluations). */
function top(totals: Map<string, number>, n: number): Set<string> {
  return new Set(
    [...totals]
      .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : a > b ? 1 : 0))
      .slice(0, n)
      .map(([k]) => k),
  );
}

/**
 * The rows of one window with tenants and models bounded as described above;
 * rows that end up with the same labels are summed (their cost per pass
 * recomputed from the sums).
 */
export function boundSeries(rows: readonly FleetGaugeRow[], limits: CardinalityLimits): FleetGaugeRow[] {
  const label = (v: string) => sanitizeLabelValue(v, limits.maxLabelLength);
  const tenantTotals = new Map<string, number>();
  for (const r of rows) tenantTotals.set(label(r.tenant), (tenantTotals.get(label(r.tenant)) ?? 0) + r.attempts);
  const keptTenants = top(tenantTotals, limits.maxTenants);
  const tenantOf = (r: FleetGaugeRow) => (keptTenants.has(label(r.tenant)) ? label(r.tenant) : OTHER);

  const modelTotals = new Map<string, Map<string, number>>();
  for (const r of rows) {
    const t = tenantOf(r);
    const models = modelTotals.get(t) ?? modelTotals.set(t, new Map()).get(t)!;
    models.set(label(r.model), (models.get(label(r.model)) ?? 0) + r.attempts);
  }
  const keptModels = new Map([...modelTotals].map(([t, models]) => [t, top(models, limits.topModels)]));

  const out = new Map<string, FleetGaugeRow>();
  for (const r of rows) {
    const tenant = tenantOf(r);
    const model = keptModels.get(tenant)!.has(label(r.model)) ? label(r.model) : OTHER;
    const spec_tier = label(r.spec_tier);
    const key = JSON.stringify([tenant, model, spec_tier]);
    const row = out.get(key);
    if (row) add(row, r);
    else out.set(key, { ...r, tenant, model, spec_tier });
  }
  return [...out.values()].map((r) => ({ ...r, cost_per_pass: costPerPass(r.cost_usd, r.attempts, r.attempts - r.unpriced_attempts, r.passes) }));
}
