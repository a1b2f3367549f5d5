/**
 * The alerts service's Prometheus metrics, on a registry the caller serves:
 *
 * - fleet gauges per (tenant, model, spec_tier, window), refreshed at every
 *   evaluation (label values bounded: cardinality.ts), so Prometheus / Thanos / Mimir / VictoriaMetrics users can
 *   alert and keep history on their side: fleet_pass_rate_ratio,
 *   fleet_cost_per_pass_usd (+Inf when nothing passed), fleet_cache_hit_ratio,
 *   fleet_window_attempts, fleet_window_passes;
 * - the service's own: evaluations, rule errors, firing alerts,
 *   notifications per sink and result, retries, queue lengths.
 */
import { Counter, Gauge, Histogram, type Registry, type RegistryContentType } from 'prom-client';

export type MetricsRegistry = Registry<RegistryContentType>;

export interface AlertMetricsSource {
  firing(): { rule: string; severity: string }[];
  /** Every enabled rule with its severity: each has a fleet_alerts_firing series, 0 while it fires nothing. */
  rules(): { rule: string; severity: string }[];
  queues(): { sink: string; length: number }[];
}

export function createAlertMetrics(registry: MetricsRegistry, source: AlertMetricsSource) {
  const registers = [registry];
  const fleetLabels = ['tenant', 'model', 'spec_tier', 'window'] as const;
  new Gauge({
    name: 'fleet_alerts_firing',
    help: 'Alerts firing now, per rule and severity.',
    labelNames: ['rule', 'severity'] as const,
    registers,
    collect() {
      this.reset();
      const counts = new Map<string, { rule: string; severity: string; n: number }>();
      for (const r of source.rules()) counts.set(`${r.rule}\u0000${r.severity}`, { ...r, n: 0 });
      for (const a of source.firing()) {
        const key = `${a.rule}\u0000${a.severity}`;
        const c = counts.get(key) ?? counts.set(key, { ...a, n: 0 }).get(key)!;
        c.n++;
      }
      for (const c of counts.values()) this.set({ rule: c.rule, severity: c.severity }, c.n);
    },
  });
  new Gauge({
    name: 'fleet_alert_queue_length',
    help: 'Notifications waiting per sink (bounded by delivery.queueSize).',
    labelNames: ['sink'] as const,
    registers,
    collect() {
      this.reset();
      for (const q of source.queues()) this.set({ sink: q.sink }, q.length);
    },
  });
  return {
    passRate: new Gauge({ name: 'fleet_pass_rate_ratio', help: 'Passing attempts ÷ attempts over the window (0–1).', labelNames: fleetLabels, registers }),
    costPerPass: new Gauge({
      name: 'fleet_cost_per_pass_usd',
      help: 'Cost per passing attempt over the window, USD (+Inf when nothing passed; absent when nothing is priced).',
      labelNames: fleetLabels,
      registers,
    }),
    cacheHitRatio: new Gauge({
      name: 'fleet_cache_hit_ratio',
      help: 'Prompt-cache reads ÷ (input + cache_read + cache_write tokens) over the window.',
      labelNames: fleetLabels,
      registers,
    }),
    attempts: new Gauge({ name: 'fleet_window_attempts', help: 'Attempts over the window (the N behind fleet_pass_rate_ratio).', labelNames: fleetLabels, registers }),
    passes: new Gauge({ name: 'fleet_window_passes', help: 'Passing attempts over the window.', labelNames: fleetLabels, registers }),
    evaluations: new Counter({ name: 'fleet_alert_evaluations_total', help: 'Alert evaluations, by result (ok, error).', labelNames: ['result'] as const, registers }),
    evaluationDuration: new Histogram({
      name: 'fleet_alert_evaluation_duration_seconds',
      help: 'Time one evaluation of every rule took.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    lastEvaluation: new Gauge({ name: 'fleet_alert_last_evaluation_timestamp_seconds', help: 'When the last evaluation finished (alert on it going stale).', registers }),
    ruleErrors: new Counter({ name: 'fleet_alert_rule_errors_total', help: 'Rule evaluations that failed (query or source errors), per rule.', labelNames: ['rule'] as const, registers }),
    events: new Counter({ name: 'fleet_alert_events_total', help: 'Lifecycle events, per rule and event (firing, renotify, resolved).', labelNames: ['rule', 'event'] as const, registers }),
    notifications: new Counter({
      name: 'fleet_alert_notifications_total',
      help: 'Notifications per sink, by result: sent, failed (after every retry or not retryable), dropped (queue full, or a resolution superseded by a new firing). Keep-alives are not counted here.',
      labelNames: ['sink', 'result'] as const,
      registers,
    }),
    keepalives: new Counter({
      name: 'fleet_alert_keepalives_total',
      help: 'Keep-alive re-posts of firing alerts (Alertmanager resendInterval) per sink, by result: sent, failed, dropped.',
      labelNames: ['sink', 'result'] as const,
      registers,
    }),
    retries: new Counter({ name: 'fleet_alert_delivery_retries_total', help: 'Failed sends that were retried, per sink.', labelNames: ['sink'] as const, registers }),
  };
}

export type AlertMetrics = ReturnType<typeof createAlertMetrics>;
