/**
 * Every entry point checks the Node version first: `bin/fleet.js` under a
 * Node older than 22.15 (a real Node 20 from the npm registry) says what it
 * needs and how to get it, instead of "bad option: --experimental-strip-types".
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';
import { repoRoot } from './support/kafka-context.ts';
import { nodeRelease } from './support/toolchains.ts';

const run = promisify(execFile);

it('bin/fleet.js under Node 20 names the version it needs and where to get it, and exits 1', async () => {
  const node20 = await nodeRelease(20);
  const failed = await run(node20, [path.join(repoRoot, 'bin', 'fleet.js'), 'start'], { cwd: repoRoot }).then(
    () => undefined,
    (e: { code?: number; stderr?: string }) => e,
  );
  expect(failed?.code).toBe(1);
  expect(failed?.stderr).toMatch(/^perpass needs Node ≥ 22\.15 \(found 20\.\d+\.\d+ at .*\)\. Install Node 22 LTS or newer .*scripts\/dev\.sh, which fetches Node 24/);
  expect(failed?.stderr).not.toMatch(/bad option/);
}, 600_000);

it('bin/fleet.js under this Node runs the command line', async () => {
  const { stdout } = await run(process.execPath, [path.join(repoRoot, 'bin', 'fleet.js'), '--help'], { cwd: repoRoot });
  expect(stdout).toMatch(/Usage: fleet/);
}, 60_000);
