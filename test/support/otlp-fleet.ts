/**
 * A planned fleet (demo/plan.ts) as raw OTLP, the way any OTel SDK would
 * export it: attempt spans with the fleet.* attributes, GenAI LLM-call spans
 * (inclusive token counts), tool spans. Used to feed the consumers directly.
 */
import type { BusMessage } from '../../bus/types.ts';
import { genAiUsageFromTokens } from '../../contract/tokens.ts';
import { planFleet, type PlannedAttempt } from '../../demo/plan.ts';
import { encodeTraceRequest, type KeyValue, type OtlpSpan, type TraceRequest } from '../../otlp/codec.ts';

const str = (key: string, v: string): KeyValue => ({ key, value: { stringValue: v } });
const int = (key: string, v: number): KeyValue => ({ key, value: { intValue: v } });
const bytes = (h: string) => Buffer.from(h, 'hex');

export function attemptSpans(a: PlannedAttempt): OtlpSpan[] {
  const attempt: OtlpSpan = {
    traceId: bytes(a.traceId),
    spanId: bytes(a.spanId),
    name: `attempt ${a.specId}`,
    kind: 1,
    startTimeUnixNano: a.startNs.toString(),
    endTimeUnixNano: a.endNs.toString(),
    attributes: [
      str('fleet.spec.id', a.specId),
      str('fleet.spec.tier', a.tier),
      int('fleet.attempt.number', a.attemptNumber),
      str('fleet.attempt.outcome', a.outcome),
      ...(a.reason ? [str('fleet.attempt.reason', a.reason)] : []),
      str('fleet.canary', a.canary),
      str('fleet.variant', a.variant),
    ],
    status: { code: a.outcome === 'pass' ? 1 : 2 },
  };
  const calls = a.calls.map((c): OtlpSpan => {
    const u = genAiUsageFromTokens(c.tokens);
    return {
      traceId: bytes(a.traceId),
      spanId: bytes(c.spanId),
      parentSpanId: bytes(a.spanId),
      name: `chat ${c.model}`,
      kind: 3,
      startTimeUnixNano: c.startNs.toString(),
      endTimeUnixNano: c.endNs.toString(),
      attributes: [
        str('gen_ai.operation.name', 'chat'),
        str('gen_ai.provider.name', c.provider),
        str('gen_ai.request.model', c.model),
        str('gen_ai.response.model', c.model),
        int('gen_ai.usage.input_tokens', u.inputTokens),
        int('gen_ai.usage.output_tokens', u.outputTokens),
        int('gen_ai.usage.cache_read.input_tokens', u.cacheReadTokens),
        int('gen_ai.usage.cache_creation.input_tokens', u.cacheWriteTokens),
        int('gen_ai.usage.reasoning.output_tokens', u.reasoningTokens),
        str('fleet.service_tier', c.serviceTier),
      ],
    };
  });
  const tools = a.tools.map((t): OtlpSpan => ({
    traceId: bytes(a.traceId),
    spanId: bytes(t.spanId),
    parentSpanId: bytes(a.spanId),
    name: `execute_tool ${t.name}`,
    kind: 1,
    startTimeUnixNano: t.startNs.toString(),
    endTimeUnixNano: t.endNs.toString(),
    attributes: [str('gen_ai.operation.name', 'execute_tool'), str('gen_ai.tool.name', t.name)],
  }));
  return [attempt, ...calls, ...tools];
}

export function traceRequest(spans: OtlpSpan[], tenant: string): TraceRequest {
  return {
    resourceSpans: [
      {
        resource: { attributes: [str('service.name', 'test-agent'), str('fleet.tenant', tenant), str('fleet.pool', 'builder-heavy-fast')] },
        scopeSpans: [{ scope: { name: 'perpass-test', version: '1' }, spans }],
      },
    ],
  };
}

/**
 * The fleet as bus messages keyed by trace id: each attempt's spans are cut
 * into `parts` messages, and messages of different traces interleave in a
 * shuffled order (children may come before their attempt span).
 */
export function fleetMessages(attempts: PlannedAttempt[], rand: () => number, parts = 3): BusMessage[] {
  const messages: BusMessage[] = [];
  for (const a of attempts) {
    const spans = attemptSpans(a).sort(() => rand() - 0.5);
    const size = Math.ceil(spans.length / parts);
    for (let i = 0; i < spans.length; i += size) {
      messages.push({ key: a.traceId, value: encodeTraceRequest(traceRequest(spans.slice(i, i + size), a.tenant)) });
    }
  }
  return messages.sort(() => rand() - 0.5);
}

/**
 * Plans a fleet (`specsPerCell` specs per model × tier, spec ids starting
 * with `prefix`) and posts each attempt as one OTLP/HTTP protobuf request to
 * the collector at `endpoint`, as an agent's exporter would; returns the
 * plan and each request's latency in ms. A request answered other than 200
 * throws.
 */
export async function postFleet(endpoint: string, seed: number, prefix: string, specsPerCell = 3): Promise<{ plan: PlannedAttempt[]; latencies: number[]; attempts: number }> {
  const plan = planFleet({ specsPerCell, seed, startNs: BigInt(Date.now()) * 1_000_000n, spacingMs: 1, specPrefix: prefix });
  const latencies: number[] = [];
  for (const a of plan) {
    const body = encodeTraceRequest(traceRequest(attemptSpans(a), a.tenant));
    const started = performance.now();
    const res = await fetch(`${endpoint}/v1/traces`, { method: 'POST', headers: { 'content-type': 'application/x-protobuf' }, body });
    await res.arrayBuffer();
    latencies.push(performance.now() - started);
    if (res.status !== 200) throw new Error(`POST ${endpoint}/v1/traces: HTTP ${res.status}`);
  }
  return { plan, latencies, attempts: plan.length };
}
