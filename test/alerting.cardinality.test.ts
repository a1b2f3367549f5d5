/**
 * Bounded label cardinality of the fleet_* gauges (alerting/cardinality.ts):
 * whatever tenants and model names senders invent, the series stay within
 * (maxTenants + 1) × (topModels + 1) per tier, values are clean and short,
 * and what is folded into `other` is summed exactly.
 */
import { describe, expect, it } from 'vitest';
import { boundSeries, OTHER, sanitizeLabelValue } from '../alerting/cardinality.ts';
import type { FleetGaugeRow } from '../alerting/queries.ts';

const row = (tenant: string, model: string, attempts: number, over: Partial<FleetGaugeRow> = {}): FleetGaugeRow => ({
  tenant,
  model,
  spec_tier: 'tier-3',
  attempts,
  passes: Math.floor(attempts / 2),
  unpriced_attempts: 0,
  cost_usd: attempts * 0.01,
  cost_per_pass: null,
  cache_read_tokens: attempts * 10,
  input_tokens_total: attempts * 100,
  ...over,
});

const limits = { topModels: 3, maxTenants: 2, maxLabelLength: 16 };

describe('fleet gauge label cardinality', () => {
  it('keeps the top models per tenant and sums the rest into model="other", exactly', () => {
    const rows = [row('acme', 'a', 100), row('acme', 'b', 90), row('acme', 'c', 80), row('acme', 'd', 7), row('acme', 'e', 5, { unpriced_attempts: 5 })];
    const out = boundSeries(rows, limits);
    expect(out.map((r) => r.model).sort()).toEqual(['a', 'b', 'c', OTHER]);
    const other = out.find((r) => r.model === OTHER)!;
    expect(other).toMatchObject({ tenant: 'acme', attempts: 12, passes: 3 + 2, unpriced_attempts: 5, cache_read_tokens: 120, input_tokens_total: 1200 });
    expect(other.cost_usd).toBeCloseTo(0.12, 12);
    // fleet_cost_per_pass over the sums: cost × attempts ÷ (priced attempts × passes)
    expect(other.cost_per_pass).toBeCloseTo((0.12 * 12) / (7 * 5), 12);
    const a = out.find((r) => r.model === 'a')!;
    expect(a.cost_per_pass).toBeCloseTo((1 * 100) / (100 * 50), 12);
  });

  it('keeps the tenants with most attempts and folds the rest into tenant="other"', () => {
    const rows = [row('big', 'm', 1000), row('mid', 'm', 500), row('small-1', 'm', 3), row('small-2', 'x', 2)];
    const out = boundSeries(rows, limits);
    expect(out.map((r) => `${r.tenant}/${r.model}`).sort()).toEqual(['big/m', 'mid/m', 'other/m', 'other/x']);
  });

  it('bounds a flood of hostile model names: series count, length and characters', () => {
    const rows = Array.from({ length: 5000 }, (_, i) => row(`tenant-${i % 40}`, `<!channel>\u0000\u202e${'x'.repeat(i % 300)}-${i}\n`, 1 + (i % 13)));
    const out = boundSeries(rows, limits);
    expect(out.length).toBeLessThanOrEqual((limits.maxTenants + 1) * (limits.topModels + 1));
    for (const r of out) {
      for (const v of [r.tenant, r.model, r.spec_tier]) {
        expect([...v].length).toBeLessThanOrEqual(limits.maxLabelLength);
        expect(v).not.toMatch(/[\u0000-\u001f\u007f\u202e]/);
      }
    }
    // nothing is lost: the attempts add up to what was sent
    expect(out.reduce((n, r) => n + r.attempts, 0)).toBe(rows.reduce((n, r) => n + r.attempts, 0));
  });

  it('sanitizes a value: control and format characters removed, long values cut with an ellipsis', () => {
    expect(sanitizeLabelValue('gpt-5\u0000\u0007\u200b\u202e.4', 64)).toBe('gpt-5.4');
    expect(sanitizeLabelValue('é'.repeat(100), 10)).toBe(`${'é'.repeat(9)}…`);
    expect(sanitizeLabelValue('claude-sonnet-4-6', 64)).toBe('claude-sonnet-4-6');
  });

  it('merges values that become equal once cut, instead of emitting duplicate series', () => {
    const out = boundSeries([row('t', `${'m'.repeat(40)}-1`, 10), row('t', `${'m'.repeat(40)}-2`, 20)], { ...limits, topModels: 10 });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ model: `${'m'.repeat(15)}…`, attempts: 30 });
  });
});
