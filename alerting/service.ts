/**
 * The alerts service: evaluates the rules against ClickHouse, runs each
 * alert's lifecycle, persists every event in the `alerts` table *before*
 * notifying (the table is the outbox: a restart reloads what was announced
 * and never announces it again), and hands notifications to per-sink
 * delivery queues that retry without blocking evaluation.
 *
 *   startAlerts(options)  long-running: evaluates every evaluationInterval
 *   checkAlerts(options)  one evaluation, waits for deliveries, returns what
 *                         fired / resolved (cron, CI)
 */
import { Registry } from 'prom-client';
import type { Publisher } from '../bus/types.ts';
import type { Store } from '../storage/store.ts';
import { formatDuration, type AlertRulesConfig, type RuleConfig, type RuleOf } from './config.ts';
import {
  counterIncrease,
  observeCacheHitRate,
  observeCostPerPass,
  observeDeadLetters,
  observeLag,
  observePassRate,
  observeUnpriced,
  type AttemptWindows,
  type HealthPoint,
  type Windows,
} from './decide.ts';
import { boundSeries } from './cardinality.ts';
import { SinkQueue, type DeliveryOutcome } from './delivery.ts';
import { scrapeHealthSource, type PipelineHealthSource } from './health.ts';
import { fingerprint, retire, step, type AlertState, type LifecycleEvent, type Observation } from './lifecycle.ts';
import { createAlertMetrics, type AlertMetrics, type MetricsRegistry } from './metrics.ts';
import { eventRow, insertDeliveries, insertSamples, loadFiringAlerts, loadSamples, recentEvents, type SampleRow } from './persist.ts';
import { attemptWindows, cacheWindows, fleetGauges, unpricedCalls } from './queries.ts';
import { createSinks, type Notification, type NotificationEvent, type Sink } from './sinks.ts';

export interface AlertsOptions {
  /** The perpass database (migrated: the alerts tables come with migration 0003). */
  store: Store;
  /** From loadAlertRules / parseAlertRules. */
  rules: AlertRulesConfig;
  /** Where the metrics are registered (the caller serves /metrics); default: a private registry. */
  registry?: MetricsRegistry;
  /** Health source of pipeline_health rules without scrapeUrls (registryHealthSource, subscriberHealthSource, …). */
  healthSource?: PipelineHealthSource;
  /** Bus publisher for kafka sinks (KafkaPublisher, or MemoryBus.publisher()). */
  publisher?: Publisher;
  /** Sinks built in code, notified like configured ones (rules without `sinks` reach them). */
  sinks?: Sink[];
  /** Service log (default: stderr with a timestamp). */
  log?: (message: string) => void;
  /** Output of log sinks (default: stdout). */
  write?: (line: string) => void;
  /** Clock, ms since the epoch (tests move it). */
  now?: () => number;
}

export interface StartAlertsOptions extends AlertsOptions {
  /** Evaluate at once on start (default true), then every rules.evaluationInterval. */
  evaluateOnStart?: boolean;
}

export interface EvaluationResult {
  /** Evaluation time, ms since the epoch. */
  at: number;
  fired: AlertState[];
  renotified: AlertState[];
  resolved: AlertState[];
  /** Every alert firing after the evaluation. */
  firing: AlertState[];
  /** Series judged per rule. */
  series: Record<string, number>;
  /** Rules (or the alerts table) that failed this time; their alerts were left as they were. */
  errors: { rule: string; error: string }[];
}

export interface DeliveryCounts {
  sink: string;
  delivered: number;
  failed: number;
  dropped: number;
  /** Still queued (or abandoned at stop: sent by the next start). */
  pending: number;
}

export interface CheckResult extends EvaluationResult {
  deliveries: DeliveryCounts[];
}

export interface AlertsService {
  /** Evaluates now (serialised with the timer's evaluations). */
  evaluate(): Promise<EvaluationResult>;
  firing(): AlertState[];
  /** Resolves when every sink's queue is empty and outcomes are written. */
  idle(): Promise<void>;
  deliveries(): DeliveryCounts[];
  /** Stops the timer, waits for the running evaluation and (up to delivery.drainTimeout) the queues. */
  stop(): Promise<void>;
}

const defaultLog = (message: string): void => {
  process.stderr.write(`${new Date().toISOString()} ${message}\n`);
};

