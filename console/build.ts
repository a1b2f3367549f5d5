/**
 * Bundles the console's front end (console/web) into console/dist/app.js
 * (and console/assets/app.css) with esbuild. The bundle is committed so `fleet start` serves it from a
 * clean clone with no build step; test/console.build.test.ts fails when it
 * is stale. Run: `npm run build:console`.
 */
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/** The bundle's files, by name (app.js, app.css: the page's styles with uPlot's), nothing written when `write` is false. */
export async function bundleConsole(write: boolean): Promise<Record<string, string>> {
  const result = await build({
    entryPoints: [here('./web/main.ts')],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    legalComments: 'eof',
    write,
    outfile: here('./assets/app.js'),
    logLevel: 'warning',
  });
  return Object.fromEntries((result.outputFiles ?? []).map((f) => [f.path.split('/').pop()!, f.text]));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundleConsole(true);
