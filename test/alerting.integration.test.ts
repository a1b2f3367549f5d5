/**
 * The alerts service end to end on real chDB: attempt and LLM-call rows in
 * the perpass tables, the service evaluating them on a moving clock, and
 * local receivers (webhook with HMAC, Alertmanager-shaped, Slack-shaped)
 * recording what arrives.
 */
import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { afterAll, describe, expect, it } from 'vitest';
import { parseAlertRules, type AlertRulesInput } from '../alerting/config.ts';
import { subscriberHealthSource } from '../alerting/health.ts';
import { checkAlerts, startAlerts, type AlertsOptions } from '../alerting/service.ts';
import { SIGNATURE_HEADER } from '../alerting/sinks.ts';
import { MemoryBus } from '../bus/memory.ts';
import { AttemptRowSchema, LlmCallRowSchema, formatInstant, type AttemptRow, type LlmCallRow } from '../contract/rows.ts';
import { loadDefaultCatalog, priceCall } from '../pricing/index.ts';
import type { Store } from '../storage/store.ts';
import { freshStore } from './support/store.ts';

// ------------------------------------------------------------- receivers

interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  raw: string;
  body: unknown;
  /** When it arrived (ms). */
  at: number;
}

const servers: Server[] = [];
const stores: Store[] = [];
afterAll(async () => {
  for (const s of servers) await new Promise<void>((resolve) => s.close(() => resolve()));
  for (const s of stores) await s.close();
});

/** A local HTTP receiver recording accepted requests; `answer` picks each request's status (1-based). */
async function receiver(answer: (n: number) => number = () => 200) {
  const received: Received[] = [];
  let n = 0;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const status = answer(++n);
      if (status < 300) received.push({ path: req.url ?? '', headers: req.headers, raw, body: JSON.parse(raw), at: Date.now() });
      res.writeHead(status, { 'content-type': 'text/plain' }).end(status < 300 ? 'ok' : 'try again');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, requests: () => n };
}

// ------------------------------------------------------------------ rows

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
/** Two days ago on a whole minute: every simulated evaluation stays in the past. */
const T0 = Math.floor((Date.now() - 2 * DAY) / MIN) * MIN;
const at = (ms: number) => formatInstant(BigInt(ms) * 1_000_000n);
let seq = 0;

interface Series {
  tenant?: string;
  model: string;
  tier: string;
  variant?: string;
  from: number;
  to: number;
  attempts: number;
  passes: number;
  /** USD per attempt; null = unpriced. */
  cost?: string | null;
}

/** `attempts` rows spread evenly over [from, to) with exactly `passes` passes spread among them. */
function attempts(s: Series): AttemptRow[] {
  return Array.from({ length: s.attempts }, (_, i) => {
    const start = s.from + Math.floor(((s.to - s.from) * i) / s.attempts);
    const pass = Math.floor(((i + 1) * s.passes) / s.attempts) > Math.floor((i * s.passes) / s.attempts);
    const id = `a-${++seq}`;
    return AttemptRowSchema.parse({
      attempt_id: id,
      tenant: s.tenant ?? 'default',
      spec_id: `spec-${seq}`,
      spec_tier: s.tier,
      canary: `${s.tier}/canary`,
      variant: s.variant ?? 'baseline',
      pool: 'builder-heavy-fast',
      model: s.model,
      attempt_number: 1,
      outcome: pass ? 'pass' : 'fail',
      reason: pass ? '' : 'acceptance tests failed',
      started_at: at(start),
      ended_at: at(start + 30_000),
      duration_ms: 30_000,
      llm_calls: 1,
      tool_calls: 0,
      input_tokens: 1000,
      cache_read_tokens: 0,
      cache_write_tokens: 0,
      output_tokens: 200,
      reasoning_tokens: 0,
      cost_usd: s.cost === undefined ? '0.05' : s.cost,
      reported_cost_usd: null,
      unpriced_calls: s.cost === null ? 1 : 0,
      trace_id: id.padStart(32, '0'),
      span_id: id.padStart(16, '0'),
      sampled: !pass,
      sampling_rate: 1,
      decision: 'ended',
      version: 1,
    });
  });
}

const catalog = loadDefaultCatalog();