const labelText = (labels: Record<string, string>) =>
  Object.entries(labels)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ');

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

interface RuleObservations {
  observed: Map<string, Observation>;
  /** What a firing alert whose series did not show up means (undefined = no data). */
  absent(state: AlertState): Observation | undefined;
}

class AlertEngine {
  private readonly options: AlertsOptions;
  private readonly store: Store;
  private readonly config: AlertRulesConfig;
  private readonly now: () => number;
  private readonly log: (message: string) => void;
  private readonly rulesByName: Map<string, RuleConfig>;
  private readonly queues: SinkQueue[];
  private readonly metrics: AlertMetrics;
  private states = new Map<string, AlertState>();
  /** Last post per `sink\0fingerprint`, for keep-alive resends. */
  private readonly lastPosted = new Map<string, number>();
  private readonly writes = new Set<Promise<void>>();
  private readonly counts = new Map<string, DeliveryCounts>();
  /** Notifications left queued at close, per sink (sent by the next start). */
  private readonly abandoned = new Map<string, number>();
  private readonly warned = new Set<string>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(options: AlertsOptions) {
    this.options = options;
    this.store = options.store;
    this.config = options.rules;
    this.now = options.now ?? Date.now;
    this.log = options.log ?? defaultLog;
    this.rulesByName = new Map(this.config.rules.map((r) => [r.name, r]));
    const sinks = [
      ...createSinks(this.config.sinks, {
        ...(options.publisher && { publisher: options.publisher }),
        ...(options.write && { write: options.write }),
        evaluationIntervalMs: this.config.evaluationInterval,
        now: this.now,
      }),
      ...(options.sinks ?? []),
    ];
    const names = new Set<string>();
    for (const s of sinks) {
      if (names.has(s.name)) throw new Error(`two sinks are named ${JSON.stringify(s.name)}: sink names must be distinct`);
      names.add(s.name);
    }
    const d = this.config.delivery;
    this.queues = sinks.map(
      (sink) =>
        new SinkQueue(
          sink,
          { queueSize: d.queueSize, maxAttempts: d.maxAttempts, initialBackoffMs: d.initialBackoff, maxBackoffMs: d.maxBackoff, timeoutMs: d.timeout },
          { onOutcome: (o) => this.onOutcome(o), onRetry: (...a) => this.onRetry(...a) },
        ),
    );
    for (const s of sinks) this.counts.set(s.name, { sink: s.name, delivered: 0, failed: 0, dropped: 0, pending: 0 });
    this.metrics = createAlertMetrics(options.registry ?? new Registry(), {
      firing: () => this.firing().map((a) => ({ rule: a.rule, severity: a.severity })),
      rules: () => this.config.rules.filter((r) => r.enabled).map((r) => ({ rule: r.name, severity: r.severity })),
      queues: () => this.queues.map((q) => ({ sink: q.sink.name, length: q.length })),
    });
  }

  firing(): AlertState[] {
    return [...this.states.values()].filter((s) => s.state === 'firing');
  }

  deliveryCounts(): DeliveryCounts[] {
    return this.queues.map((q) => ({ ...this.counts.get(q.sink.name)!, pending: q.length + (this.abandoned.get(q.sink.name) ?? 0) }));
  }

  /** Reloads the firing alerts from ClickHouse. */
  async load(): Promise<void> {
    const now = this.now();
    this.states = new Map((await loadFiringAlerts(this.store, now)).map((s) => [s.fingerprint, s]));
    if (this.states.size) this.log(`alerts: ${this.states.size} firing alert(s) reloaded from ${this.store.database}.alerts`);
  }

  /** Queues notifications that were persisted but never reached a sink (their process stopped first). */
  async redeliver(): Promise<void> {
    const within = this.config.delivery.redeliverWithin;
    if (within <= 0) return;
    const events = await recentEvents(this.store, this.now() - within);
    let n = 0;
    for (const e of events) {
      const missing = this.queues.filter((q) => e.queued.includes(q.sink.name) && !e.done.has(q.sink.name));
      if (!missing.length) continue;
      const note = this.notification(e.event.state, e.event.event, e.event.at);
      for (const q of missing) {
        q.enqueue(note);
        n++;
      }
    }
    if (n) this.log(`alerts: ${n} notification(s) persisted but not delivered before the last stop are being sent`);
  }

