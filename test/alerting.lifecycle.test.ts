/**
 * The alert lifecycle as a pure state machine: fire, renotify, hysteresis,
 * stale series, retired rules; and the decisions of the rules that do not
 * test a hypothesis (unpriced, lag, dead letters).
 */
import { describe, expect, it } from 'vitest';
import { counterIncrease, decideLag, observeDeadLetters, observeUnpriced } from '../alerting/decide.ts';
import { fingerprint, retire, step, type AlertState, type Observation, type ObservationStatus } from '../alerting/lifecycle.ts';

const id = { rule: 'pass_rate_regression', kind: 'pass_rate_regression', severity: 'critical' };
const policy = { resolveAfter: 2, renotifyIntervalMs: 4 * 3_600_000, staleAfterMs: 24 * 3_600_000 };
const labels = { tenant: 'default', model: 'kimi-k2.6', spec_tier: 'tier-3' };
const MIN = 60_000;

const obs = (status: ObservationStatus, value = 0.5): Observation => ({ labels, status, value, summary: `${status} ${value}`, description: 'd', details: { v: value } });

/** Runs observations one minute apart from t0 and returns every step. */
function run(sequence: (ObservationStatus | undefined)[], start?: AlertState, t0 = 1_000_000) {
  let state = start;
  return sequence.map((status, i) => {
    const s = step(state, status === undefined ? undefined : obs(status), id, policy, t0 + i * MIN);
    state = s.state;
    return s;
  });
}

describe('alert lifecycle', () => {
  it('fingerprints by rule and labels, whatever their order', () => {
    expect(fingerprint('r', { a: '1', b: '2' })).toBe(fingerprint('r', { b: '2', a: '1' }));
    expect(fingerprint('r', { a: '1' })).not.toBe(fingerprint('r2', { a: '1' }));
    expect(fingerprint('r', { a: '1', b: '' })).not.toBe(fingerprint('r', { a: '1' }));
    expect(fingerprint('r', { a: '1' })).toMatch(/^[0-9a-f]{16}$/);
  });

  it('does nothing until the condition fires, then fires once', () => {
    const steps = run(['hold', 'clear', 'nodata', undefined, 'firing', 'firing', 'firing']);
    expect(steps.map((s) => s.event)).toEqual([undefined, undefined, undefined, undefined, 'firing', undefined, undefined]);
    const fired = steps[4]!.state!;
    expect(fired).toMatchObject({ state: 'firing', startedAt: 1_000_000 + 4 * MIN, lastNotifiedAt: 1_000_000 + 4 * MIN, clearCount: 0, labels });
    expect(fired.fingerprint).toBe(fingerprint(id.rule, labels));
    // the state follows the latest numbers without a persisted event
    expect(steps[6]!.state!.summary).toBe('firing 0.5');
  });

  it('resolves after resolveAfter consecutive clear evaluations; a hold breaks the streak', () => {
    const steps = run(['firing', 'clear', 'hold', 'clear', 'firing', 'clear', 'clear', 'clear']);
    expect(steps.map((s) => s.event)).toEqual(['firing', 'update', 'update', 'update', 'update', 'update', 'resolved', undefined]);
    expect(steps.map((s) => s.state?.clearCount)).toEqual([0, 1, 0, 1, 0, 1, 2, 2]);
    const resolved = steps[6]!.state!;
    expect(resolved).toMatchObject({ state: 'resolved', endedAt: 1_000_000 + 6 * MIN, resolveReason: 'recovered' });
    // once resolved, clear observations change nothing; a new firing starts a new alert
    const again = step(resolved, obs('firing'), id, policy, 1_000_000 + 60 * MIN);
    expect(again.event).toBe('firing');
    expect(again.state!.startedAt).toBe(1_000_000 + 60 * MIN);
  });

  it('renotifies while firing once per renotifyInterval, and never when it is 0', () => {
    let state = step(undefined, obs('firing'), id, policy, 0).state;
    const events: (string | undefined)[] = [];
    for (let t = MIN; t <= 9 * 3_600_000; t += 30 * MIN) {
      const s = step(state, obs(t % (2 * 3_600_000) === 0 ? 'hold' : 'firing'), id, policy, t);
      state = s.state;
      events.push(s.event && `${s.event}@${t / MIN}m`);
    }
    expect(events.filter(Boolean)).toEqual(['renotify@241m', 'renotify@481m']);
    const quiet = { ...policy, renotifyIntervalMs: 0 };
    let s2 = step(undefined, obs('firing'), id, quiet, 0).state;
    for (let t = MIN; t < 48 * 3_600_000; t += 3_600_000) {
      const s = step(s2, obs('firing'), id, quiet, t);
      expect(s.event).toBeUndefined();
      s2 = s.state;
    }
  });

  it('keeps firing without data until staleAfter, then resolves with reason "no data"', () => {
    const p = { ...policy, renotifyIntervalMs: 0 };
    const fired = step(undefined, obs('firing'), id, p, 0).state!;
    expect(step(fired, obs('nodata'), id, p, 23 * 3_600_000).event).toBeUndefined();
    expect(step(fired, undefined, id, p, 23 * 3_600_000).event).toBeUndefined();
    // reminders continue while it waits for data
    expect(step(fired, undefined, id, policy, 5 * 3_600_000).event).toBe('renotify');
    const stale = step(fired, undefined, id, p, 24 * 3_600_000);
    expect(stale.event).toBe('resolved');
    expect(stale.state).toMatchObject({ state: 'resolved', resolveReason: 'no data', endedAt: 24 * 3_600_000 });
    // data (even a hold) restarts the stale clock
    const seen = step(fired, obs('hold'), id, p, 20 * 3_600_000).state!;
    expect(step(seen, undefined, id, p, 30 * 3_600_000).event).toBeUndefined();
  });

  it('retires the firing alerts of a removed rule', () => {
    const fired = step(undefined, obs('firing'), id, policy, 0).state!;
    expect(retire(fired, 5)).toMatchObject({ event: 'resolved', state: { state: 'resolved', resolveReason: 'rule removed', endedAt: 5 } });
  });
});

