/**
 * The alert lifecycle, pure: what one evaluation's observation of a series
 * does to its alert. An alert is identified by its fingerprint (rule name +
 * the series' labels) and is either firing or resolved.
 *
 *   not firing + observation "firing"   → firing (notify)
 *   firing     + "firing"               → stays; renotify once renotifyInterval has passed
 *   firing     + "clear"                → one more consecutive clear evaluation;
 *                                          resolveAfter of them → resolved (notify)
 *   firing     + "hold"                 → stays, the clear streak restarts (hysteresis:
 *                                          the metric is neither bad enough to fire nor
 *                                          recovered past the resolve threshold)
 *   firing     + "nodata" / no series   → stays; after staleAfter without enough data,
 *                                          resolved with reason "no data"
 *
 * Every transition that changes persisted state yields an event (firing,
 * renotify, update, resolved); the service writes it to ClickHouse before
 * notifying, so a restart reloads exactly what was announced.
 */
import { createHash } from 'node:crypto';

export type ObservationStatus = 'firing' | 'clear' | 'hold' | 'nodata';

export type Details = Record<string, number | string | boolean | null>;

/** What one evaluation of a rule says about one series. */
export interface Observation {
  /** The series' labels (e.g. tenant, model, spec_tier); with the rule name they identify the alert. */
  labels: Record<string, string>;
  status: ObservationStatus;
  /** The headline number (recent pass rate, $/pass ratio, calls, lag …). */
  value: number;
  summary: string;
  description: string;
  /** Every statistic behind the decision, for receivers and the alerts table. */
  details: Details;
}

export interface AlertState {
  fingerprint: string;
  rule: string;
  kind: string;
  severity: string;
  labels: Record<string, string>;
  state: 'firing' | 'resolved';
  /** Milliseconds since the epoch. */
  startedAt: number;
  endedAt: number | null;
  lastNotifiedAt: number;
  /** Consecutive evaluations with the condition cleared (while firing). */
  clearCount: number;
  value: number;
  summary: string;
  description: string;
  details: Details;
  /** Why it resolved: recovered, no data, rule removed ('' while firing). */
  resolveReason: string;
  /** Last evaluation with enough data to judge (in memory; a reload sets it to the load time). */
  lastSeenAt: number;
}

export type LifecycleEvent = 'firing' | 'renotify' | 'update' | 'resolved';

export interface LifecyclePolicy {
  resolveAfter: number;
  /** 0 = never renotify. */
  renotifyIntervalMs: number;
  staleAfterMs: number;
}

export interface RuleIdentity {
  rule: string;
  kind: string;
  severity: string;
}

export interface Step {
  /** The state after the evaluation (undefined: never fired). */
  state: AlertState | undefined;
  /** Set when the state changed in a way that is persisted; firing/renotify/resolved also notify. */
  event?: LifecycleEvent;
}

/** Stable id of an alert: rule name + sorted series labels. */
export function fingerprint(rule: string, labels: Record<string, string>): string {
  const h = createHash('sha256').update(rule);
  for (const key of Object.keys(labels).sort()) h.update(`\u0000${key}\u0000${labels[key]}`);
  return h.digest('hex').slice(0, 16);
}

export function step(prev: AlertState | undefined, obs: Observation | undefined, id: RuleIdentity, policy: LifecyclePolicy, now: number): Step {
  const firing = prev?.state === 'firing';
  if (!firing) {
    if (obs?.status !== 'firing') return { state: prev };
    return {
      event: 'firing',
      state: {
        fingerprint: fingerprint(id.rule, obs.labels),
        ...id,
        labels: obs.labels,
        state: 'firing',
        startedAt: now,
        endedAt: null,
        lastNotifiedAt: now,
        clearCount: 0,
        value: obs.value,
        summary: obs.summary,
        description: obs.description,
        details: obs.details,
        resolveReason: '',
        lastSeenAt: now,
      },
    };
  }
  const renotifyDue = policy.renotifyIntervalMs > 0 && now - prev.lastNotifiedAt >= policy.renotifyIntervalMs;
  if (!obs || obs.status === 'nodata') {
    if (now - prev.lastSeenAt >= policy.staleAfterMs) {
      return { event: 'resolved', state: { ...prev, state: 'resolved', endedAt: now, lastNotifiedAt: now, resolveReason: 'no data' } };
    }
    return renotifyDue ? { event: 'renotify', state: { ...prev, lastNotifiedAt: now } } : { state: prev };
  }
  const current = { ...prev, severity: id.severity, value: obs.value, summary: obs.summary, description: obs.description, details: obs.details, lastSeenAt: now };
  if (obs.status === 'clear') {
    const clearCount = prev.clearCount + 1;
    if (clearCount >= policy.resolveAfter) {
      return { event: 'resolved', state: { ...current, clearCount, state: 'resolved', endedAt: now, lastNotifiedAt: now, resolveReason: 'recovered' } };
    }
    return { event: 'update', state: { ...current, clearCount } };
  }
  // firing or hold: still firing, and any clear streak is broken
  if (renotifyDue) return { event: 'renotify', state: { ...current, clearCount: 0, lastNotifiedAt: now } };
  if (prev.clearCount !== 0) return { event: 'update', state: { ...current, clearCount: 0 } };
  return { state: current };
}

/** Resolves an alert whose rule was removed or disabled. */
export function retire(prev: AlertState, now: number): Step {
  if (prev.state !== 'firing') return { state: prev };
  return { event: 'resolved', state: { ...prev, state: 'resolved', endedAt: now, lastNotifiedAt: now, resolveReason: 'rule removed' } };
}
