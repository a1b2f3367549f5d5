/**
 * setupPerpass in an app that already runs OpenTelemetry: it must attach to
 * the registered tracer provider (same provider, the app's exporter and
 * resource) instead of starting a second SDK.
 */
import { context, diag, DiagLogLevel, propagation, trace, type TracerProvider } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { AlwaysOffSampler, SimpleSpanProcessor, TracerProvider as SdkTracerProvider } from '@opentelemetry/sdk-trace';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { llmCall, setupPerpass, withAttempt } from '../instrumentation/index.ts';
import { FIXTURES } from './instrumentation-usage-fixtures.ts';
import { OtlpReceiver } from './instrumentation-receiver.ts';

let receiver: OtlpReceiver;
const logs: string[] = [];

beforeEach(async () => {
  receiver = await OtlpReceiver.start();
  logs.length = 0;
  const record = (...args: unknown[]) => logs.push(args.map(String).join(' '));
  diag.setLogger({ error: record, warn: record, info: record, debug: () => {}, verbose: () => {} }, { logLevel: DiagLogLevel.INFO, suppressOverrideMessage: true });
});

afterEach(async () => {
  await receiver.close();
  // Leave no global registration behind for the next case.
  trace.disable();
  context.disable();
  propagation.disable();
  diag.disable();
});

const registered = (): TracerProvider => (trace.getTracerProvider() as unknown as { getDelegate(): TracerProvider }).getDelegate();

async function oneAttemptWithACall(): Promise<void> {
  const f = FIXTURES.openaiChatCached;
  await withAttempt({ specId: 'spec-attached', tier: 'tier-1', attempt: 1 }, async (attempt) => {
    await llmCall({ provider: f.provider, requestModel: f.requestModel }, () => f.response);
    attempt.pass();
  });
}

describe('setupPerpass with an SDK already registered', () => {
  it("attaches to the app's NodeSDK: same provider, the app's exporter and resource, options it cannot apply are reported", async () => {
    const sdk = new NodeSDK({
      serviceName: 'app-with-own-sdk',
      spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${receiver.url}/v1/traces` }) })],
      metricReaders: [],
      logRecordProcessors: [],
    });
    sdk.start();
    const appProvider = registered();

    const perpass = setupPerpass({ serviceName: 'would-be-second-sdk', endpoint: 'http://127.0.0.1:9/unused' });
    expect(perpass.mode).toBe('attached');
    expect(registered()).toBe(appProvider);
    expect(logs.join('\n')).toMatch(/already registered, so setupPerpass attaches to it and ignores serviceName, endpoint/);

    await oneAttemptWithACall();
    await perpass.forceFlush();
    const spans = await receiver.waitFor((s) => s.length === 2);
    const attempt = spans.find((s) => s.name === 'attempt spec-attached')!;
    const call = spans.find((s) => s.name === 'chat gpt-4o')!;
    expect(call.parentSpanId).toBe(attempt.spanId);
    expect(attempt.resource['service.name']).toBe('app-with-own-sdk');
    expect(receiver.requests.every((r) => r.contentType === 'application/x-protobuf')).toBe(true);

    await perpass.shutdown(); // flushes only: the provider is the app's
    expect(registered()).toBe(appProvider);
    expect(logs.join('\n')).not.toMatch(/not recorded/);
    await sdk.shutdown();
  });

  it("warns once when the app's sampler drops attempts, because $/pass would be biased", async () => {
    const provider = new SdkTracerProvider({
      sampler: new AlwaysOffSampler(),
      spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${receiver.url}/v1/traces` }) })],
    });
    trace.setGlobalTracerProvider(provider);
    const perpass = setupPerpass();
    await oneAttemptWithACall();
    await oneAttemptWithACall();
    await perpass.forceFlush();
    expect(receiver.spans).toEqual([]);
    const warnings = logs.filter((l) => l.includes('is not recorded'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(
      /^perpass: attempt 1 of spec "spec-attached" \(trace [0-9a-f]{32}\) is not recorded: the tracer provider's sampler dropped it \(head sampling\), so the pipeline never sees it and \$\/pass is biased\. Sample every attempt/,
    );
    await provider.shutdown();
  });

  it('attaches to a bare provider registered without a context manager, and registers one so spans still nest', async () => {
    const provider = new SdkTracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter: new OTLPTraceExporter({ url: `${receiver.url}/v1/traces` }) })] });
    trace.setGlobalTracerProvider(provider);

    const perpass = setupPerpass();
    expect(perpass.mode).toBe('attached');
    expect(registered()).toBe(provider);
    expect(logs.join('\n')).toMatch(/no context manager was registered; registered AsyncLocalStorageContextManager/);

    await oneAttemptWithACall();
    await perpass.forceFlush();
    const spans = await receiver.waitFor((s) => s.length === 2);
    const attempt = spans.find((s) => s.name === 'attempt spec-attached')!;
    expect(spans.find((s) => s.name === 'chat gpt-4o')!.parentSpanId).toBe(attempt.spanId);
    await provider.shutdown();
  });
});
