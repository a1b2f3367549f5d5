/**
 * Python agents as teams run them — the official `openai` SDK traced by
 * OpenLLMetry (opentelemetry-instrumentation-openai) or OpenInference, OTLP
 * to a child `fleet start` — against a local OpenAI-compatible server with
 * canned usage, so every cost is known by hand. Covers provider resolution
 * (an OpenAI-compatible model reached through base_url, DeepSeek by its API
 * host, Azure left unpriced), streaming and not, and then a catalog fix
 * followed by `fleet prices reprice`, and the CLI finding its instance.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BY_HAND, cannedUsage, startAgentFleet, type RunningFleet } from './support/agent-fleet.ts';
import { startFakeOpenAi, type FakeOpenAi } from './support/fake-openai.ts';
import { repoRoot } from './support/kafka-context.ts';
import { startFleet } from './support/processes.ts';
import { tempDir } from './support/store.ts';
import { aptInstall, pythonVenv } from './support/toolchains.ts';

const run = promisify(execFile);

/** Pinned, minimal: the SDK, the exporter, the two instrumentations, the openai SDK. */
const PYTHON_PACKAGES = [
  'opentelemetry-sdk==1.45.2',
  'opentelemetry-exporter-otlp-proto-http==1.45.2',
  'opentelemetry-instrumentation-openai==0.62.4',
  'openinference-instrumentation-openai==0.1.66',
  'openai==3.63.0',
];

/*
 * By hand: BY_HAND (test/support/agent-fleet.ts) for kimi-k2.6, deepseek-v4-flash and spec A;
 *   kimi-k2.7-preview: no card until FIXED_CARD (in 1.2, out 5):
 *     4000 × 1.2 + 1000 × 5 = 9800 µ$                              → 0.0098
 */
const { kimi: KIMI, deepseek: DEEPSEEK, specA: SPEC_A_COST } = BY_HAND;
const FIXED = '0.0098';
const FIXED_CARD = { provider: 'moonshot', model: 'kimi-k2.7-preview', source: 'test: a card added after the calls', periods: [{ from: '2026-01-01', input: 1.2, output: 5 }] };
const WRITE_TOKEN = 'python-agents-write-token';
const INSTRUMENTATIONS = ['openllmetry', 'openinference'] as const;

let fake: FakeOpenAi;
let python: string;
let fleet: RunningFleet | undefined;
const dataDir = tempDir('python-agents');

/** The plan the agent script runs: attempts of specs A, B, R in tier py-<instrumentation>. */
function plan(which: string, otlp: string) {
  const viaBaseUrl = (model: string, stream: boolean) => ({ model, stream, base_url: fake.baseUrl });
  // The proxy lets the SDK address the real API hosts: the spans then name them.
  const deepseek = (stream: boolean) => ({ model: 'deepseek-v4-flash', stream, base_url: 'http://api.deepseek.com/v1', proxy: fake.proxyUrl });
  const azure = { model: 'gpt-5.4', stream: true, azure_endpoint: 'http://perpass-test.openai.azure.com', proxy: fake.proxyUrl };
  const tier = `py-${which}`;
  return {
    endpoint: otlp,
    service: `${which}-agent`,
    attempts: [
      { spec: `${which}-A`, tier, number: 1, outcome: 'fail', calls: [viaBaseUrl('kimi-k2.6', false), deepseek(true)] },
      { spec: `${which}-A`, tier, number: 2, outcome: 'pass', calls: [viaBaseUrl('kimi-k2.6', true), deepseek(false)] },
      { spec: `${which}-B`, tier, number: 1, outcome: 'pass', calls: [azure] },
      { spec: `${which}-R`, tier, number: 1, outcome: 'fail', calls: [viaBaseUrl('kimi-k2.7-preview', false)] },
      { spec: `${which}-R`, tier, number: 2, outcome: 'pass', calls: [viaBaseUrl('kimi-k2.7-preview', true)] },
    ],
  };
}
const ATTEMPTS_PER_RUN = 5;
const CALLS_PER_RUN = 7;

