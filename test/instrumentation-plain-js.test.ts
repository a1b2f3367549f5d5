/**
 * The SDK from plain JavaScript: `npm run build` emits JS + .d.ts to dist/,
 * and a .mjs program imports `perpass/instrumentation` through the package's
 * exports map, in a separate Node process configured only by OTEL_*
 * environment variables.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
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
  it('builds JS and type declarations for the package entry', () => {
    for (const file of ['dist/instrumentation/index.js', 'dist/instrumentation/index.d.ts', 'dist/pricing/prices.json']) expect(existsSync(`${root}${file}`), file).toBe(true);
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
