import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatUnpriced, uncovered, unpricedCalls } from '../cli/prices-check.ts';
import { checkFilters, formatReport, parseWhen, queryReport } from '../cli/report.ts';
import { ConfigError, envName, resolveConfig } from '../config/settings.ts';
import { formatInstant } from '../contract/rows.ts';
import type { ServiceTier } from '../contract/attributes.ts';
import { zeroTokens } from '../contract/tokens.ts';
import { buildCatalog, priceCall, type Catalog, type CatalogJson } from '../pricing/index.ts';
import { loadPrices } from '../storage/prices.ts';
import type { Store } from '../storage/store.ts';
import { startFleet } from './support/processes.ts';
import { freshStore, tempDir } from './support/store.ts';

describe('configuration', () => {
  it('takes flags over FLEET_* environment over the config file over defaults', () => {
    const file = path.join(tempDir('config'), 'perpass.yaml');
    writeFileSync(file, 'collectorPort: 5000\nqueryPort: 9000\ndatabase: from_file\n');
    const c = resolveConfig({ config: file, collectorPort: '6000' }, { FLEET_QUERY_PORT: '9100' });
    expect(c).toMatchObject({ collectorPort: 6000, queryPort: 9100, database: 'from_file', dataDir: './data', samplingPassRate: 0.05 });
  });

  it('parses lists and token maps from the environment', () => {
    const c = resolveConfig({}, { FLEET_KAFKA_BROKERS: 'k1:9092, k2:9092', FLEET_AUTH_TOKENS: 'tok-a=team-a,tok-b=team-b' });
    expect(c.kafkaBrokers).toEqual(['k1:9092', 'k2:9092']);
    expect(c.authTokens).toEqual({ 'tok-a': 'team-a', 'tok-b': 'team-b' });
  });

  it('names every bad value and where it came from, hiding secrets', () => {
    let message = '';
    try {
      resolveConfig({ collectorPort: 'http' }, { FLEET_SAMPLING_PASS_RATE: '1.5', FLEET_DATABASE: 'drop table', FLEET_AUTH_TOKENS: 'secret-token' });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      message = (err as Error).message;
    }
    expect(message).toMatch(/--collector-port "http"/);
    expect(message).toMatch(/FLEET_SAMPLING_PASS_RATE "1.5"/);
    expect(message).toMatch(/FLEET_DATABASE "drop table": must be a plain identifier/);
    expect(message).toMatch(/FLEET_AUTH_TOKENS \(value hidden\): each token needs a tenant/);
    expect(message).not.toMatch(/secret-token/);
  });

  it('refuses unknown settings in the config file', () => {
    const file = path.join(tempDir('config'), 'bad.json');
    writeFileSync(file, JSON.stringify({ colectorPort: 1 }));
    expect(() => resolveConfig({ config: file }, {})).toThrow(/unknown setting colectorPort/);
  });

  it('derives environment names from setting names', () => {
    expect(envName('clickhouseUrl')).toBe('FLEET_CLICKHOUSE_URL');
    expect(envName('kafkaBrokers')).toBe('FLEET_KAFKA_BROKERS');
    expect(envName('prices')).toBe('FLEET_PRICES');
  });
});

