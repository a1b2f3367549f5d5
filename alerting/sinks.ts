/**
 * Where notifications go: the log, a generic JSON webhook (optionally
 * HMAC-signed), a Slack incoming webhook, the Prometheus Alertmanager v2
 * API, a Kafka topic (through the bus Publisher, so the in-process bus works
 * too). A sink only sends; retries, backoff and bounded queues are
 * delivery.ts's job.
 */
import { createHmac } from 'node:crypto';
import type { Publisher } from '../bus/types.ts';
import type { SinkConfig } from './config.ts';
import type { Details } from './lifecycle.ts';

export type NotificationEvent = 'firing' | 'renotify' | 'resolved' | 'resend';

/** One notification about one alert. */
export interface Notification {
  /** `<fingerprint>-<event time ms>`: the same for every sink and every retry (receivers may dedup on it). */
  id: string;
  /** firing / renotify (a reminder) / resolved — or resend, Alertmanager's keep-alive of a firing alert. */
  event: NotificationEvent;
  status: 'firing' | 'resolved';
  rule: string;
  kind: string;
  severity: string;
  fingerprint: string;
  /** alertname, severity, the rule's static labels and the series' labels. */
  labels: Record<string, string>;
  /** summary, description and the rule's annotations. */
  annotations: Record<string, string>;
  details: Details;
  /** ms since the epoch. */
  startsAt: number;
  endsAt: number | null;
  /** When the event happened (the evaluation time). */
  at: number;
  generatorURL?: string;
  resolveReason?: string;
}

/** A failed send; `retryable` false for answers a retry cannot change (400, 401, 404 …). */
export class DeliveryError extends Error {
  override name = 'DeliveryError';
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, retryable: boolean, retryAfterMs?: number) {
    super(message);
    this.retryable = retryable;
    this.retryAfterMs = retryAfterMs;
  }
}

export interface Sink {
  readonly name: string;
  readonly type: string;
  /** Re-post firing alerts this often (Alertmanager keep-alive); unset or 0 = never. */
  readonly resendIntervalMs?: number;
  /**
   * The receiver keeps each alert's current state (Alertmanager) rather than
   * a history of messages: a queued post that a newer one for the same alert
   * makes stale is dropped (delivery.ts), so an outage never ends with a
   * replay of old states.
   */
  readonly stateful?: boolean;
  /** Sends one notification; rejects (DeliveryError or any error = retryable) when it was not accepted. */
  send(notification: Notification, signal: AbortSignal): Promise<void>;
}

const iso = (ms: number): string => new Date(ms).toISOString();

/** The JSON document of the webhook and Kafka sinks (schema version 1, documented in docs/alerting.md). */
export function notificationDocument(n: Notification): Record<string, unknown> {
  return {
    version: '1',
    id: n.id,
    event: n.event,
    status: n.status,
    rule: n.rule,
    kind: n.kind,
    severity: n.severity,
    fingerprint: n.fingerprint,
    labels: n.labels,
    annotations: n.annotations,
    details: n.details,
    startsAt: iso(n.startsAt),
    endsAt: n.endsAt === null ? null : iso(n.endsAt),
    at: iso(n.at),
    ...(n.generatorURL && { generatorURL: n.generatorURL }),
    ...(n.resolveReason && { resolveReason: n.resolveReason }),
  };
}

/** Header carrying the webhook body's HMAC-SHA256: `sha256=<hex>` (GitHub's scheme). */
export const SIGNATURE_HEADER = 'X-Perpass-Signature-256';

export const signBody = (secret: string, body: string): string => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** Retry-After in seconds or as an HTTP date → ms. */
function retryAfterMs(value: string | null): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** POSTs `body`; non-2xx rejects with a DeliveryError (4xx other than 408/425/429 are not retried). */
export async function postJson(url: string, body: string, headers: Record<string, string>, signal: AbortSignal): Promise<void> {
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body, signal });
  } catch (err) {
    const e = err as Error;
    throw new DeliveryError(`POST ${url}: ${e.name === 'TimeoutError' ? 'timed out' : e.message}${e.cause instanceof Error ? ` (${e.cause.message})` : ''}`, true);
  }
  const text = await res.text().catch(() => '');
  if (res.ok) return;
  const retryable = res.status >= 500 || res.status === 408 || res.status === 425 || res.status === 429;
  throw new DeliveryError(`POST ${url}: HTTP ${res.status}${text ? ` ${text.slice(0, 300).trim()}` : ''}`, retryable, retryAfterMs(res.headers.get('retry-after')));
}

