/**
 * The instrumentation SDK end to end: the real OpenTelemetry Node SDK and
 * the real OTLP/HTTP protobuf exporter, started by setupPerpass, sending to
 * an OTLP receiver in this process that decodes with otlp/codec.ts.
 */
import { diag, DiagLogLevel, SpanStatusCode, trace } from '@opentelemetry/api';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseAttemptAttributes } from '../contract/attempt.ts';
import { genAiUsageFromTokens, tokensFromGenAiUsage } from '../contract/tokens.ts';
import { describeMember, rollUp, tenantOf } from '../consumers/rollup.ts';
import type { AttrValue, SpanRecord } from '../otlp/codec.ts';
import { formatUsd, loadDefaultCatalog, priceCall, type Catalog } from '../pricing/index.ts';
import {
  buildCatalog,
  DEFAULT_SCHEDULED_DELAY_MS,
  llmCall,
  recordLlmCall,
  setupPerpass,
  withAttempt,
  withToolCall,
  type CostPreview,
  type PerpassHandle,
} from '../instrumentation/index.ts';
import { FIXTURES, type Fixture } from './instrumentation-usage-fixtures.ts';
import { OtlpReceiver } from './instrumentation-receiver.ts';

let receiver: OtlpReceiver;
let perpass: PerpassHandle;
const warnings: string[] = [];

beforeAll(async () => {
  receiver = await OtlpReceiver.start();
  perpass = setupPerpass({
    serviceName: 'agent-under-test',
    endpoint: receiver.url,
    headers: { authorization: 'Bearer t0ken' },
    tenant: 'team-a',
    pool: 'builder-heavy-fast',
    logLevel: 'warn',
  });
  // Capture the SDK's diagnostics (the no-verdict warning among them).
  const record = (...args: unknown[]) => warnings.push(args.map(String).join(' '));
  diag.setLogger({ error: record, warn: record, info: () => {}, debug: () => {}, verbose: () => {} }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true });
});

afterAll(async () => {
  await perpass.shutdown();
  await receiver.close();
});

beforeEach(() => {
  warnings.length = 0;
});

/** Flushes and returns the spans of the trace(s) holding the attempts of `specId`. */
async function spansOf(specId: string, expected: number): Promise<SpanRecord[]> {
  await perpass.forceFlush();
  const traces = () => new Set(receiver.spans.filter((s) => s.attributes['fleet.spec.id'] === specId).map((s) => s.traceId));
  const all = await receiver.waitFor((spans) => spans.filter((s) => traces().has(s.traceId)).length >= expected);
  const mine = all.filter((s) => traces().has(s.traceId));
  expect(mine).toHaveLength(expected);
  return mine;
}

/** OTLP's SpanKind enum (the API's is shifted by one: it has no UNSPECIFIED). */
const OTLP_SPAN_KIND = { INTERNAL: 1, CLIENT: 3 } as const;
const byName = (spans: SpanRecord[], name: string) => spans.filter((s) => s.name === name);
const one = (spans: SpanRecord[], name: string): SpanRecord => {
  const found = byName(spans, name);
  expect(found, name).toHaveLength(1);
  return found[0]!;
};
const usageAttrs = (a: Record<string, AttrValue>) => Object.fromEntries(Object.entries(a).filter(([k]) => k.startsWith('gen_ai.usage.')));

/** The inclusive GenAI attributes a fixture must produce. */
function expectedUsage(f: Fixture): Record<string, number> {
  const u = genAiUsageFromTokens(f.tokens);
  return {
    'gen_ai.usage.input_tokens': u.inputTokens,
    'gen_ai.usage.output_tokens': u.outputTokens,
    'gen_ai.usage.cache_read.input_tokens': u.cacheReadTokens,
    'gen_ai.usage.cache_write.input_tokens': u.cacheWriteTokens,
    'gen_ai.usage.reasoning.output_tokens': u.reasoningTokens,
  };
}