  private routes(ruleName: string): SinkQueue[] {
    const names = this.rulesByName.get(ruleName)?.sinks;
    return names ? this.queues.filter((q) => names.includes(q.sink.name)) : this.queues;
  }

  private notification(state: AlertState, event: NotificationEvent, at: number): Notification {
    const rule = this.rulesByName.get(state.rule);
    return {
      id: `${state.fingerprint}-${at}`,
      event,
      status: state.state === 'firing' ? 'firing' : 'resolved',
      rule: state.rule,
      kind: state.kind,
      severity: state.severity,
      fingerprint: state.fingerprint,
      labels: { ...rule?.labels, ...state.labels, alertname: state.rule, severity: state.severity },
      annotations: { ...rule?.annotations, summary: state.summary, description: state.description },
      details: state.details,
      startsAt: state.startedAt,
      endsAt: state.endedAt,
      at,
      ...(this.config.externalUrl && { generatorURL: this.config.externalUrl }),
      ...(state.resolveReason && { resolveReason: state.resolveReason }),
    };
  }

  private onOutcome(o: DeliveryOutcome): void {
    const n = o.notification;
    const result = o.status === 'delivered' ? 'sent' : o.status;
    if (o.status !== 'delivered') this.log(`alerts: notification ${n.event} ${n.rule} {${labelText(n.labels)}} to ${o.sink} ${o.status} after ${o.attempts} attempt(s): ${o.error}`);
    if (n.event === 'resend') {
      // Keep-alives are not notifications of their own: counted apart, not recorded as deliveries.
      this.metrics.keepalives.inc({ sink: o.sink, result });
      return;
    }
    this.counts.get(o.sink)![o.status]++;
    this.metrics.notifications.inc({ sink: o.sink, result });
    const write = insertDeliveries(this.store, [
      { fingerprint: n.fingerprint, eventAt: n.at, event: n.event, sink: o.sink, status: o.status, attempts: o.attempts, error: o.error ?? '', at: this.now() },
    ]).catch((err: unknown) => this.log(`alerts: could not record the delivery of ${n.id} to ${o.sink}: ${errorText(err)}`));
    this.writes.add(write);
    void write.finally(() => this.writes.delete(write));
  }

  private onRetry(sink: string, n: Notification, attempt: number, error: string, delayMs: number): void {
    this.metrics.retries.inc({ sink });
    this.log(`alerts: sending ${n.event} ${n.rule} to ${sink} failed (attempt ${attempt}): ${error}; retrying in ${delayMs} ms`);
  }

  evaluate(): Promise<EvaluationResult> {
    const run = this.chain.then(() => this.evaluateNow());
    this.chain = run.catch(() => {});
    return run;
  }

