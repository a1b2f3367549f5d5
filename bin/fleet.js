#!/usr/bin/env node
// The fleet command line. Node runs the TypeScript sources directly (type
// stripping is on by default from Node 22.18/23.6; older 22.x need the flag,
// so re-run with it there).
import { spawnSync } from 'node:child_process';

if (process.features.typescript) {
  await import('../cli/index.ts');
} else {
  const cli = new URL('../cli/index.ts', import.meta.url).pathname;
  const r = spawnSync(process.execPath, ['--experimental-strip-types', '--no-warnings=ExperimentalWarning', cli, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