/** LLM-call rows, priced (or not) by the real pricing engine with the shipped catalog. */
function calls(s: { tenant?: string; provider: string; model: string; from: number; to: number; calls: number; input: number; cacheRead: number; attemptsOf?: number }): LlmCallRow[] {
  return Array.from({ length: s.calls }, (_, i) => {
    const start = s.from + Math.floor(((s.to - s.from) * i) / s.calls);
    const tokens = { input: s.input, cache_read: s.cacheRead, cache_write: 0, output: 300, reasoning: 0 };
    const priced = priceCall(catalog, { provider: s.provider, model: s.model, startedAtMs: start, serviceTier: 'standard', tokens });
    const id = `c-${++seq}`;
    return LlmCallRowSchema.parse({
      tenant: s.tenant ?? 'default',
      attempt_id: `call-attempt-${s.attemptsOf ? Math.floor(i / s.attemptsOf) : seq}-${s.model}`,
      trace_id: id.padStart(32, '0'),
      span_id: id.padStart(16, '0'),
      started_at: at(start),
      ended_at: at(start + 2_000),
      provider: s.provider,
      model: s.model,
      service_tier: 'standard',
      input_tokens: tokens.input,
      cache_read_tokens: tokens.cache_read,
      cache_write_tokens: 0,
      output_tokens: 300,
      reasoning_tokens: 0,
      cache_write_1h_tokens: 0,
      cost_usd: priced.priced ? '0.01' : null,
      reported_cost_usd: null,
      price_provider: priced.priced ? priced.card.provider : '',
      price_model: priced.priced ? priced.card.model : '',
      price_from: null,
      unpriced_reason: priced.priced ? '' : priced.reason,
      dialect: 'gen_ai',
      version: 2,
      is_deleted: 0,
    });
  });
}

/** A week of steady traffic before T0 − 1h for three series, then the hour before T0. */
function steadyWeek(): AttemptRow[] {
  const from = T0 - 7 * DAY;
  const to = T0 - HOUR;
  return [
    ...attempts({ model: 'kimi-k2.6', tier: 'tier-3', from, to, attempts: 200, passes: 180 }),
    ...attempts({ model: 'deepseek-v4-flash', tier: 'tier-3', from, to, attempts: 200, passes: 180 }),
    ...attempts({ model: 'kimi-k2.6', tier: 'tier-2', from, to, attempts: 200, passes: 190 }),
  ];
}

function hour(from: number, kimiTier3Passes: number): AttemptRow[] {
  const to = from + HOUR;
  return [
    ...attempts({ model: 'kimi-k2.6', tier: 'tier-3', from, to, attempts: 40, passes: kimiTier3Passes }),
    ...attempts({ model: 'deepseek-v4-flash', tier: 'tier-3', from, to, attempts: 40, passes: 36 }),
    ...attempts({ model: 'kimi-k2.6', tier: 'tier-2', from, to, attempts: 40, passes: 38 }),
  ];
}

// ---------------------------------------------------------------- helpers

const fast = { initialBackoff: '50ms', maxBackoff: '200ms', maxAttempts: 5, timeout: '2s', drainTimeout: '5s' };

function clock(start: number) {
  const c = { now: start, fn: () => c.now };
  return c;
}

async function metric(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = registry.getSingleMetric(name);
  const data = await m?.get();
  return data?.values.find((v) => Object.entries(labels).every(([k, x]) => String(v.labels[k]) === x))?.value;
}

const bodiesOf = (r: { received: Received[] }) => r.received.map((x) => x.body as Record<string, unknown>);