/** The environment without proxies of the machine: the agent reaches the fake server and fleet start directly. */
function agentEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['HTTP_PROXY', 'HTTPS_PROXY', 'ALL_PROXY', 'http_proxy', 'https_proxy', 'all_proxy']) delete env[k];
  return { ...env, NO_PROXY: '127.0.0.1,localhost', OTEL_SDK_DISABLED: 'false', TRACELOOP_TELEMETRY: 'false' };
}

async function runAgent(which: string): Promise<void> {
  const script = path.join(repoRoot, 'test', 'agents', 'openai_agent.py');
  const { stdout } = await run(python, [script, which, JSON.stringify(plan(which, fleet!.otlp))], { env: agentEnv(), timeout: 120_000 });
  expect(stdout).toMatch(new RegExp(`sent ${CALLS_PER_RUN} calls`));
}

interface CallRow {
  model: string;
  provider: string;
  provider_source: string;
  instrumented_provider: string;
  server_address: string;
  dialect: string;
  cost_usd: string | null;
  unpriced_reason: string;
  stream: number;
}

const callsOf = (tier: string) =>
  fleet!.rows<CallRow>(
    `SELECT c.model AS model, c.provider AS provider, c.provider_source AS provider_source, c.instrumented_provider AS instrumented_provider,
            c.server_address AS server_address, c.dialect AS dialect, c.cost_usd AS cost_usd, c.unpriced_reason AS unpriced_reason
     FROM fleet.llm_calls AS c FINAL
     WHERE c.attempt_id IN (SELECT attempt_id FROM fleet.attempts FINAL WHERE spec_tier = {tier:String})
     ORDER BY model, cost_usd`,
    { tier },
  );

interface PassRow {
  model: string;
  attempts: number;
  passes: number;
  cost_usd: string | null;
  cost_per_pass: string | null;
  unpriced_attempts: number;
}
const costPerPass = (tier: string) =>
  fleet!.rows<PassRow>(
    `SELECT model, attempts, passes, cost_usd, cost_per_pass, unpriced_attempts
     FROM fleet.v_cost_per_pass_window(since = now64(9) - INTERVAL 1 DAY, until = now64(9) + INTERVAL 1 DAY)
     WHERE spec_tier = {tier:String} ORDER BY model`,
    { tier },
  );

beforeAll(async () => {
  fake = await startFakeOpenAi(cannedUsage);
  // Debian ships venv's ensurepip separately (python3-venv): install it where it is missing.
  if (!(await run('python3', ['-c', 'import ensurepip, venv']).then(() => true, () => false))) await aptInstall(['python3-venv']);
  python = await pythonVenv('python-agents', PYTHON_PACKAGES);
  fleet = await startAgentFleet(['--data-dir', dataDir]);
}, 900_000);

afterAll(async () => {
  await fleet?.stop();
  await fake?.close();
});