describe('setupPerpass (no SDK registered yet)', () => {
  it('starts the SDK and exports OTLP protobuf to the endpoint with headers and resource attributes', async () => {
    expect(perpass.mode).toBe('started');
    await withAttempt({ specId: 'spec-setup', tier: 'tier-1', attempt: 1 }, (a) => a.pass());
    const [span] = await spansOf('spec-setup', 1);
    const request = receiver.requests.find((r) => r.spans.some((s) => s.spanId === span!.spanId))!;
    expect(request.path).toBe('/v1/traces');
    expect(request.contentType).toBe('application/x-protobuf');
    expect(request.headers.authorization).toBe('Bearer t0ken');
    expect(span!.resource).toMatchObject({ 'service.name': 'agent-under-test', 'fleet.tenant': 'team-a', 'fleet.pool': 'builder-heavy-fast' });
    expect(span!.scope.name).toBe('perpass');
  });

  it(`exports an ended attempt within the batch delay (${DEFAULT_SCHEDULED_DELAY_MS} ms) without a flush`, async () => {
    let endedAt = 0;
    await withAttempt({ specId: 'spec-fresh', tier: 'tier-1', attempt: 1 }, (a) => a.pass());
    endedAt = Date.now();
    await receiver.waitFor((spans) => spans.some((s) => s.attributes['fleet.spec.id'] === 'spec-fresh'), 2000);
    const request = receiver.requests.find((r) => r.spans.some((s) => s.attributes['fleet.spec.id'] === 'spec-fresh'))!;
    const latency = request.receivedAtMs - endedAt;
    console.log(`attempt end -> received by the OTLP receiver: ${latency} ms`);
    expect(latency).toBeLessThan(DEFAULT_SCHEDULED_DELAY_MS + 500);
  });

  it('rejects bad options before touching the SDK', () => {
    expect(() => setupPerpass({ endpoint: 'localhost:4318' })).toThrow(/endpoint must be an http\(s\) URL/);
    expect(() => setupPerpass({ endpoint: 'not a url' })).toThrow(/endpoint must be an absolute URL such as http:\/\/localhost:4318, got "not a url"/);
    expect(() => setupPerpass({ protocol: 'grpc' as never })).toThrow(/protocol must be one of http\/protobuf, http\/json, got "grpc"/);
    expect(() => setupPerpass({ tenant: '' })).toThrow(/tenant must be a non-empty string/);
    expect(() => setupPerpass({ batch: { scheduledDelayMillis: -1 } })).toThrow(/batch.scheduledDelayMillis must be a non-negative integer, got -1/);
  });
});

