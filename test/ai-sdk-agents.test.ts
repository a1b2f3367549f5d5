/**
 * Node agents on the Vercel AI SDK 7 with its OpenTelemetry integrations —
 * `@ai-sdk/otel`'s default `OpenTelemetry` (GenAI `chat` spans, no reasoning
 * count) and `LegacyOpenTelemetry` (`ai.*` spans, with it) — registered with
 * registerTelemetry, exporting through the plain OpenTelemetry Node SDK to a
 * child `fleet start`, against the local OpenAI-compatible server: a Moonshot
 * model reached through baseURL, DeepSeek by its API host, streaming and
 * not, priced exactly as by hand.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BY_HAND, cannedUsage, startAgentFleet, type RunningFleet } from './support/agent-fleet.ts';
import { startFakeOpenAi, type FakeOpenAi } from './support/fake-openai.ts';
import { repoRoot } from './support/kafka-context.ts';
import { tempDir } from './support/store.ts';

const run = promisify(execFile);

const { kimi: KIMI, deepseek: DEEPSEEK, specA: SPEC_A_COST } = BY_HAND; // by hand: test/support/agent-fleet.ts
const INTEGRATIONS = ['default', 'legacy'] as const;

let fake: FakeOpenAi;
let fleet: RunningFleet;

beforeAll(async () => {
  fake = await startFakeOpenAi(cannedUsage);
  fleet = await startAgentFleet(['--data-dir', tempDir('ai-sdk-agents')]);
}, 180_000);

afterAll(async () => {
  await fleet?.stop();
  await fake?.close();
});

function plan(which: string) {
  const tier = `ai-sdk-${which}`;
  const kimi = (stream: boolean) => ({ model: 'kimi-k2.6', stream, baseURL: fake.baseUrl });
  // Through the proxy (NODE_USE_ENV_PROXY below), under the API's own host name.
  const deepseek = (stream: boolean) => ({ model: 'deepseek-v4-flash', stream, baseURL: 'http://api.deepseek.com/v1' });
  const attempts = [
    { spec: `${which}-A`, tier, number: 1, outcome: 'fail', calls: [kimi(false), deepseek(true)] },
    { spec: `${which}-A`, tier, number: 2, outcome: 'pass', calls: [kimi(true), deepseek(false)] },
  ];
  // Only the default integration records the host (server.address): an Azure resource is recognised by it.
  if (which === 'default') attempts.push({ spec: `${which}-B`, tier, number: 1, outcome: 'pass', calls: [{ model: 'gpt-5.4', stream: true, baseURL: 'http://perpass-test.openai.azure.com/openai/v1' }] });
  return { endpoint: fleet.otlp, service: `ai-sdk-${which}-agent`, attempts };
}

describe.each(INTEGRATIONS)('an AI SDK 7 agent with the %s OpenTelemetry integration', (which) => {
  const tier = `ai-sdk-${which}`;
  const p = () => plan(which);

  beforeAll(async () => {
    const env = { ...process.env };
    for (const k of ['HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy']) delete env[k];
    const thePlan = p();
    const { stdout } = await run(process.execPath, [path.join(repoRoot, 'test', 'agents', 'ai-sdk-agent.ts'), which, JSON.stringify(thePlan)], {
      cwd: repoRoot,
      timeout: 120_000,
      env: { ...env, NODE_USE_ENV_PROXY: '1', HTTP_PROXY: fake.proxyUrl, NO_PROXY: '127.0.0.1,localhost' },
    });
    expect(stdout).toMatch(new RegExp(`sent ${thePlan.attempts.reduce((n, a) => n + a.calls.length, 0)} calls`));
    await fleet.waitForCount(`SELECT count() AS n FROM fleet.attempts FINAL WHERE spec_tier = '${tier}'`, thePlan.attempts.length);
  }, 180_000);

  it('prices each call under the provider that served it, exactly, streaming or not', async () => {
    const calls = await fleet.rows<Record<string, string | null>>(
      `SELECT model, provider, provider_source, server_address, dialect, cost_usd, unpriced_reason FROM fleet.llm_calls FINAL
       WHERE attempt_id IN (SELECT attempt_id FROM fleet.attempts FINAL WHERE spec_tier = {tier:String}) ORDER BY model, cost_usd`,
      { tier },
    );
    const dialect = which === 'default' ? 'gen_ai' : 'vercel_ai';
    const host = (h: string) => (which === 'default' ? h : '');
    const deepseek = { model: 'deepseek-v4-flash', provider: 'deepseek', provider_source: which === 'default' ? 'host' : 'inferred', server_address: host('api.deepseek.com'), dialect, cost_usd: DEEPSEEK, unpriced_reason: '' };
    const kimi = { model: 'kimi-k2.6', provider: 'moonshot', provider_source: 'inferred', server_address: host(fake.proxyUrl.slice(7)), dialect, cost_usd: KIMI, unpriced_reason: '' };
    const azure = {
      model: 'gpt-5.4', provider: 'azure.ai.openai', provider_source: 'host', server_address: 'perpass-test.openai.azure.com', dialect, cost_usd: null,
      unpriced_reason: expect.stringMatching(/^model "gpt-5\.4" has price cards only for provider openai, not for the call's provider "azure\.ai\.openai".*\(the request went to perpass-test\.openai\.azure\.com\)$/),
    };
    expect(calls).toEqual([deepseek, deepseek, ...(which === 'default' ? [azure] : []), kimi, kimi]);
  });

  it('rolls them up into $/pass as by hand', async () => {
    const rows = await fleet.rows(
      `SELECT model, attempts, passes, cost_usd, cost_per_pass, unpriced_attempts
       FROM fleet.v_cost_per_pass_window(since = now64(9) - INTERVAL 1 DAY, until = now64(9) + INTERVAL 1 DAY) WHERE spec_tier = {tier:String} ORDER BY model`,
      { tier },
    );
    expect(rows).toEqual([
      ...(which === 'default' ? [{ model: 'gpt-5.4', attempts: 1, passes: 1, cost_usd: null, cost_per_pass: null, unpriced_attempts: 1 }] : []),
      { model: 'kimi-k2.6', attempts: 2, passes: 1, cost_usd: SPEC_A_COST, cost_per_pass: SPEC_A_COST, unpriced_attempts: 0 },
    ]);
  });
});