describe.each(INSTRUMENTATIONS)('a Python agent traced by %s', (which) => {
  const tier = `py-${which}`;

  beforeAll(async () => {
    await runAgent(which);
    await fleet!.waitForCount(`SELECT count() AS n FROM fleet.attempts FINAL WHERE spec_tier = '${tier}'`, ATTEMPTS_PER_RUN);
  }, 180_000);

  it('reached the fake server through the real SDK: base_url, the DeepSeek host and the Azure resource, streaming and not', () => {
    const mine = fake.requests.filter((r) => ['kimi-k2.6', 'deepseek-v4-flash', 'gpt-5.4', 'kimi-k2.7-preview'].includes(r.model));
    expect(mine.some((r) => r.host === 'api.deepseek.com' && r.stream)).toBe(true);
    expect(mine.some((r) => r.host === 'api.deepseek.com' && !r.stream)).toBe(true);
    expect(mine.some((r) => r.host === 'perpass-test.openai.azure.com' && r.path.startsWith('/openai/deployments/'))).toBe(true);
  });

  it('prices each call under the provider that served it, exactly, with the dialect named the same streaming or not', async () => {
    const calls = await callsOf(tier);
    const dialect = which;
    // OpenLLMetry names the API host (gen_ai.openai.api_base); OpenInference names the host's provider (llm.provider).
    const byHost = which === 'openllmetry';
    expect(calls).toEqual([
      {
        model: 'deepseek-v4-flash', provider: 'deepseek', provider_source: byHost ? 'host' : 'instrumentation', instrumented_provider: byHost ? 'openai' : 'deepseek',
        server_address: byHost ? 'api.deepseek.com' : '', dialect, cost_usd: DEEPSEEK, unpriced_reason: '',
      },
      expect.objectContaining({ model: 'deepseek-v4-flash', provider: 'deepseek', cost_usd: DEEPSEEK }),
      {
        model: 'gpt-5.4', provider: 'azure.ai.openai', provider_source: byHost ? 'host' : 'instrumentation', instrumented_provider: 'azure.ai.openai',
        server_address: byHost ? 'perpass-test.openai.azure.com' : '', dialect, cost_usd: null,
        unpriced_reason: expect.stringMatching(/^model "gpt-5\.4" has price cards only for provider openai, not for the call's provider "azure\.ai\.openai"/),
      },
      // base_url at an unknown host, the instrumentation says "openai": the model's only provider is inferred.
      { model: 'kimi-k2.6', provider: 'moonshot', provider_source: 'inferred', instrumented_provider: 'openai', server_address: byHost ? fake.proxyUrl.slice(7) : '', dialect, cost_usd: KIMI, unpriced_reason: '' },
      expect.objectContaining({ model: 'kimi-k2.6', provider: 'moonshot', provider_source: 'inferred', dialect, cost_usd: KIMI }),
      { model: 'kimi-k2.7-preview', provider: 'openai', provider_source: 'instrumentation', instrumented_provider: 'openai', server_address: byHost ? fake.proxyUrl.slice(7) : '', dialect, cost_usd: null, unpriced_reason: 'no price card for model "kimi-k2.7-preview"' },
      expect.objectContaining({ model: 'kimi-k2.7-preview', cost_usd: null, dialect }),
    ]);
  });

  it('rolls the calls up into $/call and $/pass exactly as by hand', async () => {
    expect(await costPerPass(tier)).toEqual([
      { model: 'gpt-5.4', attempts: 1, passes: 1, cost_usd: null, cost_per_pass: null, unpriced_attempts: 1 },
      { model: 'kimi-k2.6', attempts: 2, passes: 1, cost_usd: SPEC_A_COST, cost_per_pass: SPEC_A_COST, unpriced_attempts: 0 },
      { model: 'kimi-k2.7-preview', attempts: 2, passes: 1, cost_usd: null, cost_per_pass: null, unpriced_attempts: 2 },
    ]);
  });
});

describe('a catalog fix, then fleet prices reprice', () => {
  const cwdDir = tempDir('python-agents-cli');
  const fixedCatalog = path.join(cwdDir, 'fixed-prices.json');
  let port = '';

  beforeAll(async () => {
    const shipped = JSON.parse(readFileSync(path.join(repoRoot, 'pricing', 'prices.json'), 'utf8')) as { cards: object[] };
    writeFileSync(fixedCatalog, JSON.stringify({ cards: [...shipped.cards, FIXED_CARD] }));
    await fleet!.stop();
    fleet = await startAgentFleet(['--data-dir', dataDir, '--prices', fixedCatalog, '--query-write-token', WRITE_TOKEN]);
    port = new URL(fleet.query).port;
  }, 180_000);

  it('says at start that the stored calls keep their old prices, and how to re-price them', () => {
    expect(fleet!.child.output()).toMatch(/the price catalog differs from the one loaded before: LLM calls already stored keep the prices they were given\. Re-price them with `fleet prices reprice`/);
  });

  it('prices check, found by --query-port, checks the loaded catalog: only the Azure calls stay unpriced, the inferred ones are listed', async () => {
    const check = startFleet(['prices', 'check', '--data-dir', path.join(cwdDir, 'nothing-here'), '--query-port', port]);
    expect(await check.exited).toBe(1);
    const out = check.output();
    expect(out).toMatch(/kimi-k2\.6: 4 calls named openai, priced as moonshot/);
    expect(out).toMatch(/kimi-k2\.7-preview: 4 calls named openai, priced as moonshot/);
    expect(out).toMatch(/2 model\(s\) seen without a price in force in the catalog loaded in http:\/\/127\.0\.0\.1:\d+ \(\d+ cards\)/);
    expect(out).toMatch(/azure\.ai\.openai\/gpt-5\.4 \(standard, provider from host\): 1 calls/);
    expect(out).toMatch(/azure\.ai\.openai\/gpt-5\.4 \(standard\): 1 calls/);
    expect(existsSync(path.join(cwdDir, 'nothing-here'))).toBe(false);
  }, 60_000);

  it('turns the NULL costs exact, updates $/pass, counts nothing twice, and a second run changes nothing', async () => {
    const reprice = (extra: string[] = []) =>
      startFleet(['prices', 'reprice', '--data-dir', path.join(cwdDir, 'nothing-here'), '--query-port', port, '--query-write-token', WRITE_TOKEN, ...extra]);
    const first = reprice();
    expect(await first.exited, first.output()).toBe(0);
    expect(first.output()).toMatch(new RegExp(`4 of ${2 * CALLS_PER_RUN} LLM calls repriced \\(4 of them unpriced before\\); 4 attempts rewritten`));
    expect(first.output()).toMatch(/\$0 before → \$0\.0392 after/);
    expect(first.output()).toMatch(/2 LLM calls still unpriced:\n {2}1 × model "gpt-5\.4" has price cards only for provider openai/);

    for (const which of INSTRUMENTATIONS) {
      const tier = `py-${which}`;
      const calls = (await callsOf(tier)).filter((c) => c.model === 'kimi-k2.7-preview');
      expect(calls.map((c) => [c.provider, c.provider_source, c.cost_usd, c.unpriced_reason])).toEqual([
        ['moonshot', 'inferred', FIXED, ''],
        ['moonshot', 'inferred', FIXED, ''],
      ]);
      expect(await costPerPass(tier)).toContainEqual({ model: 'kimi-k2.7-preview', attempts: 2, passes: 1, cost_usd: '0.0196', cost_per_pass: '0.0196', unpriced_attempts: 0 });
      // the other rows as before
      expect(await costPerPass(tier)).toContainEqual({ model: 'kimi-k2.6', attempts: 2, passes: 1, cost_usd: SPEC_A_COST, cost_per_pass: SPEC_A_COST, unpriced_attempts: 0 });
    }
    // One row per call and per attempt through FINAL; the old versions are still there underneath (no ALTER UPDATE).
    const [counts] = await fleet!.rows<{ calls: number; attempts: number; raw_fixed: number; total: string }>(
      `SELECT (SELECT count() FROM fleet.llm_calls FINAL) AS calls, (SELECT count() FROM fleet.attempts FINAL) AS attempts,
              (SELECT count() FROM fleet.llm_calls WHERE model = 'kimi-k2.7-preview') AS raw_fixed,
              (SELECT toString(sum(cost_usd)) FROM fleet.attempts FINAL) AS total`,
    );
    expect(counts).toEqual({ calls: 2 * CALLS_PER_RUN, attempts: 2 * ATTEMPTS_PER_RUN, raw_fixed: 8, total: '0.0499448' });
    // 2 × (spec A 0.0053724 + spec R 0.0196) = 0.0499448: the attempts' sum is the calls' sum, nothing twice.

    const second = reprice(['--since', '1d']);
    expect(await second.exited, second.output()).toBe(0);
    expect(second.output()).toMatch(new RegExp(`0 of ${2 * CALLS_PER_RUN} LLM calls repriced .*; 0 attempts rewritten`));
  }, 120_000);
});

describe('fleet start --reprice-on-start', () => {
  it('re-prices with the catalog it loads when it differs: back on the shipped one, kimi-k2.7-preview is unpriced again', async () => {
    await fleet!.stop();
    fleet = await startAgentFleet(['--data-dir', dataDir, '--reprice-on-start']);
    const out = fleet.child.output();
    expect(out).toMatch(/the price catalog differs from the one loaded before: re-pricing the stored LLM calls \(--reprice-on-start\)/);
    expect(out).toMatch(new RegExp(`re-priced 4 of ${2 * CALLS_PER_RUN} LLM calls \\(\\$0\\.0392 → \\$0\\), 4 attempts rewritten; 6 calls still unpriced`));
    for (const which of INSTRUMENTATIONS) {
      expect(await costPerPass(`py-${which}`)).toContainEqual({ model: 'kimi-k2.7-preview', attempts: 2, passes: 1, cost_usd: null, cost_per_pass: null, unpriced_attempts: 2 });
    }
    const [counts] = await fleet.rows<{ calls: number; attempts: number }>(
      'SELECT (SELECT count() FROM fleet.llm_calls FINAL) AS calls, (SELECT count() FROM fleet.attempts FINAL) AS attempts',
    );
    expect(counts).toEqual({ calls: 2 * CALLS_PER_RUN, attempts: 2 * ATTEMPTS_PER_RUN });
  }, 180_000);
});

describe('the CLI finding its instance', () => {
  it('reads through the running fleet start by --query-port, whatever --data-dir says', async () => {
    const report = startFleet(['report', 'cost-per-pass', '--tier', 'py-openllmetry', '--data-dir', tempDir('no-store'), '--query-port', new URL(fleet!.query).port, '--format', 'json']);
    expect(await report.exited, report.output()).toBe(0);
    const rows = JSON.parse(report.output().slice(report.output().indexOf('['))) as { model: string; input_price: string | null }[];
    // $/M shows the card that priced the row's calls: moonshot's for kimi-k2.6, none for the Azure gpt-5.4 row nor kimi-k2.7-preview (unpriced again).
    expect(rows.map((r) => [r.model, r.input_price])).toEqual([
      ['kimi-k2.6', '0.95'],
      ['gpt-5.4', null],
      ['kimi-k2.7-preview', null],
    ]);
  }, 60_000);

  it('a read command in a directory without a store creates nothing and exits non-zero', async () => {
    const empty = tempDir('empty');
    const missing = path.join(empty, 'data');
    const closedPort = '1'; // nothing listens on port 1
    for (const args of [
      ['report', 'cost-per-pass', '--data-dir', missing, '--query-port', closedPort],
      ['prices', 'check', '--data-dir', empty, '--query-port', closedPort],
      ['prices', 'reprice', '--data-dir', missing, '--query-port', closedPort],
    ]) {
      const cmd = startFleet(args);
      expect(await cmd.exited, cmd.output()).toBe(1);
      expect(cmd.output()).toMatch(/no running fleet start found \(none owns .*, nothing answers at http:\/\/127\.0\.0\.1:1\) and .* holds no perpass store \(database fleet\)/);
    }
    expect(readdirSync(empty)).toEqual([]);
    mkdirSync(missing);
    expect(readdirSync(missing)).toEqual([]);
  }, 60_000);

  it('an unanswering --query-url is named', async () => {
    const cmd = startFleet(['report', 'cost-per-pass', '--query-url', 'http://127.0.0.1:1']);
    expect(await cmd.exited).toBe(1);
    expect(cmd.output()).toMatch(/fleet report cost-per-pass: no perpass query endpoint answers at http:\/\/127\.0\.0\.1:1 \(--query-url/);
  }, 60_000);
});
