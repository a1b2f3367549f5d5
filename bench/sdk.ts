/**
 * SDK overhead: what perpass's instrumentation (withAttempt, recordLlmCall /
 * llmCall, withToolCall: validation, usage parsing, GenAI attributes, the
 * attempt's call record) costs over the plain OpenTelemetry SDK emitting the
 * same spans with the same attributes by hand. Both run on the same
 * TracerProvider (AsyncLocalStorage context manager, SimpleSpanProcessor
 * with a no-op exporter, so export costs nothing and the same for both),
 * interleaved round by round; medians over rounds.
 *
 * An attempt = 1 attempt span + 6 LLM calls + 6 tool calls = 13 spans.
 */
import { context, SpanKind, trace, type Tracer } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { ExportResultCode } from '@opentelemetry/core';
import { SimpleSpanProcessor, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import { genAiUsageFromTokens } from '../contract/tokens.ts';
import { providerResponse } from '../demo/send.ts';
import { llmCall, recordLlmCall, withAttempt, withToolCall } from '../instrumentation/index.ts';
import { median, round, type Benchmark } from './lib/common.ts';

const CALLS = 6;
const SPANS_PER_ATTEMPT = 1 + 2 * CALLS;
const MODEL = 'deepseek-v4-flash';
const TOKENS = { input: 9_000, cache_read: 30_000, cache_write: 0, output: 2_500, reasoning: 1_500 };
const RESPONSE = providerResponse('deepseek', MODEL, TOKENS);
const USAGE = genAiUsageFromTokens(TOKENS);

class NoopExporter implements SpanExporter {
  spans = 0;
  export(spans: ReadableSpan[], done: (r: { code: ExportResultCode }) => void): void {
    this.spans += spans.length;
    done({ code: ExportResultCode.SUCCESS });
  }
  async shutdown(): Promise<void> {}
  async forceFlush(): Promise<void> {}
}

/** The attributes perpass puts on an LLM call span, set by hand. */
function plainLlmSpan(tracer: Tracer): void {
  const span = tracer.startSpan(`chat ${MODEL}`, {
    kind: SpanKind.CLIENT,
    attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'deepseek', 'gen_ai.request.model': MODEL },
  });
  span.setAttribute('gen_ai.response.model', MODEL);
  span.setAttribute('fleet.service_tier', 'standard');
  span.setAttributes({
    'gen_ai.usage.input_tokens': USAGE.inputTokens,
    'gen_ai.usage.output_tokens': USAGE.outputTokens,
    'gen_ai.usage.cache_read.input_tokens': USAGE.cacheReadTokens,
    'gen_ai.usage.cache_write.input_tokens': USAGE.cacheWriteTokens,
    'gen_ai.usage.reasoning.output_tokens': USAGE.reasoningTokens,
  });
  span.end();
}

async function plainAttempt(tracer: Tracer, i: number): Promise<void> {
  await tracer.startActiveSpan(
    `attempt spec-${i}`,
    { kind: SpanKind.INTERNAL, attributes: { 'fleet.spec.id': `spec-${i}`, 'fleet.spec.tier': 'tier-2', 'fleet.attempt.number': 1, 'fleet.canary': 'bench/sdk', 'fleet.variant': 'baseline' } },
    async (span) => {
      for (let c = 0; c < CALLS; c++) {
        plainLlmSpan(tracer);
        await tracer.startActiveSpan('execute_tool run_tests', { kind: SpanKind.INTERNAL, attributes: { 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'run_tests' } }, async (t) => {
          t.end();
        });
      }
      span.setAttribute('fleet.attempt.outcome', 'pass');
      span.end();
    },
  );
}

async function perpassAttempt(i: number): Promise<void> {
  await withAttempt({ specId: `spec-${i}`, tier: 'tier-2', attempt: 1, canary: 'bench/sdk', variant: 'baseline' }, async (attempt) => {
    for (let c = 0; c < CALLS; c++) {
      recordLlmCall({ provider: 'deepseek', requestModel: MODEL, response: RESPONSE });
      await withToolCall('run_tests', async () => {});
    }
    attempt.pass();
  });
}

/** µs per iteration of `fn` over `n` iterations. */
async function timeIt(n: number, fn: (i: number) => unknown): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await fn(i);
  return ((performance.now() - t0) * 1000) / n;
}

