/**
 * The SDK from plain JavaScript: `npm run build` emits JS + .d.ts to dist/,
 * and a .mjs program imports `perpass/instrumentation` through the package's
 * exports map, in a separate Node process configured only by OTEL_*
 * environment variables. An installed copy (under node_modules, where Node
 * strips no types) resolves every entry of the exports map.
 */
import { execFile, execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FIXTURES } from './instrumentation-usage-fixtures.ts';
import { OtlpReceiver } from './instrumentation-receiver.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
let receiver: OtlpReceiver;

beforeAll(async () => {
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'pipe' });
  receiver = await OtlpReceiver.start();
});

afterAll(async () => {
  await receiver.close();
});

async function runAgent(env: Record<string, string>): Promise<{ mode: string }> {
  const { stdout } = await promisify(execFile)(process.execPath, ['test/instrumentation-plain-js.mjs'], {
    cwd: root,
    env: {
      PATH: process.env.PATH ?? '',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20env-token',
      OTEL_SERVICE_NAME: 'plain-js-agent',
      OTEL_RESOURCE_ATTRIBUTES: 'fleet.tenant=team-env,fleet.pool=pool-env',
      PERPASS_TEST_RESPONSE: JSON.stringify(FIXTURES.openrouterDocumented.response),
      ...env,
    },
  });
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as { mode: string };
}

describe('plain JavaScript use of the built SDK', () => {
  it('builds JS and type declarations for every package entry', () => {
    for (const entry of ['instrumentation', 'pricing', 'contract']) {
      for (const file of [`dist/${entry}/index.js`, `dist/${entry}/index.d.ts`]) expect(existsSync(`${root}${file}`), file).toBe(true);
    }
    expect(existsSync(`${root}dist/pricing/prices.json`)).toBe(true);
  });

  it('an installed copy under node_modules, in a directory with a space, imports perpass/pricing and perpass/contract and loads the shipped catalog', async () => {
    // What npm install leaves: the package's files under node_modules/perpass (its dependencies beside it).
    const app = mkdtempSync(path.join(tmpdir(), 'perpass app '));
    try {
      const pkg = path.join(app, 'node_modules', 'perpass');
      for (const entry of ['package.json', 'dist', 'pricing', 'contract']) cpSync(path.join(root, entry), path.join(pkg, entry), { recursive: true });
      symlinkSync(path.join(root, 'node_modules'), path.join(pkg, 'node_modules'));
      const program = [
        "import { loadDefaultCatalog, priceCall, formatUsd } from 'perpass/pricing';",
        "import { TOKEN_KINDS, zeroTokens } from 'perpass/contract';",
        "import { withAttempt } from 'perpass/instrumentation';",
        'const r = priceCall(loadDefaultCatalog(), { provider: "anthropic", model: "claude-sonnet-4-6", startedAtMs: Date.parse("2026-05-19"), serviceTier: "standard", tokens: { ...zeroTokens(), input: 1000000 } });',
        'console.log(JSON.stringify({ usd: r.priced ? formatUsd(r.costAtto) : r.reason, kinds: TOKEN_KINDS, sdk: typeof withAttempt }));',
      ].join('\n');
      const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', program], { cwd: app, env: { PATH: process.env.PATH ?? '' } });
      expect(JSON.parse(stdout)).toEqual({ usd: '3', kinds: ['input', 'cache_read', 'cache_write', 'output', 'reasoning'], sdk: 'function' });
    } finally {
      rmSync(app, { recursive: true, force: true });
    }
  });

  it('OTEL_SDK_DISABLED turns it off without breaking the agent', async () => {
    receiver.requests.length = 0;
    expect(await runAgent({ OTEL_SDK_DISABLED: 'true', PERPASS_TEST_SHUTDOWN: '1' })).toEqual({ mode: 'disabled' });
    expect(receiver.requests).toEqual([]);
  });

  for (const [protocol, contentType, shutdown] of [
    ['http/protobuf', 'application/x-protobuf', '1'],
    ['http/json', 'application/json', '0'],
  ] as const) {
    it(`exports the retry loop over ${protocol}, configured by OTEL_* variables (${shutdown === '1' ? 'explicit shutdown' : 'flushed on beforeExit'})`, async () => {
      receiver.requests.length = 0;
      expect(await runAgent({ OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol, PERPASS_TEST_SHUTDOWN: shutdown })).toEqual({ mode: 'started' });
      const spans = receiver.spans;
      expect(spans.map((s) => s.name).sort()).toEqual([
        'attempt spec-plain-js',
        'attempt spec-plain-js',
        'chat anthropic/claude-sonnet-4.6',
        'chat anthropic/claude-sonnet-4.6',
        'execute_tool run_tests',
        'execute_tool run_tests',
      ]);
      for (const r of receiver.requests) {
        expect(r.path).toBe('/v1/traces');
        expect(r.contentType).toBe(contentType);
        expect(r.headers.authorization).toBe('Bearer env-token');
      }
      expect(spans[0]!.resource).toMatchObject({ 'service.name': 'plain-js-agent', 'fleet.tenant': 'team-env', 'fleet.pool': 'pool-env' });
      const attempts = spans.filter((s) => s.name === 'attempt spec-plain-js');
      expect(attempts.map((a) => [a.attributes['fleet.attempt.number'], a.attributes['fleet.attempt.outcome']]).sort()).toEqual([
        [1, 'fail'],
        [2, 'pass'],
      ]);
      for (const call of spans.filter((s) => s.name.startsWith('chat '))) {
        expect(attempts.map((a) => a.spanId)).toContain(call.parentSpanId);
        expect(call.attributes).toMatchObject({
          'gen_ai.provider.name': 'openrouter',
          'gen_ai.usage.input_tokens': 194,
          'gen_ai.usage.cache_write.input_tokens': 100,
          'gen_ai.usage.output_tokens': 2,
          'fleet.cost.reported_usd': 0.95,
        });
      }
    });
  }
});