describe('attempts, LLM calls and tool calls on the wire', () => {
  it('a retry loop: separate attempt spans, LLM and tool spans their children, exact attributes', async () => {
    const specId = 'spec-retry';
    const ids: string[] = [];
    for (let n = 1; n <= 2; n++) {
      const passed = await withAttempt({ specId, tier: 'tier-3', attempt: n, canary: 'tier-3/197e215e-record-cost-on-send-error', variant: 'd4-rich', model: 'claude-sonnet-4-6' }, async (attempt) => {
        ids.push(attempt.id);
        const f = n === 1 ? FIXTURES.openaiChatCached : FIXTURES.anthropicCached;
        await llmCall({ provider: f.provider, requestModel: f.requestModel }, async () => f.response);
        const ok = await withToolCall('run_tests', async () => n === 2, { callId: `toolu_${n}` });
        if (ok) attempt.pass();
        else attempt.fail('tests failed: 3 of 40');
        return ok;
      });
      if (passed) break;
    }
    const spans = await spansOf(specId, 6);
    const attempts = byName(spans, `attempt ${specId}`).sort((a, b) => Number(a.attributes['fleet.attempt.number']) - Number(b.attributes['fleet.attempt.number']));
    expect(attempts).toHaveLength(2);
    const [first, second] = attempts as [SpanRecord, SpanRecord];
    expect(first.spanId).not.toBe(second.spanId);
    expect(ids).toEqual([`${first.traceId}-${first.spanId}`, `${second.traceId}-${second.spanId}`]);
    const common = { 'fleet.spec.id': specId, 'fleet.spec.tier': 'tier-3', 'fleet.canary': 'tier-3/197e215e-record-cost-on-send-error', 'fleet.variant': 'd4-rich', 'fleet.model': 'claude-sonnet-4-6' };
    expect(first.attributes).toEqual({ ...common, 'fleet.attempt.number': 1, 'fleet.attempt.outcome': 'fail', 'fleet.attempt.reason': 'tests failed: 3 of 40' });
    expect(second.attributes).toEqual({ ...common, 'fleet.attempt.number': 2, 'fleet.attempt.outcome': 'pass' });
    for (const a of attempts) {
      expect(a.kind).toBe(OTLP_SPAN_KIND.INTERNAL);
      expect(a.parentSpanId).toBe('');
      expect(() => parseAttemptAttributes(a, a.attributes)).not.toThrow();
    }

    const children = (attempt: SpanRecord) => spans.filter((s) => s.parentSpanId === attempt.spanId && s.traceId === attempt.traceId);
    const [chat1, tool1] = [one(children(first), 'chat gpt-4o'), one(children(first), 'execute_tool run_tests')];
    const [chat2, tool2] = [one(children(second), 'chat claude-sonnet-4-6'), one(children(second), 'execute_tool run_tests')];
    expect(chat1.kind).toBe(OTLP_SPAN_KIND.CLIENT);
    expect(chat1.attributes).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o',
      'gen_ai.response.model': 'gpt-4o-2024-08-06',
      'gen_ai.response.id': 'chatcmpl-cached-1',
      'fleet.service_tier': 'standard',
      ...expectedUsage(FIXTURES.openaiChatCached),
    });
    expect(usageAttrs(chat1.attributes)).toEqual({
      'gen_ai.usage.input_tokens': 2006,
      'gen_ai.usage.output_tokens': 300,
      'gen_ai.usage.cache_read.input_tokens': 1920,
      'gen_ai.usage.cache_write.input_tokens': 0,
      'gen_ai.usage.reasoning.output_tokens': 0,
    });
    expect(chat2.attributes).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'anthropic',
      'gen_ai.request.model': 'claude-sonnet-4-6',
      'gen_ai.response.model': 'claude-sonnet-4-6',
      'gen_ai.response.id': 'msg_013Zva2CMHLNnXjNJJKqJ2EF',
      'fleet.service_tier': 'priority',
      'gen_ai.usage.input_tokens': 50 + 12000 + 556,
      'gen_ai.usage.output_tokens': 503,
      'gen_ai.usage.cache_read.input_tokens': 12000,
      'gen_ai.usage.cache_write.input_tokens': 556,
      'gen_ai.usage.reasoning.output_tokens': 300,
      // of the 556 written, the 100 for one hour (billed at 2x input, the others at 1.25x)
      'fleet.usage.cache_write_1h.input_tokens': 100,
    });
    expect(tool1.attributes).toEqual({ 'gen_ai.operation.name': 'execute_tool', 'gen_ai.tool.name': 'run_tests', 'gen_ai.tool.call.id': 'toolu_1' });
    expect(tool2.attributes['gen_ai.tool.call.id']).toBe('toolu_2');
    for (const s of [chat1, tool1, chat2, tool2]) expect(s.status.code).toBe(SpanStatusCode.UNSET);
  });

  it("normalises each provider's documented usage into the convention's inclusive counts, without double counting", async () => {
    const specId = 'spec-providers';
    const fixtures = Object.values(FIXTURES) as Fixture[];
    await withAttempt({ specId, tier: 'tier-2', attempt: 1 }, async (attempt) => {
      for (const f of fixtures) await llmCall({ provider: f.provider, requestModel: f.requestModel, ...(f.operation && { operation: f.operation }) }, () => f.response);
      attempt.pass();
    });
    const spans = await spansOf(specId, fixtures.length + 1);
    const attempt = one(spans, `attempt ${specId}`);
    const calls = spans.filter((s) => s.parentSpanId === attempt.spanId);
    expect(calls).toHaveLength(fixtures.length);
    for (const f of fixtures) {
      const span = f.responseId ? calls.find((s) => s.attributes['gen_ai.response.id'] === f.responseId)! : one(calls, `${f.operation} ${f.requestModel}`);
      expect(span, f.source).toBeDefined();
      expect(span.attributes['gen_ai.operation.name']).toBe(f.operation ?? 'chat');
      expect(span.attributes['fleet.usage.cache_write_1h.input_tokens'], f.source).toBe(f.cacheWrite1hTokens);
      expect(span.attributes['fleet.usage.invalid'], f.source).toBeUndefined();
      expect(span.parentSpanId).toBe(attempt.spanId);
      expect(span.attributes['gen_ai.provider.name']).toBe(f.provider);
      expect(usageAttrs(span.attributes), f.source).toEqual(expectedUsage(f));
      const a = span.attributes as Record<string, number>;
      const back = tokensFromGenAiUsage({
        inputTokens: a['gen_ai.usage.input_tokens']!,
        outputTokens: a['gen_ai.usage.output_tokens']!,
        cacheReadTokens: a['gen_ai.usage.cache_read.input_tokens']!,
        cacheWriteTokens: a['gen_ai.usage.cache_write.input_tokens']!,
        reasoningTokens: a['gen_ai.usage.reasoning.output_tokens']!,
      });
      expect(back, f.source).toEqual(f.tokens);
      expect(span.attributes['fleet.cost.reported_usd']).toBe(f.reportedCostUsd);
      expect(span.attributes['fleet.service_tier']).toBe(f.serviceTier ?? 'standard');
    }
  });

  it('an exception ends the attempt as error (recorded, status ERROR) and is re-thrown', async () => {
    const boom = new RangeError('sandbox crashed');
    await expect(
      withAttempt({ specId: 'spec-throw', tier: 'tier-2', attempt: 1 }, async (attempt) => {
        attempt.pass(); // a verdict given before the crash does not survive it
        throw boom;
      }),
    ).rejects.toBe(boom);
    const timeoutError = new Error('aborted');
    await expect(
      withAttempt({ specId: 'spec-throw', tier: 'tier-2', attempt: 2 }, async (attempt) => {
        attempt.timeout('wall clock 900 s');
        throw timeoutError;
      }),
    ).rejects.toBe(timeoutError);
    const spans = await spansOf('spec-throw', 2);
    const [crashed, timedOut] = [1, 2].map((n) => spans.find((s) => s.attributes['fleet.attempt.number'] === n)!) as [SpanRecord, SpanRecord];
    expect(crashed.attributes).toMatchObject({ 'fleet.attempt.outcome': 'error', 'fleet.attempt.reason': 'sandbox crashed', 'error.type': 'RangeError' });
    expect(crashed.status).toEqual({ code: SpanStatusCode.ERROR, message: 'sandbox crashed' });
    const exception = crashed.events.find((e) => e.name === 'exception')!;
    expect(exception.attributes).toMatchObject({ 'exception.type': 'RangeError', 'exception.message': 'sandbox crashed' });
    expect(String(exception.attributes['exception.stacktrace'])).toContain('RangeError: sandbox crashed');
    // The agent's own non-passing verdict is the more precise account; the exception is still recorded.
    expect(timedOut.attributes).toMatchObject({ 'fleet.attempt.outcome': 'timeout', 'fleet.attempt.reason': 'wall clock 900 s' });
    expect(timedOut.status.code).toBe(SpanStatusCode.ERROR);
    expect(timedOut.events.map((e) => e.name)).toEqual(['exception']);
  });

  it('an attempt ended without a verdict has no outcome attribute, and the SDK warns that the pipeline records unknown', async () => {
    await withAttempt({ specId: 'spec-no-verdict', tier: 'tier-2', attempt: 1 }, async () => 'forgot the verdict');
    const [span] = await spansOf('spec-no-verdict', 1);
    expect(span!.attributes['fleet.attempt.outcome']).toBeUndefined();
    expect(parseAttemptAttributes(span!, span!.attributes).outcome).toBe('unknown');
    expect(warnings.join('\n')).toMatch(/attempt 1 of spec "spec-no-verdict" \(trace [0-9a-f]{32}\) ended without a verdict.*fleet\.attempt\.outcome.*"unknown" \(counted as not passing\)/);
  });

  it('other verdicts: error() sets status ERROR, cancelled() does not; a changed verdict is warned about', async () => {
    await withAttempt({ specId: 'spec-verdicts', tier: 'tier-2', attempt: 1 }, (a) => a.error('provider returned 529 three times'));
    await withAttempt({ specId: 'spec-verdicts', tier: 'tier-2', attempt: 2 }, (a) => {
      a.fail('lint');
      a.cancelled('operator stopped the run');
    });
    const spans = await spansOf('spec-verdicts', 2);
    const [errored, cancelled] = [1, 2].map((n) => spans.find((s) => s.attributes['fleet.attempt.number'] === n)!) as [SpanRecord, SpanRecord];
    expect(errored.attributes).toMatchObject({ 'fleet.attempt.outcome': 'error', 'fleet.attempt.reason': 'provider returned 529 three times' });
    expect(errored.status).toEqual({ code: SpanStatusCode.ERROR, message: 'provider returned 529 three times' });
    expect(cancelled.attributes).toMatchObject({ 'fleet.attempt.outcome': 'cancelled', 'fleet.attempt.reason': 'operator stopped the run' });
    expect(cancelled.status.code).toBe(SpanStatusCode.UNSET);
    expect(warnings.join('\n')).toMatch(/verdict changed from fail to cancelled/);
  });

  it('usage that cannot be trusted: exception event on the LLM span, no token attributes, the call still returns', async () => {
    const bad = { id: 'chatcmpl-bad', model: 'gpt-4o-2024-08-06', usage: { prompt_tokens: 100, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 120 } } };
    let preview;
    await withAttempt({ specId: 'spec-bad-usage', tier: 'tier-2', attempt: 1 }, async (attempt) => {
      expect(await llmCall({ provider: 'openai', requestModel: 'gpt-4o' }, async () => bad)).toBe(bad);
      preview = attempt.costPreview(buildCatalog({ cards: [{ provider: 'openai', model: 'gpt-4o-2024-08-06', periods: [{ from: '2025-01-01', input: 1, output: 1 }] }] }));
      attempt.pass();
    });
    const spans = await spansOf('spec-bad-usage', 2);
    const call = one(spans, 'chat gpt-4o');
    expect(usageAttrs(call.attributes)).toEqual({});
    expect(call.attributes).toMatchObject({ 'gen_ai.response.model': 'gpt-4o-2024-08-06', 'gen_ai.response.id': 'chatcmpl-bad', 'fleet.service_tier': 'standard' });
    expect(call.status.code).toBe(SpanStatusCode.UNSET); // the model call itself succeeded
    expect(call.events.map((e) => e.name)).toEqual(['exception']);
    const problem = 'OpenAI Chat Completions usage: prompt_tokens_details.cached_tokens (120) exceeds prompt_tokens (100)';
    expect(call.events[0]!.attributes).toMatchObject({ 'exception.type': 'InvalidUsageError', 'exception.message': problem });
    // The reason travels on the span, for the pipeline's llm_calls.unpriced_reason.
    expect(call.attributes['fleet.usage.invalid']).toBe(problem);
    expect(preview).toEqual({ usd: '0', calls: 1, unpricedCalls: 1, unpriced: [{ provider: 'openai', model: 'gpt-4o-2024-08-06', reason: `invalid usage: ${problem}` }] });
    expect(warnings.join('\n')).toMatch(/LLM call "chat gpt-4o": token usage not exported/);
  });

  it('a response without usage is reported the same way (the call cannot be priced)', async () => {
    await withAttempt({ specId: 'spec-no-usage', tier: 'tier-2', attempt: 1 }, async (a) => {
      await llmCall({ provider: 'anthropic', requestModel: 'claude-haiku-4-5' }, async () => ({ id: 'msg_1', model: 'claude-haiku-4-5' }));
      a.pass();
    });
    const call = one(await spansOf('spec-no-usage', 2), 'chat claude-haiku-4-5');
    expect(usageAttrs(call.attributes)).toEqual({});
    expect(call.events[0]!.attributes['exception.message']).toBe('Anthropic Messages usage must be an object, got undefined');
    expect(call.attributes['fleet.usage.invalid']).toBe('Anthropic Messages usage must be an object, got undefined');
  });

  it('a failing LLM call and a failing tool call are recorded (error.type, status ERROR) and re-thrown', async () => {
    const rateLimited = Object.assign(new Error('429 Too Many Requests'), { name: 'RateLimitError' });
    const toolError = new TypeError('patch does not apply');
    let preview;
    await withAttempt({ specId: 'spec-call-errors', tier: 'tier-2', attempt: 1 }, async (attempt) => {
      await expect(llmCall({ provider: 'openai', requestModel: 'gpt-5.4' }, async () => Promise.reject(rateLimited))).rejects.toBe(rateLimited);
      await expect(withToolCall('apply_patch', () => { throw toolError; })).rejects.toBe(toolError);
      preview = attempt.costPreview(loadDefaultCatalog());
      attempt.fail('gave up');
    });
    // Billed or not, the pipeline cannot price it: an LLM span without usage is unpriced, and so is it in the preview.
    expect(preview).toEqual({
      usd: '0',
      calls: 1,
      unpricedCalls: 1,
      unpriced: [{ provider: 'openai', model: 'gpt-5.4', reason: 'invalid usage: no token usage (the call failed: error.type RateLimitError)' }],
    });
    const spans = await spansOf('spec-call-errors', 3);
    const call = one(spans, 'chat gpt-5.4');
    expect(call.status).toEqual({ code: SpanStatusCode.ERROR, message: '429 Too Many Requests' });
    expect(call.attributes['error.type']).toBe('RateLimitError');
    expect(usageAttrs(call.attributes)).toEqual({});
    const tool = one(spans, 'execute_tool apply_patch');
    expect(tool.status).toEqual({ code: SpanStatusCode.ERROR, message: 'patch does not apply' });
    expect(tool.attributes['error.type']).toBe('TypeError');
    expect(tool.events[0]!.attributes['exception.message']).toBe('patch does not apply');
  });

  it('streams: call.record takes the final usage-bearing object, fn returns whatever it likes', async () => {
    const chunks = [
      { id: 'chatcmpl-s', model: 'gpt-5.4-2026-03-05', choices: [{ delta: { content: 'Hel' } }] },
      { id: 'chatcmpl-s', model: 'gpt-5.4-2026-03-05', choices: [{ delta: { content: 'lo' } }] },
      { id: 'chatcmpl-s', model: 'gpt-5.4-2026-03-05', choices: [], usage: { prompt_tokens: 40, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 0 } } },
    ];
    await withAttempt({ specId: 'spec-stream', tier: 'tier-2', attempt: 1 }, async (attempt) => {
      const text = await llmCall({ provider: 'openai', requestModel: 'gpt-5.4' }, async (call) => {
        let out = '';
        for (const chunk of chunks) {
          out += chunk.choices[0]?.delta.content ?? '';
          if (chunk.usage) call.record(chunk);
        }
        return out;
      });
      expect(text).toBe('Hello');
      attempt.pass();
    });
    const call = one(await spansOf('spec-stream', 2), 'chat gpt-5.4');
    expect(usageAttrs(call.attributes)).toMatchObject({ 'gen_ai.usage.input_tokens': 40, 'gen_ai.usage.output_tokens': 2 });
    expect(call.attributes['gen_ai.response.model']).toBe('gpt-5.4-2026-03-05');
  });

  it('recordLlmCall records a finished call (batch result) with its own times; an explicit serviceTier wins over the response', async () => {
    const startTime = Date.parse('2026-11-20T10:00:00Z');
    const endTime = startTime + 3_600_000;
    await withAttempt({ specId: 'spec-batch', tier: 'tier-2', attempt: 1 }, (attempt) => {
      recordLlmCall({ provider: 'openai', requestModel: 'gpt-4o', serviceTier: 'batch', response: FIXTURES.openaiChatCached.response, startTime, endTime });
      attempt.pass();
    });
    const call = one(await spansOf('spec-batch', 2), 'chat gpt-4o');
    expect(call.attributes['fleet.service_tier']).toBe('batch'); // the response says "default"
    expect(call.startTimeUnixNano).toBe(BigInt(startTime) * 1_000_000n);
    expect(call.endTimeUnixNano).toBe(BigInt(endTime) * 1_000_000n);
    expect(usageAttrs(call.attributes)).toEqual(expectedUsage(FIXTURES.openaiChatCached));
  });

  it('a nested attempt is refused; an attempt under an app span is its child in the same trace', async () => {
    await withAttempt({ specId: 'spec-nested', tier: 'tier-2', attempt: 1 }, async (attempt) => {
      await expect(withAttempt({ specId: 'spec-nested', tier: 'tier-2', attempt: 2 }, (a) => a.pass())).rejects.toThrow(
        /attempts cannot nest, and attempt 1 of spec "spec-nested" .* is still running/,
      );
      attempt.pass();
    });
    await trace.getTracer('app').startActiveSpan('handle job', async (job) => {
      await withAttempt({ specId: 'spec-under-job', tier: 'tier-2', attempt: 1 }, (a) => a.pass());
      job.end();
    });
    const spans = await spansOf('spec-under-job', 2);
    expect(one(spans, 'attempt spec-under-job').parentSpanId).toBe(one(spans, 'handle job').spanId);
  });

  it('validates attempt, LLM call and tool call inputs with errors naming the option', async () => {
    let called = false;
    const fn = () => {
      called = true;
    };
    const base = { specId: 'spec-x', tier: 'tier-2', attempt: 1 };
    await expect(withAttempt({ ...base, tier: '' }, fn)).rejects.toThrow(new TypeError('withAttempt: tier (fleet.spec.tier) must be a non-empty string, got ""'));
    await expect(withAttempt({ ...base, attempt: 0 }, fn)).rejects.toThrow(/attempt \(fleet\.attempt\.number\) must be an integer ≥ 1 .*got 0$/);
    await expect(withAttempt({ ...base, attempt: 1.5 }, fn)).rejects.toThrow(/must be an integer ≥ 1 .*got 1\.5$/);
    await expect(withAttempt({ ...base, attempt: '1' as never }, fn)).rejects.toThrow(/must be an integer ≥ 1 .*got "1"$/);
    await expect(withAttempt({ tier: 'tier-2', attempt: 1 } as never, fn)).rejects.toThrow(/specId \(fleet\.spec\.id\) must be a non-empty string, got undefined/);
    await expect(withAttempt({ ...base, attemptId: '' }, fn)).rejects.toThrow(/attemptId \(fleet\.attempt\.id\)/);
    await expect(llmCall({ provider: 'openai', requestModel: '' }, fn)).rejects.toThrow(/llmCall: requestModel must be a non-empty string/);
    await expect(llmCall({ provider: 'openai', requestModel: 'gpt-4o', serviceTier: 'cheap' as never }, fn)).rejects.toThrow(
      /serviceTier must be one of standard, batch, flex, priority, got "cheap"/,
    );
    await expect(llmCall({ provider: 'openai', requestModel: 'gpt-4o', format: 'bedrock' as never }, fn)).rejects.toThrow(
      /format must be one of openai, anthropic, deepseek, gemini, openrouter, xai, moonshot, got "bedrock"/,
    );
    const recorded = { provider: 'openai', requestModel: 'gpt-4o', response: FIXTURES.openaiChatCached.response };
    expect(() => recordLlmCall({ ...recorded, startTime: '2026-11-20T10:00:00Z' as never })).toThrow(
      new TypeError('recordLlmCall: startTime must be a Date or epoch milliseconds, got "2026-11-20T10:00:00Z"'),
    );
    expect(() => recordLlmCall({ ...recorded, endTime: new Date('not a date') })).toThrow(/endTime must be a Date or epoch milliseconds, got an invalid Date/);
    expect(() => recordLlmCall({ ...recorded, startTime: Number.NaN })).toThrow(/startTime must be a Date or epoch milliseconds, got NaN/);
    expect(() => recordLlmCall({ ...recorded, startTime: 2_000, endTime: 1_000 })).toThrow(/recordLlmCall: endTime \(1000\) is before startTime \(2000\)/);
    expect(() => setupPerpass({ headers: null as never })).toThrow(new TypeError('setupPerpass: headers must map header names to strings, got null'));
    await expect(withToolCall('', fn)).rejects.toThrow(/withToolCall: name must be a non-empty string/);
    expect(called).toBe(false);
    await expect(withAttempt(base, (a) => a.fail(42 as never))).rejects.toThrow(/attempt\.fail\(reason\): reason must be a string, got 42/);
  });
});

