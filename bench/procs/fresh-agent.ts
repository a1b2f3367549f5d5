/**
 * An instrumented agent for the freshness benchmark: a separate process
 * with the perpass SDK (setupPerpass: OpenTelemetry Node SDK, OTLP/HTTP
 * protobuf, BatchSpanProcessor with perpass's 200 ms delay). Runs `attempts`
 * attempts at `rate` per second, each with its own `fleet.variant`
 * (`f<run>-<n>`), so each becomes its own row of v_cost_per_pass; prints
 * `{"event":"ended","variant":…,"t":<epoch ms>}` right after each attempt
 * span has ended.
 *   node bench/procs/fresh-agent.ts '{"endpoint":…,"tenant":…,"attempts":…,"rate":…,"calls":…,"run":…}'
 */
import { providerResponse } from '../../demo/send.ts';
import { recordLlmCall, setupPerpass, withAttempt, withToolCall } from '../../instrumentation/index.ts';

const o = { attempts: 20, rate: 4, calls: 6, run: 'r', ...JSON.parse(process.argv[2] ?? '{}') } as { endpoint: string; tenant: string; attempts: number; rate: number; calls: number; run: string };
const emit = (event: string, data: Record<string, unknown> = {}) => process.stdout.write(`${JSON.stringify({ event, ...data })}\n`);
const sdk = setupPerpass({ serviceName: 'bench-fresh-agent', endpoint: o.endpoint, tenant: o.tenant, pool: 'bench', logLevel: 'error' });
const tokens = { input: 9_000, cache_read: 30_000, cache_write: 0, output: 2_500, reasoning: 1_500 };
const t0 = performance.now();
emit('ready');
for (let i = 0; i < o.attempts; i++) {
  const variant = `f${o.run}-${i}`;
  await withAttempt({ specId: `fresh-${o.run}-${i}`, tier: 'tier-2', attempt: 1, canary: 'bench/freshness', variant }, async (attempt) => {
    for (let c = 0; c < o.calls; c++) {
      recordLlmCall({ provider: 'deepseek', requestModel: 'deepseek-v4-flash', response: providerResponse('deepseek', 'deepseek-v4-flash', tokens) });
      await withToolCall('run_tests', async () => {});
    }
    attempt.pass();
  });
  emit('ended', { variant, t: Date.now() });
  // paced on a fixed schedule, not "sleep after each"
  const due = t0 + ((i + 1) * 1000) / o.rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}
await sdk.shutdown();
emit('done');
process.exit(0);