describe('decisions without a hypothesis test', () => {
  it('unpriced: fires on first sight, names provider, model and reason', () => {
    const o = observeUnpriced(
      { tenant: 'acme', provider: 'mystery', model: 'm-1', calls: 3, attempts: 2, reasons: ['no price card for mystery/m-1 in force at 2026-05-20'], firstSeen: 0, lastSeen: 60_000 },
      1,
      3_600_000,
    );
    expect(o.status).toBe('firing');
    expect(o.labels).toEqual({ tenant: 'acme', provider: 'mystery', model: 'm-1' });
    expect(o.summary).toBe('Unpriced model mystery/m-1 (tenant acme): 3 LLM calls with no price card in force');
    expect(o.description).toContain('no price card for mystery/m-1 in force at 2026-05-20');
    expect(observeUnpriced({ tenant: 'acme', provider: 'mystery', model: 'm-1', calls: 0, attempts: 0, reasons: [], firstSeen: 0, lastSeen: 0 }, 1, 3_600_000).status).toBe('clear');
  });

  it('lag fires only when above the threshold for lagFor, clears at the resolve level', () => {
    const p = { maxLag: 100, resolveLag: 50, lagForMs: 5 * MIN };
    const pts = (values: number[]) => values.map((value, i) => ({ at: i * MIN, value }));
    expect(decideLag(pts([500, 500, 500]), p).status).toBe('hold'); // above for 2 minutes only
    expect(decideLag(pts([10, 500, 500, 500, 500, 500, 500]), p)).toMatchObject({ status: 'firing', lag: 500, aboveSinceMs: MIN });
    expect(decideLag(pts([500, 500, 500, 500, 500, 90, 500]), p).status).toBe('hold'); // a dip restarts the streak
    expect(decideLag(pts([500, 40]), p).status).toBe('clear');
    expect(decideLag(pts([500, 80]), p).status).toBe('hold');
    expect(decideLag([], p).status).toBe('nodata');
    expect(decideLag(pts([101]), { ...p, lagForMs: 0 }).status).toBe('firing');
  });

  it('dead letters count the increase of the counter across process restarts', () => {
    const pts = (values: number[]) => values.map((value, i) => ({ at: i * MIN, value }));
    expect(counterIncrease(pts([5, 5, 7, 10]))).toBe(5);
    expect(counterIncrease(pts([5, 8, 2, 4]))).toBe(3 + 2 + 2); // restart after 8: 0 → 2, then +2
    expect(counterIncrease(pts([9]))).toBe(0);
    expect(observeDeadLetters(3, 0, 15 * MIN, 1).status).toBe('firing');
    expect(observeDeadLetters(3, 5, 15 * MIN, 1).status).toBe('hold');
    expect(observeDeadLetters(0, 0, 15 * MIN, 1).status).toBe('clear');
    expect(observeDeadLetters(0, 0, 15 * MIN, 0).status).toBe('nodata');
  });
});
