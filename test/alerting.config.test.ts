/**
 * The alert rules file: defaults, JSON and YAML, environment references,
 * and errors that name the bad field.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AlertRulesError, defaultAlertRules, formatDuration, loadAlertRules, parseAlertRules, parseDuration } from '../alerting/config.ts';
import { tempDir } from './support/store.ts';

const dir = tempDir('alert-rules');
const file = (name: string, text: string) => {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
};
const errorOf = (fn: () => unknown): AlertRulesError => {
  try {
    fn();
  } catch (err) {
    if (err instanceof AlertRulesError) return err;
    throw err;
  }
  throw new Error('expected an AlertRulesError');
};

describe('alert rules configuration', () => {
  it('parses durations both ways', () => {
    expect(parseDuration('90s')).toBe(90_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('7d')).toBe(604_800_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration(30)).toBe(30_000);
    expect(parseDuration('1.5h')).toBe(5_400_000);
    expect(() => parseDuration('1x')).toThrow(/duration like/);
    expect(() => parseDuration('h')).toThrow(/duration like/);
    expect(formatDuration(5_400_000)).toBe('1h30m');
    expect(formatDuration(604_800_000)).toBe('1w');
    expect(formatDuration(0)).toBe('0s');
  });

  it('gives every rule kind with good defaults for an empty document', () => {
    const c = defaultAlertRules();
    expect(c.rules.map((r) => r.name)).toEqual(['pass_rate_regression', 'cost_per_pass_increase', 'unpriced_model', 'cache_hit_rate_drop', 'pipeline_health']);
    expect(c.rules[0]).toMatchObject({
      kind: 'pass_rate_regression',
      groupBy: ['tenant', 'model', 'spec_tier'],
      method: 'beta-binomial',
      alpha: 0.01,
      minEffect: 0.1,
      resolveEffect: 0.05,
      minAttempts: 30,
      recentWindow: 3_600_000,
      baselineWindow: 604_800_000,
      resolveAfter: 2,
      renotifyInterval: 4 * 3_600_000,
      severity: 'critical',
    });
    expect(c.rules[1]).toMatchObject({ factor: 1.5, resolveFactor: 1.25, minAttempts: 30 });
    expect(c.rules[3]).toMatchObject({ groupBy: ['tenant', 'model'], minDrop: 0.2, resolveDrop: 0.1, minTokens: 1_000_000 });
    expect(c.rules[4]).toMatchObject({ maxLag: 10_000, resolveLag: 5_000, lagFor: 300_000, maxDeadLetters: 0 });
    expect(c.sinks).toEqual([{ type: 'log', name: 'log', format: 'text' }]);
    expect(c.delivery).toMatchObject({ queueSize: 1000, maxAttempts: 10, initialBackoff: 1000, maxBackoff: 60_000 });
    expect(c.evaluationInterval).toBe(60_000);
  });

  it('loads YAML and JSON files, with ${ENV} references', () => {
    const yaml = file(
      'rules.yaml',
      `evaluationInterval: 30s
rules:
  - kind: pass_rate_regression
    groupBy: [tenant, model, spec_tier, variant]
    filter: { spec_tier: [tier-3] }
    minEffect: 0.15
    labels: { team: agents }
  - kind: unpriced_model
    name: unpriced
    sinks: [slack]
sinks:
  - type: slack
    url: \${SLACK_URL}
  - type: webhook
    url: https://example.test/hook
    secret: \${HOOK_SECRET}
`,
    );
    const c = loadAlertRules(yaml, { SLACK_URL: 'https://hooks.slack.test/services/T/B/X', HOOK_SECRET: 's3cret' });
    expect(c.evaluationInterval).toBe(30_000);
    expect(c.rules[0]).toMatchObject({ name: 'pass_rate_regression', groupBy: ['tenant', 'model', 'spec_tier', 'variant'], filter: { spec_tier: ['tier-3'] }, minEffect: 0.15, resolveEffect: 0.075, labels: { team: 'agents' } });
    expect(c.rules[1]).toMatchObject({ name: 'unpriced', sinks: ['slack'] });
    expect(c.sinks).toEqual([
      { type: 'slack', name: 'slack', url: 'https://hooks.slack.test/services/T/B/X' },
      { type: 'webhook', name: 'webhook', url: 'https://example.test/hook', secret: 's3cret', headers: {} },
    ]);
    const json = file('rules.json', JSON.stringify({ rules: [{ kind: 'cost_per_pass_increase', factor: 2 }] }));
    expect(loadAlertRules(json).rules).toMatchObject([{ kind: 'cost_per_pass_increase', factor: 2, resolveFactor: 1.5 }]);
  });

  it('names the bad field in every error', () => {
    const cases: [unknown, string][] = [
      [{ rules: [{ kind: 'pass_rate_regression', alpha: 0.7 }] }, 'rules[0].alpha: must be ≤ 0.5'],
      [{ rules: [{ kind: 'pass_rate_regresion' }] }, 'rules[0].kind: kind must be one of pass_rate_regression,'],
      [{ rules: [{ kind: 'pass_rate_regression', recentWindow: '1x' }] }, 'rules[0].recentWindow: must be a duration like'],
      [{ rules: [{ kind: 'pass_rate_regression', groupBy: ['tenant', 'region'] }] }, 'rules[0].groupBy[1]: Invalid option'],
      [{ rules: [{ kind: 'pass_rate_regression', minEfect: 0.1 }] }, 'rules[0].minEfect: unknown field'],
      [{ rules: [{ kind: 'cache_hit_rate_drop', filter: { spec_tier: ['tier-3'] } }] }, 'rules[0].filter.spec_tier: unknown field'],
      [{ rules: [{ kind: 'unpriced_model', sinks: ['pager'] }] }, 'rules[0].sinks[0]: no sink named "pager"'],
      [{ rules: [{ kind: 'unpriced_model' }, { kind: 'unpriced_model' }] }, 'rules[1].name: duplicate rule name "unpriced_model"'],
      [{ sinks: [{ type: 'webhook', url: 'ftp://example.test' }] }, 'sinks[0].url: must be an http(s) URL'],
      [{ sinks: [{ type: 'pagerduty' }] }, 'sinks[0].type: type must be one of log, webhook, slack, alertmanager, kafka'],
      [{ sinks: [{ type: 'slack', url: '${NOT_SET_ANYWHERE}' }] }, 'sinks[0].url: environment variable NOT_SET_ANYWHERE is not set'],
      [{ sinks: [{ type: 'log' }, { type: 'log' }] }, 'sinks[1].name: duplicate sink name "log"'],
      [{ delivery: { queueSize: 0 } }, 'delivery.queueSize:'],
      [{ evaluationInterval: '0s' }, 'evaluationInterval: must be longer than 0'],
    ];
    for (const [doc, message] of cases) expect(errorOf(() => parseAlertRules(doc, 'rules.yaml', {})).message).toContain(`rules.yaml: ${message}`);
    const err = errorOf(() => parseAlertRules({ rules: [{ kind: 'pass_rate_regression', alpha: 2, minAttempts: 0 }] }, 'x', {}));
    expect(err.issues.map((i) => i.path)).toEqual(['rules[0].alpha', 'rules[0].minAttempts']);
    expect(errorOf(() => loadAlertRules(file('bad.yaml', 'rules: [\n')))).toBeInstanceOf(AlertRulesError);
    expect(errorOf(() => loadAlertRules(file('bad.yaml', 'rules: [\n'))).message).toMatch(/bad\.yaml: not valid YAML/);
    expect(errorOf(() => loadAlertRules(path.join(dir, 'missing.json'))).message).toMatch(/missing\.json: ENOENT/);
  });
});
