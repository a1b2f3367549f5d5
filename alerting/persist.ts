/**
 * The alerts' memory in ClickHouse (sql/migrations/0003_alerts.sql): the
 * event log `alerts` (current state = latest row, view v_alerts), the
 * per-sink outcomes `alert_deliveries`, and the health samples
 * `alert_samples`.
 */
import type { Store } from '../storage/store.ts';
import type { AlertState, Details, LifecycleEvent } from './lifecycle.ts';

/** ms → DateTime64(3) text. */
export const instant3 = (ms: number): string => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
/** DateTime64(3) text → ms. */
export const fromInstant3 = (text: string): number => Date.parse(`${text.replace(' ', 'T')}Z`);

const finite = (x: number): number => (Number.isFinite(x) ? x : Number.isNaN(x) ? 0 : x > 0 ? Number.MAX_VALUE : -Number.MAX_VALUE);

export function eventRow(state: AlertState, event: LifecycleEvent, at: number, sinks: readonly string[]): Record<string, unknown> {
  return {
    fingerprint: state.fingerprint,
    at: instant3(at),
    event,
    rule: state.rule,
    kind: state.kind,
    severity: state.severity,
    labels: state.labels,
    state: state.state,
    started_at: instant3(state.startedAt),
    ended_at: state.endedAt === null ? null : instant3(state.endedAt),
    last_notified_at: instant3(state.lastNotifiedAt),
    clear_count: state.clearCount,
    value: finite(state.value),
    summary: state.summary,
    description: state.description,
    details: JSON.stringify(state.details),
    resolve_reason: state.resolveReason,
    sinks,
  };
}

interface StateRow {
  fingerprint: string;
  rule: string;
  kind: string;
  severity: string;
  labels: Record<string, string>;
  state: 'firing' | 'resolved';
  started_at: string;
  ended_at: string | null;
  last_notified_at: string;
  clear_count: number;
  value: number;
  summary: string;
  description: string;
  details: string;
  resolve_reason: string;
}

function parseDetails(text: string): Details {
  try {
    return JSON.parse(text) as Details;
  } catch {
    return {};
  }
}

/** Alerts firing now, as their latest events left them; lastSeenAt = `now` (the stale clock restarts). */
export async function loadFiringAlerts(store: Store, now: number): Promise<AlertState[]> {
  const rows = await store.query<StateRow>(`SELECT * FROM ${store.database}.v_alerts WHERE state = 'firing' ORDER BY started_at, fingerprint`);
  return rows.map((r) => stateFromRow(r, now));
}

/** An alert as a row of `alerts` / `v_alerts` holds it. */
function stateFromRow(r: StateRow, lastSeenAt: number): AlertState {
  return {
    fingerprint: r.fingerprint,
    rule: r.rule,
    kind: r.kind,
    severity: r.severity,
    labels: r.labels,
    state: r.state,
    startedAt: fromInstant3(r.started_at),
    endedAt: r.ended_at === null ? null : fromInstant3(r.ended_at),
    lastNotifiedAt: fromInstant3(r.last_notified_at),
    clearCount: Number(r.clear_count),
    value: Number(r.value),
    summary: r.summary,
    description: r.description,
    details: parseDetails(r.details),
    resolveReason: r.resolve_reason,
    lastSeenAt,
  };
}

export interface PersistedEvent {
  state: AlertState;
  event: Exclude<LifecycleEvent, 'update'>;
  at: number;
}

/** Notifying events since `since`, each with the sinks it was queued for and those that have an outcome. */
export async function recentEvents(store: Store, since: number): Promise<{ event: PersistedEvent; queued: string[]; done: Set<string> }[]> {
  const rows = await store.query<StateRow & { at: string; event: PersistedEvent['event']; sinks: string[] }>(
    `SELECT * FROM ${store.database}.alerts FINAL WHERE at >= {since:DateTime64(3)} AND event != 'update' ORDER BY at, fingerprint`,
    { since: instant3(since) },
  );
  if (!rows.length) return [];
  const done = await store.query<{ fingerprint: string; event_at: string; sink: string }>(
    `SELECT fingerprint, event_at, sink FROM ${store.database}.alert_deliveries FINAL WHERE event_at >= {since:DateTime64(3)}`,
    { since: instant3(since) },
  );
  const bySinkKey = new Map<string, Set<string>>();
  for (const d of done) {
    const key = `${d.fingerprint}@${fromInstant3(d.event_at)}`;
    (bySinkKey.get(key) ?? bySinkKey.set(key, new Set()).get(key)!).add(d.sink);
  }
  return rows.map((r) => {
    const at = fromInstant3(r.at);
    return {
      event: {
        at,
        event: r.event,
        state: stateFromRow(r, at),
      },
      queued: r.sinks,
      done: bySinkKey.get(`${r.fingerprint}@${at}`) ?? new Set<string>(),
    };
  });
}

export interface DeliveryRow {
  fingerprint: string;
  eventAt: number;
  event: string;
  sink: string;
  status: 'delivered' | 'failed' | 'dropped';
  attempts: number;
  error: string;
  at: number;
}

export async function insertDeliveries(store: Store, rows: readonly DeliveryRow[]): Promise<void> {
  await store.insert(
    'alert_deliveries',
    rows.map((r) => ({ fingerprint: r.fingerprint, event_at: instant3(r.eventAt), event: r.event, sink: r.sink, status: r.status, attempts: r.attempts, error: r.error, at: instant3(r.at) })),
  );
}

export interface SampleRow {
  target: string;
  series: string;
  at: number;
  value: number;
}

export async function insertSamples(store: Store, rule: string, rows: readonly SampleRow[]): Promise<void> {
  await store.insert(
    'alert_samples',
    rows.map((r) => ({ rule, target: r.target, series: r.series, at: instant3(r.at), value: r.value })),
  );
}

export async function loadSamples(store: Store, rule: string, since: number, until: number): Promise<SampleRow[]> {
  const rows = await store.query<{ target: string; series: string; at: string; value: number }>(
    `SELECT target, series, at, value FROM ${store.database}.alert_samples FINAL
     WHERE rule = {rule:String} AND at >= {since:DateTime64(3)} AND at <= {until:DateTime64(3)}
     ORDER BY series, target, at`,
    { rule, since: instant3(since), until: instant3(until) },
  );
  return rows.map((r) => ({ target: r.target, series: r.series, at: fromInstant3(r.at), value: Number(r.value) }));
}