const labelText = (labels: Record<string, string>, skip: string[] = []) =>
  Object.entries(labels)
    .filter(([k]) => !skip.includes(k))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(' ');

const headline = (n: Notification): string =>
  n.status === 'resolved' ? `RESOLVED${n.resolveReason ? ` (${n.resolveReason})` : ''}` : n.event === 'renotify' ? 'FIRING (reminder)' : 'FIRING';

export function logSink(options: { name?: string; format?: 'text' | 'json'; write?: (line: string) => void } = {}): Sink {
  const write = options.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  return {
    name: options.name ?? 'log',
    type: 'log',
    async send(n) {
      if (options.format === 'json') write(JSON.stringify(notificationDocument(n)));
      else write(`${iso(n.at)} alert ${headline(n)} ${n.rule} {${labelText(n.labels, ['alertname'])}}: ${n.annotations.summary ?? ''}`);
    },
  };
}

export function webhookSink(options: { name?: string; url: string; secret?: string; headers?: Record<string, string> }): Sink {
  return {
    name: options.name ?? 'webhook',
    type: 'webhook',
    async send(n, signal) {
      const body = JSON.stringify(notificationDocument(n));
      const headers: Record<string, string> = { 'X-Perpass-Event': n.event, 'X-Perpass-Delivery': n.id, ...options.headers };
      if (options.secret) headers[SIGNATURE_HEADER] = signBody(options.secret, body);
      await postJson(options.url, body, headers, signal);
    },
  };
}

/**
 * Slack's control characters escaped (https://api.slack.com/reference/surfaces/formatting#escaping):
 * with &, < and > escaped no `<!channel>`, `<@U…>` or `<http://…|text>` in a
 * span's model name or any other field can become a live mention or link.
 */
const slackEscape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
/** Cuts to `max` characters without splitting an escape (`&amp;`) in two. */
const truncate = (s: string, max: number): string => (s.length <= max ? s : `${s.slice(0, max - 1).replace(/&[a-z]{0,3}$/, '')}…`);

/** A link Slack may render: only http(s) URLs, with the characters that would end or split `<url|text>` percent-encoded. */
function slackLink(url: string, text: string): string | undefined {
  if (!/^https?:\/\//i.test(url)) return undefined;
  return `<${url.replace(/[<>|\s]/g, (c) => encodeURIComponent(c))}|${slackEscape(text)}>`;
}

/**
 * The Slack incoming-webhook payload: `text` (notification fallback) and
 * Block Kit blocks, within Slack's length limits. Every field that is not
 * perpass' own markup is escaped, `text` included (Slack parses it as
 * mrkdwn); the header is plain_text, which Slack never parses.
 */
export function slackPayload(n: Notification): Record<string, unknown> {
  const icon = n.status === 'resolved' ? ':large_green_circle:' : n.severity === 'critical' ? ':red_circle:' : ':large_orange_circle:';
  const title = `${headline(n)}: ${n.annotations.summary ?? n.rule}`;
  const labels = labelText(n.labels, ['alertname']);
  const context = [`*${slackEscape(n.rule)}* · ${slackEscape(n.severity)}`, slackEscape(labels)];
  const details = n.generatorURL ? slackLink(n.generatorURL, 'details') : undefined;
  if (details) context.push(details);
  return {
    text: truncate(`${icon} ${slackEscape(title)}`, 3000),
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: truncate(title, 150), emoji: true } },
      { type: 'section', text: { type: 'mrkdwn', text: truncate(slackEscape(n.annotations.description ?? ''), 3000) || ' ' } },
      { type: 'context', elements: [{ type: 'mrkdwn', text: truncate(context.join('\n'), 3000) }] },
    ],
  };
}

export function slackSink(options: { name?: string; url: string }): Sink {
  return {
    name: options.name ?? 'slack',
    type: 'slack',
    async send(n, signal) {
      await postJson(options.url, JSON.stringify(slackPayload(n)), {}, signal);
    },
  };
}

