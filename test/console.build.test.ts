/**
 * The console's bundle is committed (console/assets/app.js, app.css) so `fleet start`
 * serves it from a clean clone without a build step; this fails when the
 * front end changed and `npm run build:console` was not run.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { bundleConsole } from '../console/build.ts';

describe('the console bundle', () => {
  it('is what esbuild builds from console/web now', async () => {
    const built = await bundleConsole(false);
    expect(Object.keys(built).sort()).toEqual(['app.css', 'app.js']);
    expect(built['app.js']!.length).toBeGreaterThan(10_000);
    for (const [name, text] of Object.entries(built)) {
      expect(readFileSync(new URL(`../console/assets/${name}`, import.meta.url), 'utf8') === text, `console/assets/${name} is stale: run npm run build:console`).toBe(true);
    }
  });
});
