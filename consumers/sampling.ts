/**
 * Tail-based sampling of an attempt's spans (DESIGN.md "Tail-based
 * sampling"). Only spans are sampled: the attempt row and its llm_calls rows
 * are always written, so $/pass is exact whatever is kept.
 */
import { createHash } from 'node:crypto';
import type { AttemptFigures } from './rollup.ts';
import { parseUsd } from '../pricing/decimal.ts';

export interface SamplingPolicy {
  /** Fraction of passing attempts whose spans are kept (default 0.05). */
  passRate: number;
  /** Attempts costing more than this (USD) are kept whatever their outcome; null = no cost outliers. */
  costOutlierUsd: string | null;
  /** Attempts lasting longer than this are kept; null = no duration outliers. */
  durationOutlierMs: number | null;
}

export const DEFAULT_SAMPLING: SamplingPolicy = { passRate: 0.05, costOutlierUsd: '1', durationOutlierMs: 15 * 60_000 };

export type SampleReason = 'failure' | 'outlier_cost' | 'outlier_duration' | 'pass_sampled' | 'pass_dropped';

export interface SampleDecision {
  keep: boolean;
  /** The probability with which spans of this kind are kept: weight = 1 / rate. */
  rate: number;
  reason: SampleReason;
}

/**
 * A uniform number in [0, 1) from the trace id, the same on every replica
 * (hashed, because trace ids are not always random — tests and some
 * propagators make sequential ones).
 */
export function traceHashUnit(traceId: string): number {
  const h = createHash('sha256').update(traceId).digest();
  return h.readUInt32BE(0) / 2 ** 32;
}

export function decideSampling(row: Pick<AttemptFigures, 'outcome' | 'cost_usd' | 'duration_ms' | 'trace_id'>, policy: SamplingPolicy): SampleDecision {
  if (row.outcome !== 'pass') return { keep: true, rate: 1, reason: 'failure' };
  if (policy.costOutlierUsd !== null && row.cost_usd !== null && parseUsd(row.cost_usd) > parseUsd(policy.costOutlierUsd)) {
    return { keep: true, rate: 1, reason: 'outlier_cost' };
  }
  if (policy.durationOutlierMs !== null && row.duration_ms > policy.durationOutlierMs) return { keep: true, rate: 1, reason: 'outlier_duration' };
  const keep = traceHashUnit(row.trace_id) < policy.passRate;
  return { keep, rate: policy.passRate, reason: keep ? 'pass_sampled' : 'pass_dropped' };
}
