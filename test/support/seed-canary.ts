/**
 * The seed canary table of the reference article ("Cost-Per-Pass, Not
 * Cost-Per-Call", tier-3 canary 197e215e-record-cost-on-send-error), as the
 * article prints it: the view tests load these attempts and check the
 * article's numbers come out. (The demo's traffic is demo/plan.ts.)
 */
export interface CanaryCell {
  provider: string;
  model: string;
  variant: string;
  passes: number;
  attempts: number;
  /** Outcome of the attempts that do not pass. */
  failure: 'fail' | 'timeout';
  /** Mean cost of one attempt in USD as the article reports it; null = not priced ("n/a"). */
  costPerCall: string | null;
}

export const SEED_CANARY = 'tier-3/197e215e-record-cost-on-send-error';
export const SEED_TIER = 'tier-3';

export const SEED_TABLE: readonly CanaryCell[] = [
  { provider: 'deepseek', model: 'deepseek-v4-flash', variant: 'd4-rich', passes: 3, attempts: 3, failure: 'fail', costPerCall: '0.04' },
  { provider: 'deepseek', model: 'deepseek-v4-pro', variant: 'baseline', passes: 3, attempts: 3, failure: 'fail', costPerCall: '0.17' },
  { provider: 'anthropic', model: 'claude-sonnet-4-6', variant: 'baseline', passes: 2, attempts: 2, failure: 'fail', costPerCall: '7.73' },
  { provider: 'moonshot', model: 'kimi-k2.6', variant: 'baseline', passes: 2, attempts: 3, failure: 'fail', costPerCall: '1.61' },
  { provider: 'x_ai', model: 'grok-4.3', variant: 'tuned', passes: 1, attempts: 4, failure: 'fail', costPerCall: '0.16' },
  { provider: 'x_ai', model: 'grok-4.20-reasoning', variant: 'baseline', passes: 0, attempts: 2, failure: 'timeout', costPerCall: null },
];