  private async evaluateNow(): Promise<EvaluationResult> {
    const started = performance.now();
    const now = this.now();
    const result: EvaluationResult = { at: now, fired: [], renotified: [], resolved: [], firing: [], series: {}, errors: [] };
    const next = new Map(this.states);
    const transitions: { state: AlertState; event: LifecycleEvent }[] = [];
    const memo = new Map<string, Promise<AttemptWindows[]>>();
    const active = this.config.rules.filter((r) => r.enabled);
    for (const rule of active) {
      let obs: RuleObservations | null;
      try {
        obs = await this.observe(rule, now, memo);
      } catch (err) {
        result.errors.push({ rule: rule.name, error: errorText(err) });
        this.metrics.ruleErrors.inc({ rule: rule.name });
        this.log(`alerts: rule ${rule.name} failed; its alerts keep their state: ${errorText(err)}`);
        continue;
      }
      if (!obs) continue;
      result.series[rule.name] = obs.observed.size;
      const id = { rule: rule.name, kind: rule.kind, severity: rule.severity };
      const policy = { resolveAfter: rule.resolveAfter, renotifyIntervalMs: rule.renotifyInterval, staleAfterMs: rule.staleAfter };
      const fps = new Set(obs.observed.keys());
      for (const s of this.states.values()) if (s.rule === rule.name && s.state === 'firing') fps.add(s.fingerprint);
      for (const fp of fps) {
        const prev = this.states.get(fp);
        const observation = obs.observed.get(fp) ?? (prev ? obs.absent(prev) : undefined);
        const s = step(prev, observation, id, policy, now);
        if (s.state) next.set(fp, s.state);
        if (s.event) transitions.push({ state: s.state!, event: s.event });
      }
    }
    const activeNames = new Set(active.map((r) => r.name));
    for (const s of this.states.values()) {
      if (s.state !== 'firing' || activeNames.has(s.rule)) continue;
      const r = retire(s, now);
      next.set(s.fingerprint, r.state!);
      transitions.push({ state: r.state!, event: r.event! });
    }

    // the outbox: persisted first, announced after
    const routed = transitions.map((t) => (t.event === 'update' ? [] : this.routes(t.state.rule)));
    if (transitions.length) {
      try {
        await this.store.insert(
          'alerts',
          transitions.map((t, i) => eventRow(t.state, t.event, now, routed[i]!.map((q) => q.sink.name))),
        );
      } catch (err) {
        result.errors.push({ rule: '(alerts table)', error: errorText(err) });
        this.log(`alerts: could not persist ${transitions.length} alert event(s); nothing is notified and the next evaluation tries again: ${errorText(err)}`);
        return this.finish(result, started);
      }
    }
    for (const [fp, s] of next) if (s.state !== 'firing') next.delete(fp);
    this.states = next;

    const notified = new Set<string>();
    transitions.forEach((t, i) => {
      if (t.event === 'update') return;
      this.metrics.events.inc({ rule: t.state.rule, event: t.event });
      (t.event === 'firing' ? result.fired : t.event === 'renotify' ? result.renotified : result.resolved).push(t.state);
      this.log(`alerts: ${t.event.toUpperCase()} ${t.state.rule} {${labelText(t.state.labels)}}: ${t.state.summary}${t.state.resolveReason ? ` (${t.state.resolveReason})` : ''}`);
      const note = this.notification(t.state, t.event, now);
      for (const q of routed[i]!) {
        q.enqueue(note);
        this.lastPosted.set(`${q.sink.name}\u0000${t.state.fingerprint}`, now);
      }
      notified.add(t.state.fingerprint);
    });
    this.resend(now, notified);

    try {
      await this.refreshGauges(now);
    } catch (err) {
      result.errors.push({ rule: '(metrics)', error: errorText(err) });
      this.metrics.ruleErrors.inc({ rule: '(metrics)' });
    }
    return this.finish(result, started);
  }

  private finish(result: EvaluationResult, started: number): EvaluationResult {
    result.firing = this.firing();
    this.metrics.evaluations.inc({ result: result.errors.length ? 'error' : 'ok' });
    this.metrics.evaluationDuration.observe((performance.now() - started) / 1000);
    this.metrics.lastEvaluation.set(Date.now() / 1000);
    return result;
  }

  /** Keep-alive posts of firing alerts to sinks that want them (Alertmanager). */
  private resend(now: number, skip: Set<string>): void {
    for (const q of this.queues) {
      const every = q.sink.resendIntervalMs ?? 0;
      if (every <= 0) continue;
      for (const s of this.firing()) {
        if (skip.has(s.fingerprint) || !this.routes(s.rule).includes(q)) continue;
        const key = `${q.sink.name}\u0000${s.fingerprint}`;
        if (now - (this.lastPosted.get(key) ?? -Infinity) < every) continue;
        q.enqueue(this.notification(s, 'resend', now));
        this.lastPosted.set(key, now);
      }
    }
  }

  private async refreshGauges(now: number): Promise<void> {
    const m = this.metrics;
    const gauges = [m.passRate, m.costPerPass, m.cacheHitRatio, m.attempts, m.passes];
    const rows = await Promise.all(this.config.metrics.windows.map(async (w) => ({ window: formatDuration(w), rows: await fleetGauges(this.store, now - w, now) })));
    for (const g of gauges) g.reset();
    const { topModels, maxTenants, maxLabelLength } = this.config.metrics;
    for (const { window, rows: list } of rows) {
      for (const r of boundSeries(list, { topModels, maxTenants, maxLabelLength })) {
        const labels = { tenant: r.tenant, model: r.model, spec_tier: r.spec_tier, window };
        m.attempts.set(labels, r.attempts);
        m.passes.set(labels, r.passes);
        if (r.attempts > 0) m.passRate.set(labels, r.passes / r.attempts);
        if (r.cost_per_pass !== null) m.costPerPass.set(labels, r.cost_per_pass);
        else if (r.passes === 0 && r.unpriced_attempts < r.attempts) m.costPerPass.set(labels, Infinity);
        if (r.input_tokens_total > 0) m.cacheHitRatio.set(labels, r.cache_read_tokens / r.input_tokens_total);
      }
    }
  }

