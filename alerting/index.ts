/**
 * perpass alerting: statistical regression alerts on pass rate, $/pass and
 * prompt-cache hit rate, unpriced models and pipeline health, with a
 * persisted lifecycle and retrying sinks. See docs/alerting.md.
 */
export { checkAlerts, startAlerts, type AlertsOptions, type AlertsService, type CheckResult, type DeliveryCounts, type EvaluationResult, type StartAlertsOptions } from './service.ts';
export {
  AlertRulesError,
  AlertRulesSchema,
  defaultAlertRules,
  formatDuration,
  loadAlertRules,
  parseAlertRules,
  parseDuration,
  type AlertRulesConfig,
  type AlertRulesInput,
  type RuleConfig,
  type SinkConfig,
} from './config.ts';
export { registryHealthSource, scrapeHealthSource, subscriberHealthSource, type HealthSample, type PipelineHealthSource } from './health.ts';
export { parsePrometheusText, PromParseError, type PromExposition, type PromSample } from './prom-text.ts';
export {
  alertmanagerSink,
  DeliveryError,
  kafkaSink,
  logSink,
  notificationDocument,
  SIGNATURE_HEADER,
  signBody,
  slackSink,
  webhookSink,
  type Notification,
  type Sink,
} from './sinks.ts';
export type { AlertState, Observation } from './lifecycle.ts';
