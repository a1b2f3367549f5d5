import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatReport, parseWhen } from '../cli/report.ts';
import { ConfigError, envName, resolveConfig } from '../config/settings.ts';
import { tempDir } from './support/store.ts';

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
    { tenant: 'default', model: 'deepseek-v4-flash', spec_tier: 'tier-3', canary: 'c', variant: 'd4-rich', attempts: 40, passes: 40, pass_rate: 1, pass_rate_low: 0.912, pass_rate_high: 1, cost_usd: '1.6', cost_per_call: '0.04', cost_per_pass: '0.04', expected_attempts: 1, unpriced_attempts: 0 },
    { tenant: 'default', model: 'grok-4.20-reasoning', spec_tier: 'tier-3', canary: 'c', variant: 'baseline', attempts: 2, passes: 0, pass_rate: 0, pass_rate_low: 0, pass_rate_high: 0.658, cost_usd: '0.9', cost_per_call: '0.45', cost_per_pass: null, expected_attempts: null, unpriced_attempts: 0 },
  ];

  it('prints ∞ for a configuration that never passes and marks low N', () => {
    const table = formatReport('cost-per-pass', rows, 'table');
    expect(table).toMatch(/grok-4\.20-reasoning.*0% \(0\/2\).*2 low N.*\$0\.45.*∞/);
    expect(table).toMatch(/deepseek-v4-flash.*100% \(40\/40\).*91%–100%.*│ 40 +│.*\$0\.040/);
    expect(table).toMatch(/fewer than 10 attempts/);
  });

  it('prints JSON and CSV with every column and exact money', () => {
    expect(JSON.parse(formatReport('cost-per-pass', rows, 'json'))).toEqual(rows);
    const csv = formatReport('cost-per-pass', rows, 'csv').trim().split('\n');
    expect(csv[0]).toBe(Object.keys(rows[0]!).join(','));
    expect(csv[2]).toBe('default,grok-4.20-reasoning,tier-3,c,baseline,2,0,0,0,0.658,0.9,0.45,,,0');
  });

  it('reads relative and absolute window bounds', () => {
    const now = Date.parse('2026-11-25T12:00:00Z');
    expect(parseWhen('7d', now)).toBe('2026-11-18 12:00:00.000');
    expect(parseWhen('90m', now)).toBe('2026-11-25 10:30:00.000');
    expect(parseWhen('2026-06-01', now)).toBe('2026-06-01 00:00:00.000');
    expect(() => parseWhen('last week', now)).toThrow(/not a time/);
  });
});