  private windows(rule: { recentWindow: number; baselineWindow: number }, now: number): Windows {
    return { baselineSince: now - rule.recentWindow - rule.baselineWindow, recentSince: now - rule.recentWindow, until: now };
  }

  private async observe(rule: RuleConfig, now: number, memo: Map<string, Promise<AttemptWindows[]>>): Promise<RuleObservations | null> {
    const byFingerprint = (list: Observation[]) => new Map(list.map((o) => [fingerprint(rule.name, o.labels), o]));
    const noData = () => undefined;
    switch (rule.kind) {
      case 'pass_rate_regression':
      case 'cost_per_pass_increase': {
        const w = this.windows(rule, now);
        const key = JSON.stringify([rule.groupBy, rule.filter, w]);
        const series = memo.get(key) ?? memo.set(key, attemptWindows(this.store, rule.groupBy, rule.filter, w)).get(key)!;
        const list = await series;
        return {
          observed: byFingerprint(list.map((s) => (rule.kind === 'pass_rate_regression' ? observePassRate(s, rule, w) : observeCostPerPass(s, rule, w)))),
          absent: noData,
        };
      }
      case 'cache_hit_rate_drop': {
        const w = this.windows(rule, now);
        const list = await cacheWindows(this.store, rule.groupBy, rule.filter, w);
        return { observed: byFingerprint(list.map((s) => observeCacheHitRate(s, rule, w))), absent: noData };
      }
      case 'unpriced_model': {
        const list = await unpricedCalls(this.store, now - rule.lookback, now);
        return {
          observed: byFingerprint(list.map((s) => observeUnpriced(s, rule.minCalls, rule.lookback))),
          // no unpriced call of it in the lookback: cleared
          absent: (s) =>
            observeUnpriced(
              { tenant: s.labels.tenant ?? '', provider: s.labels.provider ?? '', model: s.labels.model ?? '', calls: 0, attempts: 0, reasons: [], firstSeen: now, lastSeen: now },
              rule.minCalls,
              rule.lookback,
            ),
        };
      }
      case 'pipeline_health':
        return this.observeHealth(rule, now);
    }
  }

