/**
 * Sends a planned fleet through the real instrumentation SDK and OTLP
 * exporter, the way an instrumented agent would: one attempt span per try,
 * its LLM calls recorded from provider-shaped usage objects (so the SDK's
 * normalisation is exercised too), its tool calls as execute_tool spans.
 */
import type { TokenCounts } from '../contract/tokens.ts';
import { recordLlmCall, setupPerpass, withAttempt, withToolCall } from '../instrumentation/index.ts';
import type { PlannedAttempt } from './plan.ts';

/** The usage object the provider would have returned for these (exclusive) token counts. */
export function providerResponse(provider: string, model: string, t: TokenCounts): unknown {
  if (provider === 'anthropic') {
    // Anthropic's input_tokens excludes cache reads and writes; thinking is inside output_tokens
    return { model, usage: { input_tokens: t.input, cache_read_input_tokens: t.cache_read, cache_creation_input_tokens: t.cache_write, output_tokens: t.output + t.reasoning } };
  }
  if (provider === 'deepseek') {
    return {
      model,
      usage: {
        prompt_tokens: t.input + t.cache_read + t.cache_write,
        prompt_cache_hit_tokens: t.cache_read,
        prompt_cache_miss_tokens: t.input + t.cache_write,
        completion_tokens: t.output + t.reasoning,
        completion_tokens_details: { reasoning_tokens: t.reasoning },
      },
    };
  }
  const prompt = t.input + t.cache_read + t.cache_write;
  if (provider === 'x_ai') {
    // xAI counts reasoning outside completion_tokens, inside total_tokens
    return {
      model,
      usage: {
        prompt_tokens: prompt,
        completion_tokens: t.output,
        total_tokens: prompt + t.output + t.reasoning,
        prompt_tokens_details: { cached_tokens: t.cache_read },
        completion_tokens_details: { reasoning_tokens: t.reasoning },
      },
    };
  }
  if (provider === 'moonshot') {
    // Moonshot reports cache hits at the top level of usage; reasoning is inside completion_tokens
    const completion = t.output + t.reasoning;
    return {
      model,
      usage: { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion, cached_tokens: t.cache_read, completion_tokens_details: { reasoning_tokens: t.reasoning } },
    };
  }
  // OpenAI Chat Completions shape (most others): cached and reasoning counts are inside the totals
  return {
    model,
    usage: {
      prompt_tokens: prompt,
      completion_tokens: t.output + t.reasoning,
      prompt_tokens_details: { cached_tokens: t.cache_read, ...(t.cache_write > 0 && { cache_write_tokens: t.cache_write }) },
      completion_tokens_details: { reasoning_tokens: t.reasoning },
    },
  };
}

export interface SendOptions {
  /** Collector base URL (`/v1/traces` is appended). */
  endpoint: string;
  headers?: Record<string, string>;
  tenant?: string;
  /** Pause after each attempt (spreads the traffic over time). */
  paceMs?: number;
  onAttempt?: (done: number, total: number) => void;
}

/**
 * Attempts between flushes: the batch span processor drops spans beyond its
 * queue (2048 by default), so a sender faster than the export flushes and
 * waits — the backpressure a real agent gets from its own slowness.
 */
const FLUSH_EVERY = 100;

export async function sendFleet(plan: PlannedAttempt[], options: SendOptions): Promise<void> {
  const sdk = setupPerpass({
    serviceName: 'perpass-demo-agent',
    endpoint: options.endpoint,
    ...(options.headers && { headers: options.headers }),
    ...(options.tenant && { tenant: options.tenant }),
    pool: plan[0]?.pool ?? 'builder-heavy-fast',
    logLevel: 'error',
  });
  try {
    for (const [i, a] of plan.entries()) {
      await withAttempt({ specId: a.specId, tier: a.tier, attempt: a.attemptNumber, canary: a.canary, variant: a.variant }, async (attempt) => {
        for (const [k, c] of a.calls.entries()) {
          recordLlmCall({ provider: c.provider, requestModel: c.model, serviceTier: c.serviceTier, response: providerResponse(c.provider, c.model, c.tokens) });
          const tool = a.tools[k];
          if (tool) await withToolCall(tool.name, async () => {});
        }
        if (a.outcome === 'pass') attempt.pass();
        else if (a.outcome === 'timeout') attempt.timeout(a.reason);
        else attempt.fail(a.reason);
      });
      options.onAttempt?.(i + 1, plan.length);
      if ((i + 1) % FLUSH_EVERY === 0) await sdk.forceFlush();
      if (options.paceMs) await new Promise((r) => setTimeout(r, options.paceMs));
    }
  } finally {
    await sdk.shutdown();
  }
}