export const sdkBenchmark: Benchmark = {
  name: 'sdk',
  description: 'perpass SDK overhead over the plain OpenTelemetry SDK (same spans and attributes, no-op exporter), µs',
  async run(o) {
    const smoke = o.smoke;
    const rounds = Number(o.set.rounds ?? (smoke ? 3 : 31));
    const attemptsPerRound = Number(o.set.attempts ?? (smoke ? 200 : 3000));
    const callsPerRound = attemptsPerRound * CALLS;
    const exporter = new NoopExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
    const tracer = trace.getTracer('perpass');
    const series: Record<string, number[]> = { plainAttempt: [], perpassAttempt: [], plainRecordCall: [], perpassRecordCall: [], plainLlmCallAsync: [], perpassLlmCallAsync: [] };
    // warm-up (JIT) for both
    await timeIt(attemptsPerRound, (i) => plainAttempt(tracer, i));
    await timeIt(attemptsPerRound, (i) => perpassAttempt(i));
    for (let r = 0; r < rounds; r++) {
      // alternate which goes first, so drift in the machine's state hits both alike
      const pairs: [string, () => Promise<number>][] = [
        ['plainAttempt', () => timeIt(attemptsPerRound, (i) => plainAttempt(tracer, i))],
        ['perpassAttempt', () => timeIt(attemptsPerRound, (i) => perpassAttempt(i))],
        [
          'plainRecordCall',
          () => tracer.startActiveSpan('attempt', async (s) => { const us = await timeIt(callsPerRound, () => plainLlmSpan(tracer)); s.end(); return us; }),
        ],
        [
          'perpassRecordCall',
          () => withAttempt({ specId: 's', tier: 't', attempt: 1 }, async (a) => { const us = await timeIt(callsPerRound, () => recordLlmCall({ provider: 'deepseek', requestModel: MODEL, response: RESPONSE })); a.pass(); return us; }),
        ],
        [
          'plainLlmCallAsync',
          () =>
            tracer.startActiveSpan('attempt', async (s) => {
              const us = await timeIt(callsPerRound, () =>
                tracer.startActiveSpan(`chat ${MODEL}`, { kind: SpanKind.CLIENT, attributes: { 'gen_ai.operation.name': 'chat', 'gen_ai.provider.name': 'deepseek', 'gen_ai.request.model': MODEL } }, async (span) => {
                  const response = await Promise.resolve(RESPONSE);
                  span.setAttribute('gen_ai.response.model', MODEL);
                  span.setAttribute('fleet.service_tier', 'standard');
                  span.setAttributes({ 'gen_ai.usage.input_tokens': USAGE.inputTokens, 'gen_ai.usage.output_tokens': USAGE.outputTokens, 'gen_ai.usage.cache_read.input_tokens': USAGE.cacheReadTokens, 'gen_ai.usage.cache_write.input_tokens': USAGE.cacheWriteTokens, 'gen_ai.usage.reasoning.output_tokens': USAGE.reasoningTokens });
                  span.end();
                  return response;
                }),
              );
              s.end();
              return us;
            }),
        ],
        [
          'perpassLlmCallAsync',
          () => withAttempt({ specId: 's', tier: 't', attempt: 1 }, async (a) => { const us = await timeIt(callsPerRound, () => llmCall({ provider: 'deepseek', requestModel: MODEL }, async () => RESPONSE)); a.pass(); return us; }),
        ],
      ];
      if (r % 2 === 1) for (let k = 0; k < pairs.length; k += 2) [pairs[k], pairs[k + 1]] = [pairs[k + 1]!, pairs[k]!];
      for (const [name, fn] of pairs) series[name]!.push(await fn());
    }
    await provider.shutdown();
    const m = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, median(v)]));
    // per-round differences (paired), then the median: less noise than a difference of medians
    const paired = (a: string, b: string) => median(series[b]!.map((x, i) => x - series[a]![i]!));
    const addedPerAttempt = paired('plainAttempt', 'perpassAttempt');
    const metrics = {
      plainAttemptUs: round(m.plainAttempt!, 2),
      perpassAttemptUs: round(m.perpassAttempt!, 2),
      addedPerAttemptUs: round(addedPerAttempt, 2),
      addedPerSpanUs: round(addedPerAttempt / SPANS_PER_ATTEMPT, 3),
      plainLlmCallUs: round(m.plainRecordCall!, 3),
      perpassRecordLlmCallUs: round(m.perpassRecordCall!, 3),
      addedPerRecordLlmCallUs: round(paired('plainRecordCall', 'perpassRecordCall'), 3),
      plainLlmCallAsyncUs: round(m.plainLlmCallAsync!, 3),
      perpassLlmCallAsyncUs: round(m.perpassLlmCallAsync!, 3),
      addedPerLlmCallAsyncUs: round(paired('plainLlmCallAsync', 'perpassLlmCallAsync'), 3),
    };
    const spread = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, { min: round(Math.min(...v), 2), p50: round(median(v), 2), max: round(Math.max(...v), 2) }]));
    return {
      config: { rounds, attemptsPerRound, llmCallsPerRound: callsPerRound, spansPerAttempt: SPANS_PER_ATTEMPT, provider: 'sdk-trace TracerProvider + SimpleSpanProcessor(no-op exporter), AsyncLocalStorageContextManager', usage: 'DeepSeek-shaped response object (perpass parses it; plain sets precomputed numbers)' },
      metrics,
      units: Object.fromEntries(Object.keys(metrics).map((k) => [k, 'µs'])),
      targets: [{ metric: 'addedPerSpanUs', op: '<', target: 2, unit: 'µs' }],
      runs: [],
      details: { perRoundUs: spread, exportedSpans: exporter.spans },
      notes: ['added = median over rounds of (perpass − plain) in the same round; per span = per attempt ÷ 13 spans'],
    };
  },
};