describe('cost preview', () => {
  const catalog = buildCatalog({
    cards: [
      { provider: 'openai', model: 'gpt-4o', aliases: ['gpt-4o-2024-08-06'], periods: [{ from: '2025-01-01', input: 2.5, cache_read: 1.25, output: 10 }] },
      { provider: 'anthropic', model: 'claude-sonnet-4-6', periods: [{ from: '2025-01-01', input: 3, cache_read: 0.3, cache_write: 3.75, output: 15, priority_multiplier: 2 }] },
    ],
  });

  it('prices the running calls exactly with the pipeline engine, listing the ones it cannot price', async () => {
    const previews: unknown[] = [];
    await withAttempt({ specId: 'spec-cost', tier: 'tier-2', attempt: 1 }, async (attempt) => {
      previews.push(attempt.costPreview(catalog));
      await llmCall({ provider: 'openai', requestModel: 'gpt-4o' }, () => FIXTURES.openaiChatCached.response);
      previews.push(attempt.costPreview(catalog));
      await llmCall({ provider: 'anthropic', requestModel: 'claude-sonnet-4-6' }, () => FIXTURES.anthropicCached.response);
      await llmCall({ provider: 'gcp.gemini', requestModel: 'gemini-2.5-pro' }, () => FIXTURES.geminiThinking.response);
      previews.push(attempt.costPreview(catalog));
      attempt.pass();
    });
    // By hand, USD per million tokens: 86×2.5 + 1920×1.25 + 300×10 = 5615 → 0.005615;
    // (50×3 + 12000×0.3 + 556×3.75 + (203+300)×15) × 2 (priority) = 26760 → 0.02676.
    expect(previews).toEqual([
      { usd: '0', calls: 0, unpricedCalls: 0, unpriced: [] },
      { usd: '0.005615', calls: 1, unpricedCalls: 0, unpriced: [] },
      { usd: '0.032375', calls: 3, unpricedCalls: 1, unpriced: [{ provider: 'gcp.gemini', model: 'gemini-2.5-pro', reason: 'no price card for model "gemini-2.5-pro"' }] },
    ]);
    const spans = await spansOf('spec-cost', 4);
    for (const s of spans) expect(Object.keys(s.attributes).filter((k) => k.includes('cost'))).toEqual([]);
  });

  it("equals what the pipeline's roll-up computes from the same spans, for every way a call is priced or not", async () => {
    const cards: Catalog = buildCatalog({
      cards: [
        // no alias for the dated response model gpt-4o-2024-08-06: both price it with the card it was requested as
        { provider: 'openai', model: 'gpt-4o', periods: [{ from: '2025-01-01', input: 2.5, cache_read: 1.25, output: 10 }] },
        { provider: 'anthropic', model: 'claude-sonnet-4-6', periods: [{ from: '2025-01-01', input: 3, cache_read: 0.3, cache_write: 3.75, cache_write_1h: 6, output: 15, priority_multiplier: 2 }] },
        { provider: 'x_ai', model: 'grok-4.3', periods: [{ from: '2025-01-01', input: 0.2, cache_read: 0.05, output: 1.5 }] },
        { provider: 'moonshot', model: 'kimi-k2.6', periods: [{ from: '2025-01-01', input: 0.95, cache_read: 0.16, output: 4 }] },
      ],
    });
    const specId = 'spec-preview-is-pipeline';
    let preview: CostPreview | undefined;
    await withAttempt({ specId, tier: 'tier-2', attempt: 1 }, async (attempt) => {
      await llmCall({ provider: 'openai', requestModel: 'gpt-4o' }, () => FIXTURES.openaiChatCached.response);
      await llmCall({ provider: 'anthropic', requestModel: 'claude-sonnet-4-6' }, () => FIXTURES.anthropicCached.response); // 1-hour writes, priority tier
      await llmCall({ provider: 'xai', requestModel: 'grok-4.3' }, () => FIXTURES.xaiReasoningDocumented.response); // 'xai' is x_ai to both
      await llmCall({ provider: 'moonshot', requestModel: 'kimi-k2.6' }, () => FIXTURES.moonshotDocumented.response);
      await llmCall({ provider: 'azure.ai.openai', requestModel: 'gpt-4o' }, () => FIXTURES.openaiChatCached.response); // only openai's card
      await llmCall({ provider: 'openai', requestModel: 'gpt-4o' }, async () => ({ model: 'gpt-4o', usage: { prompt_tokens: 12 } }));
      await expect(llmCall({ provider: 'anthropic', requestModel: 'claude-sonnet-4-6' }, async () => Promise.reject(new Error('overloaded')))).rejects.toThrow('overloaded');
      preview = attempt.costPreview(cards);
      attempt.pass();
    });
    const spans = await spansOf(specId, 8);
    const span = one(spans, `attempt ${specId}`);
    const members = new Map(spans.filter((s) => s !== span).map((s) => [s.spanId, describeMember(s, cards)]));
    const { row } = rollUp(
      {
        attemptId: `${span.traceId}-${span.spanId}`,
        tenant: tenantOf(span),
        pool: '',
        attrs: parseAttemptAttributes(span, span.attributes),
        traceId: span.traceId,
        spanId: span.spanId,
        startNs: span.startTimeUnixNano,
        endNs: span.endTimeUnixNano,
      },
      members,
    );
    const calls = [...members.values()].map((m) => m.call!);
    const byReason = (a: { reason: string }, b: { reason: string }) => a.reason.localeCompare(b.reason);
    expect({ ...preview!, unpriced: [...preview!.unpriced].sort(byReason) }).toEqual({
      usd: formatUsd(calls.reduce((sum, c) => sum + (c.costAtto ?? 0n), 0n)),
      calls: row.llm_calls,
      unpricedCalls: row.unpriced_calls,
      unpriced: calls
        .filter((c) => c.costAtto === null)
        .map((c) => ({ provider: c.provider, model: c.model, reason: c.unpricedReason }))
        .sort(byReason),
    });
    // By hand, USD per million tokens: gpt-4o 86×2.5 + 1920×1.25 + 300×10 = 5615;
    // sonnet (50×3 + 12000×0.3 + 456×3.75 + 100×6 + 503×15) × 2 = 27210; grok 26×0.2 + 6×0.05 + 103×1.5 = 160;
    // kimi 9×0.95 + 10×0.16 + 21×4 = 94.15. Σ 33079.15 → 0.03307915.
    expect(preview!.usd).toBe('0.03307915');
    expect(preview!.unpriced.map((u) => u.reason).sort()).toEqual([
      'invalid usage: OpenAI Chat Completions usage: completion_tokens is missing',
      'invalid usage: no token usage (the call failed: error.type Error)',
      'model "gpt-4o" has price cards only for provider openai, not for the call\'s provider "azure.ai.openai" (a card lists the resellers that charge the same in "providers")',
    ]);
    expect(row).toMatchObject({ llm_calls: 7, unpriced_calls: 3, cost_usd: null });
  });

  it('defaults to the catalog the pipeline loads, and agrees with priceCall on it', async () => {
    const f = FIXTURES.deepseekReasonerHit;
    let startedAtMs = 0;
    let preview;
    await withAttempt({ specId: 'spec-cost-default', tier: 'tier-2', attempt: 1 }, async (attempt) => {
      startedAtMs = Date.now();
      await llmCall({ provider: f.provider, requestModel: f.requestModel }, () => f.response);
      preview = attempt.costPreview();
      attempt.pass();
    });
    const priced = priceCall(loadDefaultCatalog(), { provider: 'deepseek', model: 'deepseek-reasoner', startedAtMs, serviceTier: 'standard', tokens: f.tokens });
    expect(priced.priced).toBe(true);
    expect(preview).toEqual({ usd: priced.priced ? formatUsd(priced.costAtto) : '', calls: 1, unpricedCalls: 0, unpriced: [] });
  });
});