/**
 * One alert as Alertmanager's API v2 takes it, at `sentAt` (when it is
 * posted, not when it was queued). Firing: endsAt `validForMs` after the
 * post (Alertmanager resolves it by itself if perpass stops re-posting), or
 * none (Alertmanager's resolve_timeout applies); computed from the send
 * time, so a post that waited out an outage in the queue is still firing
 * when it arrives. Resolved: endsAt = when it resolved.
 */
export function alertmanagerAlert(n: Notification, validForMs: number, sentAt: number): Record<string, unknown> {
  const endsAt = n.status === 'resolved' ? (n.endsAt ?? n.at) : validForMs > 0 ? sentAt + validForMs : null;
  return {
    labels: Object.fromEntries(Object.entries(n.labels).filter(([, v]) => v !== '')),
    annotations: Object.fromEntries(Object.entries(n.annotations).filter(([, v]) => v !== '')),
    startsAt: iso(n.startsAt),
    ...(endsAt !== null && { endsAt: iso(endsAt) }),
    ...(n.generatorURL && { generatorURL: n.generatorURL }),
  };
}

export function alertmanagerSink(options: {
  name?: string;
  url: string;
  headers?: Record<string, string>;
  resendIntervalMs?: number;
  evaluationIntervalMs?: number;
  /** The clock endsAt is computed from at each send (the alerts service's). */
  now?: () => number;
}): Sink {
  const now = options.now ?? Date.now;
  const resend = options.resendIntervalMs ?? 60_000;
  // Prometheus' rule: valid for 4 resend periods, so three lost posts do not resolve it
  const validFor = resend > 0 ? 4 * Math.max(resend, options.evaluationIntervalMs ?? 0) : 0;
  const url = `${options.url.replace(/\/+$/, '')}/api/v2/alerts`;
  return {
    name: options.name ?? 'alertmanager',
    type: 'alertmanager',
    resendIntervalMs: resend,
    stateful: true,
    async send(n, signal) {
      await postJson(url, JSON.stringify([alertmanagerAlert(n, validFor, now())]), options.headers ?? {}, signal);
    },
  };
}

export function kafkaSink(options: { name?: string; topic: string; publisher: Publisher }): Sink {
  return {
    name: options.name ?? 'kafka',
    type: 'kafka',
    async send(n) {
      await options.publisher.publish(options.topic, [
        {
          key: n.fingerprint,
          value: new TextEncoder().encode(JSON.stringify(notificationDocument(n))),
          headers: { 'content-type': 'application/json', 'perpass-alert-event': n.event, 'perpass-alert-id': n.id },
        },
      ]);
    },
  };
}

export interface SinkDependencies {
  /** For kafka sinks. */
  publisher?: Publisher;
  /** Where the log sink writes (default stdout). */
  write?: (line: string) => void;
  evaluationIntervalMs?: number;
  /** The alerts service's clock (Alertmanager's endsAt is computed from it when a post is sent). */
  now?: () => number;
}

/** Builds the configured sinks; a kafka sink without a publisher is an error naming it. */
export function createSinks(configs: readonly SinkConfig[], deps: SinkDependencies = {}): Sink[] {
  return configs.map((c, i) => {
    switch (c.type) {
      case 'log':
        return logSink({ name: c.name, format: c.format, ...(deps.write && { write: deps.write }) });
      case 'webhook':
        return webhookSink({ name: c.name, url: c.url, headers: c.headers, ...(c.secret && { secret: c.secret }) });
      case 'slack':
        return slackSink({ name: c.name, url: c.url });
      case 'alertmanager':
        return alertmanagerSink({
          name: c.name,
          url: c.url,
          headers: c.headers,
          resendIntervalMs: c.resendInterval,
          ...(deps.evaluationIntervalMs !== undefined && { evaluationIntervalMs: deps.evaluationIntervalMs }),
          ...(deps.now && { now: deps.now }),
        });
      case 'kafka':
        if (!deps.publisher) throw new Error(`sinks[${i}] (${c.name}): a kafka sink needs a bus publisher; run it where Kafka is configured (FLEET_KAFKA_BROKERS) or use another sink`);
        return kafkaSink({ name: c.name, topic: c.topic, publisher: deps.publisher });
    }
  });
}
