/**
 * A Node agent on the Vercel AI SDK 7 with its OpenTelemetry integration
 * (`@ai-sdk/otel` + registerTelemetry) — the default one (GenAI `chat` spans)
 * or the legacy one (`ai.*` spans) — and the plain OpenTelemetry Node SDK
 * exporting OTLP/HTTP; the attempt attributes go on one span around each try.
 *
 *     node ai-sdk-agent.ts default|legacy PLAN_JSON
 *
 * PLAN_JSON: {"endpoint", "service", "attempts": [{"spec", "tier", "number",
 *   "outcome", "calls": [{"model", "stream", "baseURL", "name"?}]}]}
 */
import { trace } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { startNodeSdk } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace';
import { LegacyOpenTelemetry, OpenTelemetry } from '@ai-sdk/otel';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, registerTelemetry, streamText } from 'ai';

interface Call {
  model: string;
  stream: boolean;
  baseURL: string;
  /** The provider name the AI SDK reports (createOpenAI's `name`, default "openai"). */
  name?: string;
}
interface Plan {
  endpoint: string;
  service: string;
  attempts: { spec: string; tier: string; number: number; outcome: string; calls: Call[] }[];
}

const [which, planJson] = process.argv.slice(2);
if (which !== 'default' && which !== 'legacy') throw new Error(`unknown integration ${which}: default or legacy`);
const plan = JSON.parse(planJson!) as Plan;

const sdk = startNodeSdk({
  spanProcessors: [new BatchSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${plan.endpoint}/v1/traces` }) })],
  metricReaders: [],
  logRecordProcessors: [],
  resourceAttributes: { 'service.name': plan.service },
});
registerTelemetry(which === 'default' ? new OpenTelemetry() : new LegacyOpenTelemetry());
const tracer = trace.getTracer('ai-sdk-agent');

async function complete(call: Call): Promise<string> {
  const model = createOpenAI({ baseURL: call.baseURL, apiKey: 'test', ...(call.name && { name: call.name }) }).chat(call.model);
  const prompt = 'Make the failing test pass.';
  if (!call.stream) return (await generateText({ model, prompt })).text;
  const result = streamText({ model, prompt });
  let text = '';
  for await (const part of result.textStream) text += part;
  return text;
}

let calls = 0;
for (const a of plan.attempts) {
  await tracer.startActiveSpan('attempt', { attributes: { 'fleet.spec.id': a.spec, 'fleet.spec.tier': a.tier, 'fleet.attempt.number': a.number } }, async (span) => {
    for (const call of a.calls) {
      await complete(call);
      calls++;
    }
    span.setAttribute('fleet.attempt.outcome', a.outcome);
    span.end();
  });
}
await sdk.shutdown(); // flushes the batch processor
console.log(`sent ${calls} calls`);
