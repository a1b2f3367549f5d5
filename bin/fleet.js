#!/usr/bin/env node
// The fleet command line. Node runs the TypeScript sources directly (type
// stripping is on by default from Node 22.18/23.6; older 22.x need the flag,
// so re-run with it there). Checked first: an older Node would fail with
// "bad option: --experimental-strip-types" and no word about why.
import { spawnSync } from 'node:child_process';

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 15)) {
  process.stderr.write(
    `perpass needs Node ≥ 22.15 (found ${process.versions.node} at ${process.execPath}). ` +
      'Install Node 22 LTS or newer (https://nodejs.org, or nvm install 24), or run perpass through scripts/dev.sh, which fetches Node 24 into .tools/ when the machine\'s is older.\n',
  );
  process.exit(1);
}

if (process.features.typescript) {
  await import('../cli/index.ts');
} else {
  const cli = new URL('../cli/index.ts', import.meta.url).pathname;
  const r = spawnSync(process.execPath, ['--experimental-strip-types', '--no-warnings=ExperimentalWarning', cli, ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
