/**
 * The console's bundle is committed (console/assets/app.js) so `fleet start`
 * serves it from a clean clone without a build step; this fails when the
 * front end changed and `npm run build:console` was not run.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bundleConsole } from '../console/build.ts';

describe('the console bundle', () => {
  it('is what esbuild builds from console/web now', async () => {
    const built = await bundleConsole(false);
    expect(built.length).toBeGreaterThan(10_000);
    expect(readFileSync(new URL('../console/assets/app.js', import.meta.url), 'utf8') === built, 'console/assets/app.js is stale: run npm run build:console').toBe(true);
  });
});