  private async observeHealth(rule: RuleOf<'pipeline_health'>, now: number): Promise<RuleObservations | null> {
    const source = rule.scrapeUrls?.length ? scrapeHealthSource({ urls: rule.scrapeUrls, timeoutMs: rule.scrapeTimeout }) : this.options.healthSource;
    if (!source) {
      if (!this.warned.has(rule.name)) {
        this.warned.add(rule.name);
        this.log(`alerts: rule ${rule.name} has no health source: set its scrapeUrls to the consumers' /metrics, or run alerting in the process of the consumers; skipped`);
      }
      return null;
    }
    const samples = await source.sample();
    const rows: SampleRow[] = [];
    for (const s of samples) {
      if (s.error) continue;
      for (const [topic, lag] of Object.entries(s.lagByTopic ?? {})) rows.push({ target: s.target, series: `lag:${topic}`, at: now, value: lag });
      if (s.deadLetters !== undefined) rows.push({ target: s.target, series: 'dead_letters', at: now, value: s.deadLetters });
    }
    if (rows.length) await insertSamples(this.store, rule.name, rows);
    const reach = Math.max(2 * rule.lagFor + 2 * this.config.evaluationInterval, rule.deadLetterWindow);
    const history = await loadSamples(this.store, rule.name, now - reach, now);
    const observations: Observation[] = [];

    for (const s of samples) {
      const labels = { signal: 'target_down', target: s.target };
      observations.push(
        s.error
          ? { labels, status: 'firing', value: 0, summary: `Cannot read pipeline health from ${s.target}`, description: `${s.error}. Consumer lag and dead letters of this target are unknown until it answers.`, details: { error: s.error } }
          : { labels, status: 'clear', value: 1, summary: `Pipeline health of ${s.target} is readable again`, description: 'The target answers.', details: {} },
      );
    }
    // every consumer of a group reports the whole topic's lag: take the largest per evaluation, not the sum
    const lagByTopic = new Map<string, Map<number, number>>();
    for (const h of history) {
      if (!h.series.startsWith('lag:')) continue;
      const topic = h.series.slice(4);
      const perAt = lagByTopic.get(topic) ?? lagByTopic.set(topic, new Map()).get(topic)!;
      perAt.set(h.at, Math.max(perAt.get(h.at) ?? 0, h.value));
    }
    for (const [topic, perAt] of lagByTopic) {
      const points: HealthPoint[] = [...perAt].map(([at, value]) => ({ at, value })).sort((a, b) => a.at - b.at);
      if (points.at(-1)!.at !== now) continue; // not reported now: no data
      observations.push(observeLag(topic, points, { maxLag: rule.maxLag, resolveLag: rule.resolveLag, lagForMs: rule.lagFor }));
    }
    // dead letters are per process: increase per target, summed
    const reporting = samples.filter((s) => !s.error && s.deadLetters !== undefined);
    if (reporting.length) {
      let increase = 0;
      for (const s of reporting) {
        const points = history.filter((h) => h.series === 'dead_letters' && h.target === s.target && h.at >= now - rule.deadLetterWindow);
        increase += counterIncrease(points);
      }
      observations.push(observeDeadLetters(increase, rule.maxDeadLetters, rule.deadLetterWindow, reporting.length));
    }
    return {
      observed: new Map(observations.map((o) => [fingerprint(rule.name, o.labels), o])),
      // a target no longer configured is not down
      absent: (s) => (s.labels.signal === 'target_down' ? { labels: s.labels, status: 'clear', value: 1, summary: `${s.labels.target} is no longer monitored`, description: 'The target left the configuration.', details: {} } : undefined),
    };
  }

  /** Resolves once every queue is empty and every outcome is written. */
  async idle(): Promise<void> {
    for (;;) {
      await Promise.all(this.queues.map((q) => q.idle()));
      await Promise.all([...this.writes]);
      if (this.queues.every((q) => q.length === 0) && this.writes.size === 0) return;
    }
  }

  async close(): Promise<void> {
    await this.chain;
    const left = await Promise.all(this.queues.map(async (q) => ({ sink: q.sink.name, left: await q.stop(this.config.delivery.drainTimeout) })));
    await Promise.all([...this.writes]);
    for (const { sink, left: notes } of left) {
      const real = notes.filter((n) => n.event !== 'resend');
      if (real.length) this.log(`alerts: ${real.length} notification(s) to ${sink} not delivered before stop; the next start sends them (within delivery.redeliverWithin)`);
      this.abandoned.set(sink, real.length);
    }
  }
}

/** Runs one evaluation (for cron / CI), waits for its deliveries (up to delivery.drainTimeout), and reports. */
export async function checkAlerts(options: AlertsOptions): Promise<CheckResult> {
  const engine = new AlertEngine(options);
  await engine.load();
  await engine.redeliver();
  const result = await engine.evaluate();
  await engine.close();
  return { ...result, deliveries: engine.deliveryCounts() };
}

/** Starts the long-running alerts service: reloads state, sends what a previous run left queued, evaluates every interval. */
export async function startAlerts(options: StartAlertsOptions): Promise<AlertsService> {
  const engine = new AlertEngine(options);
  const log = options.log ?? defaultLog;
  await engine.load();
  await engine.redeliver();
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const interval = options.rules.evaluationInterval;
  const tick = async () => {
    timer = undefined;
    try {
      await engine.evaluate();
    } catch (err) {
      log(`alerts: evaluation failed: ${errorText(err)}`);
    }
    if (!stopped) timer = setTimeout(tick, interval);
  };
  if (options.evaluateOnStart ?? true) void tick();
  else timer = setTimeout(tick, interval);
  log(`alerts: evaluating ${options.rules.rules.filter((r) => r.enabled).length} rule(s) every ${formatDuration(interval)} on ${options.store.location}/${options.store.database}`);
  return {
    evaluate: () => engine.evaluate(),
    firing: () => engine.firing(),
    idle: () => engine.idle(),
    deliveries: () => engine.deliveryCounts(),
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await engine.close();
    },
  };
}
