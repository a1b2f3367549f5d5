/**
 * A deterministic fleet of attempts: the shape of the traffic the demo sends
 * and the tests feed through the pipeline, planned up front so the expected
 * numbers are known before any span is emitted. Built around the seed canary
 * matrix of the reference article over tier-2 and tier-3 canaries, with
 * retries until pass (bounded), tool calls, cache and reasoning tokens.
 */
import type { Outcome, ServiceTier } from '../contract/attributes.ts';
import type { TokenCounts } from '../contract/tokens.ts';

export interface PlannedCall {
  spanId: string;
  provider: string;
  model: string;
  serviceTier: ServiceTier;
  startNs: bigint;
  endNs: bigint;
  /** Exclusive token kinds. */
  tokens: TokenCounts;
}

export interface PlannedAttempt {
  traceId: string;
  spanId: string;
  tenant: string;
  pool: string;
  specId: string;
  tier: string;
  canary: string;
  variant: string;
  /** The model the attempt is routed to (its calls use it). */
  provider: string;
  model: string;
  attemptNumber: number;
  outcome: Outcome;
  reason: string;
  startNs: bigint;
  endNs: bigint;
  calls: PlannedCall[];
  tools: { spanId: string; name: string; startNs: bigint; endNs: bigint }[];
}

/** One configuration of the matrix: a model + variant with its pass rate per tier and its token appetite. */
export interface FleetConfig {
  provider: string;
  model: string;
  variant: string;
  passRate: Record<string, number>;
  /** Outcome of the attempts that do not pass. */
  failure: Exclude<Outcome, 'pass'>;
  /** Mean tokens of one LLM call (exclusive kinds). */
  callTokens: TokenCounts;
  callsPerAttempt: number;
}

/**
 * The seed matrix of the reference article, with tier-2 and tier-3 canaries.
 * Token appetites are set so that $/call at today's catalog prices lands near
 * the article's (flash $0.04, sonnet $7.73, kimi $1.61, grok-4.3 $0.16) —
 * except deepseek-v4-pro, whose 75 % launch discount ended on 2026-06-01:
 * its calls now cost 4× the article's $0.17.
 */
export const SEED_FLEET: readonly FleetConfig[] = [
  { provider: 'deepseek', model: 'deepseek-v4-flash', variant: 'd4-rich', passRate: { 'tier-2': 0.95, 'tier-3': 0.9 }, failure: 'fail', callTokens: { input: 9_000, cache_read: 30_000, cache_write: 0, output: 2_500, reasoning: 1_500 }, callsPerAttempt: 6 },
  { provider: 'deepseek', model: 'deepseek-v4-pro', variant: 'baseline', passRate: { 'tier-2': 0.95, 'tier-3': 0.9 }, failure: 'fail', callTokens: { input: 54_000, cache_read: 109_000, cache_write: 0, output: 10_900, reasoning: 5_400 }, callsPerAttempt: 5 },
  { provider: 'anthropic', model: 'claude-sonnet-4-6', variant: 'baseline', passRate: { 'tier-2': 1, 'tier-3': 0.95 }, failure: 'fail', callTokens: { input: 95_000, cache_read: 470_000, cache_write: 32_000, output: 32_000, reasoning: 0 }, callsPerAttempt: 8 },
  { provider: 'moonshot', model: 'kimi-k2.6', variant: 'baseline', passRate: { 'tier-2': 0.95, 'tier-3': 0.67 }, failure: 'fail', callTokens: { input: 110_000, cache_read: 183_000, cache_write: 0, output: 27_500, reasoning: 9_000 }, callsPerAttempt: 6 },
  { provider: 'x_ai', model: 'grok-4.3', variant: 'tuned', passRate: { 'tier-2': 0.6, 'tier-3': 0.25 }, failure: 'fail', callTokens: { input: 50_000, cache_read: 0, cache_write: 0, output: 7_400, reasoning: 5_000 }, callsPerAttempt: 6 },
  { provider: 'x_ai', model: 'grok-4.20-reasoning', variant: 'baseline', passRate: { 'tier-2': 0.2, 'tier-3': 0 }, failure: 'timeout', callTokens: { input: 50_000, cache_read: 0, cache_write: 0, output: 5_000, reasoning: 30_000 }, callsPerAttempt: 3 },
];