describe('report formatting', () => {
  const rows = [
    { tenant: 'default', model: 'deepseek-v4-flash', spec_tier: 'tier-3', canary: 'c', variant: 'd4-rich', input_price: '0.28', output_price: '1.1', attempts: 40, passes: 40, pass_rate: 1, pass_rate_low: 0.912, pass_rate_high: 1, cost_usd: '1.6', cost_per_call: '0.04', cost_per_pass: '0.04', expected_attempts: 1, unpriced_attempts: 0 },
    { tenant: 'default', model: 'grok-4.20-reasoning', spec_tier: 'tier-3', canary: 'c', variant: 'baseline', input_price: null, output_price: null, attempts: 2, passes: 0, pass_rate: 0, pass_rate_low: 0, pass_rate_high: 0.658, cost_usd: '0.9', cost_per_call: '0.45', cost_per_pass: null, expected_attempts: null, unpriced_attempts: 0 },
  ];

  it('prints ∞ for a configuration that never passes and marks low N', () => {
    const table = formatReport('cost-per-pass', rows, 'table');
    expect(table).toMatch(/│ \$\/M in · out +│/);
    expect(table).toMatch(/grok-4\.20-reasoning.*│ unpriced +│ 0% \(0\/2\).*2 low N.*\$0\.45.*∞/);
    expect(table).toMatch(/deepseek-v4-flash.*│ \$0\.28 · \$1\.10 +│ 100% \(40\/40\).*91%–100%.*│ 40 +│.*\$0\.040/);
    expect(table).toMatch(/fewer than 10 attempts/);
  });

  it('prints JSON and CSV with every column and exact money', () => {
    expect(JSON.parse(formatReport('cost-per-pass', rows, 'json'))).toEqual(rows);
    const csv = formatReport('cost-per-pass', rows, 'csv').trim().split('\n');
    expect(csv[0]).toBe(Object.keys(rows[0]!).join(','));
    expect(csv[2]).toBe('default,grok-4.20-reasoning,tier-3,c,baseline,,,2,0,0,0,0.658,0.9,0.45,,,0');
  });

  it('reads relative and absolute window bounds', () => {
    const now = Date.parse('2026-11-25T12:00:00Z');
    expect(parseWhen('7d', now)).toBe('2026-11-18 12:00:00.000');
    expect(parseWhen('90m', now)).toBe('2026-11-25 10:30:00.000');
    expect(parseWhen('2026-06-01', now)).toBe('2026-06-01 00:00:00.000');
    expect(() => parseWhen('last week', now)).toThrow(/not a time/);
    // DateTime64(9) ends in 2262 and starts in 1900: out of range is a clear error, not the store's parse failure.
    expect(() => parseWhen('99999999d', now)).toThrow(/time "99999999d" is out of range: times must fall from 1900-01-01 to 2262-04-11/);
    expect(() => parseWhen('2262-04-12', now)).toThrow(/out of range/);
    expect(parseWhen('1900-01-01', now)).toBe('1900-01-01 00:00:00.000');
  });

  it('fleet report --since 99999999d: one clear line naming the flag, exit 1, no stack trace, no store opened', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'perpass-report-range-'));
    try {
      const child = startFleet(['report', 'cost-per-pass', '--since', '99999999d', '--data-dir', path.join(dir, 'data')]);
      expect(await child.exited).toBe(1);
      expect(child.output()).toMatch(/^fleet: --since: time "99999999d" is out of range/m);
      expect(child.output()).not.toMatch(/^\s+at /m);
      expect(existsSync(path.join(dir, 'data'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reads times without an offset as UTC, whatever the local time zone', () => {
    const tz = process.env.TZ;
    process.env.TZ = 'America/New_York';
    try {
      expect(new Date(2026, 5, 1).getTimezoneOffset()).toBe(240); // the zone is in effect
      expect(parseWhen('2026-06-01T10:00')).toBe('2026-06-01 10:00:00.000');
      expect(parseWhen('2026-06-01 10:00:30.5')).toBe('2026-06-01 10:00:30.500');
      expect(parseWhen('2026-06-01T10:00:00+02:00')).toBe('2026-06-01 08:00:00.000');
      expect(parseWhen('2026-06-01T10:00:00Z')).toBe('2026-06-01 10:00:00.000');
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });
});

const NOW = Date.now();
const DAY = 86_400_000;
const at = (ms: number) => formatInstant(BigInt(ms) * 1_000_000n);
const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** m1 changed price 10 days ago and has a flex price only since; m1-old's card ended 20 days ago; m3 has none. */
const card = (model: string, periods: CatalogJson['cards'][number]['periods'], aliases: string[] = []) => ({ provider: 'p', model, aliases, periods });
const m1 = (flexBefore: boolean, flexSince: boolean) =>
  card('m1', [
    { from: day(NOW - 100 * DAY), to: day(NOW - 10 * DAY), input: 1, output: 2, ...(flexBefore && { flex_multiplier: 0.5 }) },
    { from: day(NOW - 10 * DAY), input: 3, output: 4, ...(flexSince && { flex_multiplier: 0.5 }) },
  ], ['m1-alias']);
const m2 = card('m2', [{ from: day(NOW - 100 * DAY), input: 0.5, output: 0.25 }]);
const m1Old = card('m1-old', [{ from: day(NOW - 100 * DAY), to: day(NOW - 20 * DAY), input: 1, output: 1 }]);
const CATALOG: CatalogJson = { cards: [m1(false, true), m2, m1Old] };

describe('reports against a store', () => {
  let store: Store;
  beforeAll(async () => {
    store = await freshStore('reports');
    await loadPrices(store, buildCatalog(CATALOG));
    const attempt = (id: string, spec: string, n: number, model: string, outcome: string) => ({
      attempt_id: id, tenant: 'default', spec_id: spec, spec_tier: 'tier-2', canary: 'c', variant: 'v', model, attempt_number: n, outcome,
      started_at: at(NOW - DAY + n * 60_000), ended_at: at(NOW - DAY + n * 60_000 + 1000), cost_usd: '0.5', version: 1,
    });
    await store.insert('attempts', [attempt('a1', 'spec-a', 1, 'm1', 'fail'), attempt('a2', 'spec-a', 2, 'm2', 'pass'), attempt('b1', 'spec-b', 1, 'm3', 'pass')]);
    // The calls as the consumers priced them (b1's m3 call would be unpriced: it has none here).
    const call = (attemptId: string, model: string, priceModel: string) => ({
      tenant: 'default', attempt_id: attemptId, span_id: `s-${attemptId}`, started_at: at(NOW - DAY + 90_000), ended_at: at(NOW - DAY + 91_000),
      provider: 'p', model, service_tier: 'standard', cost_usd: priceModel ? '0.5' : null,
      price_provider: priceModel ? 'p' : '', price_model: priceModel, unpriced_reason: priceModel ? '' : `no price card for model "${model}"`, version: 1,
    });
    await store.insert('llm_calls', [call('a1', 'm1', 'm1'), call('a2', 'm2', 'm2')]);
  });
  afterAll(() => store?.close());

  it('applies --model to specs as "tried on that model", and refuses the filters a report cannot apply', async () => {
    expect((await queryReport(store, 'specs', { model: 'm2' })).map((r) => r.spec_id)).toEqual(['spec-a']);
    expect((await queryReport(store, 'specs', { model: 'm3' })).map((r) => r.spec_id)).toEqual(['spec-b']);
    expect(await queryReport(store, 'specs', { model: 'no-such-model' })).toEqual([]);
    expect((await queryReport(store, 'specs', {})).map((r) => r.spec_id)).toEqual(['spec-a', 'spec-b']);
    await expect(queryReport(store, 'specs', { variant: 'v' })).rejects.toThrow(/report specs cannot filter by --variant: a spec's attempts are not tied to one variant/);
    await expect(queryReport(store, 'routing', { canary: 'c', variant: 'v' })).rejects.toThrow(/report routing cannot filter by --canary, --variant: it ranks models per tier over every canary and variant/);
    expect(() => checkFilters('cost-per-pass', { tenant: 't', tier: 't', model: 'm', canary: 'c', variant: 'v' })).not.toThrow();
  });

  it('shows next to $/pass the input and output price now of the card that priced the row\'s calls (NULL when unpriced)', async () => {
    const prices = Object.fromEntries((await queryReport(store, 'cost-per-pass', {})).map((r) => [r.model, [r.input_price, r.output_price]]));
    expect(prices).toEqual({ m1: ['3', '4'], m2: ['0.5', '0.25'], m3: [null, null] });
  });

  it('prices check: the calls a catalog leaves unpriced, with the engine\'s reason', async () => {
    const call = (span: string, model: string, ms: number, tier = 'standard', priceModel = '') => ({
      tenant: 'default', attempt_id: `att-${span}`, trace_id: 't', span_id: span, started_at: at(ms), ended_at: at(ms + 1000),
      provider: 'p', model, service_tier: tier, cost_usd: null, price_model: priceModel,
    });
    await store.insert('llm_calls', [
      call('c1', 'm1', NOW - 50 * DAY),
      call('c2', 'm1-alias', NOW - DAY),
      call('c3', 'm1', NOW - 50 * DAY, 'flex'), // before m1 had a flex price
      call('c4', 'm1', NOW - DAY, 'flex'),
      call('c5', 'm1', NOW - 2 * DAY, 'flex'),
      call('c6', 'm1-old', NOW - 30 * DAY),
      call('c7', 'm1-old', NOW - 5 * DAY), // after its card ended
      call('c8', 'm3', NOW - DAY),
      call('c9', 'm2-2026-01-01', NOW - DAY, 'standard', 'm2'), // a snapshot priced with its base card at ingest
    ]);
    const catalog = buildCatalog(CATALOG);
    // the reason is the pricing engine's own, for the first unpriced call
    const reason = (c: Catalog, model: string, serviceTier: ServiceTier, ms: number) => {
      const r = priceCall(c, { provider: 'p', model, serviceTier, startedAtMs: ms, tokens: zeroTokens() });
      expect(r.priced).toBe(false);
      return r.priced ? '' : r.reason;
    };
    const one = (model: string, serviceTier: ServiceTier, ms: number) => ({ provider: 'p', providerSource: 'instrumentation', model, serviceTier, calls: 1, attempts: 1, firstMs: ms, lastMs: ms, reason: reason(catalog, model, serviceTier, ms) });
    expect((await unpricedCalls(store, catalog)).unpriced).toEqual([one('m1', 'flex', NOW - 50 * DAY), one('m1-old', 'standard', NOW - 5 * DAY), one('m3', 'standard', NOW - DAY)]);
    expect(reason(catalog, 'm1', 'flex', NOW - 50 * DAY)).toMatch(/flex/);
    const noFlexCatalog = buildCatalog({ cards: [m1(false, false), m2, m1Old] });
    const { unpriced: noFlex } = await unpricedCalls(store, noFlexCatalog);
    expect(noFlex[0]).toEqual({
      provider: 'p', providerSource: 'instrumentation', model: 'm1', serviceTier: 'flex', calls: 3, attempts: 3, firstMs: NOW - 50 * DAY, lastMs: NOW - DAY, reason: reason(noFlexCatalog, 'm1', 'flex', NOW - 50 * DAY),
    });
    expect(formatUnpriced(noFlex, 'prices.json')).toMatch(
      new RegExp(`^3 model\\(s\\) seen without a price in force in prices\\.json.*\\n  p/m1 \\(flex\\): 3 calls in 3 attempts from ${new Date(NOW - 50 * DAY).toISOString()} to ${new Date(NOW - DAY).toISOString()} — `),
    );
    const all: CatalogJson = { cards: [m1(true, true), m2, card('m1-old', [{ from: day(NOW - 100 * DAY), input: 1, output: 1 }]), card('m3', [{ from: day(NOW - 100 * DAY), input: 1, output: 1 }])] };
    expect(await unpricedCalls(store, buildCatalog(all))).toEqual({ unpriced: [], inferred: [] });
  });
});

describe('fleet prices import-litellm', () => {
  it('names --from when its date is not one', async () => {
    const file = path.join(tempDir('litellm'), 'prices.json');
    writeFileSync(file, JSON.stringify({ 'gpt-x': { litellm_provider: 'openai', mode: 'chat', input_cost_per_token: 1e-6, output_cost_per_token: 2e-6 } }));
    const bad = startFleet(['prices', 'import-litellm', file, '--from', 'yesterday']);
    expect(await bad.exited).toBe(1);
    expect(bad.output()).toMatch(/option '--from <date>' argument 'yesterday' is invalid\. must be a UTC date YYYY-MM-DD/);
    const good = startFleet(['prices', 'import-litellm', file, '--from', '2026-11-01']);
    expect(await good.exited).toBe(0);
    expect(JSON.parse(good.output().slice(good.output().indexOf('{'), good.output().lastIndexOf('}') + 1)).cards[0]).toMatchObject({
      model: 'gpt-x',
      periods: [{ from: '2026-11-01', input: 1, output: 2 }],
    });
  }, 60_000);
});

describe('price coverage of a card', () => {
  const card = buildCatalog({
    cards: [
      {
        provider: 'p',
        model: 'm',
        periods: [
          { from: '2026-01-01', to: '2026-02-01', input: 1, output: 1 },
          { from: '2026-03-01', to: '2026-04-01', input: 1, output: 1, flex_multiplier: 0.5 },
          { from: '2026-04-01', input: 1, output: 1 },
        ],
      },
    ],
  }).cards[0]!;
  const ms = (d: string) => Date.parse(d);

  it('finds the gaps between, before and after the periods, per service tier', () => {
    expect(uncovered(card, 'standard', ms('2026-01-05'), ms('2026-01-20'))).toEqual([]);
    expect(uncovered(card, 'standard', ms('2026-03-05'), ms('2026-06-01'))).toEqual([]);
    expect(uncovered(card, 'standard', ms('2026-01-05'), ms('2026-03-05'))).toEqual([[ms('2026-02-01'), ms('2026-03-01')]]);
    expect(uncovered(card, 'standard', ms('2025-12-01'), ms('2026-01-05'))).toEqual([[ms('2025-12-01'), ms('2026-01-01')]]);
    expect(uncovered(card, 'flex', ms('2026-01-05'), ms('2026-05-01'))).toEqual([
      [ms('2026-01-05'), ms('2026-03-01')],
      [ms('2026-04-01'), ms('2026-05-01') + 1],
    ]);
    expect(uncovered(card, 'priority', ms('2026-01-05'), ms('2026-01-05'))).toEqual([[ms('2026-01-05'), ms('2026-01-05') + 1]]);
    expect(uncovered(card, 'standard', ms('2026-02-01'), ms('2026-02-01'))).toEqual([[ms('2026-02-01'), ms('2026-02-01') + 1]]);
  });
});
