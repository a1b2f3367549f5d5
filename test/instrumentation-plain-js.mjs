// A plain JavaScript agent: no TypeScript, no loader, the built SDK imported
// through the package's exports map, configured only by OTEL_* variables.
import { llmCall, setupPerpass, withAttempt, withToolCall } from 'perpass/instrumentation';

const perpass = setupPerpass();
const response = JSON.parse(process.env.PERPASS_TEST_RESPONSE);

for (let attempt = 1; attempt <= 2; attempt++) {
  const passed = await withAttempt({ specId: 'spec-plain-js', tier: 'tier-1', attempt }, async (a) => {
    await llmCall({ provider: 'openrouter', requestModel: response.model }, async () => response);
    const green = await withToolCall('run_tests', async () => attempt === 2);
    if (green) a.pass();
    else a.fail('tests red');
    return green;
  });
  if (passed) break;
}
console.log(JSON.stringify({ mode: perpass.mode }));
// Without an explicit shutdown the SDK flushes on 'beforeExit'; both paths are exercised.
if (process.env.PERPASS_TEST_SHUTDOWN === '1') await perpass.shutdown();