export const CANARIES: Record<string, string> = {
  'tier-2': 'tier-2/single-file-required-fix',
  'tier-3': 'tier-3/197e215e-record-cost-on-send-error',
};

export interface PlanOptions {
  /** Specs per (config, tier); each spec is retried until it passes or maxAttempts. */
  specsPerCell: number;
  maxAttempts?: number;
  seed?: number;
  /** Start of the first attempt (ns since epoch); attempts follow each other by `spacingMs`. */
  startNs: bigint;
  spacingMs?: number;
  tenant?: string;
  pool?: string;
  /** Prefix of every spec id (tells runs apart). */
  specPrefix?: string;
  configs?: readonly FleetConfig[];
  tiers?: readonly string[];
}

/** mulberry32: small, seedable, good enough for traffic shapes. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const hex = (rand: () => number, bytes: number) =>
  Array.from({ length: bytes }, () => Math.floor(rand() * 256).toString(16).padStart(2, '0')).join('');

const MS = 1_000_000n;

export function planFleet(options: PlanOptions): PlannedAttempt[] {
  const rand = prng(options.seed ?? 1);
  const maxAttempts = options.maxAttempts ?? 4;
  const spacing = BigInt(options.spacingMs ?? 1_000) * MS;
  const vary = (n: number) => Math.max(0, Math.round(n * (0.6 + rand() * 0.8)));
  const attempts: PlannedAttempt[] = [];
  let t = options.startNs;
  for (const tier of options.tiers ?? Object.keys(CANARIES)) {
    for (const config of options.configs ?? SEED_FLEET) {
      for (let s = 0; s < options.specsPerCell; s++) {
        const specId = `${options.specPrefix ?? 'spec'}-${tier}-${config.model}-${config.variant}-${s}`;
        for (let n = 1; n <= maxAttempts; n++) {
          const pass = rand() < (config.passRate[tier] ?? 0);
          const traceId = hex(rand, 16);
          const startNs = t;
          const calls: PlannedCall[] = [];
          const tools: PlannedAttempt['tools'] = [];
          let cursor = startNs + 5n * MS;
          for (let c = 0; c < config.callsPerAttempt; c++) {
            const d = BigInt(200 + Math.floor(rand() * 800)) * MS;
            const k = config.callTokens;
            calls.push({
              spanId: hex(rand, 8),
              provider: config.provider,
              model: config.model,
              serviceTier: rand() < 0.1 ? 'batch' : 'standard',
              startNs: cursor,
              endNs: cursor + d,
              tokens: { input: vary(k.input), cache_read: vary(k.cache_read), cache_write: vary(k.cache_write), output: vary(k.output), reasoning: vary(k.reasoning) },
            });
            cursor += d;
            const td = BigInt(20 + Math.floor(rand() * 100)) * MS;
            tools.push({ spanId: hex(rand, 8), name: ['read_file', 'edit_file', 'run_tests'][c % 3]!, startNs: cursor, endNs: cursor + td });
            cursor += td;
          }
          attempts.push({
            traceId,
            spanId: hex(rand, 8),
            tenant: options.tenant ?? 'default',
            pool: options.pool ?? 'builder-heavy-fast',
            specId,
            tier,
            canary: CANARIES[tier] ?? tier,
            variant: config.variant,
            provider: config.provider,
            model: config.model,
            attemptNumber: n,
            outcome: pass ? 'pass' : config.failure,
            reason: pass ? '' : config.failure === 'timeout' ? 'no result within the time budget' : 'acceptance tests failed',
            startNs,
            endNs: cursor + 5n * MS,
            calls,
            tools,
          });
          t += spacing;
          if (pass) break;
        }
      }
    }
  }
  return attempts;
}