/** Waits until `done()` holds (polling), failing after `ms`. */
async function until(done: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!done()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

// ------------------------------------------------------------------ tests

describe('alerts service on chDB', () => {
  it('fires one regression alert and one unpriced alert per receiver, survives a restart without re-sending, resolves after recovery', async () => {
    const store = await freshStore('alerts_e2e');
    stores.push(store);
    await store.insert('attempts', [...steadyWeek(), ...hour(T0 - HOUR, 20)]); // kimi tier-3: 90 % → 50 %
    // a model with no price card, seen half an hour ago
    await store.insert('llm_calls', calls({ provider: 'acme', model: 'mystery-1', from: T0 - 30 * MIN, to: T0 - 20 * MIN, calls: 3, input: 500, cacheRead: 0 }));
    await store.insert('attempts', attempts({ model: 'mystery-1', tier: 'tier-2', from: T0 - 30 * MIN, to: T0 - 20 * MIN, attempts: 3, passes: 3, cost: null }));

    const webhook = await receiver();
    const am = await receiver();
    const slack = await receiver();
    const logged: string[] = [];
    const rules = parseAlertRules({
      externalUrl: 'https://grafana.test/d/perpass',
      rules: [{ kind: 'pass_rate_regression', labels: { team: 'agents' } }, { kind: 'unpriced_model' }],
      sinks: [
        { type: 'webhook', url: `${webhook.url}/perpass`, secret: 'hmac-key' },
        { type: 'alertmanager', url: am.url, resendInterval: 0 },
        { type: 'slack', url: `${slack.url}/services/T/B/X` },
        { type: 'log' },
      ],
      delivery: fast,
    } satisfies AlertRulesInput);
    const c = clock(T0);
    const registry1 = new Registry();
    const options: AlertsOptions = { store, rules, now: c.fn, log: () => {}, write: (l) => logged.push(l) };
    const first = await startAlerts({ ...options, registry: registry1, evaluateOnStart: false });

    const r1 = await first.evaluate();
    expect(r1.errors).toEqual([]);
    expect(r1.fired.map((a) => [a.rule, a.labels])).toEqual([
      ['pass_rate_regression', { tenant: 'default', model: 'kimi-k2.6', spec_tier: 'tier-3' }],
      ['unpriced_model', { tenant: 'default', provider: 'acme', model: 'mystery-1' }],
    ]);
    expect(r1.series).toEqual({ pass_rate_regression: 4, unpriced_model: 1 });
    await first.idle();

    // exactly one regression alert on every receiver, and one unpriced alert
    for (const r of [webhook, am, slack]) expect(r.received).toHaveLength(2);
    expect(bodiesOf(webhook).filter((b) => b.rule === 'pass_rate_regression')).toHaveLength(1);
    expect(am.received.flatMap((x) => x.body as { labels: Record<string, string> }[]).filter((a) => a.labels.alertname === 'pass_rate_regression')).toHaveLength(1);
    expect(slack.received.filter((x) => (x.body as { text: string }).text.includes('Pass rate of kimi-k2.6'))).toHaveLength(1);
    expect(slack.received.filter((x) => (x.body as { text: string }).text.includes('Unpriced model acme/mystery-1'))).toHaveLength(1);
    const [regression, unpriced] = bodiesOf(webhook);
    expect(regression).toMatchObject({
      version: '1',
      event: 'firing',
      status: 'firing',
      rule: 'pass_rate_regression',
      severity: 'critical',
      labels: { alertname: 'pass_rate_regression', severity: 'critical', team: 'agents', tenant: 'default', model: 'kimi-k2.6', spec_tier: 'tier-3' },
      details: { recent_attempts: 40, recent_passes: 20, baseline_attempts: 200, baseline_passes: 180, recent_cost_per_pass: '0.1', baseline_cost_per_pass: '0.055555555555555555', test: 'beta-binomial' },
      generatorURL: 'https://grafana.test/d/perpass',
    });
    const annotations = regression!.annotations as Record<string, string>;
    expect(annotations.summary).toBe('Pass rate of kimi-k2.6 (tenant=default, spec_tier=tier-3) fell from 90.0% to 50.0%');
    expect(annotations.description).toContain('Recent: 50.0% (20/40 attempts passed, last 1h');
    expect(annotations.description).toContain('Baseline: 90.0% (180/200, the 1w before');
    expect(annotations.description).toMatch(/Change −40\.0 pp; one-sided Beta-Binomial test p = \d\.\de-\d+ \(fires below α = 0\.01 with a drop ≥ 10\.0 pp\)/);
    expect(annotations.description).toContain('$/pass $0.0556 → $0.100 (×1.80)');
    expect(annotations.description).toMatch(/95% Wilson interval 35\.2%–64\.8%/);
    expect(unpriced).toMatchObject({ rule: 'unpriced_model', labels: { provider: 'acme', model: 'mystery-1' }, details: { calls: 3, attempts: 3 } });
    expect((unpriced!.annotations as Record<string, string>).summary).toBe('Unpriced model acme/mystery-1 (tenant default): 3 LLM calls with no price card in force');
    expect((unpriced!.annotations as Record<string, string>).description).toContain('Reason: no price card for model "mystery-1"');
    // every webhook body is signed over its exact bytes
    for (const x of webhook.received) expect(x.headers[SIGNATURE_HEADER.toLowerCase()]).toBe(`sha256=${createHmac('sha256', 'hmac-key').update(x.raw).digest('hex')}`);
    // Alertmanager: one alert per post, firing, no endsAt without keep-alive
    expect(am.received.map((x) => x.path)).toEqual(['/api/v2/alerts', '/api/v2/alerts']);
    expect((am.received[0]!.body as Record<string, unknown>[])[0]).toEqual({
      labels: { team: 'agents', tenant: 'default', model: 'kimi-k2.6', spec_tier: 'tier-3', alertname: 'pass_rate_regression', severity: 'critical' },
      annotations: { summary: annotations.summary, description: annotations.description },
      startsAt: new Date(T0).toISOString(),
      generatorURL: 'https://grafana.test/d/perpass',
    });
    expect((slack.received[0]!.body as { text: string }).text).toBe(`:red_circle: FIRING: ${annotations.summary}`);
    expect(logged).toHaveLength(2);

    // the gauges Prometheus scrapes
    expect(await metric(registry1, 'fleet_pass_rate_ratio', { model: 'kimi-k2.6', spec_tier: 'tier-3', window: '1h' })).toBe(0.5);
    expect(await metric(registry1, 'fleet_cost_per_pass_usd', { model: 'kimi-k2.6', spec_tier: 'tier-3', window: '1h' })).toBeCloseTo(0.1, 12);
    expect(await metric(registry1, 'fleet_window_attempts', { model: 'deepseek-v4-flash', spec_tier: 'tier-3', window: '1h' })).toBe(40);
    expect(await metric(registry1, 'fleet_alerts_firing', { rule: 'pass_rate_regression', severity: 'critical' })).toBe(1);
    expect(await metric(registry1, 'fleet_alert_notifications_total', { sink: 'webhook', result: 'sent' })).toBe(2);

    // a minute later: still firing, nothing new
    c.now = T0 + MIN;
    const r2 = await first.evaluate();
    expect([r2.fired, r2.renotified, r2.resolved]).toEqual([[], [], []]);
    expect(r2.firing).toHaveLength(2);
    await first.stop();

    // a new instance on the same database reloads the state and sends nothing again
    const second = await startAlerts({ ...options, registry: new Registry(), evaluateOnStart: false });
    expect(second.firing().map((a) => a.rule).sort()).toEqual(['pass_rate_regression', 'unpriced_model']);
    c.now = T0 + 2 * MIN;
    const r3 = await second.evaluate();
    expect([r3.fired, r3.renotified, r3.resolved]).toEqual([[], [], []]);
    await second.idle();
    for (const r of [webhook, am, slack]) expect(r.received).toHaveLength(2);

    // recovery: kimi tier-3 back at 90 %, no unpriced calls any more
    await store.insert('attempts', hour(T0 + HOUR, 36));
    c.now = T0 + 2 * HOUR;
    const r4 = await second.evaluate();
    expect([r4.fired, r4.resolved]).toEqual([[], []]); // one clear evaluation of two
    c.now = T0 + 2 * HOUR + MIN;
    const r5 = await second.evaluate();
    expect(r5.resolved.map((a) => [a.rule, a.resolveReason])).toEqual([
      ['pass_rate_regression', 'recovered'],
      ['unpriced_model', 'recovered'],
    ]);
    expect(r5.firing).toEqual([]);
    await second.idle();
    for (const r of [webhook, am, slack]) expect(r.received).toHaveLength(4);
    const resolved = bodiesOf(webhook)[2]!;
    expect(resolved).toMatchObject({ event: 'resolved', status: 'resolved', rule: 'pass_rate_regression', resolveReason: 'recovered', endsAt: new Date(T0 + 2 * HOUR + MIN).toISOString() });
    // the recent hour now holds 39 of the 40 recovered attempts (36 passes); the baseline took in the bad hour
    expect((resolved.annotations as Record<string, string>).summary).toBe('Pass rate of kimi-k2.6 (tenant=default, spec_tier=tier-3) is back to 92.3% (baseline 83.3%)');
    expect(resolved.details).toMatchObject({ recent_attempts: 39, recent_passes: 36 });
    // Alertmanager: resolved = endsAt in the past
    const amResolved = (am.received[2]!.body as { endsAt: string; startsAt: string }[])[0]!;
    expect(Date.parse(amResolved.endsAt)).toBeLessThan(Date.now());
    expect(amResolved.startsAt).toBe(new Date(T0).toISOString());
    expect((slack.received[2]!.body as { text: string }).text).toMatch(/^:large_green_circle: RESOLVED \(recovered\): Pass rate of kimi-k2.6/);
    await second.stop();

    // the history in ClickHouse
    const events = await store.query<{ rule: string; event: string; state: string; clear_count: number; sinks: string[] }>(
      'SELECT rule, event, state, clear_count, sinks FROM alerts_e2e.alerts FINAL ORDER BY rule, at',
    );
    expect(events).toEqual([
      { rule: 'pass_rate_regression', event: 'firing', state: 'firing', clear_count: 0, sinks: ['webhook', 'alertmanager', 'slack', 'log'] },
      { rule: 'pass_rate_regression', event: 'update', state: 'firing', clear_count: 1, sinks: [] },
      { rule: 'pass_rate_regression', event: 'resolved', state: 'resolved', clear_count: 2, sinks: ['webhook', 'alertmanager', 'slack', 'log'] },
      { rule: 'unpriced_model', event: 'firing', state: 'firing', clear_count: 0, sinks: ['webhook', 'alertmanager', 'slack', 'log'] },
      { rule: 'unpriced_model', event: 'update', state: 'firing', clear_count: 1, sinks: [] },
      { rule: 'unpriced_model', event: 'resolved', state: 'resolved', clear_count: 2, sinks: ['webhook', 'alertmanager', 'slack', 'log'] },
    ]);
    const current = await store.query<{ rule: string; state: string; notifications: number }>('SELECT rule, state, notifications FROM alerts_e2e.v_alerts ORDER BY rule');
    expect(current).toEqual([
      { rule: 'pass_rate_regression', state: 'resolved', notifications: 2 },
      { rule: 'unpriced_model', state: 'resolved', notifications: 2 },
    ]);
    const deliveries = await store.query<{ sink: string; status: string; n: number }>(
      'SELECT sink, status, count() AS n FROM alerts_e2e.alert_deliveries FINAL GROUP BY sink, status ORDER BY sink',
    );
    expect(deliveries).toEqual(['alertmanager', 'log', 'slack', 'webhook'].map((sink) => ({ sink, status: 'delivered', n: 4 })));
  });

  it('retries a failing sink (500, then 200) without blocking the others or the evaluation', async () => {
    const store = await freshStore('alerts_flaky');
    stores.push(store);
    await store.insert('attempts', [...steadyWeek(), ...hour(T0 - HOUR, 20)]);
    const flaky = await receiver((n) => (n <= 2 ? 500 : 200));
    const slack = await receiver();
    const am = await receiver();
    const rules = parseAlertRules({
      rules: [{ kind: 'pass_rate_regression' }],
      sinks: [
        { type: 'webhook', url: flaky.url },
        { type: 'slack', url: slack.url },
        { type: 'alertmanager', url: am.url },
      ],
      delivery: { ...fast, initialBackoff: '500ms', maxBackoff: '500ms' },
    });
    const registry = new Registry();
    const c = clock(T0);
    const logs: string[] = [];
    const svc = await startAlerts({ store, rules, registry, now: c.fn, log: (m) => logs.push(m), evaluateOnStart: false });
    const r = await svc.evaluate();
    const evaluated = Date.now();
    expect(r.fired).toHaveLength(1);
    // the healthy sinks are served while the webhook backs off (≥ 2 × 250 ms before its third try)
    await until(() => slack.received.length === 1 && am.received.length === 1);
    expect(flaky.received).toHaveLength(0);
    await svc.idle();
    expect(flaky.requests()).toBe(3);
    expect(flaky.received).toHaveLength(1);
    // evaluation returned before the retries were over, and the others got it first
    expect(evaluated).toBeLessThan(flaky.received[0]!.at);
    expect(Math.max(slack.received[0]!.at, am.received[0]!.at)).toBeLessThan(flaky.received[0]!.at);
    expect(bodiesOf(flaky)[0]).toMatchObject({ event: 'firing', rule: 'pass_rate_regression' });
    expect(await metric(registry, 'fleet_alert_delivery_retries_total', { sink: 'webhook' })).toBe(2);
    expect(await metric(registry, 'fleet_alert_notifications_total', { sink: 'webhook', result: 'sent' })).toBe(1);
    expect(logs.filter((l) => l.includes('to webhook failed'))).toHaveLength(2);
    const rows = await store.query<{ sink: string; status: string; attempts: number }>('SELECT sink, status, attempts FROM alerts_flaky.alert_deliveries FINAL ORDER BY sink');
    expect(rows).toEqual([
      { sink: 'alertmanager', status: 'delivered', attempts: 1 },
      { sink: 'slack', status: 'delivered', attempts: 1 },
      { sink: 'webhook', status: 'delivered', attempts: 3 },
    ]);

    // Alertmanager keep-alive: the firing alert is re-posted every resendInterval (1m), never as a new notification
    c.now = T0 + 30_000;
    await svc.evaluate();
    c.now = T0 + MIN;
    await svc.evaluate();
    await svc.idle();
    expect(am.received).toHaveLength(2);
    const [firstPost, keepAlive] = am.received.map((x) => (x.body as { startsAt: string; endsAt: string }[])[0]!);
    expect(keepAlive!.startsAt).toBe(firstPost!.startsAt);
    expect(Date.parse(keepAlive!.endsAt)).toBe(T0 + MIN + 4 * MIN);
    expect(slack.received).toHaveLength(1);
    const [n] = await store.query<{ n: number }>("SELECT count() AS n FROM alerts_flaky.alerts FINAL WHERE event != 'update'");
    expect(n!.n).toBe(1);
    await svc.stop();
  });

  it('sends a notification its process could not deliver before stopping at the next start, once', async () => {
    const store = await freshStore('alerts_outbox');
    stores.push(store);
    await store.insert('attempts', [...steadyWeek(), ...hour(T0 - HOUR, 20)]);
    let up = false;
    const hook = await receiver(() => (up ? 200 : 503));
    const rules = parseAlertRules({
      rules: [{ kind: 'pass_rate_regression' }],
      sinks: [{ type: 'webhook', url: hook.url }],
      delivery: { ...fast, initialBackoff: '10s', maxBackoff: '10s', drainTimeout: '0s' },
    });
    const c = clock(T0);
    const logs: string[] = [];
    const first = await startAlerts({ store, rules, now: c.fn, log: (m) => logs.push(m), evaluateOnStart: false });
    expect((await first.evaluate()).fired).toHaveLength(1);
    await first.stop(); // the webhook is down: the notification is abandoned, not lost
    expect(first.deliveries()).toEqual([{ sink: 'webhook', delivered: 0, failed: 0, dropped: 0, pending: 1 }]);
    expect(logs.some((l) => l.includes('1 notification(s) to webhook not delivered before stop'))).toBe(true);
    expect(hook.received).toHaveLength(0);

    up = true;
    c.now = T0 + MIN;
    const second = await startAlerts({ store, rules, now: c.fn, log: () => {}, evaluateOnStart: false });
    await second.idle();
    expect(hook.received).toHaveLength(1);
    expect(bodiesOf(hook)[0]).toMatchObject({ event: 'firing', id: expect.stringMatching(new RegExp(`-${T0}$`)) as unknown as string });
    expect((await second.evaluate()).fired).toEqual([]);
    await second.stop();

    const third = await startAlerts({ store, rules, now: c.fn, log: () => {}, evaluateOnStart: false });
    await third.idle();
    await third.stop();
    expect(hook.received).toHaveLength(1);
  });

  it('checkAlerts: $/pass increase, prompt-cache thrashing and pipeline health fire once each, with the default rules', async () => {
    const store = await freshStore('alerts_kinds');
    stores.push(store);
    const from = T0 - 7 * DAY;
    const to = T0 - HOUR;
    await store.insert('attempts', [
      // $/pass doubles at the same pass rate (a price change, a longer prompt)
      ...attempts({ model: 'claude-sonnet-4-6', tier: 'tier-3', from, to, attempts: 200, passes: 190, cost: '0.50' }),
      ...attempts({ model: 'claude-sonnet-4-6', tier: 'tier-3', from: T0 - HOUR, to: T0, attempts: 40, passes: 38, cost: '1.10' }),
      // steady
      ...attempts({ model: 'deepseek-v4-flash', tier: 'tier-3', from, to, attempts: 200, passes: 180, cost: '0.04' }),
      ...attempts({ model: 'deepseek-v4-flash', tier: 'tier-3', from: T0 - HOUR, to: T0, attempts: 40, passes: 36, cost: '0.04' }),
    ]);
    // cache hit rate of kimi falls from 70 % to 15 % (thrashing); deepseek steady at 75 %
    await store.insert('llm_calls', [
      ...calls({ provider: 'moonshot', model: 'kimi-k2.6', from, to, calls: 200, input: 30_000, cacheRead: 70_000, attemptsOf: 2 }),
      ...calls({ provider: 'moonshot', model: 'kimi-k2.6', from: T0 - HOUR, to: T0, calls: 80, input: 85_000, cacheRead: 15_000, attemptsOf: 2 }),
      ...calls({ provider: 'deepseek', model: 'deepseek-v4-flash', from, to, calls: 200, input: 25_000, cacheRead: 75_000, attemptsOf: 2 }),
      ...calls({ provider: 'deepseek', model: 'deepseek-v4-flash', from: T0 - HOUR, to: T0, calls: 80, input: 25_000, cacheRead: 75_000, attemptsOf: 2 }),
    ]);
    // pipeline health: consumers 20 000 messages behind, and a dead letter
    const bus = new MemoryBus({ partitions: 2 });
    const messages = Array.from({ length: 20_000 }, (_, i) => ({ key: `k${i}`, value: new Uint8Array(1) }));
    await bus.publisher().publish('otlp_spans', messages);
    let deadLetters = 0;
    const healthSource = subscriberHealthSource({ subscriber: bus.subscriber('otlp_spans'), deadLetters: () => deadLetters, target: 'consumer-0' });
    const hook = await receiver();
    const rules = parseAlertRules({ sinks: [{ type: 'webhook', url: hook.url }], delivery: fast });
    const c = clock(T0 - 10 * MIN);
    const options: AlertsOptions = { store, rules, healthSource, now: c.fn, log: () => {} };

    // ten minutes earlier the cost and cache regressions already show; lag has no history yet, no dead letters
    const early = await checkAlerts(options);
    expect(early.errors).toEqual([]);
    expect(early.fired.map((a) => a.rule).sort()).toEqual(['cache_hit_rate_drop', 'cost_per_pass_increase']);
    deadLetters = 2;
    c.now = T0;
    const check = await checkAlerts(options);
    expect(check.errors).toEqual([]);
    // lag above 10 000 for 10 minutes (≥ lagFor 5m), 2 dead letters in 15 minutes; the others stay firing, not re-sent
    expect(check.fired.map((a) => `${a.rule} ${JSON.stringify(a.labels)}`)).toEqual([
      'pipeline_health {"signal":"consumer_lag","topic":"otlp_spans"}',
      'pipeline_health {"signal":"dead_letters"}',
    ]);
    expect(check.firing.map((a) => `${a.rule} ${JSON.stringify(a.labels)}`).sort()).toEqual([
      'cache_hit_rate_drop {"tenant":"default","model":"kimi-k2.6"}',
      'cost_per_pass_increase {"tenant":"default","model":"claude-sonnet-4-6","spec_tier":"tier-3"}',
      'pipeline_health {"signal":"consumer_lag","topic":"otlp_spans"}',
      'pipeline_health {"signal":"dead_letters"}',
    ]);
    expect(check.deliveries).toEqual([{ sink: 'webhook', delivered: 2, failed: 0, dropped: 0, pending: 0 }]);
    expect(hook.received).toHaveLength(4);
    const byRule = Object.fromEntries(bodiesOf(hook).map((b) => [`${b.rule}/${(b.labels as Record<string, string>).signal ?? ''}`, b]));
    expect((byRule['cost_per_pass_increase/']!.annotations as Record<string, string>).summary).toBe(
      '$/pass of claude-sonnet-4-6 (tenant=default, spec_tier=tier-3) rose ×2.22: $0.526 → $1.17',
    );
    expect((byRule['cache_hit_rate_drop/']!.annotations as Record<string, string>).summary).toBe('Prompt-cache hit rate of kimi-k2.6 (tenant=default) fell from 70.0% to 15.0%');
    expect((byRule['pipeline_health/consumer_lag']!.annotations as Record<string, string>).summary).toBe('Consumer lag on otlp_spans: 20000 messages behind for 10m');
    expect((byRule['pipeline_health/dead_letters']!.annotations as Record<string, string>).summary).toBe('2 messages dead-lettered in the last 15m');

    // a second check (cron a minute later) finds them firing and says nothing new
    c.now = T0 + MIN;
    const again = await checkAlerts(options);
    expect([again.fired, again.resolved]).toEqual([[], []]);
    expect(again.firing).toHaveLength(4);
    expect(hook.received).toHaveLength(4);
  });
});
